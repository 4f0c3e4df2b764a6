import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import { DateTime } from 'luxon';
import type { Report } from '../src/contracts';
import { runCli } from './support/cli';
import { GnuPG } from './support/gpg';
import { delimited, formatDate, sampleRecords } from './support/samples';

const work = mkdtempSync(join(tmpdir(), 'init-workflow-'));
/** Each test runs the whole local workflow once (synthesis included): minutes on a loaded machine, not a timed assertion. */
const WORKFLOW_TIMEOUT_MS = 300_000;
const root = join(__dirname, '..');
let n = 0;

interface Drafted {
  code: number;
  stdout: string;
  stderr: string;
  config: string;
  flow: { csv: Record<string, string>; mapping: Record<string, Record<string, string>>; decrypt?: Record<string, string> };
}

/** `badges-import init --sample FILE --out config.json` as a user runs it, and the dataflow it wrote. */
async function init(sample: string, extra: string[] = []): Promise<Drafted> {
  const config = join(work, `config-${++n}.json`);
  const printed = await runCli(['init', '--sample', sample, '--out', config, ...extra]);
  const flow = printed.code === 0 ? (JSON.parse(readFileSync(config, 'utf8')) as { dataflows: [Drafted['flow']] }).dataflows[0] : ({} as Drafted['flow']);
  return { ...printed, config, flow };
}

/** `badges-import run --config CONFIG --file SAMPLE --dry-run`, its report, and its rejected records (number → code). */
async function dryRun(config: string, sample: string, extra: string[] = []): Promise<{ code: number; report: Report; rejected: Record<string, string> }> {
  const out = join(work, `out-${++n}`);
  const printed = await runCli(['run', '--config', config, '--file', sample, '--dry-run', '--quiet', '--json', '--out', out, ...extra]);
  const report = JSON.parse(printed.stdout) as Report;
  const rejected: Record<string, string> = {};
  const file = report.files[0]?.rejectedFile;
  if (file) {
    for (const row of parse<Record<string, string>>(readFileSync(join(out, file)), { columns: true })) rejected[row._row!] = row._error_code!;
  }
  return { code: printed.code, report, rejected };
}

/** The instant's wall clock in Kolkata with its offset, as ISO 8601 (`2026-10-05T15:00:00+05:30`). */
const kolkata = (ms: number) => DateTime.fromMillis(ms, { zone: 'Asia/Kolkata' }).toISO({ suppressMilliseconds: true })!;

describe('CLI: badges-import init, then run --dry-run with the configuration it wrote', () => {
  it('drafts the demo file as the hand-written example maps it: the run rejects only its planted bad rows', async () => {
    // Prepare
    const sample = join(root, 'examples', 'events_2026-11-23.csv');

    // Act
    const drafted = await init(sample);
    const run = await dryRun(drafted.config, sample);

    // Assess: the mapping of examples/config.json (in UTC: no zone is in the file), and the rows the demo plants.
    expect(drafted.code).toBe(0);
    expect(drafted.flow.mapping).toEqual({
      customerId: { column: 'member_id' },
      badgeMetaId: { column: 'badge_code' },
      earnEventDate: { column: 'event_time', format: 'yyyy-MM-dd HH:mm:ss', timeZone: 'UTC' },
      earnExpiresOn: { column: 'expiry_date', format: 'yyyy-MM-dd', timeZone: 'UTC' },
    });
    const planted = { 5: 'INVALID_CUSTOMER_ID', 9: 'INVALID_BADGE_ID', 14: 'INVALID_DATE', 18: 'EXPIRY_BEFORE_EVENT', 31: 'INVALID_DATE', 36: 'INVALID_CUSTOMER_ID' };
    expect(run.rejected).toEqual(planted);
    expect(run.report.rows).toMatchObject({ total: 40, rejected: 6 });
    expect(drafted.stdout).toContain('sample check   34 of 40 records are valid with this draft; 6 would be rejected');
    expect(drafted.stdout).toContain('mapping.*.timeZone: event_time and expiry_date carry no time zone: the draft reads them as UTC');
  }, WORKFLOW_TIMEOUT_MS);

  it('drafts a semicolon-delimited file with dd-MM-yyyy HH:mm:ss dates and CRLF line ends: no record rejected', async () => {
    // Prepare
    const records = sampleRecords(60);
    const sample = join(work, 'Rewards_Export.csv');
    const rows = [['Member ID', 'Badge Id', 'Earned On', 'Valid Until', 'Note'], ...records.map((r) => [r.customer, r.badge, formatDate(r.event, 'dd-MM-yyyy HH:mm:ss'), formatDate(r.expiry, 'dd-MM-yyyy HH:mm:ss'), r.note])];
    writeFileSync(sample, delimited(rows, ';', '\r\n'));

    // Act
    const drafted = await init(sample, ['--name', 'rewards']);
    const run = await dryRun(drafted.config, sample);

    // Assess
    expect(drafted.flow.csv).toEqual({ delimiter: ';', quote: '"', encoding: 'utf-8' });
    expect(drafted.flow.mapping).toEqual({
      customerId: { column: 'Member ID' },
      badgeMetaId: { column: 'Badge Id' },
      earnEventDate: { column: 'Earned On', format: 'dd-MM-yyyy HH:mm:ss', timeZone: 'UTC' },
      earnExpiresOn: { column: 'Valid Until', format: 'dd-MM-yyyy HH:mm:ss', timeZone: 'UTC' },
    });
    expect({ code: run.code, rows: run.report.rows }).toEqual({ code: 0, rows: expect.objectContaining({ total: 60, rejected: 0 }) });
  }, WORKFLOW_TIMEOUT_MS);

  it('drafts a pipe-delimited file of epoch seconds whose headers say nothing: the later date is the expiry', async () => {
    // Prepare: the expiry comes first, and no header names a role.
    const records = sampleRecords(50);
    const sample = join(work, 'feed.txt');
    const rows = [['number', 'code', 'first', 'second', 'note'], ...records.map((r) => [r.customer, r.badge, formatDate(r.expiry, 'epoch-s'), formatDate(r.event, 'epoch-s'), r.note])];
    writeFileSync(sample, delimited(rows, '|'));

    // Act
    const drafted = await init(sample);
    const run = await dryRun(drafted.config, sample);

    // Assess
    expect(drafted.flow.csv.delimiter).toBe('|');
    expect(drafted.flow.mapping).toEqual({
      customerId: { column: 'number' },
      badgeMetaId: { column: 'code' },
      earnEventDate: { column: 'second', format: 'epoch-s', timeZone: 'UTC' },
      earnExpiresOn: { column: 'first', format: 'epoch-s', timeZone: 'UTC' },
    });
    expect(drafted.stdout).toContain('earnExpiresOn  first (epoch-s): 50 of 50 values read as epoch-s; no header names an expiry: the later date (later than second in 50 of 50 records)');
    expect(drafted.stdout).not.toContain('timeZone');
    expect({ code: run.code, rejected: run.report.rows.rejected }).toEqual({ code: 0, rejected: 0 });
  }, WORKFLOW_TIMEOUT_MS);

  it('drafts a Latin-1 file with an accented header and values: the column is named as the run decodes it', async () => {
    // Prepare
    const records = sampleRecords(45);
    const sample = join(work, 'socios.csv');
    const rows = [['Nº socio', 'Insignia', 'Fecha evento', 'Fecha de expiración', 'Ciudad'], ...records.map((r) => [r.customer, r.badge, formatDate(r.event, 'dd/MM/yyyy HH:mm'), formatDate(r.expiry, 'dd/MM/yyyy'), r.note])];
    writeFileSync(sample, Buffer.from(delimited(rows, ','), 'latin1'));

    // Act
    const drafted = await init(sample);
    const run = await dryRun(drafted.config, sample);

    // Assess
    expect(drafted.flow.csv.encoding).toBe('latin1');
    expect(drafted.flow.mapping).toEqual({
      customerId: { column: 'Nº socio' },
      badgeMetaId: { column: 'Insignia' },
      earnEventDate: { column: 'Fecha evento', format: 'dd/MM/yyyy HH:mm', timeZone: 'UTC' },
      earnExpiresOn: { column: 'Fecha de expiración', format: 'dd/MM/yyyy', timeZone: 'UTC' },
    });
    expect(drafted.stdout).toMatch(/encoding +latin1: byte \d+ \(0x[0-9a-f]+\) is not valid UTF-8/);
    expect({ code: run.code, rejected: run.report.rows.rejected }).toEqual({ code: 0, rejected: 0 });
  }, WORKFLOW_TIMEOUT_MS);

  it('drafts a gzip file, tab-delimited with ISO 8601 dates that carry their offset', async () => {
    // Prepare
    const records = sampleRecords(70);
    const sample = join(work, 'awards.tsv.gz');
    const rows = [['customer_id', 'badge_meta_id', 'awarded_at', 'expires_at'], ...records.map((r) => [r.customer, r.badge, kolkata(r.event), kolkata(r.expiry)])];
    writeFileSync(sample, gzipSync(delimited(rows, '\t')));

    // Act
    const drafted = await init(sample);
    const run = await dryRun(drafted.config, sample);

    // Assess
    expect(drafted.flow.csv.delimiter).toBe('\t');
    expect(drafted.flow.mapping.earnEventDate).toEqual({ column: 'awarded_at', format: 'iso', timeZone: 'UTC' });
    expect(drafted.flow.mapping.earnExpiresOn).toEqual({ column: 'expires_at', format: 'iso', timeZone: 'UTC' });
    expect(drafted.stdout).toContain('compression    gzip');
    expect(drafted.stdout).not.toContain('timeZone');
    expect({ code: run.code, rejected: run.report.rows.rejected, total: run.report.rows.total }).toEqual({ code: 0, rejected: 0, total: 70 });
  }, WORKFLOW_TIMEOUT_MS);

  it('drafts a PGP file encrypted by GnuPG with --secrets, naming the key and passphrase secrets and never their values', async () => {
    // Prepare: the brand's passphrase-protected key, Base64 as Connect+ takes it; month-first dates a day above 12 decides.
    const gpg = new GnuPG();
    const passphrase = 'init sample passphrase';
    const fingerprint = gpg.generate('Brand <brand@brand.test>', 'rsa', passphrase);
    const secrets = join(work, 'secrets.json');
    writeFileSync(secrets, JSON.stringify({ 'badges/api-user': 'u', 'pgp/key': Buffer.from(gpg.exportSecret(fingerprint, passphrase)).toString('base64'), 'pgp/passphrase': passphrase }));
    const plain = join(work, 'plain.csv');
    const records = sampleRecords(40);
    writeFileSync(plain, delimited([['member_id', 'badge', 'event_date', 'expiry_date'], ...records.map((r) => [r.customer, r.badge, formatDate(r.event, 'MM/dd/yyyy HH:mm:ss'), formatDate(r.expiry, 'MM/dd/yyyy')])], ','));
    const sample = join(work, 'events.csv.gpg');
    gpg.encrypt(plain, sample, { recipients: [fingerprint] });

    // Act
    const drafted = await init(sample, ['--secrets', secrets]);
    const run = await dryRun(drafted.config, sample, ['--secrets', secrets]);

    // Assess
    expect(drafted.code).toBe(0);
    expect(drafted.flow.decrypt).toEqual({ privateKeySecret: 'pgp/key', passphraseSecret: 'pgp/passphrase' });
    expect(drafted.flow.mapping.earnEventDate).toEqual({ column: 'event_date', format: 'MM/dd/yyyy HH:mm:ss', timeZone: 'UTC' });
    expect(drafted.stdout).toContain('decryption     PGP, with the key in secret "pgp/key" (passphrase in "pgp/passphrase"): the file is PGP data; it was read whole and passed its integrity check');
    expect(drafted.stdout + drafted.stderr).not.toContain(passphrase);
    expect({ code: run.code, rejected: run.report.rows.rejected, total: run.report.rows.total }).toEqual({ code: 0, rejected: 0, total: 40 });
  }, WORKFLOW_TIMEOUT_MS);
});
