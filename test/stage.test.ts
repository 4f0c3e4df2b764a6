import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { buildStageWorker } from '../bench/stage-process';
import { putText, readJson, readText } from '../src/aws/s3';
import { StaticSecretsProvider } from '../src/aws/secrets';
import type { ChunkRef, StageSummary } from '../src/contracts';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from '../src/local/s3';
import { silentLog } from '../src/steps/deps';
import { stageFile } from '../src/steps/stage';
import { decodeStagedRecord } from '../src/core/staged-record';
import { KNOWN_BADGES, makeConfig, toCsv, validRow } from './support/factories';

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
    const output = await stageFile(event('inbox/weekly-events/events_s1.csv', 'run-s1'), deps());

    // Assess
    expect(output).toMatchObject({ records: 60, valid: 54, rejected: 6, chunkCount: 3, maxConcurrency: 3 });
    const chunks = (await readJson<ChunkRef[]>(s3.client, LOCAL_BUCKETS.staging, output.chunksKey))!;
    expect(chunks.map((c) => [c.records, c.firstRecord])).toEqual([
      [25, 1], // records 1–27 less 10 and 20
      [25, 28], // 28–55 less 30, 40, 50
      [4, 56], // 56–59
    ]);
    const staged = (await readText(s3.client, LOCAL_BUCKETS.staging, chunks[2]!.key))!.split('\n').map(decodeStagedRecord);
    expect(staged.map((r) => r.n)).toEqual([56, 57, 58, 59]);
    const summary = (await readJson<StageSummary>(s3.client, LOCAL_BUCKETS.staging, output.summaryKey))!;
    expect(summary.rejectionsByCode).toEqual({ INVALID_CUSTOMER_ID: 6 });
    const rejects = await readText(s3.client, LOCAL_BUCKETS.staging, summary.rejectedPartKeys![0]!);
    const rejected: string[][] = parse(rejects!);
    expect(rejected.map((r) => r.slice(-4, -1))).toEqual([10, 20, 30, 40, 50, 60].map((n) => [String(n), 'validate', 'INVALID_CUSTOMER_ID']));
  });

  it('rejects a record repeating an earlier one as DUPLICATE_IN_FILE, naming it, across ranges and partitions', async () => {
    // Prepare: 3000 distinct records, then repeats of records 5 (twice), 1200 and 2999, the customer id padded in one.
    // Ranges of 8 KiB and partitions of 500 records: the repeats are ranges away from their first records.
    const rows = Array.from({ length: 3000 }, (_, i) => validRow(i + 1, 6_000_000));
    rows.push({ ...rows[4]!, note: 'again' }, { ...rows[1199]! }, { ...rows[4]!, member_id: ` ${rows[4]!.member_id} ` }, { ...rows[2998]!, note: 'later' });
    await putText(s3.client, LOCAL_BUCKETS.inbox, 'inbox/weekly-events/events_dup.csv', toCsv(rows));

    // Act
    const output = await stageFile(event('inbox/weekly-events/events_dup.csv', 'run-dup'), { ...deps(), stagePlan: { rangeBytes: 8192, partitionRecords: 500 } });

    // Assess: exactly the four repeats rejected, each naming its first record; every other record staged once.
    expect(output).toMatchObject({ records: 3004, valid: 3000, rejected: 4 });
    const summary = (await readJson<StageSummary>(s3.client, LOCAL_BUCKETS.staging, output.summaryKey))!;
    expect(summary.rejectedPartKeys).toEqual(['runs/run-dup/rejects/duplicates.csv']);
    const rejected: string[][] = parse((await readText(s3.client, LOCAL_BUCKETS.staging, summary.rejectedPartKeys![0]!))!);
    expect(rejected.map((r) => [r.at(-4), r.at(-2), r.at(-1)])).toEqual(
      [
        ['3001', 'DUPLICATE_IN_FILE', 'The same customerId, badgeMetaId and earnEventDate as record 5: not sent twice'],
        ['3002', 'DUPLICATE_IN_FILE', 'The same customerId, badgeMetaId and earnEventDate as record 1200: not sent twice'],
        ['3003', 'DUPLICATE_IN_FILE', 'The same customerId, badgeMetaId and earnEventDate as record 5: not sent twice'],
        ['3004', 'DUPLICATE_IN_FILE', 'The same customerId, badgeMetaId and earnEventDate as record 2999: not sent twice'],
      ],
    );
    // Every record is staged once; the repeats are in their chunk's skip list, and its count excludes them.
    const chunks = (await readJson<ChunkRef[]>(s3.client, LOCAL_BUCKETS.staging, output.chunksKey))!;
    expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i));
    const sent: number[] = [];
    const skipped: number[] = [];
    for (const chunk of chunks) {
      const skip = chunk.skipKey ? (await readJson<number[]>(s3.client, LOCAL_BUCKETS.staging, chunk.skipKey))! : [];
      const numbers = (await readText(s3.client, LOCAL_BUCKETS.staging, chunk.key))!.split('\n').map((l) => decodeStagedRecord(l).n);
      expect(chunk.records).toBe(numbers.length - skip.length);
      skipped.push(...skip);
      sent.push(...numbers.filter((n) => !skip.includes(n)));
    }
    expect(sent).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
    expect(skipped).toEqual([3001, 3002, 3003, 3004]);
    // The file was staged over several ranges and partitions.
    const plan = (await readJson<{ ranges: unknown[]; partitions: number }>(s3.client, LOCAL_BUCKETS.staging, 'runs/run-dup/plan.json'))!;
    expect(plan.ranges.length).toBeGreaterThan(5);
    expect(plan.partitions).toBeGreaterThan(5);
  });

  it('leaves an object whose name does not match the pattern alone', async () => {
    // Prepare
    await putText(s3.client, LOCAL_BUCKETS.inbox, 'inbox/weekly-events/readme.txt', 'hello');

    // Act
    const output = await stageFile(event('inbox/weekly-events/readme.txt', 'run-s2'), deps());

    // Assess
    expect(output.skipped).toMatch(/does not match/);
    expect(output.chunkCount).toBe(0);
  });

  it('refuses a file of more records than csv.maxRecords as FILE_TOO_LARGE before any range is staged', async () => {
    // Prepare: 1,200 records against a limit of 1,000, cut into several ranges.
    await putText(s3.client, LOCAL_BUCKETS.inbox, 'inbox/weekly-events/events_big.csv', toCsv(Array.from({ length: 1200 }, (_, i) => validRow(i + 1))));
    const flowDeps = { ...deps(), config: makeConfig({ csv: { delimiter: ',', maxRecords: 1000 } }), stagePlan: { rangeBytes: 8192 } };

    // Act
    const outcome = stageFile(event('inbox/weekly-events/events_big.csv', 'run-big'), flowDeps);

    // Assess
    await expect(outcome).rejects.toMatchObject({ code: 'FILE_TOO_LARGE', message: expect.stringMatching(/more than 1000 records/) });
    const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: LOCAL_BUCKETS.staging, Prefix: 'runs/run-big/' }));
    expect((listed.Contents ?? []).map((o) => o.Key).filter((k) => /chunk|range/.test(k!))).toEqual([]);
  });

  it('refuses a replay of a header-only file that is not a rejected-records file, as REPLAY_FILE', async () => {
    // Prepare: a vendor's header and no record (no range worker runs to look at it).
    await putText(s3.client, LOCAL_BUCKETS.inbox, 'inbox/weekly-events/events_replay_empty.csv', 'member_id,badge_code,event_time,expiry_date,note\n');
    const replayEvent = { ...event('inbox/weekly-events/events_replay_empty.csv', 'run-replay-empty'), input: { ...event('inbox/weekly-events/events_replay_empty.csv', 'run-replay-empty').input, replay: true } };

    // Act
    const outcome = stageFile(replayEvent, deps());

    // Assess
    await expect(outcome).rejects.toMatchObject({ name: 'ReplayFileError' });
  });

  it('fails when a chunk cannot be staged, rather than report a chunk that is not there', async () => {
    // Prepare
    await putText(s3.client, LOCAL_BUCKETS.inbox, 'inbox/weekly-events/events_s3.csv', toCsv(Array.from({ length: 60 }, (_, i) => validRow(i + 1))));

    // Act
    const outcome = stageFile(event('inbox/weekly-events/events_s3.csv', 'run-s3'), deps({ ...LOCAL_BUCKETS, staging: 'no-such-bucket' }));

    // Assess
    await expect(outcome).rejects.toThrow(/bucket/i);
  });
});

describe('Function: stage, bundled, in a small heap', () => {
  it('rejects every repeat of a file repeated whole as DUPLICATE_IN_FILE without running out of heap', async () => {
    // Prepare: N distinct records, then the same N again: all N repeats are held. The stage runs bundled as the Lambda,
    // with the stack's flags scaled down (64 MB old space: every phase runs in this one process, two range workers at
    // once, each holding up to five chunks of 10,000 staged lines, the default recordsPerWorker; 48 MB ran out in CI once
    // the default grew from 1,000; the old Map of key strings ran out of a 32 MB old space at this size, and of the
    // stack's 142 MB near 500,000).
    const rows = 30_000;
    const csv = ['member_id,badge_code,event_time,expiry_date,channel'];
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 1; i <= rows; i++) csv.push(`${1_000_000 + i},${KNOWN_BADGES[i % 2]},2026-10-${String(1 + (i % 28)).padStart(2, '0')} 10:${String(i % 60).padStart(2, '0')}:00,2027-01-15,${pass}`);
    }
    await putText(s3.client, LOCAL_BUCKETS.inbox, 'inbox/weekly-events/events_repeated.csv', `${csv.join('\n')}\n`);
    const worker = buildStageWorker(mkdtempSync(join(tmpdir(), 'stage-heap-')), 'duplicates-worker');
    const configFile = join(__dirname, '..', 'examples', 'config.json');

    // Act: asynchronously, since the embedded S3 serving the worker runs in this process.
    const run = await new Promise<{ failed: boolean; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, ['--max-semi-space-size=16', '--max-old-space-size=64', worker, s3.endpoint, configFile, 'inbox/weekly-events/events_repeated.csv', 'run-heap'], { encoding: 'utf8' }, (error, stdout, stderr) =>
        resolve({ failed: error !== null, stdout, stderr }),
      ),
    );

    // Assess
    expect(run.stderr).not.toMatch(/heap out of memory/);
    expect(run.failed).toBe(false);
    const result = JSON.parse(run.stdout.trim().split('\n').pop()!) as { valid: number; rejected: number; rejectionsByCode: Record<string, number> };
    expect(result).toMatchObject({ valid: rows, rejected: rows, rejectionsByCode: { DUPLICATE_IN_FILE: rows } });
  });
});
