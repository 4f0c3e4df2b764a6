import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Dataflow } from '../src/config/schema';
import { type CsvRecord, openCsv } from '../src/core/csv';
import { BoundaryScanner, ENTRY_STATES, HASH_BLOCK_BYTES, type RangePlan, type RangeScan, SequentialScanner, contentDigest, planRanges } from '../src/core/ranges';
import { EmptyFileError, MalformedCsvError } from '../src/errors';
import { makeDataflow } from './support/factories';
import { seeded } from '../src/api/sandbox';

type Csv = Dataflow['csv'];

/** What a reading gives: the header, every record with its number, or the error's class and message. */
interface Reading {
  header?: string[];
  records: Array<Pick<CsvRecord, 'number' | 'fields'> & { tooLong?: boolean }>;
  error?: string;
}

function describeError(error: unknown): string {
  return `${(error as Error).constructor.name}: ${(error as Error).message}`;
}

async function drain(file: Awaited<ReturnType<typeof openCsv>>, into: Reading['records']): Promise<number> {
  let count = 0;
  for await (const record of file.records) {
    into.push(record.tooLong ? { number: record.number, fields: [], tooLong: true } : { number: record.number, fields: record.fields });
    count += 1;
  }
  if (file.recordsSeen() !== count) throw new Error(`guard ${file.recordsSeen()} != parser ${count}`);
  return count;
}

/** The whole file read in one pass, as the stage reads it today. */
async function readWhole(bytes: Buffer, csv: Csv): Promise<Reading> {
  const reading: Reading = { records: [] };
  try {
    const file = await openCsv(Readable.from([bytes]), csv);
    reading.header = file.header;
    await drain(file, reading.records);
  } catch (error) {
    return { records: [], error: describeError(error) };
  }
  return reading;
}

/** Scans `bytes` cut at `cuts` (each piece written in two chunks: scanners see chunk boundaries too), speculatively. */
function scanPieces(bytes: Buffer, cuts: readonly number[], csv: Csv, split = 0.5): RangeScan[] {
  const ends = [...cuts, bytes.length];
  return ends.map((end, i) => {
    const start = i === 0 ? 0 : ends[i - 1]!;
    const scanner = new BoundaryScanner(csv, { atFileStart: i === 0, offset: start });
    const middle = start + Math.floor((end - start) * split);
    scanner.write(bytes.subarray(start, middle));
    scanner.write(bytes.subarray(middle, end));
    return scanner.end(i === ends.length - 1);
  });
}

type RangeReading = { records: Reading['records'] } | { error: string };

/** The file read as parallel staging reads it: scans, a plan, the header, then each planned range on its own. */
async function readInRanges(bytes: Buffer, scans: RangeScan[], csv: Csv, cache = new Map<string, RangeReading>()): Promise<Reading & { plan?: RangePlan }> {
  const reading: Reading & { plan?: RangePlan } = { records: [] };
  try {
    const plan = planRanges(scans);
    reading.plan = plan;
    checkCuts(bytes, plan);
    const head = await openCsv(Readable.from([bytes.subarray(0, plan.headerEnd)]), csv);
    reading.header = head.header;
    if ((await drain(head, [])) !== 0) throw new Error('the header range holds records');
    for (const range of plan.ranges) {
      // Many cuts give the same planned range: it is read once.
      const key = JSON.stringify([range.start, range.end, range.firstRecord, range.firstLine]);
      let read = cache.get(key);
      if (!read) {
        const records: Reading['records'] = [];
        try {
          // In two chunks, so that the guard and the decoder meet a chunk boundary inside the range too.
          const middle = range.start + Math.floor((range.end - range.start) / 3);
          const file = await openCsv(Readable.from([bytes.subarray(range.start, middle), bytes.subarray(middle, range.end)]), csv, {
            header: head.header,
            firstRecord: range.firstRecord,
            firstLine: range.firstLine,
            offset: range.start,
            atFileStart: range.start === 0,
          });
          const count = await drain(file, records);
          read = count === range.records ? { records } : { error: `range ${range.index}: planned ${range.records} records, read ${count}` };
        } catch (error) {
          read = { error: describeError(error) };
        }
        cache.set(key, read);
      }
      if ('error' in read) throw new Error(read.error);
      reading.records.push(...read.records);
    }
    if (reading.records.length !== plan.records) throw new Error(`planned ${plan.records} records, read ${reading.records.length}`);
  } catch (error) {
    return { records: [], error: describeError(error) };
  }
  return reading;
}

/**
 * What a plan promises besides the records: consecutive ranges after the header, none starting inside a `\r\n`, and
 * each one's firstLine the line its first byte is on.
 */
function checkCuts(bytes: Buffer, plan: RangePlan): void {
  let expected = plan.headerEnd;
  for (const range of plan.ranges) {
    if (range.start !== expected || range.end <= range.start) throw new Error(`range ${range.index} is [${range.start}, ${range.end}), expected to start at ${expected}`);
    if (bytes[range.start] === 0x0a && bytes[range.start - 1] === 0x0d) throw new Error(`range ${range.index} starts inside a \\r\\n`);
    const before = bytes.subarray(0, range.start).toString('latin1');
    const line = 1 + before.split(/\r\n|\r|\n/).length - 1;
    if (range.firstLine !== line) throw new Error(`range ${range.index} starts on line ${line}, planned ${range.firstLine}`);
    expected = range.end;
  }
}


/**
 * CSV-like texts: well-formed records (quoted fields holding delimiters, every line end and doubled quotes; quotes
 * after a field's first character; blank lines; multi-byte characters; long fields), now and then broken (cut short,
 * a character inserted), or just random characters; a BOM now and then.
 */
function texts(count: number, seed: number, csv: Pick<Csv, 'delimiter' | 'quote'>): string[] {
  const next = seeded(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const { delimiter, quote } = csv;
  const alphabet = ['a', 'b', 'a', 'b', delimiter, quote, '\r', '\n', ' ', 'é', '€', '😀'];
  const char = () => pick(alphabet);
  return Array.from({ length: count }, () => {
    let text: string;
    if (next() < 0.25) {
      text = Array.from({ length: Math.floor(next() * 30) }, char).join('');
    } else {
      const field = () => {
        const body = next() < 0.05 ? 'x'.repeat(40) : Array.from({ length: Math.floor(next() * 5) }, char).join('');
        if (next() < 0.45) return `${quote}${body.split(quote).join(quote + quote)}${quote}`;
        const plain = body.split(delimiter).join('').replace(/[\r\n]/g, '');
        return plain.startsWith(quote) ? `a${plain}` : plain;
      };
      const ends = ['\n', '\r\n', '\r', '\n\n', '\r\r\n', '\r\n\r\n'];
      const records = Array.from({ length: 1 + Math.floor(next() * 5) }, () => Array.from({ length: 1 + Math.floor(next() * 3) }, field).join(delimiter));
      text = records.map((r) => r + (next() < 0.1 ? '' : pick(ends))).join(next() < 0.1 ? '\n' : '');
      if (next() < 0.1) text = text.slice(0, Math.floor(next() * text.length));
      if (next() < 0.15) {
        const at = Math.floor(next() * (text.length + 1));
        text = text.slice(0, at) + char() + text.slice(at);
      }
    }
    return (next() < 0.08 ? '\uFEFF' : '') + text;
  });
}

/**
 * Every single cut, and a few random sets of several cuts; the first range holds the file's first 3 bytes when they
 * may be a BOM (the scanner refuses less: any real range is megabytes).
 */
function cutSets(bytes: Buffer, next: () => number): number[][] {
  const length = bytes.length;
  const from = bytes[0] === 0xef ? 3 : 1;
  const sets: number[][] = [];
  for (let c = from; c < length; c++) sets.push([c]);
  for (let k = 0; k < 6 && length > from; k++) {
    const cuts = new Set<number>();
    const n = 2 + Math.floor(next() * 4);
    for (let i = 0; i < n; i++) cuts.add(from + Math.floor(next() * (length - from)));
    sets.push([...cuts].sort((a, b) => a - b));
  }
  return sets;
}

async function checkEveryCut(cases: string[], csv: Csv, seed: number): Promise<string[]> {
  const next = seeded(seed);
  const disagreements: string[] = [];
  for (const text of cases) {
    const bytes = Buffer.from(text, csv.encoding === 'latin1' ? 'latin1' : 'utf8');
    const whole = await readWhole(bytes, csv);
    const cache = new Map<string, RangeReading>();
    for (const cuts of cutSets(bytes, next)) {
      const parts = await readInRanges(bytes, scanPieces(bytes, cuts, csv, next()), csv, cache);
      delete parts.plan;
      if (JSON.stringify(parts) !== JSON.stringify(whole)) {
        disagreements.push(`${JSON.stringify(text)} cut at ${JSON.stringify(cuts)}:\n  whole  ${JSON.stringify(whole)}\n  ranges ${JSON.stringify(parts)}`);
        break;
      }
    }
    if (disagreements.length >= 5) break;
  }
  return disagreements;
}

describe('Function: planRanges, against openCsv reading the whole file', () => {
  it('gives the same records, numbers and errors as one pass, for every cut of many texts (utf-8, "," and \'"\')', async () => {
    // Prepare
    const csv = makeDataflow().csv;
    const cases = texts(300, 13, csv);

    // Act
    const disagreements = await checkEveryCut(cases, csv, 1);

    // Assess
    expect(disagreements).toEqual([]);
  });

  it("gives the same for \";\" and \"'\", and a csv.maxRecordBytes that some records exceed", async () => {
    // Prepare
    const csv = { ...makeDataflow().csv, delimiter: ';', quote: "'", maxRecordBytes: 12 };
    const cases = texts(150, 14, csv);

    // Act
    const disagreements = await checkEveryCut(cases, csv, 2);

    // Assess
    expect(disagreements).toEqual([]);
  });

  it('gives the same for latin1, where a UTF-8 BOM is text', async () => {
    // Prepare: characters of latin1 only.
    const csv = { ...makeDataflow().csv, encoding: 'latin1' as const };
    const cases = texts(120, 15, csv).map((t) => t.replace(/[€😀]/gu, 'ü').replace(/^\uFEFF/u, '\u00ef\u00bb\u00bf'));

    // Act
    const disagreements = await checkEveryCut(cases, csv, 3);

    // Assess
    expect(disagreements).toEqual([]);
  });
});

describe('Function: SequentialScanner, against parallel scans', () => {
  it('gives the same plan (or the same error) as speculative scans of the same nominal ranges, for many texts', () => {
    // Prepare
    const csv = makeDataflow().csv;
    const disagreements: string[] = [];

    // Act
    for (const text of texts(400, 16, csv)) {
      const bytes = Buffer.from(text);
      for (const rangeBytes of [3, 4, 5, 7, 11]) {
        const sequential = new SequentialScanner(csv, { rangeBytes });
        for (let at = 0; at < bytes.length; at += 2) sequential.write(bytes.subarray(at, at + 2));
        const cuts = Array.from({ length: Math.max(0, Math.ceil(bytes.length / rangeBytes) - 1) }, (_, i) => (i + 1) * rangeBytes);
        const one = attempt(() => planRanges(sequential.end(), { rangeBytes }));
        const many = attempt(() => planRanges(scanPieces(bytes, cuts, csv), { rangeBytes }));
        if (JSON.stringify(one) !== JSON.stringify(many)) disagreements.push(`${JSON.stringify(text)} by ${rangeBytes}: ${JSON.stringify(one)} vs ${JSON.stringify(many)}`);
      }
    }

    // Assess
    expect(disagreements.slice(0, 5)).toEqual([]);
  });
});

function attempt<T>(run: () => T): T | string {
  try {
    return run();
  } catch (error) {
    return describeError(error);
  }
}

describe('Function: planRanges', () => {
  const csv = makeDataflow().csv;
  const read = async (text: string, cuts: number[]) => {
    const bytes = Buffer.from(text);
    return readInRanges(bytes, scanPieces(bytes, cuts, csv), csv);
  };

  it('cuts a range that starts inside a quoted field after the record that holds it, numbered exactly', async () => {
    // Prepare: the cut falls inside the quoted field of record 2, just after its quoted newline.
    const text = 'id,note\n1,plain\n2,"multi\n1,looks like a record\n"\n3,after\n';
    const cut = text.indexOf('1,looks');

    // Act
    const parts = await read(text, [cut]);

    // Assess
    expect(parts.plan!.ranges.map((r) => [r.start, r.firstRecord, r.firstLine])).toEqual([
      [8, 1, 2],
      [text.indexOf('3,after'), 3, 6],
    ]);
    expect(parts.records).toEqual([
      { number: 1, fields: ['1', 'plain'] },
      { number: 2, fields: ['2', 'multi\n1,looks like a record\n'] },
      { number: 3, fields: ['3', 'after'] },
    ]);
  });

  it('keeps a \r\n split across a cut as one line end, and starts the next range after its \n', async () => {
    // Prepare: the cut falls between the \r and the \n that end record 1.
    const good = 'h\r\n1\r\n2\r\n"x\r\ny""z"\r\n';
    const bad = 'h\r\n1\r\n2\r\n"x\r\ny"z\r\n';
    const cut = good.indexOf('\n2');

    // Act
    const parts = await read(good, [cut]);
    const refused = await read(bad, [cut]);

    // Assess: range 1 starts at "2", on line 3; the malformed record closes its quote on line 5.
    expect(parts.plan!.ranges.map((r) => [r.start, r.firstRecord, r.firstLine])).toEqual([
      [3, 1, 2],
      [cut + 1, 2, 3],
    ]);
    expect(parts.records.map((r) => r.fields[0])).toEqual(['1', '2', 'x\r\ny"z']);
    expect(refused.error).toMatch(/^MalformedCsvError: .*at line 5: a quoted field is closed by a quote followed by "z"/);
  });

  it('makes one range of a record that spans three scans, and joins the scans where no record ends', async () => {
    // Prepare: record 2's quoted field spans scans 1 to 4.
    const text = `h\n1\n2,"${'a\n'.repeat(10)}",b\n3\n`;
    const cuts = [4, 10, 15, 30];

    // Act
    const parts = await read(text, cuts);

    // Assess
    expect(parts.plan!.ranges.map((r) => [r.start, r.end, r.firstRecord, r.records])).toEqual([
      [2, 4, 1, 1],
      [4, text.indexOf('3'), 2, 1],
      [text.indexOf('3'), text.length, 3, 1],
    ]);
    expect(parts.records.map((r) => r.number)).toEqual([1, 2, 3]);
  });

  it('fails the file when its last range leaves a quote open, naming the line where it opens', async () => {
    // Prepare
    const text = 'h\n1\n2\n3,"never closed\n4\n5\n';
    const last = text.indexOf('3,');

    // Act: the plan; and a range worker given the last range (as if a plan had missed it).
    const parts = await read(text, [4, 8, 14]);
    const range = await openCsv(Readable.from([Buffer.from(text).subarray(last)]), csv, { header: ['h'], firstRecord: 3, firstLine: 4, offset: last, atFileStart: false });

    // Assess
    expect(parts.error).toBe('MalformedCsvError: The file is not well-formed CSV at line 4: the quoted field that starts there is never closed (a quote inside a quoted field must be doubled); nothing was sent');
    await expect(drain(range, [])).rejects.toThrow(/at line 4: the quoted field that starts there is never closed/);
  });

  it('fails the file on "x"y in any range, naming the line', async () => {
    // Prepare
    const text = 'h\n1\n2\n"x"y\n4\n';

    // Act + Assess: wherever the cuts are.
    for (const cut of [1, 5, 6, 7, 8, 9, 10]) {
      expect(() => planRanges(scanPieces(Buffer.from(text), [cut], csv))).toThrow(MalformedCsvError);
      expect(() => planRanges(scanPieces(Buffer.from(text), [cut], csv))).toThrow(/at line 4: a quoted field is closed by a quote followed by "y"/);
    }
  });

  it('refuses a file with no header, and plans no range for a file that is only a header', async () => {
    // Act + Assess
    expect(() => planRanges(scanPieces(Buffer.from('\r\n\n'), [1], csv))).toThrow(EmptyFileError);
    expect(() => planRanges([])).toThrow(EmptyFileError);
    expect(planRanges(scanPieces(Buffer.from('\uFEFFa,b\n\n'), [4], csv))).toEqual({ headerEnd: 7, ranges: [], records: 0, bytes: 8 });
  });

  it('reads a BOM at the file start as no text, so a quote after it opens a field', async () => {
    // Prepare: with the BOM read as text, the quote would be literal and `"h` would end at the first line end.
    const text = '\uFEFF"h\n",x\n1,2\n';

    // Act
    const parts = await read(text, [3]);

    // Assess
    expect(parts.header).toEqual(['h\n', 'x']);
    expect(parts.records).toEqual([{ number: 1, fields: ['1', '2'] }]);
  });

  it('cuts at the nominal ranges of target.rangeBytes only', async () => {
    // Prepare
    const text = 'h\n1\n2\n3\n4\n5\n6\n7\n';

    // Act
    const plan = planRanges(scanPieces(Buffer.from(text), [2, 4, 6, 8, 10, 12, 14], csv), { rangeBytes: 8 });

    // Assess
    expect(plan.ranges.map((r) => [r.start, r.end, r.firstRecord])).toEqual([
      [2, 8, 1],
      [8, 16, 4],
    ]);
  });

  it('refuses scans that are not the consecutive ranges of one file', () => {
    // Prepare
    const scans = scanPieces(Buffer.from('h\n1\n2\n'), [2, 4], csv);

    // Act + Assess
    expect(() => planRanges([scans[0]!, scans[2]!])).toThrow(/must be the file's consecutive ranges/);
    expect(() => planRanges(scans.slice(0, 2))).toThrow(/does not end at the file end/);
  });
});

describe('Function: BoundaryScanner', () => {
  const csv = makeDataflow().csv;

  it('follows every entry state at once, and says where each leaves the guard', () => {
    // Prepare: from inside a quoted field, `"` closes it and `,` follows; after a closing quote, `a` is malformed.
    const scanner = new BoundaryScanner(csv, { atFileStart: false, offset: 100 });

    // Act
    scanner.write(Buffer.from('a",b\n"x'));
    const scan = scanner.end(false);

    // Assess
    expect(Object.keys(scan.byEntry).sort()).toEqual([...ENTRY_STATES].sort());
    expect(scan.byEntry.unquoted).toMatchObject({ exit: 'quoted', records: 1, firstRecordEnd: 105, openQuoteLineEnds: 1 });
    expect(scan.byEntry.quoted).toMatchObject({ exit: 'quoted', records: 1, firstRecordEnd: 105 });
    expect(scan.byEntry.afterQuote).toMatchObject({ exit: 'error', error: { at: 100, lineEnds: 0 } });
    expect(scan.lineEnds).toBe(1);
  });

  it('hashes aligned blocks so that the digest is the same in one pass or in ranges, and plain SHA-256 for one block', () => {
    // Prepare: 10 blocks of 64 bytes and a bit.
    const bytes = Buffer.from(Array.from({ length: 70 }, (_, i) => `${i},"v${i}\n"\r\n`).join(''));
    const blockBytes = 64;
    const sequential = new SequentialScanner(csv, { rangeBytes: 128, hash: true, blockBytes });
    for (let at = 0; at < bytes.length; at += 100) sequential.write(bytes.subarray(at, at + 100));
    const parallel = [0, 256, 512].map((start, i, all) => {
      const scanner = new BoundaryScanner(csv, { atFileStart: i === 0, offset: start, hash: true, blockBytes });
      scanner.write(bytes.subarray(start, all[i + 1] ?? bytes.length));
      return scanner.end(i === all.length - 1);
    });

    // Act
    const one = contentDigest(sequential.end().flatMap((s) => s.blockDigests!));
    const many = contentDigest(parallel.flatMap((s) => s.blockDigests!));
    const small = new BoundaryScanner(csv, { atFileStart: true, offset: 0, hash: true });
    small.write(bytes);

    // Assess
    expect(one).toBe(many);
    expect(one).not.toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(contentDigest(small.end(true).blockDigests!)).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(contentDigest([])).toBe(createHash('sha256').digest('hex'));
    expect(HASH_BLOCK_BYTES).toBe(8 * 1024 * 1024);
  });

  it('gives the same plan in one sequential pass as in speculative parallel scans', () => {
    // Prepare
    const bytes = Buffer.from(Array.from({ length: 50 }, (_, i) => `${i},"a\r\nb",c""d\r\n`).join(''));
    const sequential = new SequentialScanner(csv, { rangeBytes: 37 });
    for (let at = 0; at < bytes.length; at += 11) sequential.write(bytes.subarray(at, at + 11));
    const cuts = Array.from({ length: Math.floor((bytes.length - 1) / 37) }, (_, i) => (i + 1) * 37);

    // Act
    const one = planRanges(sequential.end());
    const many = planRanges(scanPieces(bytes, cuts, csv));

    // Assess
    expect(one).toEqual(many);
    expect(one.records).toBe(49);
    expect(one.ranges.length).toBeGreaterThan(5);
  });

  it('refuses to hash a range that does not start at a block boundary', () => {
    expect(() => new BoundaryScanner(csv, { atFileStart: false, offset: 10, hash: true, blockBytes: 64 })).toThrow(/multiple of 64/);
  });
});
