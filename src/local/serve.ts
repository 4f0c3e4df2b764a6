import { join } from 'node:path';
import type { SecretsProvider } from '../aws/secrets';
import { waitingObjects } from '../steps/sweep';
import type { Config, Dataflow } from '../config/schema';
import { fileNameOf } from '../contracts';
import { type Sandbox, type SandboxSettings, startSandbox } from '../api/sandbox';
import { type LocalRunResult, type RunProgress, runObject } from './runner';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from './s3';
import { type PullResult, pullSftp } from '../sources/sftp';
import { silentLog } from '../steps/deps';

export type ServeEvent =
  | { type: 'pulled'; dataflow: string; result: PullResult }
  | { type: 'started'; dataflow: string; key: string }
  | { type: 'finished'; dataflow: string; key: string; result: LocalRunResult }
  | { type: 'error'; dataflow: string; key: string; error: Error };

export interface ServeOptions {
  config: Config;
  configFile: string;
  secrets: SecretsProvider;
  /** Settings of the embedded sandbox; ignored when `apiUrl` is given. */
  sandbox?: SandboxSettings;
  apiUrl?: string;
  host?: string;
  /** @default 4569 */
  s3Port?: number;
  /** @default 8080 */
  apiPort?: number;
  /** Where the embedded S3 keeps its data, so that it survives restarts (and duplicates are recognised). */
  dataDir: string;
  /** Where each run's report and rejected records go. */
  outDir: string;
  /** How often the inbox is looked at. @default 1000 */
  pollMs?: number;
  /** How often an SFTP source is polled (its schedule's part). @default 30000 */
  sftpPollMs?: number;
  onEvent?: (event: ServeEvent) => void;
  progress?: (event: RunProgress) => void;
}

export interface ServeHandle {
  readonly s3: LocalS3;
  readonly apiUrl: string;
  stop(): Promise<void>;
}

/**
 * The local twin of the deployed stack: an embedded S3 that any S3 client can upload to, the API sandbox, and a run
 * of the per-file workflow for every object that lands under a dataflow's prefix and matches its pattern (what the
 * S3 "Object Created" rule does in AWS). The inbox is looked at every `pollMs`, which also plays the schedules' sweep;
 * an SFTP source is polled every `sftpPollMs`.
 */
export async function startServe(options: ServeOptions): Promise<ServeHandle> {
  const host = options.host ?? '127.0.0.1';
  const s3 = await startLocalS3({ directory: options.dataDir, port: options.s3Port ?? 4569, host });
  let sandbox: Sandbox | undefined;
  if (!options.apiUrl) sandbox = await startSandbox(options.sandbox ?? {}, options.apiPort ?? 8080, host);
  const apiUrl = options.apiUrl ?? sandbox!.url;
  const seen = new Set<string>();
  let stopped = false;
  let stamp = 0;

  async function runOne(dataflow: Dataflow, key: string): Promise<void> {
    options.onEvent?.({ type: 'started', dataflow: dataflow.name, key });
    try {
      const outDir = join(options.outDir, `${dataflow.name}-${new Date().toISOString().replace(/[:.]/g, '-')}-${++stamp}-${fileNameOf(key)}`);
      const result = await runObject(
        { config: options.config, configFile: options.configFile, dataflow, secrets: options.secrets, s3, sandbox, apiUrl: options.apiUrl, outDir, progress: options.progress },
        key,
      );
      options.onEvent?.({ type: 'finished', dataflow: dataflow.name, key, result });
    } catch (error) {
      options.onEvent?.({ type: 'error', dataflow: dataflow.name, key, error: error instanceof Error ? error : new Error(String(error)) });
    }
  }

  const lastPull = new Map<string, number>();
  async function pullDue(dataflow: Dataflow): Promise<void> {
    if (dataflow.source.type !== 'sftp' || Date.now() - (lastPull.get(dataflow.name) ?? 0) < (options.sftpPollMs ?? 30_000)) return;
    lastPull.set(dataflow.name, Date.now());
    try {
      const result = await pullSftp(dataflow, { s3: s3.client, buckets: LOCAL_BUCKETS, secrets: options.secrets, log: silentLog });
      options.onEvent?.({ type: 'pulled', dataflow: dataflow.name, result });
    } catch (error) {
      options.onEvent?.({ type: 'error', dataflow: dataflow.name, key: `sftp://${dataflow.source.host}:${dataflow.source.port}`, error: error instanceof Error ? error : new Error(String(error)) });
    }
  }

  async function sweepOnce(): Promise<void> {
    for (const dataflow of options.config.dataflows) {
      // An SFTP source is polled first, as the schedule's sweep does; what it takes lands under the prefix.
      await pullDue(dataflow);
      for await (const object of waitingObjects(s3.client, LOCAL_BUCKETS.inbox, dataflow)) {
        const id = `${object.key}\n${object.etag}`;
        if (stopped || seen.has(id)) continue;
        seen.add(id);
        await runOne(dataflow, object.key);
      }
    }
  }

  const loop = (async () => {
    while (!stopped) {
      try {
        await sweepOnce();
      } catch (error) {
        options.onEvent?.({ type: 'error', dataflow: '*', key: '*', error: error instanceof Error ? error : new Error(String(error)) });
      }
      await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1000));
    }
  })();

  return {
    s3,
    apiUrl,
    async stop() {
      stopped = true;
      await loop;
      await sandbox?.close();
      await s3.close();
    },
  };
}
