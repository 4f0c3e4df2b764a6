import { readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { FileNotMatchedError } from '../src/errors';
import type { Sandbox } from '../src/api/sandbox';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { listObjects } from '../src/aws/s3';
import { parseConfig } from '../src/config/load';
import { type LocalRunResult, runLocal, runObject } from '../src/local/runner';
import { LOCAL_BUCKETS, type LocalS3 } from '../src/local/s3';
import { startLocalServices, stopLocalServices } from './support/local';
import { KNOWN_BADGES, SECRETS, configDocument, toCsv, validRow } from './support/factories';
import { GnuPG } from './support/gpg';
import { makeZip } from './support/zips';

const brand = new GnuPG();
const vendor = new GnuPG();
const PASSPHRASE = 'brand passphrase for tests';
const brandKey = brand.generate('Brand <brand@brand.test>', 'rsa', PASSPHRASE);
const strangerKey = brand.generate('Stranger <stranger@brand.test>', 'curve25519');
const vendorKey = vendor.generate('Vendor <vendor@vendor.test>', 'curve25519');
writeFileSync(join(vendor.home, 'brand.asc'), brand.exportPublic(brandKey));
vendor.run(['--import', join(vendor.home, 'brand.asc')]);

const secrets = new StaticSecretsProvider({
  ...SECRETS,
  'pgp/key': Buffer.from(brand.exportSecret(brandKey, PASSPHRASE)).toString('base64'),
  'pgp/passphrase': PASSPHRASE,
  'pgp/vendor': vendor.exportPublic(vendorKey),
});
const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
const document = {
  dataflows: [
    { ...flow, source: { type: 's3', prefix: 'inbox/weekly-events/', filePattern: '^events_' }, decrypt: { privateKeySecret: 'pgp/key', passphraseSecret: 'pgp/passphrase' } },
    { ...flow, name: 'signed-events', source: { type: 's3', prefix: 'inbox/signed/', filePattern: '^events_' }, decrypt: { privateKeySecret: 'pgp/key', passphraseSecret: 'pgp/passphrase', verifySignatureWithSecret: 'pgp/vendor' } },
    { ...flow, name: 'plain-events', source: { type: 's3', prefix: 'inbox/plain/', filePattern: '^events_' }, unpack: { maxCompressionRatio: 100 } },
  ],
};
const configFile = join(vendor.home, 'config.json');
writeFileSync(configFile, JSON.stringify(document));
const config = parseConfig(document);

let s3: LocalS3;
let sandbox: Sandbox;
beforeAll(async () => {
  ({ s3, sandbox } = await startLocalServices({ knownBadgeIds: [...KNOWN_BADGES] }));
});
afterAll(() => stopLocalServices({ s3, sandbox }));

let n = 0;
function vendorFile(options: { armor?: boolean; sign?: boolean; recipient?: string; by?: GnuPG } = {}): string {
  const base = 900_000 + ++n * 1000;
  const plain = join(vendor.home, `plain-${n}.csv`);
  writeFileSync(plain, toCsv(Array.from({ length: 40 }, (_, i) => validRow(i + 1, base))));
  const out = join(vendor.home, `events_${n}.csv${options.armor ? '.asc' : '.gpg'}`);
  const by = options.by ?? vendor;
  by.encrypt(plain, out, { recipients: [options.recipient ?? brandKey], armor: options.armor, ...(options.sign ? { signWith: vendorKey } : {}) });
  return out;
}

function run(file: string, dataflow = 'weekly-events'): Promise<LocalRunResult> {
  return runLocal({ config, configFile, dataflow: config.dataflows.find((d) => d.name === dataflow)!, file, secrets, s3, sandbox, outDir: join(vendor.home, 'out', String(++n)) });
}

async function stagedPlaintexts(): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of listObjects(s3.client, LOCAL_BUCKETS.staging, 'runs/')) if (o.key.endsWith('/plaintext')) keys.push(o.key);
  return keys;
}

describe('Workflow: PGP-encrypted files', () => {
  it.each([false, true])('imports a file encrypted by GnuPG (armored: %s) with a passphrase-protected key given as Base64', async (armor) => {
    // Prepare
    const before = sandbox.ledger.length;

    // Act
    const result = await run(vendorFile({ armor }));

    // Assess
    expect(result.report).toMatchObject({ status: 'SUCCEEDED', rows: { total: 40, accepted: 40 } });
    expect(sandbox.ledger.length - before).toBe(40);
  });

  it.each([
    ['tampered', 'INTEGRITY_CHECK_FAILED', (file: string) => {
      const bytes = readFileSync(file);
      const at = Math.floor(bytes.length / 2);
      bytes[at] = bytes[at]! ^ 0x01;
      writeFileSync(file, bytes);
    }],
    ['truncated', 'INTEGRITY_CHECK_FAILED', (file: string) => truncateSync(file, Math.floor(statSync(file).size * 0.7))],
  ])('fails a %s file with %s, sends nothing and keeps no plaintext', async (_label, code, damage) => {
    // Prepare
    const file = vendorFile();
    damage(file);
    const before = sandbox.ledger.length;
    const plaintextsBefore = (await stagedPlaintexts()).length;

    // Act
    const result = await run(file);

    // Assess
    expect(result.exitCode).toBe(1);
    expect(result.report).toMatchObject({ status: 'FAILED', error: { code }, rows: { total: 0, accepted: 0 } });
    expect(result.report.files[0]!.source.movedTo).toMatch(/^failed\//);
    expect(sandbox.ledger.length).toBe(before);
    expect((await stagedPlaintexts()).length).toBe(plaintextsBefore);
  });

  it('fails a file encrypted to another key with DECRYPTION_FAILED and sends nothing', async () => {
    // Prepare
    const file = vendorFile({ recipient: strangerKey, by: brand });
    const before = sandbox.ledger.length;

    // Act
    const result = await run(file);

    // Assess
    expect(result.report).toMatchObject({ status: 'FAILED', error: { code: 'DECRYPTION_FAILED' } });
    expect(sandbox.ledger.length).toBe(before);
  });

  it('requires the vendor signature where configured: signed is imported, unsigned fails', async () => {
    // Prepare
    const before = sandbox.ledger.length;

    // Act
    const signed = await run(vendorFile({ sign: true }), 'signed-events');
    const unsigned = await run(vendorFile(), 'signed-events');

    // Assess
    expect(signed.report).toMatchObject({ status: 'SUCCEEDED', rows: { accepted: 40 } });
    expect(unsigned.report).toMatchObject({ status: 'FAILED', error: { code: 'SIGNATURE_INVALID' } });
    expect(sandbox.ledger.length - before).toBe(40);
  });

  it('imports a gzipped file, and a gzipped file then encrypted', async () => {
    // Prepare
    const before = sandbox.ledger.length;
    const csv = toCsv(Array.from({ length: 40 }, (_, i) => validRow(i + 1, 990_000)));
    const gz = join(vendor.home, 'events_gz.csv.gz');
    writeFileSync(gz, gzipSync(csv));
    const gzCsv = join(vendor.home, 'plain-gz.csv.gz');
    writeFileSync(gzCsv, gzipSync(toCsv(Array.from({ length: 40 }, (_, i) => validRow(i + 1, 991_000)))));
    const gzGpg = join(vendor.home, 'events_gz.csv.gz.gpg');
    vendor.encrypt(gzCsv, gzGpg, { recipients: [brandKey], compress: 'none' });

    // Act
    const plainGz = await run(gz, 'plain-events');
    const encryptedGz = await run(gzGpg);

    // Assess
    expect(plainGz.report).toMatchObject({ status: 'SUCCEEDED', rows: { total: 40, accepted: 40 } });
    expect(encryptedGz.report).toMatchObject({ status: 'SUCCEEDED', rows: { total: 40, accepted: 40 } });
    expect(sandbox.ledger.length - before).toBe(80);
  });

  it('refuses a gzip bomb with UNSAFE_ARCHIVE and sends nothing', async () => {
    // Prepare: a header row, then 64 MiB of blank lines compress about a thousandfold.
    const bomb = join(vendor.home, 'events_bomb.csv.gz');
    writeFileSync(bomb, gzipSync(Buffer.concat([Buffer.from('member_id,badge_code,event_time,expiry_date,note\n'), Buffer.alloc(64 * 1024 * 1024, 0x0a)])));
    const before = sandbox.ledger.length;

    // Act
    const result = await run(bomb, 'plain-events');

    // Assess
    expect(result.report).toMatchObject({ status: 'FAILED', error: { code: 'UNSAFE_ARCHIVE', message: expect.stringContaining('expands more than') } });
    expect(sandbox.ledger.length).toBe(before);
  });

  it('refuses, before running, a file whose name the dataflow would leave alone', async () => {
    // Prepare
    const file = join(vendor.home, 'notes.txt');
    writeFileSync(file, 'hello');

    // Act + Assess
    await expect(run(file, 'plain-events')).rejects.toThrow(FileNotMatchedError);
  });

  it('fails a PGP file sent to a dataflow without a decrypt block, saying so', async () => {
    // Act
    const result = await run(vendorFile(), 'plain-events');

    // Assess
    expect(result.report).toMatchObject({ status: 'FAILED', error: { code: 'DECRYPTION_FAILED', message: expect.stringContaining('no "decrypt" block') } });
  });
});

describe('Workflow: zip archives', () => {
  it('expands a zip (also zipped then encrypted) into its matching entries, each imported by a run of its own', async () => {
    // Prepare
    const before = sandbox.ledger.length;
    const zip = join(vendor.home, 'events_week.zip');
    makeZip(zip, {
      'week/events_mon.csv': toCsv(Array.from({ length: 20 }, (_, i) => validRow(i + 1, 995_000))),
      'week/events_tue.csv': toCsv(Array.from({ length: 20 }, (_, i) => validRow(i + 1, 996_000))),
      'week/readme.txt': 'not a data file',
    });
    const zipGpg = join(vendor.home, 'events_week2.zip.gpg');
    const zip2 = join(vendor.home, 'inner.zip');
    makeZip(zip2, { 'events_wed.csv': toCsv(Array.from({ length: 20 }, (_, i) => validRow(i + 1, 997_000))) });
    vendor.encrypt(zip2, zipGpg, { recipients: [brandKey], compress: 'none' });

    // Act
    const plain = await run(zip, 'plain-events');
    const encrypted = await run(zipGpg);
    const entries = [];
    for (const [result, dataflow] of [[plain, 'plain-events'], [encrypted, 'weekly-events']] as const) {
      for (const key of result.report.files[0]!.expandedTo ?? []) {
        entries.push(await runObject({ config, configFile, dataflow: config.dataflows.find((d) => d.name === dataflow)!, secrets, s3, sandbox, outDir: join(vendor.home, 'out', key) }, key));
      }
    }

    // Assess
    expect(plain.report).toMatchObject({ status: 'EXPANDED', files: [{ expandedTo: ['inbox/plain/events_mon.csv', 'inbox/plain/events_tue.csv'] }] });
    expect(encrypted.report).toMatchObject({ status: 'EXPANDED', files: [{ expandedTo: ['inbox/weekly-events/events_wed.csv'] }] });
    expect(entries.map((e) => [e.report.files[0]!.name, e.report.status, e.report.rows.accepted])).toEqual([
      ['events_mon.csv', 'SUCCEEDED', 20],
      ['events_tue.csv', 'SUCCEEDED', 20],
      ['events_wed.csv', 'SUCCEEDED', 20],
    ]);
    expect(sandbox.ledger.length - before).toBe(60);
  });

  it('refuses a zip with a zip-slip entry: FAILED, UNSAFE_ARCHIVE, nothing written to the inbox', async () => {
    // Prepare
    const zip = join(vendor.home, 'events_evil.zip');
    makeZip(zip, { 'events_ok.csv': toCsv([validRow(1, 998_000)]), '../events_evil.csv': 'x' });

    // Act
    const result = await run(zip, 'plain-events');
    const inbox: string[] = [];
    for await (const o of listObjects(s3.client, LOCAL_BUCKETS.inbox, 'inbox/plain/')) inbox.push(o.key);

    // Assess
    expect(result.report).toMatchObject({ status: 'FAILED', error: { code: 'UNSAFE_ARCHIVE', message: expect.stringContaining('leaves its folder') } });
    expect(inbox).not.toContain('inbox/plain/events_ok.csv');
  });
});

describe('Workflow: zip archives on a dry run', () => {
  it('checks and lists the entries without writing any to the inbox', async () => {
    // Prepare
    const zip = join(vendor.home, 'events_dry.zip');
    makeZip(zip, { 'events_dry1.csv': toCsv([validRow(1, 999_000)]) });

    // Act
    const result = await runLocal({ config, configFile, dataflow: config.dataflows.find((d) => d.name === 'plain-events')!, file: zip, secrets, s3, sandbox, outDir: join(vendor.home, 'out', 'dry'), dryRun: true });
    const inbox: string[] = [];
    for await (const o of listObjects(s3.client, LOCAL_BUCKETS.inbox, 'inbox/plain/')) inbox.push(o.key);

    // Assess
    expect(result.report).toMatchObject({ status: 'EXPANDED', dryRun: true, files: [{ expandedTo: ['inbox/plain/events_dry1.csv'] }] });
    expect(inbox).not.toContain('inbox/plain/events_dry1.csv');
  });
});
