import { createInterface } from 'node:readline';
import pLimit from 'p-limit';
import {
  contentClaimId,
  type ChunkRef,
  type FinalizeEvent,
  type ImportedMarker,
  KEYS,
  type Report,
  type RunStatus,
  type SendOutput,
  type StageSummary,
  fileNameOf,
} from '../contracts';
import { type Dataflow, vendorBucketOf } from '../config/schema';
import { createObjectWriter, deleteObject, headObject, moveObject, openObject, putJson, readJson } from '../aws/s3';
import { ERROR_CODES, SEND_CODES } from '../codes';
import { type CsvDialect, DEFAULT_DIALECT, rejectHeaderLine, rejectLine } from '../core/csv';
import { decodeStagedRecord } from '../core/staged-record';
import { filteredHeaderLine } from '../core/filter';
import { describeCaughtError } from '../errors';
import { notificationSubject, notificationText } from '../report/texts';
import { pullOriginOf, writeBack } from '../sources/sftp';
import { writeBackToS3 } from '../sources/vendor-bucket';
import { METRICS, type StepDeps } from './deps';
import { skippedRecords } from './skip-list';

const READS_IN_FLIGHT = 16;
/** Outcomes a vendor is told about in the SFTP error directory or S3 errorPrefix (a plain success needs no note). */
const WRITTEN_BACK = new Set<RunStatus>(['COMPLETED_WITH_REJECTIONS', 'FAILED', 'SKIPPED_DUPLICATE']);

/**
 * Closes a run whatever state it reached: totals what was staged and sent, settles chunks whose worker left no result
 * (their records are AMBIGUOUS: they may have been sent), merges every rejected record into one CSV in the dead-letter
 * bucket, writes the report and moves the source object to processed/ or failed/.
 */
export async function finalize(event: FinalizeEvent, deps: StepDeps): Promise<Report> {
  const run = await readStagedRun(event, deps);
  settleEveryChunk(run, await readResults(deps, event.runId, run.chunks));
  checkConservation(run);
  const rejectedFile = await writeRejectedFile(run);
  const filteredFile = await writeFilteredFile(run);
  const status = statusOf(run);
  // Records that were issued, or may have been (AMBIGUOUS): once there are any, the file must not be sent again whole.
  const issued = run.rows.accepted + (run.sending ? (run.rejectionsByCode[SEND_CODES.AMBIGUOUS] ?? 0) : 0);
  const report = await reportRun(run, status, rejectedFile, filteredFile);
  if (status === 'FAILED' && issued > 0) report.sentBeforeFailure = { accepted: run.rows.accepted, ambiguous: issued - run.rows.accepted };
  await putJson(deps.s3, deps.buckets.reports, KEYS.report(run.state.dataflow, event.runId), report);
  await closeClaim(run, report, issued);
  // A failed dry run counts as a failed file too (its execution ends in the Fail state, which the workflow alarm nets
  // out against FilesFailed); its records are not counted, since nothing was sent.
  emitRunMetrics(deps, report, run.byStage);
  await notifyOperator(run, report);
  deps.log.info('Run finished', { runId: event.runId, dataflow: run.state.dataflow, status, ...run.rows, error: run.error?.code });
  return report;
}

/** What finalize knows of the run, and the totals it makes of it (as csv-parse keeps its parser's state, in one object). */
interface FinalizeState {
  readonly state: FinalizeEvent['state'];
  readonly runId: string;
  readonly startedAt: string;
  readonly deps: StepDeps;
  readonly fileName: string;
  readonly flow: Dataflow | undefined;
  /** The stage's summary: absent when the file failed before it was staged whole. */
  readonly summary: StageSummary | undefined;
  /** This run settles the file's records (it staged them whole, and no earlier run imported the same content). */
  readonly settles: boolean;
  /** … and sent some (not a dry run, and there were chunks). */
  readonly sending: boolean;
  readonly chunks: ChunkRef[];
  readonly rows: Report['rows'];
  readonly rejectionsByCode: Record<string, number>;
  /** The same rejections by the stage that made them, for the metrics. */
  readonly byStage: Record<'validate' | 'api', Record<string, number>>;
  /** The rejects to merge, in order: the validation rejects, then each chunk's (or its records, for a chunk with no result). */
  readonly parts: Array<string | { orphan: ChunkRef }>;
  /** Records a worker reported on that were not its chunk's (a worker that lost or invented records). */
  miscounted: number;
  /** The run's error: the step's that failed, or the first worker's fatal one, or the totals'. */
  error: { code: string; message: string } | undefined;
}

/** Reads the stage's summary and, when the run sent, its chunk list: the totals start from the stage's. */
async function readStagedRun(event: FinalizeEvent, deps: StepDeps): Promise<FinalizeState> {
  const { state, runId, startedAt } = event;
  const { s3, buckets } = deps;
  const summary = state.summaryKey ? await readJson<StageSummary>(s3, buckets.staging, state.summaryKey) : undefined;
  // This run settles the file's records unless the file failed before it was staged whole (it is refused whole and
  // nothing was sent), or the same content was imported before (that run settled them).
  const settles = summary !== undefined && !state.duplicateOf;
  const sending = settles && !state.dryRun && Boolean(state.chunkCount);
  const chunks = sending && state.chunksKey ? ((await readJson<ChunkRef[]>(s3, buckets.staging, state.chunksKey)) ?? []) : [];
  return {
    state,
    runId,
    startedAt,
    deps,
    fileName: fileNameOf(state.key),
    flow: deps.config.dataflows.find((d) => d.name === state.dataflow),
    summary,
    settles,
    sending,
    chunks,
    rows: {
      total: summary ? (state.records ?? 0) : 0,
      accepted: 0,
      rejected: settles ? (state.rejected ?? 0) : 0,
      filtered: settles ? (state.filtered ?? 0) : 0,
      valid: summary ? (state.valid ?? 0) : 0,
    },
    rejectionsByCode: settles ? { ...summary.rejectionsByCode } : {},
    byStage: { validate: settles ? { ...summary.rejectionsByCode } : {}, api: {} },
    parts: settles ? [...(summary.rejectedPartKeys ?? [])] : [],
    miscounted: 0,
    error: state.error ? describeCaughtError(state.error) : undefined,
  };
}

/**
 * Every chunk settles once: its worker's result is totalled (and its count checked against the chunk's), or, when the
 * worker left none, all its records are AMBIGUOUS: they may have been sent.
 */
function settleEveryChunk(run: FinalizeState, sent: ReadonlyArray<SendOutput | undefined>): void {
  if (!run.sending) return;
  const { chunks, rows, parts } = run;
  chunks.forEach((chunk, i) => {
    const result = sent[i];
    if (result) {
      run.miscounted += Math.abs(chunk.records - (result.accepted + result.rejected));
      rows.accepted += result.accepted;
      rows.rejected += result.rejected;
      for (const [code, n] of Object.entries(result.rejectionsByCode)) countApiRejections(run, code, n);
      if (result.rejectedPartKey) parts.push(result.rejectedPartKey);
      if (result.fatal && !run.error) run.error = workerError(result.fatal, chunk, chunks.length);
    } else {
      rows.rejected += chunk.records;
      countApiRejections(run, SEND_CODES.AMBIGUOUS, chunk.records);
      parts.push({ orphan: chunk });
    }
  });
}

function countApiRejections(run: FinalizeState, code: string, n: number): void {
  run.rejectionsByCode[code] = (run.rejectionsByCode[code] ?? 0) + n;
  run.byStage.api[code] = (run.byStage.api[code] ?? 0) + n;
}

/** Conservation: every record read ends in exactly one place. A run that cannot show it is not reported a success. */
function checkConservation(run: FinalizeState): void {
  const { rows, miscounted, state, deps } = run;
  const unaccounted = run.settles ? unaccountedRecords(rows, Boolean(state.dryRun), miscounted) : 0;
  if (unaccounted === 0) return;
  deps.log.error('Records unaccounted for', { runId: run.runId, total: rows.total, accepted: rows.accepted, rejected: rows.rejected, filtered: rows.filtered, valid: rows.valid, miscounted });
  deps.metrics?.(METRICS.recordsUnaccounted, 'Count', unaccounted, state.dataflow);
  const filtered = rows.filtered ? ` + ${rows.filtered} filtered` : '';
  run.error ??= {
    code: ERROR_CODES.RECORDS_UNACCOUNTED,
    message: `${rows.total} records were read, but ${state.dryRun ? `${rows.valid} valid + ${rows.rejected} rejected` : `${rows.accepted} accepted + ${rows.rejected} rejected`}${filtered} do not add up to it${miscounted ? ` (workers reported ${miscounted} records that were not their chunks')` : ''}: ${unaccounted} record${unaccounted === 1 ? ' is' : 's are'} unaccounted for. Do not deliver the file again; compare its records with the rejected file and the API before replaying`,
  };
}

/** Merges the rejects into the dead-letter bucket; returns where the rejected file is, when there is one. */
async function writeRejectedFile(run: FinalizeState): Promise<string | undefined> {
  const { summary, parts, state, deps } = run;
  if (!summary || parts.length === 0) return undefined;
  const key = KEYS.rejected(state.dataflow, run.runId, run.fileName);
  // The rejected file is written with the dataflow's delimiter and quote, so that a replay of it reads back.
  const dialect: CsvDialect = run.flow?.csv ?? DEFAULT_DIALECT;
  await mergeRejects(deps, key, summary, parts, dialect);
  return `s3://${deps.buckets.deadLetter}/${key}`;
}

/**
 * Writes the records the dataflow's filter left out beside the rejected file (`….filtered.csv`, the source's columns
 * then `_row,_filter`, in the dataflow's dialect); returns where it is, when there are any.
 */
async function writeFilteredFile(run: FinalizeState): Promise<string | undefined> {
  const { summary, state, deps, settles } = run;
  const partKeys = summary?.filtered?.partKeys ?? [];
  if (!settles || !summary || partKeys.length === 0) return undefined;
  const { s3, buckets } = deps;
  const key = KEYS.filtered(state.dataflow, run.runId, run.fileName);
  const writer = createObjectWriter(s3, buckets.deadLetter, key);
  await writer.write(filteredHeaderLine(summary.header, run.flow?.csv ?? DEFAULT_DIALECT));
  // Range by range: the filtered records in record order.
  for (const partKey of partKeys) {
    const body = await openObject(s3, buckets.staging, partKey);
    // A missing part would lose the filtered records' list: stop, and let the state machine retry.
    if (!body) throw new Error(`Filtered records s3://${buckets.staging}/${partKey} are missing`);
    body.setEncoding('utf8');
    for await (const text of body) await writer.write(text as string);
  }
  await writer.end();
  return `s3://${buckets.deadLetter}/${key}`;
}

function statusOf(run: FinalizeState): RunStatus {
  if (run.error) return 'FAILED';
  if (run.state.expanded !== undefined) return 'EXPANDED';
  if (run.state.duplicateOf) return 'SKIPPED_DUPLICATE';
  return run.rows.rejected > 0 ? 'COMPLETED_WITH_REJECTIONS' : 'SUCCEEDED';
}

/** Moves the source and writes the report (not yet stored), telling an SFTP vendor the outcome where they delivered. */
async function reportRun(run: FinalizeState, status: RunStatus, rejectedFile: string | undefined, filteredFile: string | undefined): Promise<Report> {
  const { state, deps, flow } = run;
  const { s3, buckets } = deps;
  const expandedTo = state.expandedKey ? ((await readJson<string[]>(s3, buckets.staging, state.expandedKey)) ?? []) : undefined;
  // A file pulled from SFTP says so in its metadata; read it before the object moves.
  const pulled =
    flow && isPulled(flow) ? pullOriginOf((await headObject(s3, state.bucket, state.key, state.versionId).catch(() => undefined))?.metadata) : undefined;
  const movedTo = state.dryRun ? undefined : await moveSource(run, status);
  const report = buildReport(run, status, { rejectedFile, filteredFile, expandedTo, movedTo, pulled });
  if ((pulled || writesBackInInbox(flow, state.key)) && flow && !state.dryRun && WRITTEN_BACK.has(status)) {
    // The vendor sees the outcome where they delivered. Records are settled by now: a failure here is reported, not retried.
    try {
      const rejectedKey = rejectedFile ? KEYS.rejected(state.dataflow, run.runId, run.fileName) : undefined;
      const opener = rejectedKey ? () => openObject(s3, buckets.deadLetter, rejectedKey) : undefined;
      report.files[0]!.source.writtenBack =
        flow.source.type === 'sftp' ? await writeBack(flow, deps, pulled!, report, opener) : await writeBackToS3(flow, deps, pulled?.path ?? state.key, report, opener);
    } catch (e) {
      report.files[0]!.source.writeBackError = (e as Error).message;
      deps.log.warn('Outcome not written back to the vendor', { dataflow: state.dataflow, error: (e as Error).message });
    }
  }
  return report;
}

/** Files pulled from SFTP or a vendor's bucket carry their origin in their metadata. */
const isPulled = (flow: Dataflow) => flow.source.type === 'sftp' || vendorBucketOf(flow) !== undefined;
/** A delivery to an inbox drop with an errorPrefix (not a replay): its outcome is written back in the inbox. */
const writesBackInInbox = (flow: Dataflow | undefined, key: string) => flow?.source.type === 's3' && !flow.source.bucket && flow.source.errorPrefix !== undefined && key.startsWith(flow.source.prefix);

/** Moves the source object to processed/ or failed/; returns where it is now, unless it could not be moved. */
async function moveSource(run: FinalizeState, status: RunStatus): Promise<string | undefined> {
  const { state, deps } = run;
  const target = status === 'FAILED' ? KEYS.failed(state.dataflow, run.runId, run.fileName) : KEYS.processed(state.dataflow, run.runId, run.fileName);
  try {
    // Exactly the version this run read: a newer one written meanwhile stays for its own run.
    await moveObject(deps.s3, state.bucket, state.key, target, state.versionId);
    return target;
  } catch (e) {
    // A retried finalize finds the source already moved by the attempt that failed after moving it.
    if (state.versionId && (await headObject(deps.s3, state.bucket, target).catch(() => undefined))) return target;
    deps.log.warn('Source object could not be moved', { key: state.key, target, error: (e as Error).name });
    return undefined;
  }
}

function buildReport(
  run: FinalizeState,
  status: RunStatus,
  where: { rejectedFile?: string; filteredFile?: string; expandedTo?: string[]; movedTo?: string; pulled?: ReturnType<typeof pullOriginOf> },
): Report {
  const { state, summary, rows, error } = run;
  const { rejectedFile, filteredFile, expandedTo, movedTo, pulled } = where;
  const finishedAt = (run.deps.now ?? Date.now)();
  return {
    runId: run.runId,
    dataflow: state.dataflow,
    status,
    dryRun: state.dryRun ?? false,
    ...(state.replay ? { replay: true } : {}),
    startedAt: run.startedAt,
    finishedAt: new Date(finishedAt).toISOString(),
    durationMs: Math.max(0, finishedAt - Date.parse(run.startedAt)),
    rows,
    rejectionsByCode: run.rejectionsByCode,
    rejectedByStage: { validate: sumOf(run.byStage.validate), api: sumOf(run.byStage.api) },
    files: [
      {
        name: run.fileName,
        ...(summary ? { sha256: summary.sha256, contentSha256: summary.contentSha256, bytes: summary.bytes } : {}),
        status,
        rows: { total: rows.total, accepted: rows.accepted, rejected: rows.rejected, filtered: rows.filtered ?? 0 },
        ...(rejectedFile ? { rejectedFile } : {}),
        ...(filteredFile ? { filteredFile } : {}),
        ...(expandedTo ? { expandedTo } : {}),
        source: {
          bucket: state.bucket,
          key: state.key,
          ...(state.versionId ? { versionId: state.versionId } : {}),
          ...(movedTo ? { movedTo } : {}),
          ...(pulled ? { origin: pulled.origin, remoteMovedTo: pulled.movedTo } : {}),
        },
      },
    ],
    ...(state.duplicateOf ? { duplicateOf: state.duplicateOf } : {}),
    ...(error ? { error } : {}),
  };
}

/** Settles the content claim (after the report, so a marker always has its report). */
async function closeClaim(run: FinalizeState, report: Report, issued: number): Promise<void> {
  const { state, summary, deps } = run;
  if (summary && state.claimed && !state.dryRun) await settleClaim(deps, state.dataflow, contentClaimId(summary), report, issued);
  else if (state.error && !state.summaryKey && !state.dryRun) await releaseAfterStageFailure(deps, state.dataflow, run.runId);
}

/** The per-file summary Connect+ mails; a notification that cannot be sent does not fail the run (records are settled). */
async function notifyOperator(run: FinalizeState, report: Report): Promise<void> {
  const { deps } = run;
  if (!deps.notify || run.state.dryRun) return;
  await deps.notify(notificationSubject(report), notificationText(report)).catch((e: unknown) => deps.log.warn('Notification not sent', { error: (e as Error).message }));
}

/**
 * How many records a settled run cannot place: read minus (accepted + rejected + filtered), or minus (valid +
 * rejected + filtered) for a dry run. A filtered record is placed (in the filtered file), never sent: it is never
 * counted as valid, so it cannot make up for a lost one.
 */
export function unaccountedRecords(rows: Report['rows'], dryRun: boolean, miscounted: number): number {
  const placed = (dryRun ? rows.valid : rows.accepted) + rows.rejected + (rows.filtered ?? 0);
  // A worker that lost a record shows in both figures; one that lost one and another that invented one, only in the second.
  return Math.max(Math.abs(rows.total - placed), miscounted);
}

/**
 * The content claim outlives the run as its outcome: `imported` after a completed import, `sent-then-failed` when a
 * FAILED run had issued (or may have issued) records, so that a redelivery of the same content cannot issue them
 * twice. A FAILED run that issued nothing releases the claim, so the corrected redelivery is imported.
 */
async function settleClaim(deps: StepDeps, dataflow: string, sha256: string, report: Report, issued: number): Promise<void> {
  const { s3, buckets } = deps;
  const key = KEYS.imported(dataflow, sha256);
  const holder = await readJson<ImportedMarker>(s3, buckets.reports, key);
  // Another run took the claim over (an operator's --force): it is that run's to settle.
  if (holder && holder.runId !== report.runId) return;
  const filtered = report.rows.filtered ? { filtered: report.rows.filtered } : {};
  const base = { runId: report.runId, key: report.files[0]?.source.key ?? '', claimedAt: holder?.claimedAt, finishedAt: report.finishedAt, accepted: report.rows.accepted, ...filtered };
  if (report.status !== 'FAILED') await putJson(s3, buckets.reports, key, { ...base, state: 'imported' } satisfies ImportedMarker);
  else if (issued > 0) await putJson(s3, buckets.reports, key, { ...base, state: 'sent-then-failed' } satisfies ImportedMarker);
  else if (holder) await releaseClaim(deps, key, holder);
}

/**
 * A stage that failed after it claimed the content (its answer lost, its retries used up) hands finalize only the
 * input and the error, yet its claim would stay `claimed` for ever and every redelivery be skipped. The stage writes
 * its summary before it claims, and sending starts only after the stage returns: so when this run's summary exists
 * and the claim under its content is still this run's `claimed` one, nothing was sent under it, and it is released.
 */
async function releaseAfterStageFailure(deps: StepDeps, dataflow: string, runId: string): Promise<void> {
  const { s3, buckets } = deps;
  const summary = await readJson<StageSummary>(s3, buckets.staging, KEYS.summary(runId));
  if (!summary) return;
  const key = KEYS.imported(dataflow, contentClaimId(summary));
  const holder = await readJson<ImportedMarker>(s3, buckets.reports, key);
  if (holder?.runId !== runId || holder.state !== 'claimed') return;
  deps.log.info('Claim released after the stage failed', { runId, contentSha256: summary.contentSha256 });
  await releaseClaim(deps, key, holder);
}

/**
 * Releases a claim under which nothing was sent: deleted, or, when this run had forced it over another run's claim,
 * that claim is put back (a forced run that failed sending nothing must not make an imported content importable again).
 */
async function releaseClaim(deps: StepDeps, key: string, holder: ImportedMarker): Promise<void> {
  if (holder.supersedes) await putJson(deps.s3, deps.buckets.reports, key, holder.supersedes);
  else await deleteObject(deps.s3, deps.buckets.reports, key);
}

const sumOf = (counts: Record<string, number>) => Object.values(counts).reduce((a, n) => a + n, 0);

function emitRunMetrics(deps: StepDeps, report: Report, byStage: Record<'validate' | 'api', Record<string, number>>): void {
  const metric = deps.metrics;
  if (!metric) return;
  const flow = report.dataflow;
  metric(METRICS.filesProcessed, 'Count', 1, flow);
  metric(METRICS.filesFailed, 'Count', report.status === 'FAILED' ? 1 : 0, flow);
  metric(METRICS.runDuration, 'Milliseconds', report.durationMs, flow);
  if (report.dryRun || report.status === 'SKIPPED_DUPLICATE' || report.status === 'EXPANDED') return;
  metric(METRICS.recordsAccepted, 'Count', report.rows.accepted, flow);
  metric(METRICS.recordsRejected, 'Count', report.rows.rejected, flow);
  const filtered = report.rows.filtered ?? 0;
  metric(METRICS.recordsFiltered, 'Count', filtered, flow);
  // Shares of the records the filter kept: records nobody meant to import do not dilute a file's rejections.
  const considered = report.rows.total - filtered;
  if (considered > 0) {
    metric(METRICS.rejectedPercent, 'Percent', (100 * report.rows.rejected) / considered, flow);
    metric(METRICS.retriesExhaustedPercent, 'Percent', (100 * (byStage.api[SEND_CODES.RETRIES_EXHAUSTED] ?? 0)) / considered, flow);
  }
  for (const stage of ['validate', 'api'] as const) {
    for (const [code, n] of Object.entries(byStage[stage])) metric(METRICS.recordsRejected, 'Count', n, flow, { stage, code });
  }
}

/**
 * A worker's fatal error as the run's: said of its chunk, never of the run (other workers may have sent theirs; the
 * report's numbers and sentBeforeFailure say what the run issued). Results written before workers said it of their
 * chunk end with "; nothing was sent", which is read the same way.
 */
function workerError(fatal: { code: string; message: string }, chunk: ChunkRef, chunks: number): { code: string; message: string } {
  const message = fatal.message.replace(/; nothing was sent$/, "; none of this chunk's records were sent");
  return { code: fatal.code, message: chunks > 1 ? `Chunk ${chunk.index + 1} of ${chunks} (from record ${chunk.firstRecord}): ${message}` : message };
}

async function readResults(deps: StepDeps, runId: string, chunks: ChunkRef[]): Promise<Array<SendOutput | undefined>> {
  const limit = pLimit(READS_IN_FLIGHT);
  return Promise.all(chunks.map((chunk) => limit(() => readJson<SendOutput>(deps.s3, deps.buckets.staging, KEYS.result(runId, chunk.index)))));
}

/** Streams every part into one CSV: the source header plus the reject columns, validation rejects first. */
async function mergeRejects(
  deps: StepDeps,
  key: string,
  summary: StageSummary,
  parts: Array<string | { orphan: ChunkRef }>,
  dialect: CsvDialect,
): Promise<void> {
  const { s3, buckets } = deps;
  const writer = createObjectWriter(s3, buckets.deadLetter, key);
  await writer.write(rejectHeaderLine(summary.header, dialect));
  for (const part of parts) {
    const partKey = typeof part === 'string' ? part : part.orphan.key;
    const body = await openObject(s3, buckets.staging, partKey);
    // A missing part would drop its records from the rejected file: stop, and let the state machine retry.
    if (!body) throw new Error(`Rejects part s3://${buckets.staging}/${partKey} is missing`);
    if (typeof part === 'string') {
      body.setEncoding('utf8');
      for await (const text of body) await writer.write(text as string);
    } else {
      // Records the stage rejected as repeats (the chunk's skip list) are in the duplicates' part already.
      const skipped = await skippedRecords(deps, part.orphan);
      for await (const line of createInterface({ input: body, crlfDelay: Infinity })) {
        if (line === '') continue;
        const record = decodeStagedRecord(line);
        if (skipped.has(record.n)) continue;
        await writer.write(
          rejectLine({ number: record.n, fields: record.f }, 'api', SEND_CODES.AMBIGUOUS, 'The worker sending this chunk failed; the record may or may not have been issued', dialect),
        );
      }
    }
  }
  await writer.end();
}
