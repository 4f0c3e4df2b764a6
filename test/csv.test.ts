import { execFileSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { parse } from 'csv-parse/sync';
import type { Dataflow } from '../src/config/schema';
import { type CsvRecord, openCsv, rejectHeaderLine, rejectLine } from '../src/core/csv';
import { TOO_LONG_MARK } from '../src/core/guard';
import { EmptyFileError, MalformedCsvError } from '../src/errors';
import { type EventRow, HEADER, makeDataflow, toCsv, validRow } from './support/factories';

async function readAll(text: string | Buffer, csv = makeDataflow().csv, chunkSize = 7) {
  const buffer = Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8');
  // Small chunks, so that quotes, CRLFs and multi-byte characters straddle chunk boundaries.
  const chunks: Buffer[] = [];
  for (let i = 0; i < buffer.length; i += chunkSize) chunks.push(buffer.subarray(i, i + chunkSize));
  const file = await openCsv(Readable.from(chunks), csv);
  const records: CsvRecord[] = [];
  for await (const record of file.records) records.push(record);
  return { header: file.header, records };
}

const rows: EventRow[] = [validRow(0), validRow(1), { ...validRow(2), note: 'naïve — “smart” ü' }, validRow(5)];

describe('Function: openCsv', () => {
  it('reads the header and numbers data records from 1, with quoted delimiters, quotes and newlines intact', async () => {
    // Act
    const { header, records } = await readAll(toCsv(rows));

    // Assess
    expect(header).toEqual([...HEADER]);
    expect(records.map((r) => r.number)).toEqual([1, 2, 3, 4]);
    expect(records[0]!.fields[4]).toBe(`has "quotes", a comma\nand a newline`);
    expect(records[2]!.fields[4]).toBe('naïve — “smart” ü');
  });

  it.each([
    ['a BOM and CRLF line ends', { bom: true, eol: '\r\n' }, ','],
    ['";" as delimiter', { delimiter: ';' }, ';'],
    ['"|" as delimiter with CRLF', { delimiter: '|', eol: '\r\n' }, '|'],
  ])('reads the same records from a file with %s', async (_label, options, delimiter) => {
    // Prepare
    const plain = await readAll(toCsv(rows));

    // Act
    const variant = await readAll(toCsv(rows, options), { ...makeDataflow().csv, delimiter });

    // Assess
    expect(variant.header).toEqual(plain.header);
    expect(variant.records).toEqual(plain.records);
  });

  it('does not count blank lines as records', async () => {
    // Act
    const { records } = await readAll(`${HEADER.join(',')}\n1,a,b,c,d\n\n2,a,b,c,d\n`);

    // Assess
    expect(records.map((r) => [r.number, r.fields[0]])).toEqual([
      [1, '1'],
      [2, '2'],
    ]);
  });

  it('reads a quote that does not start a field as a literal character, and one that does as quoting', async () => {
    // Act
    const { records } = await readAll(`${HEADER.join(',')}\n1,a,b,c,TV 55" promo\n2,a,b,c,"say ""hi"", 12"" x 9"""\n3,a,b,c, "x"\n`);

    // Assess
    expect(records.map((r) => r.fields[4])).toEqual(['TV 55" promo', 'say "hi", 12" x 9"', ' "x"']);
  });

  it('ends records at \\r\\n, \\n and \\r alike, mixed in one file, and counts what it delimited', async () => {
    // Act
    const file = await openCsv(Readable.from([Buffer.from(`${HEADER.join(',')}\r1,a,b,c,d\r\n2,a,b,c,"x\ry"\n\r3,a,b,c,d`)]), makeDataflow().csv);
    const records: CsvRecord[] = [];
    for await (const record of file.records) records.push(record);

    // Assess
    expect(file.header).toEqual([...HEADER]);
    expect(records.map((r) => [r.number, r.fields[0], r.fields[4]])).toEqual([
      [1, '1', 'd'],
      [2, '2', 'x\ry'],
      [3, '3', 'd'],
    ]);
    expect(file.recordsSeen()).toBe(3);
  });

  it(`reads a doubled quote as one quote with csv.quote "'"`, async () => {
    // Act
    const { records } = await readAll(`a;b\n'it''s';'x;y'\n`, { ...makeDataflow().csv, delimiter: ';', quote: "'" });

    // Assess
    expect(records[0]!.fields).toEqual(["it's", 'x;y']);
  });

  it('refuses a quoted field closed by a quote followed by text, naming the line', async () => {
    // Act + Assess
    await expect(readAll(`${HEADER.join(',')}\n1,a,b,c,d\n2,a,b,c,"x"y\n`)).rejects.toThrow(/not well-formed CSV at line 3/);
  });

  it('refuses an empty file', async () => {
    // Act + Assess
    await expect(readAll('')).rejects.toThrow(EmptyFileError);
  });

  it('refuses a quote left open, naming the line', async () => {
    // Prepare
    const text = `${toCsv(rows)}9,"unterminated,b,c,d,e\n10,a,b,c,d\n`;

    // Act + Assess
    await expect(readAll(text)).rejects.toThrow(MalformedCsvError);
    await expect(readAll(text)).rejects.toThrow(/at line \d+/);
  });

  it('decodes latin1 when the configuration says so', async () => {
    // Prepare
    const text = Buffer.from(`${HEADER.join(',')}\n1,a,b,c,Zürich\n`, 'latin1');

    // Act
    const { records } = await readAll(text, { ...makeDataflow().csv, encoding: 'latin1' });

    // Assess
    expect(records[0]!.fields[4]).toBe('Zürich');
  });
});

describe('Function: openCsv, on a range of the file after its header', () => {
  const csv = makeDataflow().csv;
  const range = (firstRecord: number, firstLine: number, offset: number, atFileStart = false) => ({ header: ['id', 'note'], firstRecord, firstLine, offset, atFileStart });
  const readRange = async (text: string | Buffer, r: ReturnType<typeof range>, settings = csv) => {
    const file = await openCsv(Readable.from([Buffer.isBuffer(text) ? text : Buffer.from(text)]), settings, r);
    const records: CsvRecord[] = [];
    for await (const record of file.records) records.push(record);
    return { header: file.header, records, recordsSeen: file.recordsSeen() };
  };

  it('takes the header given, reads every line as records, and numbers them from firstRecord', async () => {
    // Act: a range whose first line would be a header if read as a whole file.
    const read = await readRange('41,a\n\n42,"b\nc"\r\n43,d', range(41, 120, 5000));

    // Assess
    expect(read.header).toEqual(['id', 'note']);
    expect(read.records.map((r) => [r.number, ...r.fields])).toEqual([
      [41, '41', 'a'],
      [42, '42', 'b\nc'],
      [43, '43', 'd'],
    ]);
    expect(read.recordsSeen).toBe(3);
  });

  it("names the file's line when the range is malformed", async () => {
    // Act + Assess: the range starts on line 120; the bad close is on its third line.
    await expect(readRange('1,a\n2,b\n3,"x"y\n', range(7, 120, 5000))).rejects.toThrow(/at line 122: a quoted field is closed by a quote followed by "y"/);
    await expect(readRange('1,a\r\n2,"open\r\n', range(7, 120, 5000))).rejects.toThrow(/at line 121: the quoted field that starts there is never closed/);
  });

  it("names the file's byte offset when the range is not UTF-8", async () => {
    // Act + Assess: 0xfc is the range's 7th byte, and the range starts at byte 5000.
    await expect(readRange(Buffer.from('1,a\n2,Müller\n', 'latin1'), range(7, 120, 5000))).rejects.toThrow(/not UTF-8: byte 5007 \(0xfc/);
  });

  it('reads a UTF-8 BOM as text in a range that does not start the file, and drops it at the file start', async () => {
    // Prepare: after a BOM read as text, the quote does not start the field.
    const text = '\uFEFF"a",b\n';

    // Act
    const inside = await readRange(text, range(3, 5, 100));
    const atStart = await readRange(text, range(1, 1, 0, true));

    // Assess
    expect(inside.records[0]!.fields).toEqual(['\uFEFF"a"', 'b']);
    expect(atStart.records[0]!.fields).toEqual(['a', 'b']);
  });

  it('decodes a latin1 range', async () => {
    // Act
    const read = await readRange(Buffer.from('5,Zürich\n', 'latin1'), range(5, 9, 77), { ...csv, encoding: 'latin1' });

    // Assess
    expect(read.records).toEqual([{ number: 5, fields: ['5', 'Zürich'] }]);
  });

  it('replaces a record over csv.maxRecordBytes and counts it once', async () => {
    // Act
    const read = await readRange(`1,a\n2,"${'x\n'.repeat(40)}"\n3,c\n`, range(10, 1, 100), { ...csv, maxRecordBytes: 30 });

    // Assess
    expect(read.records.map((r) => [r.number, r.tooLong ?? false])).toEqual([
      [10, false],
      [11, true],
      [12, false],
    ]);
    expect(read.recordsSeen).toBe(3);
  });
});

describe('Function: rejectLine', () => {
  it('writes the values unchanged plus number, stage, code and message, readable back as CSV', () => {
    // Prepare
    const record: CsvRecord = { number: 7, fields: ['1', 'a,b', 'say "hi"', 'line\nbreak'] };

    // Act
    const text = rejectHeaderLine(['w', 'x', 'y', 'z']) + rejectLine(record, 'validate', 'INVALID_DATE', 'earnEventDate: "x", bad');

    // Assess
    expect(parse(text)).toEqual([
      ['w', 'x', 'y', 'z', '_row', '_stage', '_error_code', '_error_message'],
      ['1', 'a,b', 'say "hi"', 'line\nbreak', '7', 'validate', 'INVALID_DATE', 'earnEventDate: "x", bad'],
    ]);
  });
});

/** A seeded generator of numbers in [0, 1) (mulberry32): the same cases on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface DiffCase {
  text: string;
  delimiter: string;
  quote: string;
}

/**
 * Random texts over a small alphabet: some raw (mostly ill-formed), most built from fields that are quoted (with the
 * quote doubled) or not (holding quotes after their first character), cut short or with a character inserted now and
 * then.
 */
function diffCases(count: number, seed: number): DiffCase[] {
  const next = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  return Array.from({ length: count }, () => {
    const [delimiter, quote] = next() < 0.75 ? [',', '"'] : [';', "'"];
    const alphabet = ['a', 'b', 'a', 'b', ',', ';', '"', "'", '\r', '\n', ' ', 'é', '日'];
    const char = () => pick(alphabet);
    let text: string;
    if (next() < 0.4) {
      text = Array.from({ length: Math.floor(next() * 40) }, char).join('');
    } else {
      const field = () => {
        const body = Array.from({ length: Math.floor(next() * 5) }, char).join('');
        if (next() < 0.4) return `${quote}${body.split(quote).join(quote + quote)}${quote}`;
        const plain = body.split(delimiter).join('').replace(/[\r\n]/g, '');
        return plain.startsWith(quote) ? `a${plain}` : plain;
      };
      const ends = ['\n', '\r\n', '\r', '\n\n', '\r\r\n'];
      const records = Array.from({ length: 1 + Math.floor(next() * 5) }, () => Array.from({ length: 1 + Math.floor(next() * 3) }, field).join(delimiter));
      text = records.map((r) => r + pick(ends)).join('');
      if (next() < 0.15) text = text.slice(0, Math.floor(next() * text.length));
      if (next() < 0.3) {
        const at = Math.floor(next() * (text.length + 1));
        text = text.slice(0, at) + char() + text.slice(at);
      }
    }
    // Now and then a byte-order mark, or two (the second is text).
    const bom = next() < 0.06 ? (next() < 0.5 ? '\uFEFF' : '\uFEFF\uFEFF') : '';
    return { text: bom + text, delimiter, quote };
  });
}

/**
 * Python's reading of each case: its rows (blank lines, which it returns as [], left out) or the error it raises with
 * strict=True (a closing quote followed by anything but the delimiter or a line end, or data ending inside quotes).
 * It reads one leading byte-order mark as openCsv does: as no text.
 */
function pythonReading(cases: readonly DiffCase[]): Array<{ rows?: string[][]; error?: string }> {
  const script = [
    'import csv, io, json, sys',
    'out = []',
    'for c in json.load(sys.stdin):',
    '    text = c["text"][1:] if c["text"].startswith("\\ufeff") else c["text"]',
    '    try:',
    '        rows = csv.reader(io.StringIO(text, newline=""), delimiter=c["delimiter"], quotechar=c["quote"], strict=True)',
    '        out.append({"rows": [r for r in rows if r != []]})',
    '    except csv.Error as e:',
    '        out.append({"error": str(e)})',
    'json.dump(out, sys.stdout)',
  ].join('\n');
  return JSON.parse(execFileSync('python3', ['-c', script], { input: JSON.stringify(cases), maxBuffer: 64 * 1024 * 1024 }).toString('utf8')) as Array<{ rows?: string[][]; error?: string }>;
}

/** Reads `text` through openCsv, cut into chunks at random byte offsets (inside characters, \r\n and "" too). */
async function readCut(text: string, csv: Dataflow['csv'], next: () => number): Promise<{ header?: string[]; records: CsvRecord[]; recordsSeen: number; error?: Error }> {
  const bytes = Buffer.from(text, 'utf8');
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const size = 1 + Math.floor(next() * 8);
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  try {
    const file = await openCsv(Readable.from(chunks), csv);
    const records: CsvRecord[] = [];
    for await (const record of file.records) records.push(record);
    return { header: file.header, records, recordsSeen: file.recordsSeen() };
  } catch (error) {
    if (error instanceof EmptyFileError) return { records: [], recordsSeen: 0 };
    return { records: [], recordsSeen: 0, error: error as Error };
  }
}

describe('Function: openCsv, against Python\'s csv module', () => {
  const cases = diffCases(2500, 20261129);
  const python = pythonReading(cases);

  it('reads the same records as Python from every text the rule accepts, and refuses every other text', async () => {
    // Prepare
    const next = random(7);
    const disagreements: string[] = [];
    let accepted = 0;

    for (const [i, c] of cases.entries()) {
      // Act
      const read = await readCut(c.text, { ...makeDataflow().csv, delimiter: c.delimiter, quote: c.quote, maxRecordBytes: 1 << 20 }, next);

      // Assess: the same acceptance, and the same rows; the guard counted what the parser read.
      const expected = python[i]!;
      const got = read.error ? { error: read.error } : { rows: read.header ? [read.header, ...read.records.map((r) => r.fields)] : [] };
      if (expected.error !== undefined) {
        if (!(got.error instanceof MalformedCsvError)) disagreements.push(`${JSON.stringify(c)}: Python refuses it (${expected.error}); openCsv gives ${got.error?.message ?? JSON.stringify(got.rows)}`);
      } else {
        accepted += 1;
        if (JSON.stringify(got.rows) !== JSON.stringify(expected.rows)) disagreements.push(`${JSON.stringify(c)}: Python reads ${JSON.stringify(expected.rows)}; openCsv gives ${got.error?.message ?? JSON.stringify(got.rows)}`);
        else if (read.recordsSeen !== read.records.length) disagreements.push(`${JSON.stringify(c)}: the guard delimited ${read.recordsSeen} records, the parser read ${read.records.length}`);
      }
    }

    // Assess: a real share of both kinds was tried.
    expect(disagreements.slice(0, 5)).toEqual([]);
    expect(accepted).toBeGreaterThan(cases.length / 3);
    expect(cases.length - accepted).toBeGreaterThan(cases.length / 10);
  });

  it('with a tiny csv.maxRecordBytes, keeps the same records, each read or replaced as too long, and counts them', async () => {
    // Prepare
    const next = random(11);
    const limit = 6;
    const disagreements: string[] = [];

    for (const [i, c] of cases.entries()) {
      const expected = python[i]!.rows;
      if (!expected || expected.length === 0) continue;

      // Act
      const read = await readCut(c.text, { ...makeDataflow().csv, delimiter: c.delimiter, quote: c.quote, maxRecordBytes: limit }, next);

      // Assess: one record for each of Python's, either as Python reads it or too long (and surely too long when its
      // fields alone are over the limit); the header may be too long too.
      const bytes = (fields: string[]) => Buffer.byteLength(fields.join(c.delimiter));
      const [header, ...rows] = expected;
      const sameRecord = (record: CsvRecord, row: string[]) => (record.tooLong ? true : JSON.stringify(record.fields) === JSON.stringify(row) && bytes(row) <= limit);
      const ok =
        !read.error &&
        (JSON.stringify(read.header) === JSON.stringify(header) || JSON.stringify(read.header) === JSON.stringify([TOO_LONG_MARK])) &&
        read.records.length === rows.length &&
        read.records.every((record, k) => record.number === k + 1 && sameRecord(record, rows[k]!)) &&
        read.recordsSeen === rows.length;
      if (!ok) disagreements.push(`${JSON.stringify(c)}: Python reads ${JSON.stringify(expected)}; openCsv gives ${read.error?.message ?? JSON.stringify([read.header, ...read.records])} (guard: ${read.recordsSeen})`);
    }

    // Assess
    expect(disagreements.slice(0, 5)).toEqual([]);
  });
});
