import { PutObjectCommand } from '@aws-sdk/client-s3';
import { readJson, readText } from '../src/aws/s3';
import { StaticSecretsProvider } from '../src/aws/secrets';
import type { ChunkRef, StageOutput, StagePlanRef } from '../src/contracts';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from '../src/local/s3';
import { silentLog } from '../src/steps/deps';
import { stage } from '../src/steps/stage';
import { decodeStagedRecord } from '../src/core/staged-record';
import { makeConfig, plainRows, toCsv } from './support/factories';

/** Red team: a plain file's scan and range workers read exactly the object the run was started for. */
let s3: LocalS3;
beforeAll(async () => {
  s3 = await startLocalS3();
});
afterAll(() => s3.close());

const deps = () => ({ config: makeConfig(), s3: s3.client, buckets: LOCAL_BUCKETS, secrets: new StaticSecretsProvider({}), log: silentLog, now: () => Date.UTC(2026, 10, 27), stagePlan: { rangeBytes: 512, partitionRecords: 10 } });

/** Runs every phase, overwriting the source with `overwrite` once prepare has returned. */
async function stageOverwritten(key: string, runId: string, overwrite: string): Promise<number[] | string> {
  const startedAt = new Date().toISOString();
  const input = { dataflow: 'weekly-events', bucket: LOCAL_BUCKETS.inbox, key };
  try {
    let state = (await stage({ input, runId, startedAt }, deps())) as StageOutput;
    await s3.client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: overwrite }));
    for (const index of state.plan!.scan ?? []) await stage({ phase: 'scan', input: state, runId, startedAt, index }, deps());
    state = { ...state, plan: (await stage({ phase: 'plan', input: state, runId, startedAt }, deps())) as StagePlanRef };
    for (const index of state.plan!.ranges) await stage({ phase: 'range', input: state, runId, startedAt, index }, deps());
    for (const index of state.plan!.partitions) await stage({ phase: 'settle', input: state, runId, startedAt, index }, deps());
    const output = (await stage({ phase: 'finish', input: state, runId, startedAt }, deps())) as StageOutput;
    const members: number[] = [];
    for (const chunk of (await readJson<ChunkRef[]>(s3.client, LOCAL_BUCKETS.staging, output.chunksKey))!) {
      for (const line of (await readText(s3.client, LOCAL_BUCKETS.staging, chunk.key))!.split('\n')) members.push(Number(decodeStagedRecord(line).f[0]));
    }
    return members;
  } catch (error) {
    return (error as Error).name;
  }
}

describe('Red team: exactly the object version', () => {
  it('stages the object prepare saw, or nothing, when a run without a version id sees its source overwritten', async () => {
    // Prepare: 40 records; the overwrite is the same size, other customers.
    const key = 'inbox/weekly-events/events_over.csv';
    await s3.client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: toCsv(plainRows(1_000_000, 40)) }));
    const other = toCsv(plainRows(2_000_000, 40));

    // Act
    const staged = await stageOverwritten(key, 'run-over', other);

    // Assess: never a record of the overwrite (it is another version, with a run of its own).
    if (typeof staged !== 'string') expect(staged.filter((m) => m > 2_000_000)).toEqual([]);
  });
});

describe('Red team: a phase retried', () => {
  it('plans the same ranges when the plan phase runs again after it wrote the plan (its answer lost)', async () => {
    // Prepare: a plain file in several scans; prepare and the scans run, then plan once.
    const key = 'inbox/weekly-events/events_retry.csv';
    const put = await s3.client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: toCsv(plainRows(3_000_000, 40)) }));
    const runId = 'run-retry-plan';
    const startedAt = new Date().toISOString();
    const input = { dataflow: 'weekly-events', bucket: LOCAL_BUCKETS.inbox, key, versionId: put.VersionId };
    const state = (await stage({ input, runId, startedAt }, deps())) as StageOutput;
    for (const index of state.plan!.scan!) await stage({ phase: 'scan', input: state, runId, startedAt, index }, deps());
    const first = await stage({ phase: 'plan', input: state, runId, startedAt }, deps());
    const planned = await readJson<Record<string, unknown>>(s3.client, LOCAL_BUCKETS.staging, `runs/${runId}/plan.json`);

    // Act: Step Functions retries the plan task (Lambda.ServiceException after it had written the plan).
    const again = await stage({ phase: 'plan', input: state, runId, startedAt }, deps()).catch((error: Error) => error.name);

    // Assess
    expect(again).toEqual(first);
    expect(await readJson<Record<string, unknown>>(s3.client, LOCAL_BUCKETS.staging, `runs/${runId}/plan.json`)).toEqual(planned);
  });
});
