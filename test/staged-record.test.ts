import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { ApiItem } from '../src/core/mapping';
import { decodeStagedRecord, encodeStagedRecord, stagedItemOf, stagedNumberOf } from '../src/core/staged-record';

const item = (overrides: Partial<ApiItem> = {}): ApiItem => ({
  badgeMetaId: '6571a3b9e4b0c1a2b3c4d5e6',
  customerId: 1_000_001,
  earnEventDate: 1_790_000_000_000,
  earnExpiresOn: 1_800_000_000_000,
  earnEventDateISO: '2026-09-21T14:13:20.000Z',
  earnExpiresOnISO: '2027-01-15T08:00:00.000Z',
  ...overrides,
});

/** Fields a CSV file can hold, each of them awkward for a line-oriented JSON format. */
const AWKWARD_FIELDS: Array<[string, string[]]> = [
  ['quotes', ['say "hi"', '""', '"']],
  ['line ends', ['one\r\ntwo', 'three\nfour', 'five\r']],
  ['unicode', ['café', '日本語', '🙂', '\u2028\u2029', '\uFEFFbom']],
  ['braces and the item key', ['}', '{"i":{}}', '"i":{', '},"c":1}', '\\"i\\":{']],
  ['empty fields', ['', '', '']],
  ['no fields', []],
];

describe('Function: encodeStagedRecord', () => {
  it('writes the line in the format the chunk objects have always had', () => {
    // Prepare
    const i = item();

    // Act
    const plain = encodeStagedRecord(7, ['a', 'b'], i);
    const checked = encodeStagedRecord(7, ['a', 'b'], i, true);

    // Assess: one JSON line, keys n, f, i (and c) in this order.
    expect(plain).toBe(`{"n":7,"f":["a","b"],"i":${JSON.stringify(i)}}`);
    expect(checked).toBe(`{"n":7,"f":["a","b"],"i":${JSON.stringify(i)},"c":1}`);
  });

  it.each(AWKWARD_FIELDS)('keeps a record with %s on one line', (_, fields) => {
    // Act
    const line = encodeStagedRecord(3, fields, item());

    // Assess: no line break that a line reader (node:readline) would split on.
    expect(line).not.toMatch(/[\r\n]/);
  });
});

describe('Function: decodeStagedRecord', () => {
  it.each(AWKWARD_FIELDS)('reads back a record with %s', (_, fields) => {
    // Prepare
    const i = item();

    // Act
    const plain = decodeStagedRecord(encodeStagedRecord(42, fields, i));
    const checked = decodeStagedRecord(encodeStagedRecord(42, fields, i, true));

    // Assess
    expect(plain).toEqual({ n: 42, f: fields, i });
    expect(checked).toEqual({ n: 42, f: fields, i, c: 1 });
  });
});

describe('Function: decodeStagedRecord, on a chunk object', () => {
  it('reads back every record of a chunk as the send step reads it, line by line', async () => {
    // Prepare: one chunk holding every awkward record, as the stage writes it (lines joined by "\n").
    const records = AWKWARD_FIELDS.map(([, fields], k) => ({ n: k + 1, f: fields, i: item({ customerId: k + 1 }) }));
    const body = records.map((r) => encodeStagedRecord(r.n, r.f, r.i)).join('\n');

    // Act
    const read = [];
    for await (const line of createInterface({ input: Readable.from([Buffer.from(body)]), crlfDelay: Infinity })) read.push(decodeStagedRecord(line));

    // Assess
    expect(read).toEqual(records);
  });
});

describe('Function: stagedNumberOf and stagedItemOf', () => {
  it.each(AWKWARD_FIELDS)('read the number and the item of a record with %s, as decoding does', (_, fields) => {
    // Prepare
    const i = item();
    const lines = [encodeStagedRecord(123_456, fields, i), encodeStagedRecord(123_456, fields, i, true)];

    // Act
    const read = lines.map((line) => ({ n: stagedNumberOf(line), i: stagedItemOf(line) }));

    // Assess
    expect(read).toEqual([
      { n: 123_456, i },
      { n: 123_456, i },
    ]);
  });

  it('reads an item whose values hold a closing brace or a quote whole', () => {
    // Prepare: the item's text values are not always hex and dates (a transform may give them any text).
    const i = item({ earnEventDateISO: '2026-09-21T14:13:20.000Z}', earnExpiresOnISO: '"},"c":1}' });
    const lines = [encodeStagedRecord(9, ['}'], i), encodeStagedRecord(9, ['}'], i, true)];

    // Act
    const items = lines.map(stagedItemOf);

    // Assess
    expect(items).toEqual([i, i]);
  });
});
