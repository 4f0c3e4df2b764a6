import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { StaticSecretsProvider } from '../src/aws/secrets';
import type { ChunkRef, ExecutionInput } from '../src/contracts';
import { silentLog } from '../src/steps/deps';
import { stageFile } from '../src/steps/stage';
import { send } from '../src/steps/send';
import { finalize } from '../src/steps/finalize';
import { readJson } from '../src/aws/s3';
import { parseConfig } from '../src/config/load';
import { runObject } from '../src/local/runner';
import { LOCAL_BUCKETS } from '../src/local/s3';
import { localWorkflow } from './support/local';
import { SECRETS, configDocument, plainRows, toCsv } from './support/factories';
import { makeZip } from './support/zips';

/**
 * The content claim (`imported/<dataflow>/<sha256>.json`): the red team's reproductions of ways it let the same
 * records be sent twice or left a file never importable. Each failed on the code before its fix.
 */
const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
const destination = flow!.destination as Record<string, unknown>;
const document = {
  dataflows: [flow, { ...flow, name: 'serial-events', source: { type: 's3', prefix: 'inbox/serial/', filePattern: '^events_.*\\.csv$' }, destination: { ...destination, maxConcurrency: 1 } }],
};
const bench = localWorkflow('claims-', document);
const { work, ledgerFor, deliver, options } = bench;
const rowsFor = plainRows;

describe('Function: stage and finalize, the content claim: the same records delivered again in other bytes', () => {
  it('does not issue a file\'s records again when the vendor redelivers them gzipped (the claim is on the records, not the delivered bytes)', async () => {
    // Prepare: a plain delivery, imported; the vendor then sends the very same CSV again, gzipped (as many do).
    const base = 8_100_000;
    const csv = toCsv(rowsFor(base, 30));
    const plainKey = 'inbox/weekly-events/events_rt_plain.csv';
    const first = await runObject(options('weekly-events', { versionId: await deliver(plainKey, csv) }), plainKey);
    expect(first.report).toMatchObject({ status: 'SUCCEEDED', rows: { accepted: 30 } });

    // Act
    const gzKey = 'inbox/weekly-events/events_rt_plain.csv.gz.csv';
    const again = await runObject(options('weekly-events', { versionId: await deliver(gzKey, gzipSync(csv)) }), gzKey);

    // Assess: the second delivery is the same content (the same records, byte for byte once unpacked): skipped.
    expect(ledgerFor(base, 30)).toHaveLength(30);
    expect(again.report).toMatchObject({ status: 'SKIPPED_DUPLICATE', duplicateOf: { runId: first.report.runId } });
  });

  it('does not issue records again when a redelivery after a FAILED run that sent some differs only in its compression', async () => {
    // Prepare: credentials revoked after 3 requests (25 records), one worker: the run fails after sending.
    await bench.restart({ faults: { revokeCredentialsAfterRequests: 3 } });
    const base = 8_200_000;
    const csv = toCsv(rowsFor(base, 60));
    const key = 'inbox/serial/events_rt_revoked.csv';
    const failed = await runObject(options('serial-events', { versionId: await deliver(key, gzipSync(csv, { level: 9 })) }), key);
    expect(failed.report).toMatchObject({ status: 'FAILED', sentBeforeFailure: { accepted: 25 } });
    bench.sandbox.restoreCredentials();

    // Act: the vendor (wrongly) sends the same records again, this time compressed at another level.
    const again = 'inbox/serial/events_rt_revoked_again.csv';
    const redelivered = await runObject(options('serial-events', { versionId: await deliver(again, gzipSync(csv, { level: 1 })) }), again);

    // Assess: the 25 records already issued are not issued again.
    expect(redelivered.report.status).toBe('SKIPPED_DUPLICATE');
    expect(ledgerFor(base, 60)).toHaveLength(25);
  });
});

describe('Function: stage and finalize, the content claim: a forced run that fails without sending', () => {
  it('does not release the claim of the import it was forced over: a later redelivery is still skipped', async () => {
    // Prepare: the content is imported once.
    await bench.restart();
    const base = 8_600_000;
    const csv = toCsv(rowsFor(base, 30));
    const key = 'inbox/weekly-events/events_rt_forced.csv';
    const imported = await runObject(options('weekly-events', { versionId: await deliver(key, csv) }), key);
    expect(imported.report).toMatchObject({ status: 'SUCCEEDED', rows: { accepted: 30 } });

    // Act: the operator forces it again while the API refuses the credentials: the forced run takes the claim and
    // fails having sent nothing. Later, with the credentials fixed, the vendor redelivers the file.
    bench.sandbox.revokeCredentials();
    const forcedKey = 'inbox/weekly-events/events_rt_forced_again.csv';
    const forced = await runObject(options('weekly-events', { versionId: await deliver(forcedKey, csv), force: true }), forcedKey);
    bench.sandbox.restoreCredentials();
    const redeliveredKey = 'inbox/weekly-events/events_rt_forced_later.csv';
    const redelivered = await runObject(options('weekly-events', { versionId: await deliver(redeliveredKey, csv) }), redeliveredKey);

    // Assess: the first import still holds the content; nothing is issued twice.
    expect(forced.report).toMatchObject({ status: 'FAILED', rows: { accepted: 0 } });
    expect(redelivered.report).toMatchObject({ status: 'SKIPPED_DUPLICATE', duplicateOf: { runId: imported.report.runId } });
    expect(ledgerFor(base, 30)).toHaveLength(30);
  });
});

describe('Function: stage and finalize, the content claim: a stage retried on a zip', () => {
  it('expands a zip again on a retry of the same run instead of failing it as if its own entries were someone else\'s', async () => {
    // Prepare: a zip of two files; the stage expands it, then Lambda reports a service error (the answer was lost)
    // and Step Functions runs the stage again for the same execution.
    const zipFlow = { ...flow, name: 'zip-events', source: { type: 's3', prefix: 'inbox/zips/', filePattern: '^(events_.*\\.csv|.*\\.zip)$' } };
    const local = parseConfig({ dataflows: [zipFlow] });
    const deps = { config: local, s3: bench.s3.client, buckets: LOCAL_BUCKETS, secrets: new StaticSecretsProvider(SECRETS), log: silentLog };
    const zip = join(work, 'retry.zip');
    makeZip(zip, { 'events_rt_zip_1.csv': toCsv(rowsFor(8_700_000, 3)), 'events_rt_zip_2.csv': toCsv(rowsFor(8_700_100, 3)) });
    const key = 'inbox/zips/rt_retry.zip';
    const versionId = await deliver(key, readFileSync(zip));
    const event = { input: { dataflow: 'zip-events', bucket: LOCAL_BUCKETS.inbox, key, ...(versionId ? { versionId } : {}) }, runId: 'rt-zip-retry', startedAt: new Date().toISOString() };
    const first = await stageFile(event, deps);
    expect(first.expanded).toBe(2);

    // Act
    const retried = stageFile(event, deps);

    // Assess: the retry finds its own entries (same bytes, same run) and reports the same expansion; it does not
    // fail the zip with "nothing was extracted" while both entries are in the inbox being imported.
    await expect(retried).resolves.toMatchObject({ expanded: 2 });
  });
});

describe('Function: stage and finalize, the content claim: an execution name used again after 90 days', () => {
  it('does not take a finished run\'s claim for its own when a new execution reuses the name (same key and version)', async () => {
    // Prepare: a version imported by execution N (its name derives from key + version); its move failed, so the
    // version stayed in the inbox. Step Functions lets a name be used again after 90 days: the sweep starts N again.
    await bench.restart();
    const local = parseConfig({ dataflows: document.dataflows.map((d) => ({ ...d, destination: { ...(d!.destination as object), baseUrl: bench.sandbox.url } })) });
    const deps = { config: local, s3: bench.s3.client, buckets: LOCAL_BUCKETS, secrets: new StaticSecretsProvider(SECRETS), log: silentLog };
    const base = 8_950_000;
    const key = 'inbox/weekly-events/events_rt_90days.csv';
    const versionId = await deliver(key, toCsv(rowsFor(base, 10)));
    const input: ExecutionInput = { dataflow: 'weekly-events', bucket: LOCAL_BUCKETS.inbox, key, ...(versionId ? { versionId } : {}) };
    const name = 'events_rt_90days_csv-0123456789abcdef01234567';
    const first = await stageFile({ input, runId: name, startedAt: '2026-08-01T00:00:00.000Z' }, deps);
    for (const chunk of (await readJson<ChunkRef[]>(bench.s3.client, LOCAL_BUCKETS.staging, first.chunksKey))!) await send({ runId: name, startedAt: '2026-08-01T00:00:00.000Z', dataflow: 'weekly-events', chunk, concurrency: 1 }, deps);
    const report = await finalize({ state: first, runId: name, startedAt: '2026-08-01T00:00:00.000Z' }, deps);
    expect(report.status).toBe('SUCCEEDED');
    await deliver(key, toCsv(rowsFor(base, 10))); // (the move went; put the same bytes back as the version that stayed)

    // Act: the new execution, same name, same content.
    const again = await stageFile({ input: { ...input, versionId: undefined }, runId: name, startedAt: '2026-11-01T00:00:00.000Z' }, deps);

    // Assess: the content was imported by a finished run: this one is a duplicate, it does not hold the claim.
    expect(again.duplicateOf).toMatchObject({ runId: name, state: 'imported' });
    expect(again.claimed).toBeUndefined();
  });
});

describe('Function: stage and finalize, the content claim: a stage that fails after it claimed the content', () => {
  it('leaves the content importable: finalize, handed only the input and the error, still releases the claim nothing was sent under', async () => {
    // Prepare: the stage claims the content, then its invocation fails as far as Step Functions can tell (the
    // answer lost, retries used up): the Catch hands finalize the execution input and the error, not the stage's output.
    await bench.restart();
    const local = parseConfig({ dataflows: document.dataflows.map((d) => ({ ...d, destination: { ...(d!.destination as object), baseUrl: bench.sandbox.url } })) });
    const deps = { config: local, s3: bench.s3.client, buckets: LOCAL_BUCKETS, secrets: new StaticSecretsProvider(SECRETS), log: silentLog };
    const csv = toCsv(rowsFor(8_960_000, 10));
    const key = 'inbox/weekly-events/events_rt_stuck.csv';
    const versionId = await deliver(key, csv);
    const input: ExecutionInput = { dataflow: 'weekly-events', bucket: LOCAL_BUCKETS.inbox, key, ...(versionId ? { versionId } : {}) };
    const context = { runId: 'rt-stuck', startedAt: new Date().toISOString() };
    await stageFile({ input, ...context }, deps);
    const failed = await finalize({ state: { ...input, error: { Error: 'Lambda.ServiceException', Cause: 'Service unavailable' } }, ...context }, deps);
    expect(failed).toMatchObject({ status: 'FAILED', rows: { accepted: 0 } });

    // Act: as the advice says, the file is delivered again.
    const againKey = 'inbox/weekly-events/events_rt_stuck_again.csv';
    const againVersion = await deliver(againKey, csv);
    const again = await stageFile({ input: { ...input, key: againKey, ...(againVersion ? { versionId: againVersion } : {}) }, runId: 'rt-stuck-again', startedAt: new Date().toISOString() }, deps);

    // Assess: nothing was ever sent, so the redelivery may send.
    expect(again.duplicateOf).toBeUndefined();
    expect(again.claimed).toBe(true);
  });
});
