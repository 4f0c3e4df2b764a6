import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ASSUMPTIONS, estimate, planShape, transitionsOf } from '../src/ops/estimate';
import { PRICES } from '../src/ops/prices';
import { runCli } from './support/cli';
import { configDocument, makeDataflow } from './support/factories';

/** A dataflow at the schema's defaults for sending, but for the given destination keys. */
function dataflowWith(destination: Record<string, unknown> = {}, more: Record<string, unknown> = {}) {
  return makeDataflow({ destination: { baseUrl: 'https://eu.api.capillarytech.com', auth: { type: 'basic', usernameSecret: 'api/user', passwordSecret: 'api/password' }, ...destination }, ...more });
}

/** The state machine's timeout the tests assume: 24 hours. */
const timeout = { workflowTimeoutSeconds: 24 * 3600 };
const PGP = { decrypt: { privateKeySecret: 'pgp/key' } };

describe('Function: planShape', () => {
  it('cuts 1M records at batch 100 and 1000 records a worker into a range\'s chunks and requests each', () => {
    // Prepare: 90 MB of text in two ranges (and two key partitions of at most 750,000 records), the first of 48 MiB (whole 8 MiB blocks): 559,240 records (559 chunks and
    // one of 240: 5,593 requests), the second the rest, 440,760 (440 and one of 760: 4,408 requests).
    const dataflow = dataflowWith({ batchSize: 100, recordsPerWorker: 1000 });

    // Act
    const plan = planShape(dataflow, 1_000_000, 90_000_000);

    // Assess
    expect(plan).toMatchObject({ sequentialPass: undefined, scans: 2, ranges: 2, partitions: 2, chunks: 1001, apiRequests: 10_001, requestsPerChunk: 10 });
  });

  it('counts each range\'s partial last chunk and its partial last request', () => {
    // Prepare: 20 MiB in 2 ranges, the first of 16 MiB: 80,001 records (8 chunks and one of 1: 81 requests), the
    // second 20,000 (2 chunks, 20 requests).
    const dataflow = dataflowWith({ batchSize: 1000, recordsPerWorker: 10_000 });

    // Act
    const plan = planShape(dataflow, 100_001, 20 * 1024 ** 2);

    // Assess
    expect(plan).toMatchObject({ ranges: 2, chunks: 11, apiRequests: 101 });
  });

  it('plans a PGP file with a sequential pass and no scan phase', () => {
    // Act
    const plan = planShape(dataflowWith({}, PGP), 1_000_000, 60_000_000);

    // Assess: the plaintext (90 bytes a record) is what the ranges cut, not the smaller encrypted file.
    expect(plan).toMatchObject({ sequentialPass: 'pgp', scans: 0, textBytes: 90_000_000, ranges: 2 });
  });
});

describe('Function: transitionsOf', () => {
  it('counts the parent\'s states, one per inline Map iteration and two per Distributed Map child', () => {
    // Prepare: Stage, ForThisDataflow?, Staged?, Planned?, ScanRanges, PlanRanges, StageRanges, SettleDuplicates,
    // FinishStage, AnythingToSend?, SendChunks, Finalize, FileFailed?, Done = 14; a PGP file has no scan states (12).
    const plain = planShape(dataflowWith({ recordsPerWorker: 1000 }), 1_000_000, 90_000_000);
    const pgp = planShape(dataflowWith({ recordsPerWorker: 1000 }, PGP), 1_000_000, 90_000_000);

    // Act / Assess
    expect(transitionsOf(plain)).toBe(14 + 2 + 2 + 2 + 2 * 1001);
    expect(transitionsOf(pgp)).toBe(12 + 2 + 2 + 2 * 1001);
  });
});

describe('Function: estimate', () => {
  it('prices every count at the table\'s prices', () => {
    // Prepare
    const e = estimate({ dataflow: dataflowWith(), rows: 1_000_000, ...timeout });

    // Act
    const doubled = estimate({ dataflow: dataflowWith(), rows: 1_000_000, ...timeout, prices: { ...PRICES, stepFunctionsStandardPerTransition: 2 * PRICES.stepFunctionsStandardPerTransition } });

    // Assess
    expect(e.usd.stepFunctions).toBeCloseTo(e.transitions * 0.000025, 10);
    expect(e.usd.s3).toBeCloseTo(e.s3.putCopyPostList * 0.000005 + e.s3.getAndOther * 0.0000004, 10);
    expect(e.usd.dynamoDb).toBeCloseTo(e.dynamoDb.writeRequestUnits * 0.000000625 + e.dynamoDb.readRequestUnits * 0.000000125, 10);
    expect(doubled.usdPerFile - e.usdPerFile).toBeCloseTo(e.usd.stepFunctions, 10);
    expect(e.usdPerMillionRecords).toBeCloseTo(e.usdPerFile, 10);
  });

  it('takes the send budget\'s measured DynamoDB requests per API request and the mapped items\' JSON as the bytes sent', () => {
    // Act
    const e = estimate({ dataflow: dataflowWith({ batchSize: 1000 }), rows: 10_000, ...timeout });

    // Assess: 10 requests of `[item,item,…]`.
    const item = Buffer.byteLength(JSON.stringify(ASSUMPTIONS.requestItem));
    expect(e.dynamoDb).toEqual({ writeRequestUnits: 17, readRequestUnits: 10 });
    expect(e.apiBytes).toBe(10 * 2 + 10_000 * (item + 1));
  });

  it('takes one strongly consistent DynamoDB read per API request too: a worker checks its slot after the wait', () => {
    // Prepare: measured on dynalite (4 clients of one destination, 25 requests each, at the sandbox's limit): 100
    // GetItem (ConsistentRead: 1 read unit each) and 108 UpdateItem besides 4 PutItem.
    // Act
    const e = estimate({ dataflow: dataflowWith({ batchSize: 1000 }), rows: 10_000, ...timeout });

    // Assess
    expect(e.dynamoDb.readRequestUnits).toBe(10);
    expect(e.usd.dynamoDb).toBeCloseTo(17 * PRICES.dynamoDbPerWriteRequestUnit + 10 * PRICES.dynamoDbPerReadRequestUnit, 12);
  });

  it('costs at most $0.03 per million records with 1,000-item batches and 10,000 records a worker', () => {
    // Act
    const e = estimate({ dataflow: dataflowWith({ batchSize: 1000, recordsPerWorker: 10_000 }), rows: 1_000_000, ...timeout });

    // Assess
    expect(e.usdPerMillionRecords).toBeLessThanOrEqual(0.03);
  });

  it('warns when sending outlasts the state machine\'s timeout', () => {
    // Act: 50M records at 100 requests of 100 a minute: 5,000 minutes.
    const e = estimate({ dataflow: dataflowWith({ batchSize: 100, recordsPerWorker: 1000, maxRequestsPerMinute: 100 }), rows: 50_000_000, ...timeout });

    // Assess
    expect(e.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/over the state machine's timeout/), expect.stringMatching(/the API's rate, not staging/)]));
  });

  it('warns when the file has more records than csv.maxRecords takes', () => {
    // Act
    const e = estimate({ dataflow: dataflowWith({}, { csv: { maxRecords: 1000 } }), rows: 1001, ...timeout });

    // Assess
    expect(e.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/over csv.maxRecords \(1000\).*FILE_TOO_LARGE/)]));
  });

  it('warns when a Send worker cannot send its chunk within its Lambda timeout', () => {
    // Act: the configuration admits it (at its share of the rate, 1,000 requests take 0.6 s), but each request waits
    // for the API's answer (0.4 s for 100 items): 400 s a chunk.
    const e = estimate({ dataflow: dataflowWith({ batchSize: 100, recordsPerWorker: 100_000, maxConcurrency: 1, maxRequestsPerMinute: 100_000 }), rows: 1_000_000, ...timeout });

    // Assess
    expect(e.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/Send worker needs .* over its 300 s timeout/)]));
  });

  it('warns when a PGP file\'s sequential pass outlasts the stage Lambda', () => {
    // Act: 10 GiB of plaintext at 87 MB/s is about 118 s… 100 GiB is over 15 minutes.
    const e = estimate({ dataflow: dataflowWith({ batchSize: 1000 }, PGP), rows: 1_000_000_000, bytes: 100 * 1024 ** 3, ...timeout });

    // Assess
    expect(e.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/sequential pass \(pgp\).* over the stage Lambda's 900 s/)]));
  });

  it('warns when the chunk list outgrows the ItemReader', () => {
    // Act: 100,000 chunks of 10 records.
    const e = estimate({ dataflow: dataflowWith({ batchSize: 10, recordsPerWorker: 10, maxRequestsPerMinute: 100_000 }), rows: 1_000_000, ...timeout });

    // Assess
    expect(e.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/ItemReader/)]));
  });
});

describe('Function: badges-import estimate', () => {
  const work = mkdtempSync(join(tmpdir(), 'estimate-cli-'));
  const configFile = join(work, 'config.json');
  writeFileSync(configFile, JSON.stringify(configDocument()));

  it('prints a table per file and per million records, with the prices\' date', async () => {
    // Act
    const { code, stdout } = await runCli(['estimate', '--config', configFile, '--rows', '2000000']);

    // Assess
    expect(code).toBe(0);
    expect(stdout).toMatch(/per file\s+per 1M records/);
    expect(stdout).toMatch(/State transitions \(Standard\)/);
    expect(stdout).toContain(`read on ${PRICES.readOn}`);
  });

  it('prints one JSON object whose first field is usdPerMillionRecords with --json', async () => {
    // Act
    const { code, stdout } = await runCli(['estimate', '--config', configFile, '--rows', '1000', '--bytes', '100000', '--json']);

    // Assess
    const parsed = JSON.parse(stdout) as Record<string, unknown>;
    expect(code).toBe(0);
    expect(Object.keys(parsed)[0]).toBe('usdPerMillionRecords');
    expect(parsed).toMatchObject({ rows: 1000, bytes: 100_000, usdPerMillionRecords: expect.any(Number) });
  });

  it('refuses --bytes fewer than a plain file of --rows records can hold, saying what to give', async () => {
    // Act: 1,000 records need at least a character and a line end each (1,999 bytes with no final line end).
    const tooFew = await runCli(['estimate', '--config', configFile, '--rows', '1000', '--bytes', '10', '--json']);
    const fewest = await runCli(['estimate', '--config', configFile, '--rows', '1000', '--bytes', '1999', '--json']);
    const gzipped = await runCli(['estimate', '--config', configFile, '--rows', '1000', '--bytes', '10', '--gzip', '--json']);

    // Assess
    expect(tooFew).toMatchObject({ code: 2, stdout: '' });
    expect(tooFew.stderr).toContain('--bytes 10');
    expect(tooFew.stderr).toMatch(/1,?999 bytes/);
    expect(fewest.code).toBe(0);
    expect(gzipped.code).toBe(0);
  });

  it('refuses a --rows that is not a whole number, naming it', async () => {
    // Act
    const { code, stderr } = await runCli(['estimate', '--config', configFile, '--rows', 'many']);

    // Assess
    expect(code).toBe(2);
    expect(stderr).toContain('--rows many');
  });
});
