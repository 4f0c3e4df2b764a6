import { createInterface } from 'node:readline';
import { selectDataflow } from '../config/load';
import { KEYS, type SendEvent, type SendOutput } from '../contracts';
import { openObject, putJson, putText } from '../aws/s3';
import { authProvider } from '../api/auth';
import { BadgesApiClient, type ItemOutcome, SendAuthError } from '../api/client';
import { type CsvRecord, rejectLine } from '../core/csv';
import type { ApiItem } from '../core/mapping';
import { API_CODES } from '../codes';
import { AuthError, BadgesImportError, SourceReadError } from '../errors';
import { METRICS, type StepDeps } from './deps';

/** A staged record: its number, its source fields (for the rejected file) and the API item. */
interface StagedRecord {
  n: number;
  f: string[];
  i: ApiItem;
  /** Look it up before sending (a replayed AMBIGUOUS record). */
  c?: 1;
}

/**
 * Sends one chunk in batches and settles every record: accepted, or rejected with the API's code (or the client's
 * RETRIES_EXHAUSTED / AMBIGUOUS). Writes the rejects and a result object that the finalize step totals.
 */
export async function send(event: SendEvent, deps: StepDeps): Promise<SendOutput> {
  const { runId, chunk } = event;
  const flow = selectDataflow(deps.config, event.dataflow);
  const { destination } = flow;
  const { s3, buckets } = deps;
  // Credentials and badge checks live as long as the container: one OAuth token serves every chunk it sends.
  const session = deps.container?.sessions.get(flow.name) ?? {
    auth: authProvider(destination.auth, deps.secrets, { baseUrl: destination.baseUrl, fetch: deps.fetch }),
    badgeChecks: new Map(),
  };
  deps.container?.sessions.set(flow.name, session);
  const { auth } = session;
  // Each worker takes an equal share of the dataflow's rate, so all of them together stay within it.
  const share = destination.maxRequestsPerMinute / Math.max(1, event.concurrency ?? destination.maxConcurrency);
  const pacerKey = `${flow.name}@${share}`;
  const client = new BadgesApiClient({
    destination,
    auth,
    requestsPerMinute: share,
    fetch: deps.fetch,
    pacer: deps.container?.pacers.get(pacerKey),
    badgeChecks: session.badgeChecks,
  });
  deps.container?.pacers.set(pacerKey, client.pacer);

  const body = await openObject(s3, buckets.staging, chunk.key);
  if (!body) throw new SourceReadError(`Staged chunk s3://${buckets.staging}/${chunk.key} is missing`);

  const output: SendOutput = { index: chunk.index, records: 0, accepted: 0, rejected: 0, rejectionsByCode: {} };
  const rejects: string[] = [];
  const reject = (record: StagedRecord, code: string, message: string) => {
    output.rejected += 1;
    output.rejectionsByCode[code] = (output.rejectionsByCode[code] ?? 0) + 1;
    const csvRecord: CsvRecord = { number: record.n, fields: record.f };
    rejects.push(rejectLine(csvRecord, 'api', code, message, flow.csv));
  };

  // Credentials first: a missing secret means no record of this chunk can be sent, and none was.
  try {
    await auth.headers();
  } catch (error) {
    if (!(error instanceof BadgesImportError)) throw error;
    // Of this chunk only: other workers of the run may have sent theirs (finalize reports the run's numbers).
    output.fatal = { code: error.code, message: `${error.message}; none of this chunk's records were sent` };
  }

  /** The records whose badge exists (or cannot be checked): the others are answered 1054 without being sent. */
  const withKnownBadges = async (records: StagedRecord[]) => {
    const exists = await Promise.all(records.map((r) => client.badgeExists(r.i.badgeMetaId)));
    return records.filter((_, i) => exists[i] !== false);
  };

  /** Sends a batch, looking up first the records marked to be checked; outcomes in the batch's order. */
  const sendInOrder = async (records: StagedRecord[]): Promise<Array<ItemOutcome | undefined>> => {
    const checked = records.filter((r) => r.c);
    if (checked.length === 0) return records.length > 0 ? client.send(records.map((r) => r.i)) : [];
    const plain = records.filter((r) => !r.c);
    const byRecord = new Map<StagedRecord, ItemOutcome | undefined>();
    const settle = async (part: StagedRecord[], run: (items: ApiItem[]) => Promise<ItemOutcome[]>) => {
      if (part.length === 0) return;
      try {
        (await run(part.map((r) => r.i))).forEach((o, k) => byRecord.set(part[k]!, o));
      } catch (error) {
        if (error instanceof SendAuthError) error.settled.forEach((o, k) => byRecord.set(part[k]!, o));
        throw error;
      }
    };
    try {
      await settle(checked, (items) => client.sendUnlessIssued(items));
      await settle(plain, (items) => client.send(items));
    } catch (error) {
      if (error instanceof SendAuthError) throw new SendAuthError(error.message, records.map((r) => byRecord.get(r)));
      throw error;
    }
    return records.map((r) => byRecord.get(r));
  };

  let batch: StagedRecord[] = [];
  const sendBatch = async () => {
    const records = batch;
    batch = [];
    if (records.length === 0) return;
    if (output.fatal) {
      for (const record of records) reject(record, output.fatal.code, output.fatal.message);
      return;
    }
    const toSend = destination.validateBadgeIds ? await withKnownBadges(records) : records;
    let sentOutcomes: ReadonlyArray<ItemOutcome | undefined>;
    try {
      sentOutcomes = await sendInOrder(toSend);
    } catch (error) {
      if (!(error instanceof AuthError)) throw error;
      output.fatal = { code: error.code, message: error.message };
      // What was settled before the refusal stands (an issued badge must not be reported unsent); the rest is not sent.
      sentOutcomes = error instanceof SendAuthError ? error.settled : [];
    }
    const bySent = new Map(toSend.map((r, i) => [r, sentOutcomes[i]]));
    for (const record of records) {
      const outcome = bySent.has(record)
        ? (bySent.get(record) ?? { accepted: false, code: output.fatal!.code, message: `${output.fatal!.message}; not sent` })
        : { accepted: false as const, code: API_CODES.BADGE_NOT_FOUND, message: `GLOBAL.BADGE_NOT_FOUND: badge ${record.i.badgeMetaId} is not in the org (checked before sending)` };
      if (outcome.accepted) output.accepted += 1;
      else reject(record, outcome.code, outcome.message);
    }
    deps.progress?.({ step: 'send', chunk: chunk.index, records: records.length, accepted: output.accepted, rejected: output.rejected });
  };

  for await (const line of createInterface({ input: body, crlfDelay: Infinity })) {
    if (line === '') continue;
    batch.push(JSON.parse(line) as StagedRecord);
    output.records += 1;
    if (batch.length >= destination.batchSize) await sendBatch();
  }
  await sendBatch();
  output.stats = { ...client.stats };
  const metric = deps.metrics;
  if (metric) {
    const { stats } = output;
    metric(METRICS.apiRequests, 'Count', stats.requests, flow.name);
    metric(METRICS.apiThrottles, 'Count', stats.throttled, flow.name);
    metric(METRICS.apiRetries, 'Count', stats.retried, flow.name);
    metric(METRICS.apiReconciled, 'Count', stats.reconciled, flow.name);
    if (stats.answered) metric(METRICS.apiLatency, 'Milliseconds', (stats.latencyMs ?? 0) / stats.answered, flow.name);
  }

  if (rejects.length > 0) {
    output.rejectedPartKey = KEYS.apiRejects(runId, chunk.index);
    await putText(s3, buckets.staging, output.rejectedPartKey, rejects.join(''), 'text/csv; charset=utf-8');
  }
  await putJson(s3, buckets.staging, KEYS.result(runId, chunk.index), output);
  deps.log.info('Chunk sent', { runId, chunk: chunk.index, records: output.records, accepted: output.accepted, rejected: output.rejected });
  return output;
}
