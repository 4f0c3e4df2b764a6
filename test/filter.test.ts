import { readFileSync } from 'node:fs';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { parse } from 'csv-parse/sync';
import { readJson } from '../src/aws/s3';
import type { ImportedMarker } from '../src/contracts';
import { parseConfig } from '../src/config/load';
import { compileFilter } from '../src/core/filter';
import { replayLocal } from '../src/local/replay';
import { runObject } from '../src/local/runner';
import { LOCAL_BUCKETS, type LocalS3 } from '../src/local/s3';
import { renderHtml } from '../src/report/html';
import { notificationText, summary, vendorSummary } from '../src/report/texts';
import type { MetricsSink } from '../src/steps/deps';
import { unaccountedRecords } from '../src/steps/finalize';
import { localWorkflow, startS3LosingAStagedRecord } from './support/local';
import { HEADER, configDocument, plainRows, toCsv } from './support/factories';

/**
 * The dataflow's filter (issue 12): a record for which it is false is filtered — neither sent nor rejected, counted
 * in rows.filtered and listed in the filtered-records file beside the rejected one — and every figure the product
 * reports adds up to the records read. Each run goes through the local workflow against the sandbox.
 */
const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
const filtered = (name: string, prefix: string, expression: string) => ({ ...flow, name, source: { type: 's3', prefix, filePattern: '^events_.*\\.csv$' }, filter: { expression } });
const document = {
  dataflows: [
    filtered('paid-events', 'inbox/paid/', 'status == "paid"'),
    filtered('payment-events', 'inbox/payment/', 'row["Payment Status"] == "Paid"'),
    filtered('counted-events', 'inbox/counted/', 'size(status)'),
    filtered('refund-events', 'inbox/refund/', 'row["Refund"] == "no"'),
  ],
};
const bench = localWorkflow('filter-', document);
const { ledgerFor, options } = bench;
const COLUMNS = [...HEADER, 'status', 'Payment Status'];

/** `n` valid rows for customers `base + 1`… with a status and a payment status: every third one is unpaid. */
function rowsWithStatus(base: number, n: number, unpaid = (i: number) => i % 3 === 0): Array<Record<string, string>> {
  return plainRows(base, n).map((row, i) => ({ ...row, status: unpaid(i + 1) ? 'unpaid' : 'paid', 'Payment Status': unpaid(i + 1) ? 'Pending' : 'Paid' }));
}
const csvOf = (rows: Array<Record<string, string>>) => toCsv(rows as never, { header: COLUMNS });

/** Delivers a file under a dataflow's prefix and runs it; the metrics it emits are collected. */
async function runFile(flowName: string, name: string, body: string, extra: { dryRun?: boolean; s3?: LocalS3 } = {}) {
  const prefix = (document.dataflows.find((d) => d.name === flowName)!.source as { prefix: string }).prefix;
  const key = `${prefix}${name}`;
  const metrics: Array<[string, number, Record<string, string> | undefined]> = [];
  const sink: MetricsSink = (metric, _unit, value, _flow, dimensions) => void metrics.push([metric, value, dimensions]);
  const s3 = extra.s3 ?? bench.s3;
  const versionId = (await s3.client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: body }))).VersionId;
  const notified: string[] = [];
  const result = await runObject(
    options(flowName, { versionId, metrics: sink, dryRun: extra.dryRun, s3, notify: async (_subject, message) => void notified.push(message) }),
    key,
  );
  const metric = (name: string) => metrics.filter(([m, , d]) => m === name && !d).reduce((a, [, v]) => a + v, 0);
  return { result, metrics, metric, notified };
}

const readCsv = (path: string): Array<Record<string, string>> => parse(readFileSync(path), { columns: true, relax_column_count: true });

describe('Filter: a dataflow filter on a column', () => {
  const base = 9_100_000;
  const rows = rowsWithStatus(base, 30);
  // Record 6 (unpaid) has no usable customer id: it is filtered, its mapping problem never counted.
  rows[5]!.member_id = 'N/A';
  // Record 9 (unpaid) holds quotes, a comma, a CR and a LF in a field: its filtered line keeps them.
  rows[8]!.note = 'said "no", then\r\nleft';
  // Record 10 (paid) has a bad badge id: rejected, as without a filter.
  rows[9]!.badge_code = 'xyz';
  // Record 12 (unpaid) repeats record 11 (paid, sent): filtered, not a DUPLICATE_IN_FILE.
  rows[11] = { ...rows[10]!, status: 'unpaid', 'Payment Status': 'Pending' };
  // Record 14 (paid) repeats record 13 (paid, sent): DUPLICATE_IN_FILE.
  rows[13] = { ...rows[12]! };
  // Record 31 has one field too many (and says "unpaid"): rejected FIELD_COUNT, never filtered.
  const body = `${csvOf(rows)}${base + 31},6571a3b9e4b0c1a2b3c4d5e6,2026-11-02 10:00:00,2027-01-15,plain,unpaid,Pending,extra\n`;
  let run: Awaited<ReturnType<typeof runFile>>;

  beforeAll(async () => {
    run = await runFile('paid-events', 'events_paid.csv', body);
  });

  it('sends only the records it keeps, counts the others filtered, and every figure adds up to the records read', () => {
    // Assess: 31 read; 10 unpaid filtered (3, 6, 9, 12, …, 30); 3 rejected (10, 14, 31); 18 accepted.
    const { result, metric, notified } = run;
    const report = result.report;
    expect(report).toMatchObject({ status: 'COMPLETED_WITH_REJECTIONS', rows: { total: 31, accepted: 18, rejected: 3, filtered: 10, valid: 18 } });
    expect(report.files[0]!.rows).toEqual({ total: 31, accepted: 18, rejected: 3, filtered: 10 });
    expect(report.rejectionsByCode).toEqual({ INVALID_BADGE_ID: 1, DUPLICATE_IN_FILE: 1, FIELD_COUNT: 1 });
    const sent = ledgerFor(base, 31).map((e) => e.customerId - base);
    expect(sent.sort((a, b) => a - b)).toEqual([1, 2, 4, 5, 7, 8, 11, 13, 16, 17, 19, 20, 22, 23, 25, 26, 28, 29]);
    // The metrics, the CLI summary, the notification, the vendor's summary and the HTML page say the same.
    expect([metric('RecordsRead'), metric('RecordsAccepted'), metric('RecordsRejected'), metric('RecordsFiltered')]).toEqual([31, 18, 3, 10]);
    expect(metric('RejectedPercent')).toBeCloseTo((100 * 3) / 21);
    expect(summary(report, result.reportPath, result.rejectedPath, result.filteredPath)).toMatch(/records 31: 18 accepted, 3 rejected \([^)]*\), 10 filtered\n[\s\S]*\n {2}filtered .*events_paid\.filtered\.csv\n/);
    for (const text of [notificationText(report), notified.join('\n')]) {
      expect(text).toContain('Records:   31 read, 18 accepted, 3 rejected, 10 filtered');
      expect(text).toMatch(/Filtered records: .*events_paid\.filtered\.csv/);
    }
    expect(vendorSummary(report, 'events_paid.csv', undefined)).toContain("10 records were left out by the dataflow's filter: neither sent nor rejected.");
    const bars = [...renderHtml(report).matchAll(/data-label="([^"]+)" data-value="(\d+)"/g)].slice(0, 4).map((m) => [m[1], Number(m[2])]);
    expect(bars).toEqual([
      ['accepted', 18],
      ['rejected (validation)', 3],
      ['rejected (API)', 0],
      ['filtered', 10],
    ]);
    expect(renderHtml(report)).toContain('31 read, 18 accepted, 3 rejected, 10 filtered');
  });

  it('lists the filtered records beside the rejected ones: their columns unchanged, _row and _filter', () => {
    // Assess
    const { result } = run;
    expect(result.filteredPath).toMatch(/events_paid\.filtered\.csv$/);
    expect(result.report.files[0]!.filteredFile).toBe('rejected/events_paid.filtered.csv');
    const header = readFileSync(result.filteredPath!, 'utf8').split('\n')[0];
    expect(header).toBe([...COLUMNS, '_row', '_filter'].join(','));
    const listed = readCsv(result.filteredPath!);
    expect(listed.map((r) => Number(r._row))).toEqual([3, 6, 9, 12, 15, 18, 21, 24, 27, 30]);
    for (const r of listed) {
      expect(r._filter).toBe('status == "paid"');
      expect(COLUMNS.map((h) => r[h])).toEqual(COLUMNS.map((h) => rows[Number(r._row) - 1]![h]));
    }
    expect(listed.find((r) => r._row === '9')!.note).toBe('said "no", then\r\nleft');
    // The rejected file holds no filtered record: the FIELD_COUNT one is there, rejected.
    // (Read by position: the FIELD_COUNT record has one field more than the header.)
    const rejected: string[][] = parse(readFileSync(result.rejectedPath!), { relax_column_count: true, from_line: 2 });
    expect(rejected.map((r) => [r.at(-4), r.at(-2)])).toEqual([
      ['10', 'INVALID_BADGE_ID'],
      ['31', 'FIELD_COUNT'],
      ['14', 'DUPLICATE_IN_FILE'],
    ]);
  });

  it('never replays a filtered record: the filtered file is refused, and the rejected file holds none', async () => {
    // Act
    const fromFiltered = await replayLocal({ ...options('paid-events', { dryRun: true }), rejected: run.result.filteredPath! }).catch((error: unknown) => error);
    const fromRejected = await replayLocal({ ...options('paid-events', { dryRun: true }), rejected: run.result.rejectedPath!, stages: ['validate', 'api'] });

    // Assess
    expect(fromFiltered).toMatchObject({ name: 'ReplayFileError', message: expect.stringMatching(/Not a rejected-records file/) as unknown });
    expect(fromRejected.selection).toMatchObject({ kept: 2, duplicates: 1 });
    expect(fromRejected.selection.rows.sort((a, b) => a - b)).toEqual([10, 31]);
    expect(fromRejected.result!.report.rows).toMatchObject({ total: 2, rejected: 2, filtered: 0 });
  });

  it('keeps the filtered count in the content claim', async () => {
    // Assess
    const claim = await readJson<ImportedMarker>(bench.s3.client, LOCAL_BUCKETS.reports, `imported/paid-events/${run.result.report.files[0]!.contentSha256}.json`);
    expect(claim).toMatchObject({ state: 'imported', accepted: 18, filtered: 10 });
  });
});

describe('Filter: on a header that is not a CEL identifier, and in a dry run', () => {
  it('reads row["Payment Status"] and shows what a real run would filter', async () => {
    // Prepare
    const base = 9_200_000;

    // Act
    const { result, metric } = await runFile('payment-events', 'events_payment.csv', csvOf(rowsWithStatus(base, 12, (i) => i > 8)), { dryRun: true });

    // Assess: records 9–12 are pending; nothing is sent in a dry run, yet the filtered file is written.
    expect(result.report).toMatchObject({ status: 'SUCCEEDED', dryRun: true, rows: { total: 12, valid: 8, accepted: 0, rejected: 0, filtered: 4 } });
    expect(summary(result.report, result.reportPath)).toContain('records 12: 8 valid, 0 rejected, 4 filtered');
    expect(readCsv(result.filteredPath!).map((r) => [r._row, r._filter])).toEqual(['9', '10', '11', '12'].map((n) => [n, 'row["Payment Status"] == "Paid"']));
    expect(ledgerFor(base, 12)).toEqual([]);
    expect(metric('RecordsFiltered')).toBe(0);
  });
});

describe('Filter: an expression that fails on a record', () => {
  it.each([
    ['counted-events', 'a non-boolean result', /^filter\.expression: the result is an int, not a bool$/],
    ['refund-events', 'a missing key', /^filter\.expression: .*Refund/],
  ])('rejects every record EXPRESSION_ERROR on %s (%s), sending none', async (flowName, _what, message) => {
    // Prepare
    const base = flowName === 'counted-events' ? 9_300_000 : 9_310_000;

    // Act
    const { result } = await runFile(flowName, 'events_failing.csv', csvOf(rowsWithStatus(base, 5)));

    // Assess
    expect(result.report).toMatchObject({ status: 'COMPLETED_WITH_REJECTIONS', rows: { total: 5, accepted: 0, rejected: 5, filtered: 0 }, rejectionsByCode: { EXPRESSION_ERROR: 5 } });
    expect(result.filteredPath).toBeUndefined();
    const rejected = readCsv(result.rejectedPath!);
    expect(rejected.every((r) => r._stage === 'validate' && r._error_code === 'EXPRESSION_ERROR' && message.test(r._error_message!))).toBe(true);
    expect(ledgerFor(base, 5)).toEqual([]);
  });
});

describe('Filter: a file whose every record is filtered', () => {
  it('sends nothing and finishes SUCCEEDED, with every record in the filtered file', async () => {
    // Prepare
    const base = 9_400_000;

    // Act
    const { result, metric } = await runFile('paid-events', 'events_allunpaid.csv', csvOf(rowsWithStatus(base, 7, () => true)));

    // Assess
    expect(result.exitCode).toBe(0);
    expect(result.report).toMatchObject({ status: 'SUCCEEDED', rows: { total: 7, accepted: 0, rejected: 0, filtered: 7, valid: 0 } });
    expect(result.rejectedPath).toBeUndefined();
    expect(readCsv(result.filteredPath!)).toHaveLength(7);
    expect(result.report.files[0]!.source.movedTo).toMatch(/^processed\/paid-events\//);
    expect(ledgerFor(base, 7)).toEqual([]);
    expect([metric('RecordsAccepted'), metric('RecordsFiltered')]).toEqual([0, 7]);
    expect(metric('RejectedPercent')).toBe(0);
  });
});

describe('Filter: conservation', () => {
  let faulty: LocalS3 | undefined;
  afterEach(async () => {
    await faulty?.close();
    faulty = undefined;
  });

  it('still reports a run that lost a staged record FAILED RECORDS_UNACCOUNTED: filtered records never make up for it', async () => {
    // Prepare: the first staged chunk loses its last record as soon as it is written (as in exactly-once.test.ts).
    const s3 = await startS3LosingAStagedRecord();
    faulty = s3;
    const base = 9_500_000;

    // Act: 60 records, 20 filtered, 40 staged to send (one of which is lost).
    const { result, metrics } = await runFile('paid-events', 'events_lost.csv', csvOf(rowsWithStatus(base, 60)), { s3 });

    // Assess
    expect(s3.tampered()).toBe(true);
    expect(result.report).toMatchObject({ status: 'FAILED', error: { code: 'RECORDS_UNACCOUNTED' }, rows: { total: 60, accepted: 39, rejected: 0, filtered: 20 } });
    expect(result.report.error!.message).toMatch(/60 records were read, but 39 accepted \+ 0 rejected \+ 20 filtered do not add up to it.*: 1 record is unaccounted for/);
    expect(metrics).toContainEqual(['RecordsUnaccounted', 1, undefined]);
  });

  it('does not report a run whose filtered records are all placed unaccounted for', async () => {
    // Act
    const { result, metrics } = await runFile('paid-events', 'events_placed.csv', csvOf(rowsWithStatus(9_600_000, 60)));

    // Assess
    expect(result.report).toMatchObject({ status: 'SUCCEEDED', rows: { total: 60, accepted: 40, rejected: 0, filtered: 20 } });
    expect(metrics.filter(([m]) => m === 'RecordsUnaccounted')).toEqual([]);
  });
});

describe('Function: unaccountedRecords', () => {
  it.each([
    ['every record placed, some filtered', { total: 10, accepted: 5, rejected: 2, filtered: 3, valid: 5 }, false, 0, 0],
    ['a record lost beside filtered ones', { total: 10, accepted: 4, rejected: 2, filtered: 3, valid: 5 }, false, 0, 1],
    ['a record counted twice', { total: 10, accepted: 6, rejected: 2, filtered: 3, valid: 6 }, false, 0, 1],
    ['a dry run: valid + rejected + filtered', { total: 10, accepted: 0, rejected: 2, filtered: 3, valid: 5 }, true, 0, 0],
    ['a report written before filters (no filtered)', { total: 10, accepted: 8, rejected: 2, valid: 8 }, false, 0, 0],
    ['a worker that lost one and another that invented one', { total: 10, accepted: 5, rejected: 2, filtered: 3, valid: 5 }, false, 2, 2],
  ])('counts %s', (_what, rows, dryRun, miscounted, expected) => {
    // Act
    const unaccounted = unaccountedRecords(rows, dryRun, miscounted);

    // Assess
    expect(unaccounted).toBe(expected);
  });
});

describe('Function: compileFilter', () => {
  const header = ['member_id', 'status', 'Payment Status', 'points'];
  const verdict = (expression: string, fields: string[]) => compileFilter({ expression }, header)!(fields);

  it('keeps a record the expression says true of, filters one it says false of', () => {
    // Act
    const kept = verdict('status == "paid" && row["Payment Status"] == "Paid"', ['1', 'paid', 'Paid', '3']);
    const dropped = verdict('status == "paid" && row["Payment Status"] == "Paid"', ['1', 'paid', 'Pending', '3']);

    // Assess
    expect(kept).toEqual({ keep: true });
    expect(dropped).toEqual({ keep: false });
  });

  it.each([
    ['a non-boolean result', 'points', /^filter\.expression: the result is a string, not a bool$/],
    ['an int', 'int(points) * 2', /^filter\.expression: the result is an int, not a bool$/],
    ['a type error', 'int(status) > 2', /^filter\.expression: .+/],
    ['a missing key', 'row["Refund"] == "no"', /^filter\.expression: .*Refund/],
  ])('rejects a record EXPRESSION_ERROR on %s', (_what, expression, message) => {
    // Act
    const result = verdict(expression, ['1', 'paid', 'Paid', '3']);

    // Assess
    expect(result).toMatchObject({ keep: false, rejection: { code: 'EXPRESSION_ERROR', message: expect.stringMatching(message) as unknown } });
    expect((result as { rejection: { message: string } }).rejection.message).not.toContain('\n');
  });

  it('is undefined for a dataflow without a filter, and fails the file on a variable that is no column', () => {
    // Act / Assess
    expect(compileFilter(undefined, header)).toBeUndefined();
    expect(() => compileFilter({ expression: 'refunded == false' }, header)).toThrow(expect.objectContaining({ code: 'MISSING_COLUMN', message: expect.stringMatching(/^filter\.expression names "refunded"/) as unknown }));
  });
});

describe('Function: parseConfig, on a filter', () => {
  it('refuses an expression that is not CEL, or is empty, naming its JSON path', () => {
    // Prepare
    const withFilter = (filter: unknown) => ({ dataflows: [{ ...flow, filter }] });

    // Act / Assess
    expect(() => parseConfig(withFilter({ expression: 'status == ' }))).toThrow(/dataflows\[0\]\.filter\.expression: is not a valid CEL expression/);
    expect(() => parseConfig(withFilter({ expression: '' }))).toThrow(/dataflows\[0\]\.filter\.expression: /);
    expect(() => parseConfig(withFilter({ expresion: 'true' }))).toThrow(/dataflows\[0\]\.filter/);
    expect(parseConfig(withFilter({ expression: 'status == "paid"' })).dataflows[0]!.filter).toEqual({ expression: 'status == "paid"' });
  });
});
