import { parse } from 'csv-parse/sync';
import { readJson, readText } from '../src/aws/s3';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { StaticSecretsProvider } from '../src/aws/secrets';
import type { ChunkRef, StageSummary } from '../src/contracts';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from '../src/local/s3';
import { silentLog } from '../src/steps/deps';
import { stageFile } from '../src/steps/stage';
import { decodeStagedRecord } from '../src/core/staged-record';
import { HEADER, makeConfig, toCsv, validRow } from './support/factories';

/**
 * Red team: every record ends in exactly one place, under the number a single pass gives it, whatever the cut. The
 * same file is staged with ranges of many sizes and its outcome compared with the one-range outcome.
 */
let s3: LocalS3;
beforeAll(async () => {
  s3 = await startLocalS3();
});
afterAll(() => s3.close());

const deps = (config = makeConfig(), rangeBytes?: number) => ({ config, s3: s3.client, buckets: LOCAL_BUCKETS, secrets: new StaticSecretsProvider({}), log: silentLog, now: () => Date.UTC(2026, 10, 27), ...(rangeBytes ? { stagePlan: { rangeBytes, partitionRecords: 3 } } : {}) });
let runs = 0;

/** Where every record went: number → "sent" | "rejected CODE message" | "filtered"; or the error. */
async function outcome(body: Buffer, config = makeConfig(), rangeBytes?: number, replay = false): Promise<Record<string, string> | string> {
  runs += 1;
  const key = `inbox/weekly-events/events_red${runs}.csv`;
  await s3.client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: body }));
  const runId = `run-red-${runs}`;
  let output;
  try {
    output = await stageFile({ input: { dataflow: 'weekly-events', bucket: LOCAL_BUCKETS.inbox, key, ...(replay ? { replay: true } : {}) }, runId, startedAt: new Date().toISOString() }, deps(config, rangeBytes));
  } catch (error) {
    if (process.env.RED_DEBUG) console.log(rangeBytes, (error as Error).stack);
    return `${(error as { code?: string }).code ?? (error as Error).name}`;
  }
  const places: Record<string, string> = {};
  const put = (n: string, what: string) => {
    places[n] = places[n] ? `${places[n]} AND ${what}` : what;
  };
  const chunks = (await readJson<ChunkRef[]>(s3.client, LOCAL_BUCKETS.staging, output.chunksKey)) ?? [];
  for (const chunk of chunks) {
    const skip = chunk.skipKey ? (await readJson<number[]>(s3.client, LOCAL_BUCKETS.staging, chunk.skipKey))! : [];
    const numbers = (await readText(s3.client, LOCAL_BUCKETS.staging, chunk.key))!.split('\n').map((l) => decodeStagedRecord(l).n);
    for (const n of numbers) if (!skip.includes(n)) put(String(n), 'sent');
  }
  const summary = (await readJson<StageSummary>(s3.client, LOCAL_BUCKETS.staging, output.summaryKey))!;
  for (const part of summary.rejectedPartKeys ?? []) {
    for (const r of (parse((await readText(s3.client, LOCAL_BUCKETS.staging, part))!, { relax_column_count: true }) satisfies string[][])) put(r.at(-4)!, `rejected ${r.at(-2)} ${r.at(-1)}`);
  }
  for (const part of summary.filtered?.partKeys ?? []) {
    for (const r of (parse((await readText(s3.client, LOCAL_BUCKETS.staging, part))!, { relax_column_count: true }) satisfies string[][])) put(r.at(-2)!, 'filtered');
  }
  places.records = String(output.records);
  return places;
}

/**
 * Range sizes each file is staged at, besides one range: a tiny cut (every few bytes a boundary, inside quotes, CRLFs
 * and multi-byte characters) and a middling one. RED_CUTS="1,2,3,4,5,7,11,16,29,64,97" runs the wider sweep the red
 * team ran (all held); CI keeps two, for its time.
 */
const CUTS = (process.env.RED_CUTS ?? '3,16').split(',').map(Number);

async function expectSameAtEveryCut(body: Buffer, config = makeConfig()): Promise<Record<string, string> | string> {
  const whole = await outcome(body, config);
  for (const rangeBytes of CUTS) expect({ rangeBytes, outcome: await outcome(body, config, rangeBytes) }).toEqual({ rangeBytes, outcome: whole });
  return whole;
}

/** A small file with what a cut can land in: quoted newlines, CRLF, doubled quotes, invalid records, repeats. */
function trickyRows(n = 12) {
  const rows = Array.from({ length: n }, (_, i) => validRow(i + 1));
  rows[2] = { ...rows[2]!, note: '"\r\n""\n\r' };
  rows[4] = { ...rows[4]!, member_id: 'x' };
  rows.push({ ...rows[1]!, note: 'again "q"\r\n' }, { ...rows[6]! }, rows[4]);
  return rows;
}

describe('Red team: stage at every cut', () => {
  it('places every record of a CRLF file with a BOM and quoted line ends as one range does', async () => {
    // Prepare
    const body = Buffer.from(toCsv(trickyRows(), { eol: '\r\n', bom: true }));

    // Act
    const whole = await expectSameAtEveryCut(body);

    // Assess
    expect(typeof whole).toBe('object');
    expect(Object.keys(whole as object).length).toBe(16);
  });

  it('places every record of a file without a final newline and with blank lines as one range does', async () => {
    // Prepare
    const text = toCsv(trickyRows(), { eol: '\n' }).replace(/\n(?=5000003)/, '\n\n\n').replace(/\n$/, '');

    // Act
    const whole = await expectSameAtEveryCut(Buffer.from(text));

    // Assess
    expect((whole as Record<string, string>).records).toBe('15');
  });

  it('places every record of a latin1 file as one range does', async () => {
    // Prepare
    const rows = trickyRows().map((r, i) => ({ ...r, note: `café ${i} "é"\r\n` }));
    const body = Buffer.from(toCsv(rows, { eol: '\r' }), 'latin1');

    // Act
    const whole = await expectSameAtEveryCut(body, makeConfig({ csv: { delimiter: ',', encoding: 'latin1' } }));

    // Assess
    expect((whole as Record<string, string>).records).toBe('15');
  });

  it('places every record of a utf-16le file with a BOM as one range does', async () => {
    // Prepare
    const rows = trickyRows().map((r, i) => ({ ...r, note: `café ${i} "€"\r\n` }));
    const body = Buffer.from(toCsv(rows, { eol: '\r\n', bom: true }), 'utf16le');

    // Act
    const whole = await expectSameAtEveryCut(body, makeConfig({ csv: { delimiter: ',', encoding: 'utf-16le' } }));

    // Assess
    expect((whole as Record<string, string>).records).toBe('15');
  });

  it('places a record over csv.maxRecordBytes spanning ranges as one range does', async () => {
    // Prepare
    const rows = trickyRows();
    rows[3] = { ...rows[3]!, note: `long "${'y\n'.repeat(700)}"` };
    const body = Buffer.from(toCsv(rows, { eol: '\r\n' }));
    const config = makeConfig({ csv: { delimiter: ',', maxRecordBytes: 1024 } });

    // Act
    const whole = (await outcome(body, config)) as Record<string, string>;
    for (const rangeBytes of [7, 64, 300, 1000]) expect({ rangeBytes, outcome: await outcome(body, config, rangeBytes) }).toEqual({ rangeBytes, outcome: whole });

    // Assess
    expect(whole['4']).toMatch(/RECORD_TOO_LONG/);
  });

  it('places every record as one range does with a filter', async () => {
    // Prepare
    const rows = trickyRows().map((r, i) => ({ ...r, status: i % 3 === 0 ? 'unpaid' : 'paid' }));
    const text = toCsv(rows, { header: [...HEADER, 'status'] });
    const config = makeConfig({ filter: { expression: 'status == "paid"' } });

    // Act
    const whole = await expectSameAtEveryCut(Buffer.from(text), config);

    // Assess
    expect(Object.values(whole as object)).toContain('filtered');
  });

  it('fails a header-only file and an empty file the same at every cut', async () => {
    // Prepare / Act / Assess
    const headerOnly = await expectSameAtEveryCut(Buffer.from(`${HEADER.join(',')}\r\n`));
    expect(headerOnly).toEqual({ records: '0' });
    const empty = await outcome(Buffer.alloc(0));
    expect(empty).toBe('EMPTY_FILE');
    expect(await outcome(Buffer.from('\uFEFF'), makeConfig(), 3)).toBe(empty);
    expect(await outcome(Buffer.from('\r\n\r\n'), makeConfig(), 3)).toBe(await outcome(Buffer.from('\r\n\r\n')));
  });

  it('fails a file malformed in its last range the same at every cut', async () => {
    // Prepare
    const text = `${toCsv(trickyRows())}5000099,"a"b,c,d,e\n`;

    // Act / Assess
    const whole = await expectSameAtEveryCut(Buffer.from(text));
    expect(typeof whole).toBe('string');
    const badUtf8 = Buffer.concat([Buffer.from(toCsv(trickyRows())), Buffer.from([0x35, 0xff, 0x2c, 0x0a])]);
    expect(typeof (await expectSameAtEveryCut(badUtf8))).toBe('string');
  });
});

describe('Red team: the content claim', () => {
  it('never takes a file of one hash block for a different file over one block (the tree digest is that file\'s SHA-256)', async () => {
    // Prepare: a plain file of two hash blocks; then a small latin1 file whose bytes are its two block digests.
    const { createHash } = await import('node:crypto');
    const config = makeConfig({ csv: { delimiter: ',', encoding: 'latin1' } });
    const block = 8 * 1024 * 1024;
    const line = `${HEADER.join(',')}\n`;
    let big = Buffer.alloc(0);
    let small = Buffer.alloc(0);
    for (let salt = 0; ; salt++) {
      big = Buffer.alloc(block + 100, '\n');
      big.write(line);
      big.write(`salt${salt}`, block + 10);
      small = Buffer.concat([createHash('sha256').update(big.subarray(0, block)).digest(), createHash('sha256').update(big.subarray(block)).digest()]);
      if (![0x0a, 0x0d, 0x22].some((b) => small.includes(b))) break;
    }
    await s3.client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: 'inbox/weekly-events/events_small.csv', Body: small }));
    await s3.client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: 'inbox/weekly-events/events_big.csv', Body: big }));
    const run = (key: string, runId: string) => stageFile({ input: { dataflow: 'weekly-events', bucket: LOCAL_BUCKETS.inbox, key }, runId, startedAt: new Date().toISOString() }, deps(config));

    // Act: the small file first, then the big one.
    const first = await run('inbox/weekly-events/events_small.csv', 'run-red-small');
    const second = await run('inbox/weekly-events/events_big.csv', 'run-red-big');

    // Assess: different content, so the big file is its own and is staged to be sent.
    expect(first.duplicateOf).toBeUndefined();
    expect(second.duplicateOf).toBeUndefined();
  });
});

describe('Red team: a replay file at every cut', () => {
  it('sends one of two records of one key out of number order, rejects the other naming it, and never sends a replayed repeat', async () => {
    // Prepare: a replay file whose _row numbers are not in file order (rejects, then repeats, then API rejects).
    const rows = [validRow(10), validRow(4), { ...validRow(10), note: 'again' }, validRow(8), validRow(12)];
    const tail = [['10', 'api', 'AMBIGUOUS', 'unknown'], ['4', 'validate', 'INVALID_CUSTOMER_ID', 'x'], ['3', 'api', 'HTTP_500', 'y'], ['8', 'validate', 'DUPLICATE_IN_FILE', 'The same customerId, badgeMetaId and earnEventDate as record 2: not sent twice'], ['12', 'api', 'HTTP_500', 'z']];
    // (the quoted notes hold newlines: the CSV is rebuilt record by record)
    const body = Buffer.from(`${[HEADER.join(','), '_row,_stage,_error_code,_error_message'].join(',')}\n${rows.map((r, i) => `${toCsv([r]).split('\n').slice(1).join('\n').replace(/\n$/, '')},${tail[i]!.map((v) => `"${v}"`).join(',')}`).join('\n')}\n`);

    // Act
    const whole = (await outcome(body, makeConfig(), undefined, true)) as Record<string, string>;
    for (const rangeBytes of [3, 16, 97]) expect({ rangeBytes, outcome: await outcome(body, makeConfig(), rangeBytes, true) }).toEqual({ rangeBytes, outcome: whole });

    // Assess
    expect(whole.records).toBe('5');
    expect([whole['10'], whole['3']].filter((w) => w === 'sent')).toHaveLength(1);
    expect(whole['8']).toMatch(/DUPLICATE_IN_FILE/);
    expect(whole['4']).toBe('sent');
  });
});
