import { createInterface } from 'node:readline';
import pLimit from 'p-limit';
import type { Dataflow } from '../config/schema';
import { type ChunkRef, type ImportedMarker, KEYS, type StageEvent, contentClaimId, type StageOutput, type StageSummary } from '../contracts';
import { createObjectWriter, openObject, openRange, putJson, putJsonIfAbsent, putText, readJson } from '../aws/s3';
import { REJECT_COLUMNS, rejectLine } from '../core/csv';
import { settlePartitionTyped } from '../core/partitions';
import { isRejectHeader } from '../core/replay';
import { decodeStagedRecord, stagedNumberOf } from '../core/staged-record';
import { VALIDATION_CODES } from '../codes';
import { ReplayFileError, SourceReadError } from '../errors';
import { UPLOADS_IN_FLIGHT } from './chunk-writer';
import { METRICS, type StepDeps } from './deps';
import { type StagePlan, readPlan } from './stage-plan';
import type { RangeChunk } from './chunk-writer';
import type { RangeResult } from './stage-range';

/** Staging objects read at once by settle and finish. */
const READS_IN_FLIGHT = UPLOADS_IN_FLIGHT * 4;

/** Reads every range's result (written by its worker); a missing one is a fault of the run. */
async function readRangeResults(deps: StepDeps, runId: string, plan: StagePlan): Promise<RangeResult[]> {
  const limit = pLimit(READS_IN_FLIGHT);
  return Promise.all(
    (plan.ranges ?? []).map((_, r) =>
      limit(async () => {
        const result = await readJson<RangeResult>(deps.s3, deps.buckets.staging, KEYS.rangeResult(runId, r));
        if (!result) throw new SourceReadError(`The result of range ${r}, s3://${deps.buckets.staging}/${KEYS.rangeResult(runId, r)}, is missing`);
        return result;
      }),
    ),
  );
}

/**
 * The settle phase: partition `index` of every range's keys (one ranged GET each) settled exactly: every record that
 * repeats the key of an earlier one, with that one's number, into KEYS.partitionDuplicates.
 */
export async function settleDuplicates(event: StageEvent, deps: StepDeps): Promise<void> {
  const { s3, buckets } = deps;
  const plan = await readPlan(deps, event.runId);
  const p = event.index ?? 0;
  const results = await readRangeResults(deps, event.runId, plan);
  const limit = pLimit(READS_IN_FLIGHT);
  const segments = await Promise.all(
    results.map((result) =>
      limit(async () => {
        const start = result.keyOffsets[p] ?? 0;
        const end = result.keyOffsets[p + 1] ?? result.keyBytes;
        if (end <= start) return Buffer.alloc(0);
        const parts: Buffer[] = [];
        for await (const piece of await openRange(s3, buckets.staging, result.keysKey, start, end)) parts.push(piece as Buffer);
        return Buffer.concat(parts);
      }),
    ),
  );
  // Binary, 8 bytes a repeat (its number, then the first's: two little-endian uint32 arrays), sorted by number: a
  // partition of a file repeated whole holds as many repeats as entries, which JSON pairs would hold at ~72 bytes each.
  const { numbers, firsts } = settlePartitionTyped(segments);
  await putText(s3, buckets.staging, KEYS.partitionDuplicates(event.runId, p), Buffer.concat([bytesOf(numbers), bytesOf(firsts)]), 'application/octet-stream');
}

function bytesOf(array: Uint32Array): Buffer {
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
}

/**
 * One partition's repeats, as settle wrote them: `numbers[k]` (ascending) repeats `firsts[k]`; `found[k]` once read
 * back from its chunk. Kept per partition, in typed arrays (9 bytes a repeat): a chunk's repeats are found by binary
 * search in each partition, so they are never merged into one list.
 */
interface PartitionRepeats {
  numbers: Uint32Array;
  firsts: Uint32Array;
  found: Uint8Array;
}

async function readRepeats(deps: StepDeps, runId: string, partitions: number): Promise<PartitionRepeats[]> {
  const limit = pLimit(READS_IN_FLIGHT);
  return Promise.all(
    Array.from({ length: partitions }, (_, p) =>
      limit(async () => {
        const body = await openObject(deps.s3, deps.buckets.staging, KEYS.partitionDuplicates(runId, p));
        if (!body) throw new SourceReadError(`The duplicates of partition ${p} are missing`);
        const parts: Buffer[] = [];
        for await (const piece of body) parts.push(piece as Buffer);
        const bytes = Buffer.concat(parts);
        if (bytes.length % 8 !== 0) throw new SourceReadError(`The duplicates of partition ${p} are cut short (${bytes.length} bytes)`);
        const count = bytes.length / 8;
        // Copied into fresh arrays: a Buffer's bytes may not sit at an offset a Uint32Array can view.
        const numbers = new Uint32Array(count);
        const firsts = new Uint32Array(count);
        for (let k = 0; k < count; k++) {
          numbers[k] = bytes.readUInt32LE(k * 4);
          firsts[k] = bytes.readUInt32LE((count + k) * 4);
        }
        return { numbers, firsts, found: new Uint8Array(count) };
      }),
    ),
  );
}

/** The first position of the ascending `sorted` at or after `n`. */
function lowerBound(sorted: Uint32Array, n: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < n) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A chunk's repeats, read back from it: their reject lines (record order) and the numbers to skip (sorted). */
async function repeatsOfChunk(deps: StepDeps, flow: Dataflow, chunk: RangeChunk, repeats: PartitionRepeats[]): Promise<{ lines: string[]; skip: number[] }> {
  /** Each repeat the chunk may hold: its partition and place there, by number. */
  const wanted = new Map<number, { part: PartitionRepeats; k: number }>();
  for (const part of repeats) {
    const to = lowerBound(part.numbers, chunk.maxRecord + 1);
    for (let k = lowerBound(part.numbers, chunk.minRecord); k < to; k++) if (!part.found[k]) wanted.set(part.numbers[k]!, { part, k });
  }
  const lines: Array<{ n: number; line: string }> = [];
  if (wanted.size === 0) return { lines: [], skip: [] };
  const body = await openObject(deps.s3, deps.buckets.staging, chunk.key);
  if (!body) throw new SourceReadError(`Staged chunk s3://${deps.buckets.staging}/${chunk.key} is missing`);
  for await (const line of createInterface({ input: body, crlfDelay: Infinity })) {
    if (line === '') continue;
    // The number first, without parsing the line: most lines of the chunk are no repeat.
    const at = wanted.get(stagedNumberOf(line));
    if (at === undefined) continue;
    const staged = decodeStagedRecord(line);
    at.part.found[at.k] = 1;
    const message = `The same customerId, badgeMetaId and earnEventDate as record ${at.part.firsts[at.k]}: not sent twice`;
    lines.push({ n: staged.n, line: rejectLine({ number: staged.n, fields: staged.f }, 'validate', VALIDATION_CODES.DUPLICATE_IN_FILE, message, flow.csv) });
  }
  lines.sort((a, b) => a.n - b.n);
  return { lines: lines.map((l) => l.line), skip: lines.map((l) => l.n) };
}

/**
 * Numbers every range's chunks in record order for the Distributed Map, and takes the repeats out of them: each is
 * rejected DUPLICATE_IN_FILE (its fields read back from its chunk) and listed in its chunk's skip list.
 */
async function chunkList(deps: StepDeps, flow: Dataflow, runId: string, results: RangeResult[], repeats: PartitionRepeats[]): Promise<{ chunks: ChunkRef[]; duplicatesKey?: string }> {
  const all = results.flatMap((r) => r.chunks);
  const chunks: ChunkRef[] = [];
  const writer = repeatCount(repeats) > 0 ? createObjectWriter(deps.s3, deps.buckets.staging, KEYS.duplicateRejects(runId)) : undefined;
  const limit = pLimit(UPLOADS_IN_FLIGHT);
  // In batches: a few chunks read back at once (each holds its repeats' reject lines), their rejects written in record order.
  for (let from = 0; from < all.length; from += UPLOADS_IN_FLIGHT) {
    const batch = all.slice(from, from + UPLOADS_IN_FLIGHT);
    const read = await Promise.all(batch.map((c) => limit(() => repeatsOfChunk(deps, flow, c, repeats))));
    for (const [k, chunk] of batch.entries()) {
      const index = from + k;
      const { lines, skip } = read[k]!;
      for (const line of lines) await writer!.write(line);
      if (skip.length > 0) await putJson(deps.s3, deps.buckets.staging, KEYS.chunkSkip(runId, index), skip);
      chunks.push({ index, key: chunk.key, records: chunk.lines - skip.length, firstRecord: chunk.firstRecord, ...(skip.length > 0 ? { skipKey: KEYS.chunkSkip(runId, index) } : {}) });
    }
  }
  await writer?.end();
  for (const part of repeats) {
    const missing = part.found.indexOf(0);
    if (missing >= 0) throw new SourceReadError(`Record ${part.numbers[missing]} repeats an earlier record but is in no staged chunk; nothing was sent`);
  }
  return { chunks, ...(writer ? { duplicatesKey: KEYS.duplicateRejects(runId) } : {}) };
}

function repeatCount(repeats: PartitionRepeats[]): number {
  return repeats.reduce((n, part) => n + part.numbers.length, 0);
}

/** The run's fields every stage output carries (StageRun.base in stage.ts). */
export type StageBase = Omit<StageOutput, 'chunkCount' | 'maxConcurrency' | 'records' | 'valid' | 'rejected'>;

/**
 * The finish phase: takes the repeats out, numbers the chunks, writes the summary and the chunk list, then claims the
 * content: the whole file has been read, validated and staged, and nothing has been sent.
 */
export async function finishStaging(event: StageEvent, deps: StepDeps, flow: Dataflow, base: StageBase): Promise<StageOutput> {
  const { input, runId } = event;
  const { s3, buckets } = deps;
  const plan = await readPlan(deps, runId);
  const results = await readRangeResults(deps, runId, plan);
  const repeats = await readRepeats(deps, runId, plan.partitions ?? 1);
  const { chunks, duplicatesKey } = await chunkList(deps, flow, runId, results, repeats);
  // A range worker refuses a replay file that is not a rejected file; one with no records has no range worker to.
  if (input.replay && !isRejectHeader(plan.header ?? [])) throw new ReplayFileError(`A replay file is a rejected-records file: its header must end with ${REJECT_COLUMNS.join(',')}`);
  const summary = summaryOf(flow, plan, results, repeatCount(repeats), duplicatesKey, Boolean(input.replay));
  await putJson(s3, buckets.staging, base.summaryKey, summary);
  await putJson(s3, buckets.staging, base.chunksKey, chunks);
  // Claimed now, atomically, so that of two deliveries of the content (two names, two folders, a zip holding it
  // twice) exactly one sends.
  const claim = input.dryRun ? undefined : await claimContent(deps, flow.name, contentClaimId(summary), { runId, key: input.key, force: Boolean(input.force) });
  const duplicateOf = claim && !claim.claimed ? claim.holder : undefined;
  const records = results.reduce((n, r) => n + r.records, 0);
  const rejected = results.reduce((n, r) => n + r.rejected, 0) + repeatCount(repeats);
  const filtered = results.reduce((n, r) => n + r.filtered, 0);
  deps.progress?.({ step: 'stage', records, rejected, filtered, done: true });
  deps.metrics?.(METRICS.recordsRead, 'Count', records, flow.name);
  const valid = records - rejected - filtered;
  deps.log.info('Staged', { key: input.key, records, valid, rejected, filtered, chunks: chunks.length, ranges: results.length, bytes: summary.bytes, duplicateOf: duplicateOf?.runId });
  // The plan stays in staging: what follows (send, finalize) does not read it.
  const rest: StageBase = { ...base };
  delete rest.plan;
  return {
    ...rest,
    ...(duplicateOf ? { duplicateOf } : {}),
    ...(claim?.claimed ? { claimed: true } : {}),
    chunkCount: chunks.length,
    maxConcurrency: Math.min(flow.destination.maxConcurrency, Math.max(1, chunks.length)),
    records,
    valid,
    rejected,
    ...(filtered > 0 ? { filtered } : {}),
  };
}

/** The file's summary: header, digests, rejections by code, and the parts in record order (ranges, then repeats). */
function summaryOf(flow: Dataflow, plan: StagePlan, results: RangeResult[], repeats: number, duplicatesKey: string | undefined, replay: boolean): StageSummary {
  const byCode: Record<string, number> = {};
  for (const r of results) for (const [code, n] of Object.entries(r.rejectionsByCode)) byCode[code] = (byCode[code] ?? 0) + n;
  if (repeats > 0) byCode[VALIDATION_CODES.DUPLICATE_IN_FILE] = (byCode[VALIDATION_CODES.DUPLICATE_IN_FILE] ?? 0) + repeats;
  const rejectedPartKeys = [...results.flatMap((r) => (r.rejectsKey ? [r.rejectsKey] : [])), ...(duplicatesKey ? [duplicatesKey] : [])];
  const filteredPartKeys = results.flatMap((r) => (r.filteredKey ? [r.filteredKey] : []));
  const filtered = results.reduce((n, r) => n + r.filtered, 0);
  const contentSha256 = plan.contentSha256 ?? '';
  return {
    // The records' header: a replay file's without its reject columns (replayRecords strips them from every record),
    // so the rejected file's header and its lines have as many columns.
    header: replay ? (plan.header ?? []).slice(0, -REJECT_COLUMNS.length) : (plan.header ?? []),
    delimiter: flow.csv.delimiter,
    // A plain file was never read in one pass: its content digest stands for the delivered bytes' (they are the same bytes).
    sha256: plan.deliveredSha256 ?? contentSha256,
    ...(!plan.deliveredSha256 && plan.tree ? { sha256Tree: true } : {}),
    contentSha256,
    ...(plan.tree ? { contentTree: true } : {}),
    bytes: plan.deliveredBytes,
    rejectionsByCode: byCode,
    ...(rejectedPartKeys.length > 0 ? { rejectedPartKeys } : {}),
    ...(flow.filter ? { filtered: { count: filtered, expression: flow.filter.expression, ...(filteredPartKeys.length > 0 ? { partKeys: filteredPartKeys } : {}) } } : {}),
  };
}

/**
 * Claims a content (its SHA-256) for this run with a conditional write: true when this run may send it. When another
 * run holds the claim (in flight, finished, or failed after sending), returns that run's marker. A retried stage of
 * the same run finds its own claim and keeps it, but only while it is `claimed`: a settled claim under the same run id
 * is a finished run's (Step Functions lets an execution name be used again after 90 days). `force` takes the claim
 * whatever holds it (an operator's choice), keeping the holder it replaced in `supersedes` for a release to restore.
 */
export async function claimContent(
  deps: Pick<StepDeps, 's3' | 'buckets' | 'log' | 'now'>,
  dataflow: string,
  sha256: string,
  run: { runId: string; key: string; force: boolean },
): Promise<{ claimed: true } | { claimed: false; holder: ImportedMarker }> {
  const { s3, buckets } = deps;
  const key = KEYS.imported(dataflow, sha256);
  const marker: ImportedMarker = { runId: run.runId, key: run.key, state: 'claimed', claimedAt: new Date((deps.now ?? Date.now)()).toISOString() };
  const ours = (holder: ImportedMarker) => holder.runId === run.runId && holder.state === 'claimed';
  if (run.force) {
    const holder = await readJson<ImportedMarker>(s3, buckets.reports, key);
    // A retried forced stage finds its own claim: what it replaced is still what that claim replaced.
    const supersedes = holder && ours(holder) ? holder.supersedes : holder;
    await putJson(s3, buckets.reports, key, { ...marker, ...(supersedes ? { supersedes } : {}) });
    return { claimed: true };
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await putJsonIfAbsent(s3, buckets.reports, key, marker)) return { claimed: true };
    const holder = await readJson<ImportedMarker>(s3, buckets.reports, key);
    // Released between the two calls (a failed run that sent nothing): try again.
    if (!holder) continue;
    if (ours(holder)) return { claimed: true };
    deps.log.info('Content already claimed', { sha256, heldBy: holder.runId, state: holder.state ?? 'imported' });
    return { claimed: false, holder };
  }
  throw new SourceReadError(`The content claim ${key} kept changing while it was read; the run stops before sending anything`);
}
