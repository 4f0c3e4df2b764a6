import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { type LedgerEntry, type Sandbox, type SandboxSettings, startSandbox } from '../../src/api/sandbox';
import { readText } from '../../src/aws/s3';
import { StaticSecretsProvider } from '../../src/aws/secrets';
import { parseConfig } from '../../src/config/load';
import type { Config, Dataflow } from '../../src/config/schema';
import type { LocalObjectRunOptions } from '../../src/local/runner';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from '../../src/local/s3';
import { SECRETS } from './factories';

/** The local stand-ins most workflow tests share: an embedded S3 and the API sandbox. */
export interface LocalServices {
  s3: LocalS3;
  sandbox: Sandbox;
}

export async function startLocalServices(settings: SandboxSettings): Promise<LocalServices> {
  return { s3: await startLocalS3(), sandbox: await startSandbox(settings) };
}

export async function stopLocalServices({ s3, sandbox }: LocalServices): Promise<void> {
  await sandbox.close();
  await s3.close();
}

/** Puts bytes under a key of the local inbox, as a vendor's upload would; returns the version S3 gave them. */
export async function deliverToInbox(s3: LocalS3, key: string, body: string | Buffer): Promise<string | undefined> {
  return (await s3.client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: body }))).VersionId;
}

/** The one API user the house secrets name: what the sandbox lets in unless a test says otherwise. */
export const HOUSE_USERS = [{ username: SECRETS['api/user'], password: SECRETS['api/password'] }] as const;

export interface LocalWorkflowOptions {
  /** The sandbox's settings; the house user is let in unless `users` is given. */
  sandbox?: SandboxSettings;
  /** The secrets every run reads. @default the house SECRETS */
  secrets?: Record<string, string>;
}

/** One suite's local workflow: its configuration on disk, and the services its runs go through. */
export interface LocalWorkflow {
  /** The suite's own temporary directory (the configuration file, run outputs, files to run). */
  readonly work: string;
  /** The configuration document, written as JSON (the definition is synthesized from it, as in a deployment). */
  readonly configFile: string;
  readonly config: Config;
  /** The embedded S3 started for the suite; after `restart()`, the new one. */
  readonly s3: LocalS3;
  /** The API sandbox started for the suite; after `restart()`, the new one. */
  readonly sandbox: Sandbox;
  /** The named dataflow of the configuration; throws on a name it does not hold. */
  readonly dataflow: (name: string) => Dataflow;
  /**
   * Stops both services and starts fresh ones (an empty S3, a sandbox with an empty ledger): the suite's sandbox
   * settings with `settings` laid over them, e.g. `{ faults: … }`; `restart()` alone goes back to the suite's own.
   */
  readonly restart: (settings?: SandboxSettings) => Promise<void>;
  /** What the sandbox issued to customers `base + 1` to `base + n`: each test keeps its customers apart by `base`. */
  readonly ledgerFor: (base: number, n: number) => LedgerEntry[];
  /** Puts bytes under a key of the local inbox, as a vendor's upload would; returns the version S3 gave them. */
  readonly deliver: (key: string, body: string | Buffer) => Promise<string | undefined>;
  /** Options for `runObject`/`runLocal` on a dataflow against these services, each run in its own output directory. */
  readonly options: (flowName: string, extra?: Partial<LocalObjectRunOptions>) => LocalObjectRunOptions;
}

/**
 * The setup of a suite that runs the local workflow, written once: writes `document` to a temporary directory named
 * by `prefix`, parses it, and registers a `beforeAll` that starts an embedded S3 and the API sandbox and an
 * `afterAll` that stops them. Call it at the top of a test file (it registers hooks); read `s3` and `sandbox`
 * through the returned object, as `restart()` replaces them.
 */
export function localWorkflow(prefix: string, document: Record<string, unknown>, options: LocalWorkflowOptions = {}): LocalWorkflow {
  const work = mkdtempSync(join(tmpdir(), prefix));
  const configFile = join(work, 'config.json');
  writeFileSync(configFile, JSON.stringify(document));
  const config = parseConfig(document);
  const settings: SandboxSettings = { users: [...HOUSE_USERS], ...options.sandbox };
  const secrets = options.secrets ?? SECRETS;
  let services: LocalServices | undefined;
  let runs = 0;

  const started = (): LocalServices => {
    if (!services) throw new Error('The local services are not running: read s3 and sandbox inside a test or hook, after beforeAll.');
    return services;
  };
  const dataflow = (name: string): Dataflow => {
    const found = config.dataflows.find((d) => d.name === name);
    if (!found) throw new Error(`The suite's configuration has no dataflow "${name}"`);
    return found;
  };

  beforeAll(async () => {
    services = await startLocalServices(settings);
  });
  afterAll(async () => {
    if (services) await stopLocalServices(services);
  });

  return {
    work,
    configFile,
    config,
    get s3() {
      return started().s3;
    },
    get sandbox() {
      return started().sandbox;
    },
    dataflow,
    restart: async (more = {}) => {
      await stopLocalServices(started());
      services = undefined;
      services = await startLocalServices({ ...settings, ...more });
    },
    ledgerFor: (base, n) => started().sandbox.ledger.filter((e) => e.customerId > base && e.customerId <= base + n),
    deliver: (key, body) => deliverToInbox(started().s3, key, body),
    options: (flowName, extra = {}) => ({
      config,
      configFile,
      dataflow: dataflow(flowName),
      secrets: new StaticSecretsProvider(secrets),
      s3: started().s3,
      sandbox: started().sandbox,
      outDir: join(work, 'out', String(++runs)),
      ...extra,
    }),
  };
}

/**
 * An embedded S3 with a fault between stage and send: the first staged chunk loses its last record as soon as it is
 * written (as a defect in the staging or sending code would lose it), so a run's records no longer add up;
 * `tampered()` says whether it did.
 */
export async function startS3LosingAStagedRecord(): Promise<LocalS3 & { tampered: () => boolean }> {
  let tampered = false;
  const s3: LocalS3 = await startLocalS3({
    onObjectCreated: async (event) => {
      if (tampered || event.bucket !== LOCAL_BUCKETS.staging || !/\/chunks\/000000\.jsonl$/.test(event.key)) return;
      tampered = true;
      const lines = (await readText(s3.client, event.bucket, event.key))!.split('\n');
      await s3.client.send(new PutObjectCommand({ Bucket: event.bucket, Key: event.key, Body: lines.slice(0, -1).join('\n') }));
    },
  });
  return Object.assign(s3, { tampered: () => tampered });
}
