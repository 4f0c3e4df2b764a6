import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { silentLog } from '../src/steps/deps';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { parseConfig } from '../src/config/load';
import type { LedgerEntry } from '../src/api/sandbox';
import { type ServeEvent, type ServeHandle, startServe } from '../src/local/serve';
import type { ExecutionOutcome } from '../src/local/stepfunctions';
import { type SweepEvent, sweep } from '../src/steps/sweep';
import { HEADER, KNOWN_BADGES, SECRETS, configDocument, toCsv, validRow } from './support/factories';
import { GnuPG } from './support/gpg';
import { makeZip } from './support/zips';

const work = mkdtempSync(join(tmpdir(), 'serve-'));
const gpg = new GnuPG();
const brandKey = gpg.generate('Brand <brand@brand.test>', 'curve25519');
const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
const document = { dataflows: [{ ...flow, source: { type: 's3', prefix: 'inbox/weekly-events/', filePattern: '^events_' }, decrypt: { privateKeySecret: 'pgp/key' } }] };
const configFile = join(work, 'config.json');
writeFileSync(configFile, JSON.stringify(document));

const events: ServeEvent[] = [];
let serve: ServeHandle;
beforeAll(async () => {
  serve = await startServe({
    config: parseConfig(document),
    configFile,
    secrets: new StaticSecretsProvider({ ...SECRETS, 'pgp/key': gpg.exportSecret(brandKey) }),
    sandbox: { knownBadgeIds: [...KNOWN_BADGES] },
    s3Port: 0,
    apiPort: 0,
    dataDir: join(work, 'data'),
    outDir: join(work, 'out'),
    pollMs: 100,
    onEvent: (e) => events.push(e),
  });
});
afterAll(() => serve.stop());

/** Waits until `find` finds something among what serve said (60 s at most, then fails the test). */
async function said<T>(find: () => T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const found = find();
    if (found !== undefined) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`serve never said: ${what}`);
}

/** The `nth` run (1-based) of `key` that finished or failed. */
function finished(key: string, nth = 1): Promise<Extract<ServeEvent, { type: 'finished' | 'error' }>> {
  return said(() => events.filter((e): e is Extract<ServeEvent, { type: 'finished' | 'error' }> => (e.type === 'finished' || e.type === 'error') && e.key === key)[nth - 1], `run ${nth} of ${key} finished`);
}

describe('Function: startServe', () => {
  it('imports files uploaded by a plain S3 client: a CSV, and a gzipped then encrypted one; the same content again is skipped', async () => {
    // Prepare: what a vendor's tooling would do, with nothing of this project's code.
    const client = new S3Client({ endpoint: serve.s3.endpoint, forcePathStyle: true, region: 'eu-west-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    const csv = toCsv(Array.from({ length: 50 }, (_, i) => validRow(i + 1, 3_000_000)));
    const plainGz = join(work, 'b.csv.gz');
    writeFileSync(plainGz, gzipSync(toCsv(Array.from({ length: 50 }, (_, i) => validRow(i + 1, 3_100_000)))));
    const encrypted = join(work, 'b.csv.gz.gpg');
    gpg.encrypt(plainGz, encrypted, { recipients: [brandKey], compress: 'none' });

    // Act
    await client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'inbox/weekly-events/events_a.csv', Body: csv }));
    await client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'inbox/weekly-events/events_b.csv.gz.gpg', Body: readFileSync(encrypted) }));
    const a = await finished('inbox/weekly-events/events_a.csv');
    const b = await finished('inbox/weekly-events/events_b.csv.gz.gpg');
    await client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'inbox/weekly-events/events_a_again.csv', Body: csv }));
    const again = await finished('inbox/weekly-events/events_a_again.csv');
    client.destroy();

    // Assess
    expect(a.type === 'finished' && a.result.report).toMatchObject({ status: 'SUCCEEDED', rows: { accepted: 50 } });
    expect(b.type === 'finished' && b.result.report).toMatchObject({ status: 'SUCCEEDED', rows: { accepted: 50 } });
    expect(again.type === 'finished' && again.result.report).toMatchObject({ status: 'SKIPPED_DUPLICATE' });
    const ledger = (await (await fetch(`${serve.apiUrl}/__sandbox/ledger`)).json()) as LedgerEntry[];
    expect(ledger).toHaveLength(100);
  });

  it('imports a zipped, encrypted file uploaded by a plain S3 client: each entry runs on its own', async () => {
    // Prepare
    const client = new S3Client({ endpoint: serve.s3.endpoint, forcePathStyle: true, region: 'eu-west-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    const zip = join(work, 'c.zip');
    makeZip(zip, { 'events_c1.csv': toCsv(Array.from({ length: 30 }, (_, i) => validRow(i + 1, 3_200_000))), 'events_c2.csv': toCsv(Array.from({ length: 30 }, (_, i) => validRow(i + 1, 3_300_000))) });
    const encrypted = join(work, 'c.zip.gpg');
    gpg.encrypt(zip, encrypted, { recipients: [brandKey] });

    // Act
    await client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'inbox/weekly-events/events_c.zip.gpg', Body: readFileSync(encrypted) }));
    const archive = await finished('inbox/weekly-events/events_c.zip.gpg');
    const c1 = await finished('inbox/weekly-events/events_c1.csv');
    const c2 = await finished('inbox/weekly-events/events_c2.csv');
    client.destroy();

    // Assess
    expect(archive.type === 'finished' && archive.result.report.status).toBe('EXPANDED');
    expect([c1, c2].map((e) => e.type === 'finished' && [e.result.report.status, e.result.report.rows.accepted])).toEqual([
      ['SUCCEEDED', 30],
      ['SUCCEEDED', 30],
    ]);
  });
});

describe('Function: startServe, as AWS delivers', () => {
  // Defect 9: a closed execution's name is refused for 90 days; the sweep names executions after the object's S3 version,
  // so a redelivery under the same key (a new version) runs again.
  it('starts a new run when the same file is delivered again under the same key after a FAILED run (defect 9)', async () => {
    // Prepare: a file missing a mandatory column fails; the vendor delivers it again (the same bytes, the same key).
    const client = new S3Client({ endpoint: serve.s3.endpoint, forcePathStyle: true, region: 'eu-west-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    const key = 'inbox/weekly-events/events_missing_column.csv';
    const body = toCsv(Array.from({ length: 5 }, (_, i) => validRow(i + 1, 3_400_000)), { header: HEADER.filter((h) => h !== 'badge_code') });
    await client.send(new PutObjectCommand({ Bucket: 'inbox', Key: key, Body: body }));
    const first = await finished(key);
    const redelivered = Date.now();

    // Act
    await client.send(new PutObjectCommand({ Bucket: 'inbox', Key: key, Body: body }));
    // The first invocation of the sweep that began after the new delivery and names the object says what became of it.
    const outcome = await said(
      () => events.find((e): e is Extract<ServeEvent, { type: 'delivered' }> => e.type === 'delivered' && e.at > redelivered && [...e.output.started, ...e.output.alreadyStarted].includes(key)),
      `a sweep after the redelivery of ${key}`,
    );
    client.destroy();

    // Assess: the delivery is started (not taken for a run in progress), and runs a second time.
    expect(first.type === 'finished' && first.result.report.status).toBe('FAILED');
    expect(outcome.output.alreadyStarted).not.toContain(key);
    expect(outcome.output.started).toContain(key);
    const second = await finished(key, 2);
    expect(second.type === 'finished' && second.result.report.status).toBe('FAILED');
  });
});

describe('Function: startServe, races as in AWS', () => {
  // Found through the twin: without an atomic content claim, both runs imported every record.
  it('imports the same content once when it arrives under two names at once', async () => {
    // Prepare
    const client = new S3Client({ endpoint: serve.s3.endpoint, forcePathStyle: true, region: 'eu-west-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    const base = 3_900_000;
    const csv = toCsv(Array.from({ length: 50 }, (_, i) => validRow(i + 1, base)));
    const keys = ['inbox/weekly-events/events_twin_1.csv', 'inbox/weekly-events/events_twin_2.csv'];

    // Act
    await Promise.all(keys.map((Key) => client.send(new PutObjectCommand({ Bucket: 'inbox', Key, Body: csv }))));
    const runs = await Promise.all(keys.map((key) => finished(key)));
    client.destroy();

    // Assess: every record once in the API's ledger; one run imported, the other was a duplicate.
    const ledger = (await (await fetch(`${serve.apiUrl}/__sandbox/ledger`)).json()) as LedgerEntry[];
    expect(ledger.filter((e) => e.customerId > base && e.customerId <= base + 50)).toHaveLength(50);
    expect(runs.map((r) => r.type === 'finished' && r.result.report.status).sort()).toEqual(['SKIPPED_DUPLICATE', 'SUCCEEDED']);
  });
});

describe('Function: startServe, concurrency', () => {
  it('runs the files that arrive together at once, not one after another, each from the upload event as the rule transforms it', async () => {
    // Prepare: executions that end only when the test says so, and a sweep that records what it is given.
    const dataDir = join(work, 'concurrent-data');
    const inRunner = new Map<string, (outcome: ExecutionOutcome) => void>();
    const swept: SweepEvent[] = [];
    const concurrent = await startServe({
      config: parseConfig(document),
      configFile,
      secrets: new StaticSecretsProvider({ ...SECRETS }),
      s3Port: 0,
      apiPort: 0,
      dataDir,
      outDir: join(work, 'concurrent-out'),
      pollMs: 100,
      invokeSweep: (event, sfn) => {
        swept.push(event);
        return sweep(event, { config: parseConfig(document), s3: concurrentS3(), buckets: { inbox: 'inbox', staging: 'staging', deadLetter: 'dead-letter', reports: 'reports' }, secrets: new StaticSecretsProvider({}), log: silentLog, sfn: new SFNClient({ endpoint: sfn.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'l', secretAccessKey: 'l' } }), stateMachineArn: sfn.stateMachineArn });
      },
      runExecution: (input) => new Promise((resolve) => inRunner.set((input as { key: string }).key, resolve)),
    });
    const concurrentS3 = () => concurrent.s3.client;
    const client = new S3Client({ endpoint: concurrent.s3.endpoint, forcePathStyle: true, region: 'eu-west-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    const keys = ['inbox/weekly-events/events_x.csv', 'inbox/weekly-events/events_y.csv'];

    // Act: both arrive; neither run ends until both have begun.
    let put: Array<{ ETag?: string; VersionId?: string }>;
    try {
      put = await Promise.all(keys.map((Key) => client.send(new PutObjectCommand({ Bucket: 'inbox', Key, Body: `member_id\n${Key}\n` }))));
      await said(() => (keys.every((k) => inRunner.has(k)) ? true : undefined), 'both runs in progress at once');
      keys.forEach((k) => inRunner.get(k)!({ status: 'SUCCEEDED' }));
      await said(() => (concurrent.stepFunctions.executions().filter((e) => e.status === 'SUCCEEDED').length === 2 ? true : undefined), 'both executions succeeded');
    } finally {
      inRunner.forEach((end) => end({ status: 'SUCCEEDED' }));
      client.destroy();
      await concurrent.stop();
    }

    // Assess
    const uploads = swept.filter((e) => e.key !== undefined);
    expect(uploads).toEqual(expect.arrayContaining(keys.map((key, i) => ({ dataflow: 'weekly-events', key, etag: put[i]!.ETag!.replace(/"/g, ''), versionId: put[i]!.VersionId }))));
    expect(swept).toContainEqual({ dataflow: 'weekly-events' });
  });
});
