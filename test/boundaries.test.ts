/**
 * Record boundaries through the whole local workflow (issue 10, defects 1 and 3): the text guard and the parser must
 * agree on where each record begins and ends, so that `rows.total` is the number of records in the file and each of
 * them ends in exactly one place.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { RecordGuard } from '../src/core/guard';
import { type LocalRunResult, runLocal } from '../src/local/runner';
import { localWorkflow } from './support/local';
import { type EventRow, HEADER, KNOWN_BADGES, configDocument, validRow } from './support/factories';

/** The house dataflow with a small record limit (so that quotes read wrongly would soon make a record too long). */
const document = configDocument({
  csv: { delimiter: ',', maxRecordBytes: 4096 },
  destination: {
    ...((configDocument().dataflows as Array<Record<string, unknown>>)[0]!.destination as object),
    batchSize: 1000,
    recordsPerWorker: 5000,
    maxRequestsPerMinute: 60_000,
  },
});
const bench = localWorkflow('boundaries-', document, { sandbox: { knownBadgeIds: [...KNOWN_BADGES] } });
const { work } = bench;

let files = 0;
async function runText(text: string, options: { dryRun?: boolean; sourceMode?: boolean } = {}): Promise<LocalRunResult> {
  const name = `events_boundaries_${++files}.csv`;
  const file = join(work, name);
  writeFileSync(file, text);
  return runLocal({ ...bench.options('weekly-events', { outDir: join(work, 'out', name), dryRun: options.dryRun, sourceMode: options.sourceMode }), file });
}

/** One record as it stands in the file: the fields joined as they are (none holds a delimiter or a line end). */
const line = (row: EventRow): string => HEADER.map((h) => row[h] ?? '').join(',');
const rowsFor = (base: number, count: number, note = (i: number) => `plain ${i}`): EventRow[] => Array.from({ length: count }, (_, i) => ({ ...validRow(i + 1, base), note: note(i + 1) }));
const ledgerBetween = (base: number, count: number) =>
  bench
    .ledgerFor(base, count)
    .map((e) => e.customerId)
    .sort((a, b) => a - b);
const numbers = (base: number, count: number) => Array.from({ length: count }, (_, i) => base + i + 1);

/** The run succeeded with every one of its `count` records accepted, and the sandbox issued each exactly once. */
function expectEveryRecordIssuedOnce(result: Awaited<ReturnType<typeof runText>>, base: number, count: number): void {
  expect([result.exitCode, result.report.status, result.report.error]).toEqual([0, 'SUCCEEDED', undefined]);
  expect(result.report.rows).toMatchObject({ total: count, accepted: count, rejected: 0 });
  expect(ledgerBetween(base, count)).toEqual(numbers(base, count));
}

describe('Record boundaries through the workflow', () => {
  it('reads an inch mark in an unquoted field as a character: every record of 10,000 counted once, the rest unharmed', async () => {
    // Prepare: every 1,000th record has `TV 55" promo` in its note (quotes some 80 kB apart, the limit 4 kB), and
    // record 4,321 has `55"` in a mapped column.
    const count = 10_000;
    const rows = rowsFor(0, count, (i) => (i % 1000 === 0 ? 'TV 55" promo' : `plain ${i}`));
    rows[4320] = { ...rows[4320]!, member_id: '55" TV' };
    const text = `${HEADER.join(',')}\n${rows.map(line).join('\n')}\n`;

    // Act: a dry run (sending adds nothing to the point; the records that would be sent are counted as valid).
    const result = await runText(text, { dryRun: true });

    // Assess: every record counted, once; only the bad customer id rejected, its value kept as it was.
    const { report } = result;
    expect(report.error).toBeUndefined();
    expect(report.rows).toMatchObject({ total: count, valid: count - 1, rejected: 1 });
    expect(report.rows.valid + report.rows.rejected).toBe(count);
    const rejected = parse<Record<string, string>>(readFileSync(result.rejectedPath!, 'utf8'), { columns: true });
    expect(rejected.map((r) => [r._row, r.member_id, r._error_code])).toEqual([['4321', '55" TV', 'INVALID_CUSTOMER_ID']]);
  });

  it('sends the records around an inch mark, and the one with it, each once', async () => {
    // Prepare: inch marks 1,000 records (some 80 kB) apart.
    const base = 7_100_000;
    const count = 3000;
    const rows = rowsFor(base, count, (i) => (i % 1000 === 500 ? 'TV 55" promo' : `plain ${i}`));

    // Act
    const result = await runText(`${HEADER.join(',')}\n${rows.map(line).join('\n')}\n`);

    // Assess
    expectEveryRecordIssuedOnce(result, base, count);
  });

  it('imports every record of a file with \\r-only line ends, longer than csv.maxRecordBytes', async () => {
    // Prepare: about 18 kB, an old spreadsheet export; one note quoted, holding a \r.
    const base = 7_200_000;
    const count = 250;
    const rows = rowsFor(base, count);
    const text = `${[HEADER.join(','), ...rows.map((r, i) => (i === 99 ? `${line({ ...r, note: '' })}"two\rlines"` : line(r)))].join('\r')}\r`;
    expect(Buffer.byteLength(text)).toBeGreaterThan(4 * 4096);

    // Act
    const result = await runText(text);

    // Assess
    expectEveryRecordIssuedOnce(result, base, count);
  });

  it('imports every record of a file mixing \\r\\n, \\n and \\r line ends, with blank lines of each', async () => {
    // Prepare: the line end changes from record to record; every 7th is followed by a blank line.
    const base = 7_300_000;
    const count = 120;
    const ends = ['\r\n', '\n', '\r'];
    const rows = rowsFor(base, count);
    const text = `${HEADER.join(',')}\r\n${rows.map((r, i) => `${line(r)}${ends[i % 3]}${i % 7 === 0 ? ends[(i + 1) % 3] : ''}`).join('')}`;

    // Act
    const result = await runText(text);

    // Assess
    expectEveryRecordIssuedOnce(result, base, count);
  });

  it('fails the file MALFORMED_CSV, naming the line, when a closing quote is followed by text: nothing is sent', async () => {
    // Prepare: record 40 of 60 has `"x"y` in its note.
    const base = 7_400_000;
    const count = 60;
    const rows = rowsFor(base, count);
    const text = `${[HEADER.join(','), ...rows.map((r, i) => (i === 39 ? `${line({ ...r, note: '' })}"x"y` : line(r)))].join('\n')}\n`;

    // Act
    const result = await runText(text);

    // Assess
    expect([result.exitCode, result.report.status]).toEqual([1, 'FAILED']);
    expect(result.report.error).toMatchObject({ code: 'MALFORMED_CSV', message: expect.stringMatching(/at line 41/) as unknown });
    expect(ledgerBetween(base, count)).toEqual([]);
  });
});

describe('Function: stage, when the text guard and the parser disagree', () => {
  it('fails the file MALFORMED_CSV and sends nothing', async () => {
    // Prepare: no file is known to make them disagree (test/csv.test.ts compares both with Python's reading), so the
    // guard is made to report one record more than it delimited.
    const base = 7_500_000;
    const rows = rowsFor(base, 30);
    const seen = jest.spyOn(RecordGuard.prototype, 'recordsSeen', 'get').mockReturnValue(31);

    // Act
    let result: LocalRunResult;
    try {
      // In source mode: the spy reaches the guard only in this process, not in a Lambda container.
      result = await runText(`${HEADER.join(',')}\n${rows.map(line).join('\n')}\n`, { sourceMode: true });
    } finally {
      seen.mockRestore();
    }

    // Assess
    expect([result.exitCode, result.report.status]).toEqual([1, 'FAILED']);
    expect(result.report.error).toEqual({ code: 'MALFORMED_CSV', message: 'record boundaries disagree: the text guard delimited 31 records, the parser 30; nothing was sent' });
    expect(ledgerBetween(base, 30)).toEqual([]);
  });
});
