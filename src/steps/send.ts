import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { selectDataflow } from '../config/load';
import type { Dataflow } from '../config/schema';
import { KEYS, type SendEvent, type SendOutput } from '../contracts';
import { openObject, putJson, putText } from '../aws/s3';
import { type AuthProvider, authProvider } from '../api/auth';
import { BadgesApiClient, type ItemOutcome, SendAuthError } from '../api/client';
import { type CsvRecord, rejectLine } from '../core/csv';
import type { ApiItem } from '../core/mapping';
import { type StagedRecord, decodeStagedRecord } from '../core/staged-record';
import { API_CODES } from '../codes';
import { AuthError, BadgesImportError, SourceReadError } from '../errors';
import { METRICS, type StepDeps } from './deps';
import { skippedRecords } from './skip-list';

/**
 * Sends one chunk in batches and settles every record: accepted, or rejected with the API's code (or the client's
 * RETRIES_EXHAUSTED / AMBIGUOUS). Writes the rejects and a result object that the finalize step totals.
 */
export async function send(event: SendEvent, deps: StepDeps): Promise<SendOutput> {
  const flow = selectDataflow(deps.config, event.dataflow);
  const { client, auth } = clientFor(flow, event, deps);
  const { s3, buckets } = deps;
  const body = await openObject(s3, buckets.staging, event.chunk.key);
  if (!body) throw new SourceReadError(`Staged chunk s3://${buckets.staging}/${event.chunk.key} is missing`);
  const state: SendState = { event, flow, deps, client, output: { index: event.chunk.index, records: 0, accepted: 0, rejected: 0, rejectionsByCode: {} }, rejects: [] };
  await checkCredentials(state, auth);
  await sendEveryRecord(state, body, await skippedRecords(deps, event.chunk));
  state.output.stats = { ...client.stats };
  emitSendMetrics(state);
  return writeResult(state);
}

/** A worker's state while it sends its chunk: the client, and the result it writes for finalize. */
interface SendState {
  readonly event: SendEvent;
  readonly flow: Dataflow;
  readonly deps: StepDeps;
  readonly client: BadgesApiClient;
  /** The chunk's result: its counts, and the fatal error that stopped it (set once, then every later record is rejected with it). */
  readonly output: SendOutput;
  /** The rejected records, as CSV lines. */
  readonly rejects: string[];
}

/** The API client of this worker, on the container's session (one OAuth token serves every chunk it sends) and pacer. */
function clientFor(flow: Dataflow, event: SendEvent, deps: StepDeps): { client: BadgesApiClient; auth: AuthProvider } {
  const { destination } = flow;
  const session = deps.container?.sessions.get(flow.name) ?? {
    auth: authProvider(destination.auth, deps.secrets, { baseUrl: destination.baseUrl, fetch: deps.fetch }),
    badgeChecks: new Map(),
  };
  deps.container?.sessions.set(flow.name, session);
  // Each worker takes an equal share of the dataflow's rate, so all of them together stay within it.
  const share = destination.maxRequestsPerMinute / Math.max(1, event.concurrency ?? destination.maxConcurrency);
  const pacerKey = `${flow.name}@${share}`;
  const client = new BadgesApiClient({
    destination,
    auth: session.auth,
    requestsPerMinute: share,
    fetch: deps.fetch,
    pacer: deps.container?.pacers.get(pacerKey),
    badgeChecks: session.badgeChecks,
  });
  deps.container?.pacers.set(pacerKey, client.pacer);
  return { client, auth: session.auth };
}

/** Credentials first: a missing secret means no record of this chunk can be sent, and none was. */
async function checkCredentials(state: SendState, auth: AuthProvider): Promise<void> {
  try {
    await auth.headers();
  } catch (error) {
    if (!(error instanceof BadgesImportError)) throw error;
    // Of this chunk only: other workers of the run may have sent theirs (finalize reports the run's numbers).
    state.output.fatal = { code: error.code, message: `${error.message}; none of this chunk's records were sent` };
  }
}

/** Reads the chunk's staged records and sends them in batches of the destination's size, less the skipped ones. */
async function sendEveryRecord(state: SendState, body: Readable, skipped: ReadonlySet<number>): Promise<void> {
  let batch: StagedRecord[] = [];
  for await (const line of createInterface({ input: body, crlfDelay: Infinity })) {
    if (line === '') continue;
    const record = decodeStagedRecord(line);
    if (skipped.has(record.n)) continue;
    batch.push(record);
    state.output.records += 1;
    if (batch.length >= state.flow.destination.batchSize) {
      await settleBatch(state, batch);
      batch = [];
    }
  }
  await settleBatch(state, batch);
}

/**
 * Every record of the batch settles once: accepted, or rejected with the API's answer, the fatal error that stopped
 * the chunk, or 1054 when its badge is not in the org (checked before sending).
 */
async function settleBatch(state: SendState, records: StagedRecord[]): Promise<void> {
  const { output, flow, deps, event } = state;
  if (records.length === 0) return;
  if (output.fatal) {
    for (const record of records) reject(state, record, output.fatal.code, output.fatal.message);
    return;
  }
  const toSend = flow.destination.validateBadgeIds ? await withKnownBadges(state.client, records) : records;
  const sentOutcomes = await sendUnlessRefused(state, toSend);
  const bySent = new Map(toSend.map((r, i) => [r, sentOutcomes[i]]));
  for (const record of records) {
    const outcome = bySent.has(record)
      ? (bySent.get(record) ?? { accepted: false, code: output.fatal!.code, message: `${output.fatal!.message}; not sent` })
      : { accepted: false as const, code: API_CODES.BADGE_NOT_FOUND, message: `GLOBAL.BADGE_NOT_FOUND: badge ${record.i.badgeMetaId} is not in the org (checked before sending)` };
    if (outcome.accepted) output.accepted += 1;
    else reject(state, record, outcome.code, outcome.message);
  }
  deps.progress?.({ step: 'send', chunk: event.chunk.index, records: records.length, accepted: output.accepted, rejected: output.rejected });
}

/** Sends the records; a refused credential stops the chunk (`output.fatal`), keeping the outcomes settled before it. */
async function sendUnlessRefused(state: SendState, toSend: StagedRecord[]): Promise<ReadonlyArray<ItemOutcome | undefined>> {
  try {
    return await sendInOrder(state.client, toSend);
  } catch (error) {
    if (!(error instanceof AuthError)) throw error;
    state.output.fatal = { code: error.code, message: error.message };
    // What was settled before the refusal stands (an issued badge must not be reported unsent); the rest is not sent.
    return error instanceof SendAuthError ? error.settled : [];
  }
}

function reject(state: SendState, record: StagedRecord, code: string, message: string): void {
  const { output } = state;
  output.rejected += 1;
  output.rejectionsByCode[code] = (output.rejectionsByCode[code] ?? 0) + 1;
  const csvRecord: CsvRecord = { number: record.n, fields: record.f };
  state.rejects.push(rejectLine(csvRecord, 'api', code, message, state.flow.csv));
}

/** The records whose badge exists (or cannot be checked): the others are answered 1054 without being sent. */
async function withKnownBadges(client: BadgesApiClient, records: StagedRecord[]): Promise<StagedRecord[]> {
  const exists = await Promise.all(records.map((r) => client.badgeExists(r.i.badgeMetaId)));
  return records.filter((_, i) => exists[i] !== false);
}

/** Sends a batch, looking up first the records marked to be checked; outcomes in the batch's order. */
async function sendInOrder(client: BadgesApiClient, records: StagedRecord[]): Promise<Array<ItemOutcome | undefined>> {
  const checked = records.filter((r) => r.c);
  if (checked.length === 0) return records.length > 0 ? client.send(records.map((r) => r.i)) : [];
  const plain = records.filter((r) => !r.c);
  const byRecord = new Map<StagedRecord, ItemOutcome | undefined>();
  try {
    await settleInto(byRecord, checked, (items) => client.sendUnlessIssued(items));
    await settleInto(byRecord, plain, (items) => client.send(items));
  } catch (error) {
    if (error instanceof SendAuthError) throw new SendAuthError(error.message, records.map((r) => byRecord.get(r)));
    throw error;
  }
  return records.map((r) => byRecord.get(r));
}

/** Runs one part of a batch, noting each record's outcome (also those settled before a refused credential). */
async function settleInto(byRecord: Map<StagedRecord, ItemOutcome | undefined>, part: StagedRecord[], run: (items: ApiItem[]) => Promise<ItemOutcome[]>): Promise<void> {
  if (part.length === 0) return;
  try {
    (await run(part.map((r) => r.i))).forEach((o, k) => byRecord.set(part[k]!, o));
  } catch (error) {
    if (error instanceof SendAuthError) error.settled.forEach((o, k) => byRecord.set(part[k]!, o));
    throw error;
  }
}

function emitSendMetrics(state: SendState): void {
  const metric = state.deps.metrics;
  const { stats } = state.output;
  if (!metric || !stats) return;
  const flow = state.flow.name;
  metric(METRICS.apiRequests, 'Count', stats.requests, flow);
  metric(METRICS.apiThrottles, 'Count', stats.throttled, flow);
  metric(METRICS.apiRetries, 'Count', stats.retried, flow);
  metric(METRICS.apiReconciled, 'Count', stats.reconciled, flow);
  if (stats.answered) metric(METRICS.apiLatency, 'Milliseconds', (stats.latencyMs ?? 0) / stats.answered, flow);
}

/** Writes the chunk's rejects and its result, which finalize totals. */
async function writeResult(state: SendState): Promise<SendOutput> {
  const { output, deps, event } = state;
  const { s3, buckets } = deps;
  const { runId, chunk } = event;
  if (state.rejects.length > 0) {
    output.rejectedPartKey = KEYS.apiRejects(runId, chunk.index);
    await putText(s3, buckets.staging, output.rejectedPartKey, state.rejects.join(''), 'text/csv; charset=utf-8');
  }
  await putJson(s3, buckets.staging, KEYS.result(runId, chunk.index), output);
  deps.log.info('Chunk sent', { runId, chunk: chunk.index, records: output.records, accepted: output.accepted, rejected: output.rejected });
  return output;
}
