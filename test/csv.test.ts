import { Readable } from 'node:stream';
import { parse } from 'csv-parse/sync';
import { type CsvRecord, openCsv, rejectHeaderLine, rejectLine } from '../src/core/csv';
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
