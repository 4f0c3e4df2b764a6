import { parse } from 'csv-parse/sync';
import { putText, readJson, readText } from '../src/aws/s3';
import { StaticSecretsProvider } from '../src/aws/secrets';
import type { ChunkRef, StageSummary } from '../src/contracts';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from '../src/local/s3';
import { silentLog } from '../src/steps/deps';
import { stage } from '../src/steps/stage';
import { makeConfig, toCsv, validRow } from './support/factories';

let s3: LocalS3;
beforeAll(async () => {
  s3 = await startLocalS3();
});
afterAll(() => s3.close());

const deps = (buckets = LOCAL_BUCKETS) => ({ config: makeConfig(), s3: s3.client, buckets, secrets: new StaticSecretsProvider({}), log: silentLog, now: () => Date.UTC(2026, 10, 27) });
const event = (key: string, runId: string) => ({ input: { dataflow: 'weekly-events', bucket: LOCAL_BUCKETS.inbox, key }, runId, startedAt: new Date().toISOString() });

describe('Function: stage', () => {
  it('stages valid records in chunks of recordsPerWorker and rejected ones apart, with their numbers', async () => {
    // Prepare: 60 records, every tenth with a bad customer id; chunks of 25.
    const rows = Array.from({ length: 60 }, (_, i) => ({ ...validRow(i + 1), ...((i + 1) % 10 === 0 ? { member_id: 'x' } : {}) }));
    await putText(s3.client, LOCAL_BUCKETS.inbox, 'inbox/weekly-events/events_s1.csv', toCsv(rows));

    // Act
    const output = await stage(event('inbox/weekly-events/events_s1.csv', 'run-s1'), deps());

    // Assess
    expect(output).toMatchObject({ records: 60, valid: 54, rejected: 6, chunkCount: 3, maxConcurrency: 3 });
    const chunks = (await readJson<ChunkRef[]>(s3.client, LOCAL_BUCKETS.staging, output.chunksKey))!;
    expect(chunks.map((c) => [c.records, c.firstRecord])).toEqual([
      [25, 1], // records 1–27 less 10 and 20
      [25, 28], // 28–55 less 30, 40, 50
      [4, 56], // 56–59
    ]);
    const staged = (await readText(s3.client, LOCAL_BUCKETS.staging, chunks[2]!.key))!.split('\n').map((l) => JSON.parse(l) as { n: number });
    expect(staged.map((r) => r.n)).toEqual([56, 57, 58, 59]);
    const summary = (await readJson<StageSummary>(s3.client, LOCAL_BUCKETS.staging, output.summaryKey))!;
    expect(summary.rejectionsByCode).toEqual({ INVALID_CUSTOMER_ID: 6 });
    const rejects = await readText(s3.client, LOCAL_BUCKETS.staging, summary.rejectedPartKey!);
    const rejected: string[][] = parse(rejects!);
    expect(rejected.map((r) => r.slice(-4, -1))).toEqual([10, 20, 30, 40, 50, 60].map((n) => [String(n), 'validate', 'INVALID_CUSTOMER_ID']));
  });

  it('rejects a record repeating an earlier one as DUPLICATE_IN_FILE, naming it, even when the filter is often unsure', async () => {
    // Prepare: 3000 distinct records, then repeats of records 5 (twice), 1200 and 2999, the customer id padded in one.
    // The duplicate filter is capped at 1024 bits, so it is unsure about most records and holds them back.
    const rows = Array.from({ length: 3000 }, (_, i) => validRow(i + 1, 6_000_000));
    rows.push({ ...rows[4]!, note: 'again' }, { ...rows[1199]! }, { ...rows[4]!, member_id: ` ${rows[4]!.member_id} ` }, { ...rows[2998]!, note: 'later' });
    await putText(s3.client, LOCAL_BUCKETS.inbox, 'inbox/weekly-events/events_dup.csv', toCsv(rows));

    // Act
    const output = await stage(event('inbox/weekly-events/events_dup.csv', 'run-dup'), { ...deps(), duplicateFilterMaxBits: 1024 });

    // Assess: exactly the four repeats rejected, each naming its first record; every other record staged once.
    expect(output).toMatchObject({ records: 3004, valid: 3000, rejected: 4 });
    const summary = (await readJson<StageSummary>(s3.client, LOCAL_BUCKETS.staging, output.summaryKey))!;
    const rejected: string[][] = parse((await readText(s3.client, LOCAL_BUCKETS.staging, summary.rejectedPartKey!))!);
    expect(rejected.map((r) => [r.at(-4), r.at(-2), r.at(-1)]).sort()).toEqual(
      [
        ['3001', 'DUPLICATE_IN_FILE', 'The same customerId, badgeMetaId and earnEventDate as record 5: not sent twice'],
        ['3002', 'DUPLICATE_IN_FILE', 'The same customerId, badgeMetaId and earnEventDate as record 1200: not sent twice'],
        ['3003', 'DUPLICATE_IN_FILE', 'The same customerId, badgeMetaId and earnEventDate as record 5: not sent twice'],
        ['3004', 'DUPLICATE_IN_FILE', 'The same customerId, badgeMetaId and earnEventDate as record 2999: not sent twice'],
      ].sort(),
    );
    const chunks = (await readJson<ChunkRef[]>(s3.client, LOCAL_BUCKETS.staging, output.chunksKey))!;
    const staged: number[] = [];
    for (const chunk of chunks) staged.push(...(await readText(s3.client, LOCAL_BUCKETS.staging, chunk.key))!.split('\n').map((l) => (JSON.parse(l) as { n: number }).n));
    expect(staged.sort((a, b) => a - b)).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
    // The filter was unsure about many records: the held path was taken.
    expect(await readText(s3.client, LOCAL_BUCKETS.staging, 'runs/run-dup/held.jsonl')).toBeDefined();
  });

  it('leaves an object whose name does not match the pattern alone', async () => {
    // Prepare
    await putText(s3.client, LOCAL_BUCKETS.inbox, 'inbox/weekly-events/readme.txt', 'hello');

    // Act
    const output = await stage(event('inbox/weekly-events/readme.txt', 'run-s2'), deps());

    // Assess
    expect(output.skipped).toMatch(/does not match/);
    expect(output.chunkCount).toBe(0);
  });

  it('fails when a chunk cannot be staged, rather than report a chunk that is not there', async () => {
    // Prepare
    await putText(s3.client, LOCAL_BUCKETS.inbox, 'inbox/weekly-events/events_s3.csv', toCsv(Array.from({ length: 60 }, (_, i) => validRow(i + 1))));

    // Act
    const outcome = stage(event('inbox/weekly-events/events_s3.csv', 'run-s3'), deps({ ...LOCAL_BUCKETS, staging: 'no-such-bucket' }));

    // Assess
    await expect(outcome).rejects.toThrow(/bucket/i);
  });
});
