import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'csv-parse/sync';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { listObjects, putText } from '../src/aws/s3';
import { type LocalRunResult, runLocal } from '../src/local/runner';
import type { MetricsSink } from '../src/steps/deps';
import { LOCAL_BUCKETS, startLocalS3 } from '../src/local/s3';
import { HOUSE_USERS, localWorkflow } from './support/local';
import { type EventRow, HEADER, KNOWN_BADGES, SECRETS, UNKNOWN_BADGE, configDocument, kolkataEpochMs, toCsv, validRow } from './support/factories';

const run = promisify(execFile);
const root = join(__dirname, '..');

// Two dataflows: the house one, and the same mapping over ";"-delimited files.
const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
const destination = flow!.destination as Record<string, unknown>;
const document = {
  dataflows: [
    flow,
    { ...flow, name: 'semicolon-events', source: { type: 's3', prefix: 'inbox/semicolon/', filePattern: '^events_.*\\.csv$' }, csv: { delimiter: ';' } },
    { ...flow, name: 'oauth-events', source: { type: 's3', prefix: 'inbox/oauth/' }, destination: { ...destination, auth: { type: 'oauth', keySecret: 'oauth/key', secretSecret: 'oauth/secret' } } },
    { ...flow, name: 'validated-events', source: { type: 's3', prefix: 'inbox/validated/' }, destination: { ...destination, validateBadgeIds: true } },
  ],
};
const ALL_SECRETS = { ...SECRETS, 'oauth/key': 'workflow-key', 'oauth/secret': 'workflow-s3cret' };
const bench = localWorkflow('workflow-', document, { sandbox: { knownBadgeIds: [...KNOWN_BADGES] }, secrets: ALL_SECRETS });
const { work, config, configFile } = bench;
const secretsFile = join(work, 'secrets.json');
writeFileSync(secretsFile, JSON.stringify(SECRETS));
const sandboxFile = join(work, 'sandbox.json');
writeFileSync(sandboxFile, JSON.stringify({ users: HOUSE_USERS, knownBadgeIds: KNOWN_BADGES }));

/** The bad records of the standard file, by record number, with where and why each must be rejected. */
const BAD: Record<number, { patch: Partial<EventRow>; stage: 'validate' | 'api'; code: string }> = {
  7: { patch: { member_id: 'N/A' }, stage: 'validate', code: 'INVALID_CUSTOMER_ID' },
  13: { patch: { badge_code: 'xyz' }, stage: 'validate', code: 'INVALID_BADGE_ID' },
  21: { patch: { event_time: '2026-02-29 10:00:00' }, stage: 'validate', code: 'INVALID_DATE' },
  34: { patch: { expiry_date: '' }, stage: 'validate', code: 'INVALID_DATE' },
  45: { patch: { member_id: '' }, stage: 'validate', code: 'INVALID_CUSTOMER_ID' },
  58: { patch: { badge_code: UNKNOWN_BADGE }, stage: 'api', code: '1054' },
  77: { patch: { badge_code: UNKNOWN_BADGE }, stage: 'api', code: '1054' },
  90: { patch: { expiry_date: '2026-01-01' }, stage: 'validate', code: 'EXPIRY_BEFORE_EVENT' },
};
const RECORDS = 120;

/** The standard file's rows; `base` keeps each test's customers apart in the shared sandbox. */
function standardRows(base: number): EventRow[] {
  return Array.from({ length: RECORDS }, (_, i) => ({ ...validRow(i + 1, base), ...(BAD[i + 1]?.patch ?? {}) }));
}

let files = 0;
async function runRows(
  rows: EventRow[] | string,
  options: { dataflow?: string; dryRun?: boolean; force?: boolean; csv?: Parameters<typeof toCsv>[1]; metrics?: MetricsSink; notify?: (subject: string, message: string) => Promise<void> } = {},
): Promise<LocalRunResult> {
  const name = `events_${++files}.csv`;
  const file = join(work, name);
  writeFileSync(file, typeof rows === 'string' ? rows : toCsv(rows, options.csv));
  const extra = { outDir: join(work, 'out', name), dryRun: options.dryRun, force: options.force, metrics: options.metrics, notify: options.notify };
  return runLocal({ ...bench.options(options.dataflow ?? 'weekly-events', extra), file });
}

const ledgerFor = (base: number) => bench.ledgerFor(base, RECORDS);

/** Every record ends in exactly one place, with the right values: the heart of the workflow's promise. */
function assessStandardRun(result: LocalRunResult, rows: EventRow[], base: number) {
  expect(result.exitCode).toBe(3);
  expect(result.report.status).toBe('COMPLETED_WITH_REJECTIONS');
  const badCount = Object.keys(BAD).length;
  expect(result.report.rows).toEqual({ total: RECORDS, accepted: RECORDS - badCount, rejected: badCount, filtered: 0, valid: RECORDS - 6 });
  expect(result.report.files[0]!.rows).toEqual({ total: RECORDS, accepted: RECORDS - badCount, rejected: badCount, filtered: 0 });

  // Rejected: exactly the bad records, with their number, stage, code, and their values unchanged.
  const rejected: Array<Record<string, string>> = parse(readFileSync(result.rejectedPath!), { columns: true });
  expect(rejected.map((r) => Number(r._row)).sort((a, b) => a - b)).toEqual(Object.keys(BAD).map(Number));
  for (const r of rejected) {
    const expected = BAD[Number(r._row)]!;
    expect([r._stage, r._error_code]).toEqual([expected.stage, expected.code]);
    expect(r._error_message).not.toBe('');
    const source = rows[Number(r._row) - 1]!;
    expect(HEADER.map((h) => r[h])).toEqual(HEADER.map((h) => source[h] ?? ''));
  }

  // Accepted: every other record reached the API exactly once, with the epochs of its Asia/Kolkata wall times.
  const ledger = ledgerFor(base);
  expect(ledger).toHaveLength(RECORDS - badCount);
  const byCustomer = new Map(ledger.map((e) => [e.customerId, e]));
  expect(byCustomer.size).toBe(ledger.length);
  rows.forEach((row, i) => {
    if (BAD[i + 1]) return;
    const entry = byCustomer.get(Number(row.member_id));
    expect(entry).toMatchObject({
      badgeMetaId: row.badge_code,
      earnEventDate: kolkataEpochMs(row.event_time),
      earnExpiresOn: kolkataEpochMs(row.expiry_date),
      earnEventDateISO: `${row.event_time.replace(' ', 'T')}+05:30`,
      earnExpiresOnISO: `${row.expiry_date}T00:00:00+05:30`,
    });
  });
}

describe('Workflow: a file through the local state machine against the sandbox', () => {
  it('accepts every valid record exactly once and rejects every bad one with its number, stage and code', async () => {
    // Prepare
    const base = 10_000;
    const rows = standardRows(base);

    const metrics: Array<{ name: string; unit: string; value: number; dimensions?: Record<string, string> }> = [];
    const notifications: Array<{ subject: string; message: string }> = [];

    // Act
    const result = await runRows(rows, {
      metrics: (name, unit, value, dataflow, dimensions) => {
        expect(dataflow).toBe('weekly-events');
        metrics.push({ name, unit, value, ...(dimensions ? { dimensions } : {}) });
      },
      notify: async (subject, message) => void notifications.push({ subject, message }),
    });

    // Assess
    assessStandardRun(result, rows, base);
    expect(result.report.files[0]!.source.movedTo).toMatch(/^processed\/weekly-events\//);
    expect(result.report.files[0]!.sha256).toMatch(/^[0-9a-f]{64}$/);
    // The metrics the alarms and the dashboard read, with the report's own figures.
    const { rows: totals, rejectionsByCode } = result.report;
    const sum = (name: string, filter: (m: (typeof metrics)[number]) => boolean = (m) => !m.dimensions) => metrics.filter((m) => m.name === name && filter(m)).reduce((a, m) => a + m.value, 0);
    expect(sum('RecordsRead')).toBe(totals.total);
    expect(sum('RecordsAccepted')).toBe(totals.accepted);
    expect(sum('RecordsRejected')).toBe(totals.rejected);
    expect(metrics.filter((m) => m.name === 'RejectedPercent')).toEqual([{ name: 'RejectedPercent', unit: 'Percent', value: (100 * totals.rejected) / totals.total }]);
    expect(metrics.filter((m) => m.name === 'RetriesExhaustedPercent')).toEqual([{ name: 'RetriesExhaustedPercent', unit: 'Percent', value: (100 * (rejectionsByCode.RETRIES_EXHAUSTED ?? 0)) / totals.total }]);
    expect(sum('FilesProcessed')).toBe(1);
    expect(sum('FilesFailed')).toBe(0);
    const byCode = Object.fromEntries(metrics.filter((m) => m.name === 'RecordsRejected' && m.dimensions).map((m) => [`${m.dimensions!.stage}:${m.dimensions!.code}`, m.value]));
    expect(Object.values(byCode).reduce((a, b) => a + b, 0)).toBe(totals.rejected);
    expect(byCode['api:1054']).toBe(rejectionsByCode['1054']);
    expect(byCode['validate:INVALID_CUSTOMER_ID']).toBe(rejectionsByCode.INVALID_CUSTOMER_ID);
    expect(sum('ApiRequests')).toBeGreaterThanOrEqual(Math.ceil(totals.valid / 10));
    expect(metrics.filter((m) => m.name === 'ApiLatency').every((m) => m.unit === 'Milliseconds' && m.value > 0)).toBe(true);
    // One notification, the summary Connect+ mails.
    expect(notifications).toHaveLength(1);
    expect(notifications[0]!.subject).toBe(`[badges-import] weekly-events: ${result.report.files[0]!.name} COMPLETED_WITH_REJECTIONS (${totals.rejected} of ${totals.total} rejected)`);
    expect(notifications[0]!.message).toContain(`Records:   ${totals.total} read, ${totals.accepted} accepted, ${totals.rejected} rejected`);
    expect(notifications[0]!.message).toContain('Rejected records: s3://dead-letter/rejected/weekly-events/');
  });

  it('gives the same outcome for the same data with a BOM and CRLF line ends', async () => {
    // Prepare
    const base = 20_000;
    const rows = standardRows(base);

    // Act
    const result = await runRows(rows, { csv: { bom: true, eol: '\r\n' } });

    // Assess
    assessStandardRun(result, rows, base);
  });

  it('gives the same outcome for the same data with ";" as delimiter', async () => {
    // Prepare
    const base = 30_000;
    const rows = standardRows(base);

    // Act
    const result = await runRows(rows, { dataflow: 'semicolon-events', csv: { delimiter: ';' } });

    // Assess
    expect(readFileSync(result.rejectedPath!, 'utf8').split('\n')[0]).toBe([...HEADER, '_row', '_stage', '_error_code', '_error_message'].join(';'));
    const rejected: Array<Record<string, string>> = parse(readFileSync(result.rejectedPath!), { columns: true, delimiter: ';' });
    expect(rejected).toHaveLength(Object.keys(BAD).length);
    expect(result.report.rows).toMatchObject({ total: RECORDS, accepted: RECORDS - Object.keys(BAD).length });
    expect(ledgerFor(base)).toHaveLength(RECORDS - Object.keys(BAD).length);
  });

  it('sends with OAuth tokens when the dataflow says so', async () => {
    // Prepare
    const base = 100_000;
    const rows = standardRows(base);

    // Act
    const result = await runRows(rows, { dataflow: 'oauth-events' });

    // Assess
    assessStandardRun(result, rows, base);
  });

  it('rejects unknown badge ids before sending when validateBadgeIds is on', async () => {
    // Prepare
    const base = 110_000;
    const rows = standardRows(base);
    const processedBefore = bench.sandbox.itemsProcessed;

    // Act
    const result = await runRows(rows, { dataflow: 'validated-events' });

    // Assess
    assessStandardRun(result, rows, base);
    expect(bench.sandbox.itemsProcessed - processedBefore).toBe(RECORDS - Object.keys(BAD).length);
    const rejected: Array<Record<string, string>> = parse(readFileSync(result.rejectedPath!), { columns: true });
    expect(rejected.filter((r) => r._error_code === '1054').map((r) => r._error_message)).toEqual([expect.stringContaining('checked before sending'), expect.stringContaining('checked before sending')]);
  });

  it('skips the same content delivered again under another name, unless forced', async () => {
    // Prepare
    const base = 120_000;
    const text = toCsv(Array.from({ length: 30 }, (_, i) => validRow(i + 1, base)));
    const first = await runRows(text);

    // Act
    const again = await runRows(text);
    const forced = await runRows(text, { force: true });

    // Assess
    expect(first.report.status).toBe('SUCCEEDED');
    expect(again.exitCode).toBe(0);
    expect(again.report).toMatchObject({ status: 'SKIPPED_DUPLICATE', rows: { total: 30, accepted: 0, rejected: 0 }, duplicateOf: { runId: first.report.runId } });
    expect(again.report.files[0]!.sha256).toBe(first.report.files[0]!.sha256);
    expect(forced.report).toMatchObject({ status: 'SUCCEEDED', rows: { accepted: 30 } });
    // Once from the first delivery, once more because the operator forced it; never from the duplicate.
    expect(ledgerFor(base)).toHaveLength(60);
  });

  it('reports no rejections of its own for a duplicate: the first run settled every record', async () => {
    // Prepare
    const text = toCsv(standardRows(150_000));
    const first = await runRows(text);

    // Act
    const again = await runRows(text);

    // Assess
    expect(first.report.rows.rejected).toBe(Object.keys(BAD).length);
    expect(again.report).toMatchObject({ status: 'SKIPPED_DUPLICATE', rows: { total: RECORDS, accepted: 0, rejected: 0 }, rejectionsByCode: {} });
    expect(again.rejectedPath).toBeUndefined();
  });

  it('does not count a failed import as imported: the same content delivered again is imported', async () => {
    // Prepare: the first delivery is staged whole, then fails on a missing secret.
    const base = 130_000;
    const file = join(work, 'events_retry.csv');
    writeFileSync(file, toCsv(Array.from({ length: 30 }, (_, i) => validRow(i + 1, base))));
    const dataflow = config.dataflows[0]!;
    const first = await runLocal({ config, configFile, dataflow, file, secrets: new StaticSecretsProvider({ 'api/user': SECRETS['api/user'] }), s3: bench.s3, sandbox: bench.sandbox, outDir: join(work, 'out', 'retry-1') });

    // Act
    const again = await runLocal({ config, configFile, dataflow, file, secrets: new StaticSecretsProvider(SECRETS), s3: bench.s3, sandbox: bench.sandbox, outDir: join(work, 'out', 'retry-2') });

    // Assess
    expect(first.report).toMatchObject({ status: 'FAILED', error: { code: 'SECRET_NOT_FOUND' } });
    expect(again.report).toMatchObject({ status: 'SUCCEEDED', rows: { accepted: 30 } });
    expect(ledgerFor(base)).toHaveLength(30);
  });

  it('succeeds with exit 0 when every record is accepted', async () => {
    // Prepare
    const base = 40_000;
    const rows = Array.from({ length: 30 }, (_, i) => validRow(i + 1, base));

    // Act
    const result = await runRows(rows);

    // Assess
    expect(result.exitCode).toBe(0);
    expect(result.report.status).toBe('SUCCEEDED');
    expect(result.rejectedPath).toBeUndefined();
    expect(ledgerFor(base)).toHaveLength(30);
  });

  it('fails a file whose header lacks a mapped column, naming it, and sends nothing', async () => {
    // Prepare
    const before = bench.sandbox.ledger.length;
    const text = toCsv(standardRows(50_000), { header: ['member_id', 'badge', 'event_time', 'expiry_date', 'note'] });

    // Act
    const result = await runRows(text);

    // Assess
    expect(result.exitCode).toBe(1);
    expect(result.report).toMatchObject({ status: 'FAILED', error: { code: 'MISSING_COLUMN', message: expect.stringContaining('"badge_code" (mapped to badgeMetaId)') } });
    expect(result.report.files[0]!.source.movedTo).toMatch(/^failed\/weekly-events\//);
    expect(bench.sandbox.ledger.length).toBe(before);
  });

  it('fails a file with a quote left open near its end and sends none of the records before it', async () => {
    // Prepare
    const before = bench.sandbox.ledger.length;
    const text = `${toCsv(standardRows(60_000))}5060999,${KNOWN_BADGES[0]},2026-11-20 10:00:00,2027-01-01,"never closed\n`;

    // Act
    const result = await runRows(text);

    // Assess
    expect(result.exitCode).toBe(1);
    expect(result.report.error).toMatchObject({ code: 'MALFORMED_CSV', message: expect.stringMatching(/at line \d+/) });
    expect(bench.sandbox.ledger.length).toBe(before);
  });

  it('validates and reports without sending on a dry run', async () => {
    // Prepare
    const before = bench.sandbox.ledger.length;
    const metrics: string[] = [];

    // Act
    const result = await runRows(standardRows(70_000), { dryRun: true, metrics: (name, _unit, value, _flow, dimensions) => void (dimensions ? undefined : metrics.push(`${name}=${value}`)) });

    // Assess
    expect(result.report).toMatchObject({ dryRun: true, rows: { total: RECORDS, accepted: 0, valid: RECORDS - 6, rejected: 6 } });
    // The file counts (a failed dry run would count as failed); its records do not: nothing was sent.
    expect(metrics.filter((m) => !m.startsWith('RunDuration'))).toEqual([`RecordsRead=${RECORDS}`, 'FilesProcessed=1', 'FilesFailed=0']);
    expect(result.exitCode).toBe(3);
    expect(bench.sandbox.ledger.length).toBe(before);
    const inbox = [];
    for await (const o of listObjects(bench.s3.client, LOCAL_BUCKETS.inbox, 'inbox/weekly-events/')) inbox.push(o.key);
    expect(inbox).toContain(result.report.files[0]!.source.key);
  });

  it('ends FAILED with the secret named when a credential is missing, sending nothing and losing no record', async () => {
    // Prepare
    const before = bench.sandbox.ledger.length;
    const file = join(work, 'events_nosecret.csv');
    writeFileSync(file, toCsv(Array.from({ length: 30 }, (_, i) => validRow(i + 1, 80_000))));

    // Act
    const result = await runLocal({
      config,
      configFile,
      dataflow: config.dataflows[0]!,
      file,
      secrets: new StaticSecretsProvider({ 'api/user': SECRETS['api/user'] }),
      s3: bench.s3,
      sandbox: bench.sandbox,
      outDir: join(work, 'out', 'nosecret'),
    });

    // Assess
    expect(result.report).toMatchObject({ status: 'FAILED', error: { code: 'SECRET_NOT_FOUND', message: expect.stringContaining('"api/password"') }, rows: { total: 30, rejected: 30 } });
    expect(bench.sandbox.ledger.length).toBe(before);
  });
});

describe('CLI: badges-import run', () => {
  const cli = (args: string[]) =>
    run(join(root, 'node_modules', '.bin', 'node'), [join(root, 'bin', 'badges-import.js'), ...args], { cwd: work }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );

  it('exits 3 with a summary and writes report.json and the rejected file to --out', async () => {
    // Prepare
    const file = join(work, 'events_cli.csv');
    writeFileSync(file, toCsv(standardRows(90_000)));
    const out = join(work, 'cli-out');

    // Act
    const result = await cli(['run', '--config', configFile, '--dataflow', 'weekly-events', '--file', file, '--secrets', secretsFile, '--sandbox', sandboxFile, '--out', out, '--quiet']);

    // Assess
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('COMPLETED_WITH_REJECTIONS');
    expect(result.stdout).toContain(`records ${RECORDS}: ${RECORDS - 8} accepted, 8 rejected`);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { files: Array<{ rejectedFile: string }> };
    expect(existsSync(join(out, report.files[0]!.rejectedFile))).toBe(true);
  });

  it('takes every file waiting in the local inbox when --file is not given, as the schedule would', async () => {
    // Prepare: an inbox kept by `serve`, with one matching file and one the dataflow ignores.
    const data = join(work, 'serve-data');
    const inbox = await startLocalS3({ directory: data });
    await putText(inbox.client, LOCAL_BUCKETS.inbox, 'inbox/weekly-events/events_waiting.csv', toCsv(Array.from({ length: 20 }, (_, i) => validRow(i + 1, 140_000))));
    await putText(inbox.client, LOCAL_BUCKETS.inbox, 'inbox/weekly-events/readme.txt', 'not for the dataflow');
    await inbox.close();
    const args = ['run', '--config', configFile, '--dataflow', 'weekly-events', '--secrets', secretsFile, '--sandbox', sandboxFile, '--data', data, '--out', join(work, 'pull-out'), '--quiet'];

    // Act
    const first = await cli(args);
    const second = await cli(args);
    const missing = await cli([...args.slice(0, 9), '--data', join(work, 'no-such-dir')]);

    // Assess
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('events_waiting.csv — SUCCEEDED');
    expect(first.stdout).not.toContain('readme.txt');
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('No files waiting under s3://inbox/inbox/weekly-events/');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('No local inbox at');
  });

  it('exits 2 and names the JSON path of each problem in an invalid configuration', async () => {
    // Prepare
    const bad = join(work, 'bad-config.json');
    writeFileSync(bad, JSON.stringify(configDocument({ destination: { baseUrl: 'nope', auth: { type: 'basic' } } })));

    // Act
    const result = await cli(['run', '--config', bad, '--file', join(work, 'events_cli.csv')]);

    // Assess
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('dataflows[0].destination.baseUrl');
    expect(result.stderr).toContain('dataflows[0].destination.auth.usernameSecret');
  });
});
