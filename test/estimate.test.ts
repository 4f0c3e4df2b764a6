import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ENV } from '../src/contracts';
import { type RunCounts, runLocal } from '../src/local/runner';
import { type Estimate, estimate } from '../src/ops/estimate';
import { localWorkflow } from './support/local';
import { KNOWN_BADGES, TEST_DESTINATION, configDocument, plainRows, toCsv } from './support/factories';

// The cost model against what a run really did: the twin counts each Lambda invocation, each billed state transition
// and each S3 request of a local run (LocalRunResult.counts), and `estimate` must predict them for the same file.

/** Sizes that give a file of a few hundred rows several ranges and key partitions (the stage's test knob). */
const PLAN_SIZES = { rangeBytes: 4096, partitionRecords: 100 };
const suite = localWorkflow('estimate-', configDocument({ destination: { ...TEST_DESTINATION, batchSize: 10, recordsPerWorker: 40 } }), { sandbox: { knownBadgeIds: [...KNOWN_BADGES] } });

/** The twin's invocations as the model names them: the stage's event without a phase is its prepare. */
function twinInvocations(counts: RunCounts): Record<string, number> {
  const phases = Object.entries(counts.invocations).filter(([name]) => name.startsWith('stage:'));
  const prepare = (counts.invocations.stage ?? 0) - phases.reduce((n, [, v]) => n + v, 0);
  return { ...counts.invocations, ...(prepare > 0 ? { 'stage:prepare': prepare } : {}) };
}

/** The model's invocations of the workflow's functions (the sweep that starts a run is not part of a local run). */
function modelInvocations(e: Estimate): Record<string, number> {
  return Object.fromEntries(Object.entries(e.lambda).flatMap(([name, l]) => (name === 'sweep' ? [] : [[name, l.invocations]])));
}

/** Requests the sandbox answered: one per API request the run sent. */
const apiRequests = () => Object.values(suite.sandbox.statusCounts).reduce((n, v) => n + v, 0);

describe('Function: estimate against the twin', () => {
  it('predicts the invocations, transitions, S3 requests and API requests of a plain file\'s run', async () => {
    // Prepare: 300 records of ~70 bytes in ranges of 4 KiB: 6 ranges of ~50 records, 2 chunks of 40 each; 3 partitions.
    const csv = toCsv(plainRows(7_100_000, 300));
    const file = join(suite.work, 'events_plain.csv');
    writeFileSync(file, csv);
    const before = apiRequests();

    // Act
    const result = await runLocal({ ...suite.options('weekly-events', { environment: { [ENV.stagePlan]: JSON.stringify(PLAN_SIZES) } }), file });
    const e = estimate({ dataflow: suite.dataflow('weekly-events'), rows: 300, bytes: Buffer.byteLength(csv), planSizes: PLAN_SIZES, workflowTimeoutSeconds: 86_400 });

    // Assess
    expect(result.report.status).toBe('SUCCEEDED');
    expect(e.plan).toMatchObject({ ranges: 6, partitions: 3 });
    expect(twinInvocations(result.counts)).toEqual(modelInvocations(e));
    expect(result.counts.transitions).toBe(e.transitions);
    expect(result.counts.s3.byTier).toEqual({ putCopyPostList: e.s3.putCopyPostList, getAndOther: e.s3.getAndOther, free: e.s3.free });
    expect(apiRequests() - before).toBe(e.plan.apiRequests);
  }, 900_000);

  it('predicts them for a gzip file, staged through the sequential pass', async () => {
    // Prepare
    const csv = toCsv(plainRows(7_200_000, 300));
    const gz = gzipSync(csv);
    const file = join(suite.work, 'events_packed.csv');
    writeFileSync(file, gz);
    const before = apiRequests();

    // Act
    const result = await runLocal({ ...suite.options('weekly-events', { environment: { [ENV.stagePlan]: JSON.stringify(PLAN_SIZES) } }), file });
    const e = estimate({ dataflow: suite.dataflow('weekly-events'), rows: 300, bytes: gz.length, gzip: true, plaintextBytes: Buffer.byteLength(csv), planSizes: PLAN_SIZES, workflowTimeoutSeconds: 86_400 });

    // Assess
    expect(result.report.status).toBe('SUCCEEDED');
    expect(e.plan).toMatchObject({ sequentialPass: 'gzip', scans: 0, ranges: 6 });
    expect(twinInvocations(result.counts)).toEqual(modelInvocations(e));
    expect(result.counts.transitions).toBe(e.transitions);
    expect(result.counts.s3.byTier).toEqual({ putCopyPostList: e.s3.putCopyPostList, getAndOther: e.s3.getAndOther, free: e.s3.free });
    expect(apiRequests() - before).toBe(e.plan.apiRequests);
  }, 900_000);
});
