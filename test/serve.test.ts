import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { parseConfig } from '../src/config/load';
import type { LedgerEntry } from '../src/api/sandbox';
import { type ServeEvent, type ServeHandle, startServe } from '../src/local/serve';
import { KNOWN_BADGES, SECRETS, configDocument, toCsv, validRow } from './support/factories';
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

async function finished(key: string): Promise<Extract<ServeEvent, { type: 'finished' | 'error' }>> {
  for (let i = 0; i < 600; i++) {
    const event = events.find((e): e is Extract<ServeEvent, { type: 'finished' | 'error' }> => (e.type === 'finished' || e.type === 'error') && e.key === key);
    if (event) return event;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no run finished for ${key}`);
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
