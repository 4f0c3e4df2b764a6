import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ListObjectVersionsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { readJson, readText } from '../src/aws/s3';
import type { ChunkRef, ExecutionInput, ImportedMarker, StageOutput } from '../src/contracts';
import { silentLog } from '../src/steps/deps';
import { send } from '../src/steps/send';
import { stageFile } from '../src/steps/stage';
import { parseConfig } from '../src/config/load';
import { replayLocal } from '../src/local/replay';
import { type LocalRunResult, runObject } from '../src/local/runner';
import { LOCAL_BUCKETS } from '../src/local/s3';
import { finalize } from '../src/steps/finalize';
import { notificationText } from '../src/report/texts';
import { localWorkflow, startS3LosingAStagedRecord } from './support/local';
import { SECRETS, configDocument, plainRows, toCsv } from './support/factories';
import { makeZip } from './support/zips';

/**
 * Regression tests for the ways a record could be lost or sent twice in the real world (issue 10): the same content
 * delivered twice at once, an object overwritten mid-run, credentials revoked mid-run followed by a redelivery, a
 * zip of thousands of entries, a message naming a very wide header, a file started again from failed/. Each goes
 * through the local workflow and audits the sandbox's ledger.
 */
const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
const destination = flow!.destination as Record<string, unknown>;
const document = {
  dataflows: [
    flow,
    // One worker at a time, so that "revoked after N requests" leaves a known number accepted.
    { ...flow, name: 'serial-events', source: { type: 's3', prefix: 'inbox/serial/', filePattern: '^events_.*\\.csv$' }, destination: { ...destination, maxConcurrency: 1 } },
    { ...flow, name: 'zip-events', source: { type: 's3', prefix: 'inbox/zips/', filePattern: '^(events_.*\\.csv|.*\\.zip)$' } },
  ],
};
const bench = localWorkflow('exactly-once-', document);
const { work, ledgerFor, deliver, options } = bench;
const rowsFor = plainRows;
const issuedOnce = (base: number, n: number) => new Set(ledgerFor(base, n).map((e) => e.customerId)).size === ledgerFor(base, n).length;

describe('Exactly once: the same content twice at once', () => {
  it('imports two deliveries of the same bytes under two names once: one run claims the content, the other is skipped and names it', async () => {
    // Prepare: a vendor's "events (1).csv" next to the original, both arriving before either run has finished.
    const base = 7_100_000;
    const body = toCsv(rowsFor(base, 60));
    const keys = ['inbox/weekly-events/events_twice.csv', 'inbox/weekly-events/events_twice (1).csv'];
    const versions = await Promise.all(keys.map((k) => deliver(k, body)));

    // Act: both runs at once, as two upload events start them in AWS.
    const results = await Promise.all(keys.map((k, i) => runObject(options('weekly-events', { versionId: versions[i] }), k)));

    // Assess
    const [winner, loser] = [...results].sort((a, b) => (a.report.status === 'SUCCEEDED' ? -1 : b.report.status === 'SUCCEEDED' ? 1 : 0));
    expect(winner!.report).toMatchObject({ status: 'SUCCEEDED', rows: { total: 60, accepted: 60 } });
    expect(loser!.report).toMatchObject({ status: 'SKIPPED_DUPLICATE', rows: { accepted: 0, rejected: 0 }, duplicateOf: { runId: winner!.report.runId } });
    expect(ledgerFor(base, 60)).toHaveLength(60);
    expect(issuedOnce(base, 60)).toBe(true);
  });
});

describe('Exactly once: an object overwritten while its run is in flight', () => {
  it('reads and moves exactly the version each run was started for: neither version is lost or sent twice', async () => {
    // Prepare: the vendor uploads, then overwrites the same key before the first run has read it.
    const [first, second] = [7_200_000, 7_300_000];
    const key = 'inbox/weekly-events/events_overwritten.csv';
    const v1 = await deliver(key, toCsv(rowsFor(first, 30)));
    const v2 = await deliver(key, toCsv(rowsFor(second, 40)));
    expect(v1).toBeDefined();
    expect(v2).not.toBe(v1);

    // Act: each upload event names its own version.
    const [one, two] = await Promise.all([runObject(options('weekly-events', { versionId: v1 }), key), runObject(options('weekly-events', { versionId: v2 }), key)]);

    // Assess: each run imported its own version once.
    expect(one.report).toMatchObject({ status: 'SUCCEEDED', rows: { total: 30, accepted: 30 } });
    expect(two.report).toMatchObject({ status: 'SUCCEEDED', rows: { total: 40, accepted: 40 } });
    expect([ledgerFor(first, 30).length, ledgerFor(second, 40).length]).toEqual([30, 40]);
    expect(issuedOnce(first, 30) && issuedOnce(second, 40)).toBe(true);
    // Each version moved to its own run's processed/ folder, with its own bytes; none is left under the key.
    const moved = await readText(bench.s3.client, LOCAL_BUCKETS.inbox, one.report.files[0]!.source.movedTo!);
    expect(moved).toContain(String(first + 1));
    const left = await bench.s3.client.send(new ListObjectVersionsCommand({ Bucket: LOCAL_BUCKETS.inbox, Prefix: key }));
    expect([...(left.Versions ?? []), ...(left.DeleteMarkers ?? [])].filter((v) => v.Key === key)).toEqual([]);
  });
});

describe('Exactly once: a run that fails after sending', () => {
  const base = 7_400_000;
  const revokedFile = toCsv(rowsFor(base, 100));
  let failed: LocalRunResult;
  const notified: string[] = [];

  beforeAll(async () => {
    // Prepare: credentials revoked after the first chunk's three requests (25 records), one worker at a time.
    await bench.restart({ faults: { revokeCredentialsAfterRequests: 3 } });
    const key = 'inbox/serial/events_revoked.csv';
    const versionId = await deliver(key, revokedFile);
    failed = await runObject(options('serial-events', { versionId, notify: async (_subject, message) => void notified.push(message) }), key);
  });

  it('says how many records were accepted and advises replay, never redelivery, in every text', () => {
    // Assess
    expect(failed.report).toMatchObject({ status: 'FAILED', error: { code: 'AUTH_FAILED' }, rows: { total: 100, accepted: 25, rejected: 75 }, sentBeforeFailure: { accepted: 25 } });
    expect(ledgerFor(base, 100)).toHaveLength(25);
    for (const text of [notificationText(failed.report), notified.join('\n')]) {
      expect(text).toMatch(/25 records were accepted before the failure/);
      expect(text).toMatch(/Do NOT deliver this file again/);
      expect(text).toMatch(/replay/);
      expect(text).not.toMatch(/Nothing from this file was sent/);
    }
  });

  it('skips a redelivery of the same content once the credentials are fixed, so no badge is issued twice; a replay sends the rest once', async () => {
    // Prepare: the operator renews the credentials; the vendor (wrongly) delivers the same file again.
    bench.sandbox.restoreCredentials();
    const key = 'inbox/serial/events_revoked_again.csv';
    const versionId = await deliver(key, revokedFile);

    // Act
    const again = await runObject(options('serial-events', { versionId }), key);
    const replayed = await replayLocal({ ...options('serial-events'), rejected: failed.rejectedPath! });

    // Assess
    expect(again.report).toMatchObject({ status: 'SKIPPED_DUPLICATE', duplicateOf: { runId: failed.report.runId, state: 'sent-then-failed' } });
    expect(replayed.result?.report).toMatchObject({ status: 'SUCCEEDED', rows: { total: 75, accepted: 75 } });
    expect(ledgerFor(base, 100)).toHaveLength(100);
    expect(issuedOnce(base, 100)).toBe(true);
  });

  it('leaves out of a second replay of the same rejected file what the first replay took, whatever stages it asks for', async () => {
    // Act: the operator replays the same rejected file again, for its validation rejects as well (red team).
    const again = await replayLocal({ ...options('serial-events'), rejected: failed.rejectedPath!, stages: ['api', 'validate'] });

    // Assess: nothing is taken twice; no badge is issued twice.
    expect(again.selection).toMatchObject({ kept: 0, replayedBefore: 75 });
    expect(again.result).toBeUndefined();
    expect(ledgerFor(base, 100)).toHaveLength(100);
  });
});

describe('Exactly once: what would break Step Functions limits', () => {
  it('expands a zip of thousands of matching entries, with every entry in the report and none in the state', async () => {
    // Prepare: 1,500 entries with long names: their inbox keys alone are over 256 KiB, the most a state may hold.
    const zip = join(work, 'many.zip');
    const entries = Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`events_${String(i).padStart(5, '0')}_${'weekly_behavioural_events_export_'.repeat(5)}.csv`, 'member_id\n']));
    makeZip(zip, entries);
    const key = 'inbox/zips/many.zip';
    const versionId = await deliver(key, readFileSync(zip));

    // Act: a dry run checks and lists the entries, writing none.
    const result = await runObject(options('zip-events', { versionId, dryRun: true }), key);

    // Assess
    expect(result.report.status).toBe('EXPANDED');
    expect(result.report.files[0]!.expandedTo).toHaveLength(1500);
    expect(JSON.stringify(result.report.files[0]!.expandedTo).length).toBeGreaterThan(256 * 1024);
  }, 300_000);

  it('keeps the code and a bounded, readable message for a missing column in a very wide header', async () => {
    // Prepare: 3,000 columns of 20 characters, none of them the mapped ones (the message names the header).
    const header = Array.from({ length: 3000 }, (_, i) => `vendor_column_${String(i).padStart(6, '0')}`);
    const key = 'inbox/weekly-events/events_wide.csv';
    const versionId = await deliver(key, `${header.join(',')}\n${header.map(() => 'x').join(',')}\n`);

    // Act
    const result = await runObject(options('weekly-events', { versionId }), key);

    // Assess
    expect(result.report).toMatchObject({ status: 'FAILED', error: { code: 'MISSING_COLUMN' } });
    expect(result.report.error!.message.length).toBeLessThanOrEqual(4096);
    expect(result.report.error!.message).toMatch(/^The header/);
    expect(result.report.error!.message).toMatch(/more characters\)$/);
  });
});

describe('Exactly once: starting a file again from failed/', () => {
  it('reads a file kept under failed/ and moves it on, as `badges-import start --key failed/…` asks', async () => {
    // Prepare: a file that failed (a missing column) now sits under failed/<dataflow>/<runId>/.
    const key = 'inbox/weekly-events/events_nocolumn.csv';
    const versionId = await deliver(key, 'member_id,badge_code\n1,6571a3b9e4b0c1a2b3c4d5e6\n');
    const first = await runObject(options('weekly-events', { versionId }), key);
    const kept = first.report.files[0]!.source.movedTo!;
    expect(kept).toMatch(/^failed\/weekly-events\//);

    // Act: the operator starts it again from there.
    const again = await runObject(options('weekly-events'), kept);

    // Assess: it was read (the same MISSING_COLUMN, not an access error) and moved on.
    expect(again.report).toMatchObject({ status: 'FAILED', error: { code: 'MISSING_COLUMN' } });
    expect(again.report.files[0]!.source.movedTo).toMatch(/^failed\/weekly-events\//);
  });
});

describe('Exactly once: conservation', () => {
  it('reports a run whose records do not add up FAILED RECORDS_UNACCOUNTED, never a success', async () => {
    // Prepare: a fault between stage and send: the first staged chunk loses its last record (as a defect in the
    // staging or sending code would lose it), through an S3 that rewrites the object as soon as it is written.
    const faulty = await startS3LosingAStagedRecord();
    const base = 7_500_000;
    const key = 'inbox/weekly-events/events_conservation.csv';
    const versionId = (await faulty.client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: toCsv(rowsFor(base, 60)) }))).VersionId;
    const metrics: Array<[string, number]> = [];

    // Act
    const result = await runObject(options('weekly-events', { s3: faulty, versionId, metrics: (name, _unit, value) => void metrics.push([name, value]) }), key).finally(() => faulty.close());

    // Assess: 59 sent and accepted, one record in neither place: the run says so instead of succeeding.
    expect(faulty.tampered()).toBe(true);
    expect(result.report).toMatchObject({ status: 'FAILED', error: { code: 'RECORDS_UNACCOUNTED' }, rows: { total: 60, accepted: 59, rejected: 0 } });
    expect(result.report.error!.message).toMatch(/1 record is unaccounted for/);
    expect(metrics).toContainEqual(['RecordsUnaccounted', 1]);
    expect(metrics).toContainEqual(['FilesFailed', 1]);
  });
});

describe('Exactly once: finalize retried by Step Functions', () => {
  it('writes the same report on a retry: the source is still reported moved, the claim still imported', async () => {
    // Prepare: a run staged and sent step by step (the steps' modules, on the embedded S3 and the sandbox), then finalized once.
    const local = parseConfig({ dataflows: document.dataflows.map((d) => ({ ...d, destination: { ...(d!.destination as object), baseUrl: bench.sandbox.url } })) });
    const deps = { config: local, s3: bench.s3.client, buckets: LOCAL_BUCKETS, secrets: new StaticSecretsProvider(SECRETS), log: silentLog };
    const key = 'inbox/weekly-events/events_finalize_retry.csv';
    const versionId = await deliver(key, toCsv(rowsFor(7_600_000, 30)));
    const input: ExecutionInput = { dataflow: 'weekly-events', bucket: LOCAL_BUCKETS.inbox, key, ...(versionId ? { versionId } : {}) };
    const context = { runId: 'finalize-retry', startedAt: new Date().toISOString() };
    const staged: StageOutput = await stageFile({ input, ...context }, deps);
    const chunks = (await readJson<ChunkRef[]>(bench.s3.client, LOCAL_BUCKETS.staging, staged.chunksKey))!;
    for (const chunk of chunks) await send({ ...context, dataflow: 'weekly-events', chunk, concurrency: 1 }, deps);
    const first = await finalize({ state: staged, ...context }, deps);
    expect(first.files[0]!.source.movedTo).toBeDefined();

    // Act: the Lambda's answer was lost (a timeout after it finished): Step Functions runs finalize again.
    const again = await finalize({ state: staged, ...context }, deps);

    // Assess: the retry reports what happened, as the first attempt did, and the claim stays imported.
    expect(again.status).toBe(first.status);
    expect(again.files[0]!.source.movedTo).toBe(first.files[0]!.source.movedTo);
    const claim = await readJson<ImportedMarker>(bench.s3.client, LOCAL_BUCKETS.reports, `imported/weekly-events/${first.files[0]!.sha256}.json`);
    expect(claim).toMatchObject({ runId: 'finalize-retry', state: 'imported' });
  });
});
