import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { buildStageWorker } from '../bench/stage-process';
import { putText, readJson, readText } from '../src/aws/s3';
import { StaticSecretsProvider } from '../src/aws/secrets';
import type { ChunkRef, StageSummary } from '../src/contracts';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from '../src/local/s3';
import { silentLog } from '../src/steps/deps';
import { stage } from '../src/steps/stage';
import { HeldKeys, KEY_BYTES, SeenFilter, packKey } from '../src/core/duplicates';
import type { ApiItem } from '../src/core/mapping';
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
    const output = await stage(event('inbox/weekly-events/events_s1.csv', 'run-s1'), deps());

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
    for (const chunk of chunks) staged.push(...(await readText(s3.client, LOCAL_BUCKETS.staging, chunk.key))!.split('\n').map((l) => decodeStagedRecord(l).n));
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

describe('Function: stage, bundled, in a small heap', () => {
  it('rejects every repeat of a file repeated whole as DUPLICATE_IN_FILE without running out of heap', async () => {
    // Prepare: N distinct records, then the same N again: all N repeats are held. The stage runs bundled as the Lambda,
    // with the stack's flags scaled down (the old Map of key strings ran out of a 32 MB old space at this size, and of the stack's 142 MB near 500,000).
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
      execFile(process.execPath, ['--max-semi-space-size=16', '--max-old-space-size=32', worker, s3.endpoint, configFile, 'inbox/weekly-events/events_repeated.csv', 'run-heap'], { encoding: 'utf8' }, (error, stdout, stderr) =>
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

describe('Class: HeldKeys', () => {
  const itemOf = (customerId: number, badge: string, earnEventDate: number): ApiItem => ({
    customerId,
    badgeMetaId: badge,
    earnEventDate,
    earnExpiresOn: earnEventDate + 1,
    earnEventDateISO: '',
    earnExpiresOnISO: '',
  });
  const packed = (item: ApiItem) => {
    const key = Buffer.alloc(KEY_BYTES);
    packKey(item, key);
    return key;
  };

  it('settles each held record against the record sent as new with its key, or the first held one', () => {
    // Prepare: records 1 and 2 went out as new; 3 repeats 1, 4 is new (the filter was wrong), 5 repeats 4, 6 repeats
    // 1 with the badge id in upper case, 7 differs from 1 by its event time only.
    const a = itemOf(11, KNOWN_BADGES[0], 1_700_000_000_000);
    const b = itemOf(12, KNOWN_BADGES[1], 1_700_000_000_000);
    const held = new HeldKeys();
    held.add(packed(a), 3);
    held.add(packed(b), 4);
    held.add(packed(b), 5);
    held.add(packed({ ...a, badgeMetaId: a.badgeMetaId.toUpperCase() }), 6);
    held.add(packed({ ...a, earnEventDate: a.earnEventDate + 1 }), 7);

    // Act
    const settlement = held.settle();
    settlement.markSent(packed(a), 1);
    settlement.markSent(packed(itemOf(13, KNOWN_BADGES[0], 1)), 2);

    // Assess: entries in held order (3, 4, 5, 6, 7).
    expect([0, 1, 2, 3, 4].map((e) => settlement.duplicateOf(e))).toEqual([1, 0, 4, 1, 0]);
  });

  it('keeps apart two different keys that share a fingerprint', () => {
    // Prepare: two keys with the same 32-bit fingerprint (found once by a birthday search over customer ids).
    const [x, y] = [1_776_506, 2_100_333].map((id) => itemOf(id, KNOWN_BADGES[0], 1_700_000_000_000)) as [ApiItem, ApiItem];
    expect(SeenFilter.fingerprintOf(packed(x))).toBe(SeenFilter.fingerprintOf(packed(y)));
    const held = new HeldKeys();
    held.add(packed(y), 2);
    held.add(packed(x), 3);
    held.add(packed(y), 4);

    // Act: x went out as new (record 1); y never did.
    const settlement = held.settle();
    settlement.markSent(packed(x), 1);

    // Assess
    expect(settlement.fingerprints).toHaveLength(2);
    expect([0, 1, 2].map((e) => settlement.duplicateOf(e))).toEqual([0, 1, 2]);
  });
});
