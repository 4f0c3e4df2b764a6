/**
 * The broken-input corpus: every kind of bad file and bad value, with the outcome each must have. `npm run corpus`
 * writes the files to test/corpus/files/; test/corpus.test.ts checks that they are exactly what this script makes
 * (nobody edits them by hand) and runs each through the local workflow.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type EventRow, HEADER, KNOWN_BADGES, toCsv, validRow } from '../support/factories';
import { makeZip } from '../support/zips';

export interface CorpusCase {
  /** File name in the corpus (and in the inbox). */
  file: string;
  what: string;
  /** Overrides of the corpus dataflow's csv settings. */
  csv?: Record<string, unknown>;
  /** Customers of this case are numbered from here (up to 999 of them): what reached the sandbox is checked in that range. */
  customers?: number;
  expect: {
    exitCode: 0 | 1 | 3;
    status: 'SUCCEEDED' | 'COMPLETED_WITH_REJECTIONS' | 'FAILED';
    error?: { code: string; message: RegExp };
    records?: number;
    /** Every rejected record: its number and code (and, for RECORD_TOO_LONG and the like, nothing else is checked). */
    rejected?: Array<[number, string]>;
    /** Rejected records whose message must say something in particular (e.g. which record a duplicate repeats). */
    messages?: Array<[number, RegExp]>;
    /** Customers that must be in the sandbox's ledger, exactly once each; any other customer of the case must not. */
    accepted?: number[];
  };
}

export const CORPUS_DIR = join(__dirname, 'files');

/** Each case's customers are numbered from its own base, so what reached the sandbox is told apart per case. */
const base = (n: number) => 9_000_000 + n * 1000;
const rows = (n: number, count: number): EventRow[] => Array.from({ length: count }, (_, i) => validRow(i + 1, base(n)));
const ids = (n: number, numbers: number[]) => numbers.map((k) => base(n) + k);
/** A seeded byte generator (mulberry32), so the binary case is the same every time. */
function bytes(count: number, seed: number): Buffer {
  let a = seed >>> 0;
  const out = Buffer.alloc(count);
  for (let i = 0; i < count; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) & 0xff;
  }
  return out;
}

/** The record table: each bad value with its code; the others are good. Record numbers are 1-based. */
function recordCases(n: number): { csv: string; rejected: Array<[number, string]>; accepted: number[]; duplicates: Record<number, number> } {
  const b = base(n);
  const good = (k: number): EventRow => validRow(k, b);
  const list: Array<{ row: EventRow | string; code?: string }> = [
    { row: good(1) },
    { row: `${b + 2},${KNOWN_BADGES[0]},2026-11-02 10:00:00`, code: 'FIELD_COUNT' },
    { row: `${b + 3},${KNOWN_BADGES[0]},2026-11-02 10:00:00,2027-01-15,note,extra`, code: 'FIELD_COUNT' },
    { row: { ...good(4), member_id: 'N/A' }, code: 'INVALID_CUSTOMER_ID' },
    { row: { ...good(5), member_id: '' }, code: 'INVALID_CUSTOMER_ID' },
    { row: { ...good(6), member_id: '12.5' }, code: 'INVALID_CUSTOMER_ID' },
    { row: { ...good(7), member_id: '1e5' }, code: 'INVALID_CUSTOMER_ID' },
    { row: { ...good(8), member_id: '-3' }, code: 'INVALID_CUSTOMER_ID' },
    { row: { ...good(9), member_id: '+12' }, code: 'INVALID_CUSTOMER_ID' },
    { row: { ...good(10), member_id: '9007199254740993' }, code: 'INVALID_CUSTOMER_ID' },
    { row: { ...good(11), member_id: ` ${b + 11} ` } },
    { row: { ...good(12), badge_code: '6571a3b9e4b0c1a2b3c4d5e' }, code: 'INVALID_BADGE_ID' },
    { row: { ...good(13), badge_code: '6571a3b9e4b0c1a2b3c4d5eZ' }, code: 'INVALID_BADGE_ID' },
    { row: { ...good(14), event_time: '2026-02-29 10:00:00' }, code: 'INVALID_DATE' },
    { row: { ...good(15), event_time: '31/04/2026 10:00:00' }, code: 'INVALID_DATE' },
    { row: { ...good(16), event_time: '2026-11-02 25:00:00' }, code: 'INVALID_DATE' },
    // Europe/Berlin skips 02:00–03:00 on 29 March 2026.
    { row: { ...good(17), event_time: '2026-03-29 02:30:00' }, code: 'NONEXISTENT_LOCAL_TIME' },
    { row: { ...good(18), event_time: '2026-11-02 10:00:00', expiry_date: '2026-11-02' }, code: 'EXPIRY_BEFORE_EVENT' },
    { row: { ...good(19), event_time: '2030-01-01 10:00:00', expiry_date: '2031-01-01' }, code: 'EVENT_IN_FUTURE' },
    { row: good(20) },
    // Records 1 and 20 again (same customer, badge and event instant; other notes): rejected, naming the first.
    { row: { ...good(1), note: 'sent twice' }, code: 'DUPLICATE_IN_FILE' },
    { row: { ...good(20), member_id: ` ${b + 20}` }, code: 'DUPLICATE_IN_FILE' },
  ];
  const csv = `${[HEADER.join(','), ...list.map(({ row }) => (typeof row === 'string' ? row : csvLine(row)))].join('\n')}\n`;
  return {
    csv,
    rejected: list.flatMap(({ code }, i) => (code ? [[i + 1, code] as [number, string]] : [])),
    accepted: list.flatMap(({ code }, i) => (code ? [] : [b + i + 1])),
    duplicates: { 21: 1, 22: 20 },
  };
}

/** One record as it stands in the file, its fields joined as they are (none may hold a delimiter or a line end). */
function rawLine(row: EventRow): string {
  return HEADER.map((h) => row[h] ?? '').join(',');
}

/** One record as a CSV line (quoted as toCsv quotes it: a note may hold a newline). */
function csvLine(row: EventRow): string {
  return toCsv([row]).slice(HEADER.join(',').length + 1).replace(/\n$/, '');
}

export function corpusCases(): Array<CorpusCase & { content: (dir: string) => Buffer | void }> {
  const records = recordCases(10);
  const tooLong = rows(8, 5);
  tooLong[2] = { ...tooLong[2]!, note: 'x'.repeat(2 * 1024 * 1024) };
  const lateQuote = rows(3, 200);
  const latin1Rows = rows(6, 3).map((r) => ({ ...r, note: 'Müller, Düsseldorf' }));
  // Inch marks some 8 kB apart, with csv.maxRecordBytes at 1 kB; record 150 has one in a mapped column.
  const inch = rows(12, 300).map((r, i) => ({ ...r, note: (i + 1) % 100 === 0 ? 'TV 55" promo' : `plain ${i + 1}` }));
  inch[149] = { ...inch[149]!, member_id: '55" TV' };
  const lineEnds = ['\r\n', '\n', '\r'];
  const utf16Rows = rows(5, 3).map((r) => ({ ...r, note: 'Łódź café' }));
  return [
    { file: 'events_empty.csv', what: 'empty file (0 bytes)', content: () => Buffer.alloc(0), expect: { exitCode: 1, status: 'FAILED', error: { code: 'EMPTY_FILE', message: /empty/ } } },
    { file: 'events_header_only.csv', what: 'header only', content: () => Buffer.from(`${HEADER.join(',')}\n`), expect: { exitCode: 0, status: 'SUCCEEDED', records: 0, rejected: [] } },
    {
      file: 'events_late_quote.csv',
      customers: base(3),
      what: 'a quote opened on the last record of 201 and never closed',
      content: () => Buffer.from(`${toCsv(lateQuote)}${base(3) + 201},${KNOWN_BADGES[0]},2026-11-02 10:00:00,2027-01-15,"never closed\n`),
      expect: { exitCode: 1, status: 'FAILED', error: { code: 'MALFORMED_CSV', message: /at line \d+/ }, accepted: [] },
    },
    {
      file: 'events_utf16.csv',
      customers: base(5),
      what: 'UTF-16LE with its byte-order mark, declared utf-8',
      content: () => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(toCsv(utf16Rows), 'utf16le')]),
      expect: { exitCode: 1, status: 'FAILED', error: { code: 'ENCODING_MISMATCH', message: /UTF-16LE.*declare csv.encoding "utf-16le"/ }, accepted: [] },
    },
    {
      file: 'events_utf16_declared.csv',
      customers: base(4),
      what: 'UTF-16LE with its byte-order mark, declared utf-16le',
      csv: { encoding: 'utf-16le' },
      content: () => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(toCsv(rows(4, 3).map((r) => ({ ...r, note: 'Łódź café' }))), 'utf16le')]),
      expect: { exitCode: 0, status: 'SUCCEEDED', records: 3, accepted: ids(4, [1, 2, 3]) },
    },
    {
      file: 'events_latin1.csv',
      customers: base(6),
      what: 'Latin-1 text, declared utf-8',
      content: () => Buffer.from(toCsv(latin1Rows), 'latin1'),
      expect: { exitCode: 1, status: 'FAILED', error: { code: 'ENCODING_MISMATCH', message: /not UTF-8: byte \d+ \(0xfc.*Latin-1/ }, accepted: [] },
    },
    {
      file: 'events_latin1_declared.csv',
      customers: base(7),
      what: 'Latin-1 text, declared latin1',
      csv: { encoding: 'latin1' },
      content: () => Buffer.from(toCsv(rows(7, 3).map((r) => ({ ...r, note: 'Müller, Düsseldorf' }))), 'latin1'),
      expect: { exitCode: 0, status: 'SUCCEEDED', records: 3, accepted: ids(7, [1, 2, 3]) },
    },
    {
      file: 'events_binary.csv',
      what: 'binary data under a CSV name',
      content: () => Buffer.concat([Buffer.from(`${HEADER.join(',')}\n`), bytes(4096, 42)]),
      expect: { exitCode: 1, status: 'FAILED', error: { code: 'ENCODING_MISMATCH', message: /NUL byte at byte \d+: it is binary data/ } },
    },
    {
      file: 'events_duplicate_header.csv',
      customers: base(2),
      what: 'a mapped column twice in the header',
      content: () => Buffer.from(`member_id,badge_code,event_time,expiry_date,member_id\n${base(2) + 1},${KNOWN_BADGES[0]},2026-11-02 10:00:00,2027-01-15,${base(2) + 2}\n`),
      expect: { exitCode: 1, status: 'FAILED', error: { code: 'AMBIGUOUS_COLUMN', message: /member_id/ }, accepted: [] },
    },
    {
      file: 'events_too_long.csv',
      customers: base(8),
      what: 'record 3 of 5 longer than 1 MiB',
      content: () => Buffer.from(toCsv(tooLong)),
      expect: { exitCode: 3, status: 'COMPLETED_WITH_REJECTIONS', records: 5, rejected: [[3, 'RECORD_TOO_LONG']], accepted: ids(8, [1, 2, 4, 5]) },
    },
    {
      file: 'events_gzip_bomb.csv.gz',
      customers: base(9),
      what: 'a gzip file expanding past unpack.maxUncompressedBytes',
      content: () => gzipSync(Buffer.from(`${HEADER.join(',')}\n${`${base(9) + 1},${KNOWN_BADGES[0]},2026-11-02 10:00:00,2027-01-15,x\n`.repeat(60_000)}`)),
      expect: { exitCode: 1, status: 'FAILED', error: { code: 'UNSAFE_ARCHIVE', message: /maxUncompressedBytes/ }, accepted: [] },
    },
    {
      file: 'events_zip_slip.zip',
      customers: base(11),
      what: 'a zip with an entry escaping its folder',
      content: (dir) => makeZip(join(dir, 'events_zip_slip.zip'), { 'events_ok.csv': toCsv(rows(11, 2)), '../../events_evil.csv': toCsv(rows(11, 2)) }),
      expect: { exitCode: 1, status: 'FAILED', error: { code: 'UNSAFE_ARCHIVE', message: /\.\.\/\.\.\/events_evil\.csv/ }, accepted: [] },
    },
    {
      file: 'events_inch_mark.csv',
      customers: base(12),
      what: 'a quote inside unquoted fields (an inch mark, TV 55" promo), such quotes far more than csv.maxRecordBytes apart',
      csv: { maxRecordBytes: 1024 },
      content: () => Buffer.from(`${HEADER.join(',')}\n${inch.map(rawLine).join('\n')}\n`),
      expect: { exitCode: 3, status: 'COMPLETED_WITH_REJECTIONS', records: 300, rejected: [[150, 'INVALID_CUSTOMER_ID']], accepted: ids(12, Array.from({ length: 300 }, (_, i) => i + 1).filter((k) => k !== 150)) },
    },
    {
      file: 'events_cr_only.csv',
      customers: base(13),
      what: '\\r-only line ends (an old spreadsheet export), the file longer than csv.maxRecordBytes',
      csv: { maxRecordBytes: 1024 },
      content: () => Buffer.from(toCsv(rows(13, 200), { eol: '\r' })),
      expect: { exitCode: 0, status: 'SUCCEEDED', records: 200, rejected: [], accepted: ids(13, Array.from({ length: 200 }, (_, i) => i + 1)) },
    },
    {
      file: 'events_mixed_line_ends.csv',
      customers: base(14),
      what: '\\r\\n, \\n and \\r line ends mixed in one file, with blank lines',
      content: () => Buffer.from(`${HEADER.join(',')}\r\n${rows(14, 60).map((r, i) => `${csvLine(r)}${lineEnds[i % 3]}${i % 7 === 0 ? lineEnds[(i + 1) % 3] : ''}`).join('')}`),
      expect: { exitCode: 0, status: 'SUCCEEDED', records: 60, rejected: [], accepted: ids(14, Array.from({ length: 60 }, (_, i) => i + 1)) },
    },
    {
      file: 'events_text_after_quote.csv',
      customers: base(15),
      what: 'text right after the quote closing a quoted field ("x"y)',
      content: () => Buffer.from(`${toCsv(rows(15, 40))}${base(15) + 41},${KNOWN_BADGES[0]},2026-11-02 10:00:00,2027-01-15,"12" x 9"\n${rows(15, 45).slice(41).map(csvLine).join('\n')}\n`),
      expect: { exitCode: 1, status: 'FAILED', error: { code: 'MALFORMED_CSV', message: /at line \d+: a quoted field is closed by a quote followed by a space/ }, accepted: [] },
    },
    {
      file: 'events_records.csv',
      customers: base(10),
      what: 'every kind of bad value, one record each, between good ones',
      content: () => Buffer.from(records.csv),
      expect: {
        exitCode: 3,
        status: 'COMPLETED_WITH_REJECTIONS',
        records: 22,
        rejected: records.rejected,
        messages: Object.entries(records.duplicates).map(([n, first]) => [Number(n), new RegExp(`as record ${first}:`)]),
        accepted: records.accepted,
      },
    },
  ];
}

/** Writes the corpus into `dir`. */
export function writeCorpus(dir = CORPUS_DIR): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const c of corpusCases()) {
    const content = c.content(dir);
    if (content) writeFileSync(join(dir, c.file), content);
  }
}

if (require.main === module) {
  writeCorpus();
  console.log(`corpus written to ${CORPUS_DIR}`);
}
