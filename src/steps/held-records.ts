import { createInterface } from 'node:readline';
import pLimit from 'p-limit';
import { type ChunkRef, KEYS } from '../contracts';
import { type ObjectWriter, createObjectWriter, openObject } from '../aws/s3';
import { HeldKeys, type HeldSettlement, KEY_BYTES, packKey } from '../core/duplicates';
import { stagedItemOf, stagedNumberOf } from '../core/staged-record';
import { SourceReadError, TooManyDuplicatesError } from '../errors';
import { type ChunkWriter, UPLOADS_IN_FLIGHT } from './chunk-writer';
import type { StepDeps } from './deps';

/**
 * Records held back as possible duplicates, at most. Their keys are kept outside the heap (32 bytes each) until they
 * are settled; settling needs about 40 bytes more each, in typed arrays. Measured with the stack's node flags
 * (bench/duplicates.ts): see docs/deploy.md, "Duplicate detection and file size".
 */
export const MAX_HELD_RECORDS = 2_000_000;

/** A held record's verdict: `duplicateOf` is the number of the earlier record it repeats, or 0 (it is sent). */
export interface HeldVerdict {
  line: string;
  duplicateOf: number;
}

/**
 * Records the duplicate filter may have seen before: held back while the file is read (their staged lines in a
 * staging object, their packed keys off the heap), then settled exactly once the whole file is staged.
 */
export class HeldRecords {
  private readonly keys = new HeldKeys();
  private writer: ObjectWriter | undefined;

  constructor(
    private readonly deps: StepDeps,
    private readonly runId: string,
  ) {}

  /** Records held so far. */
  get count(): number {
    return this.keys.count;
  }

  /** Whether any record was held. */
  get any(): boolean {
    return this.writer !== undefined;
  }

  /** Holds record `number`, its packed key in `key` and its staged line. */
  async hold(key: Buffer, number: number, line: string): Promise<void> {
    if (this.keys.count >= MAX_HELD_RECORDS) {
      throw new TooManyDuplicatesError(`More than ${MAX_HELD_RECORDS} records may repeat earlier ones (same customerId, badgeMetaId and earnEventDate): remove the repeats or split the file; nothing was sent`);
    }
    this.keys.add(key, number);
    this.writer ??= createObjectWriter(this.deps.s3, this.deps.buckets.staging, KEYS.held(this.runId), 'application/x-ndjson');
    await this.writer.write(`${line}\n`);
  }

  /**
   * Settles the held records, in the order they were held, once every chunk of the file is uploaded: a key the filter
   * was unsure about repeats a record only if one with the same key was sent as new (in a chunk) or held before it.
   */
  async *settle(chunks: ChunkWriter): AsyncGenerator<HeldVerdict> {
    const { s3, buckets } = this.deps;
    await this.writer?.end();
    const settlement = this.keys.settle();
    await markFirstSent(this.deps, this.runId, chunks.chunks, settlement, chunks.indexParts);
    const body = await openObject(s3, buckets.staging, KEYS.held(this.runId));
    if (!body) throw new SourceReadError(`Held records s3://${buckets.staging}/${KEYS.held(this.runId)} are missing`);
    // The held lines come back in the order they were held: the entry number is their place in that order.
    let entry = 0;
    for await (const line of createInterface({ input: body, crlfDelay: Infinity })) {
      if (line === '') continue;
      yield { line, duplicateOf: settlement.duplicateOf(entry++) };
    }
  }

  /** Gives the held-records object up (the stage is failing). */
  async abort(): Promise<void> {
    await this.writer?.abort();
  }
}

/**
 * Tells the settlement which held keys went out as new, and as which record. The key index (fingerprint and number of
 * every record sent as new, 8 bytes each) says which records may have a held key; only the chunks holding those are
 * read back, to compare whole keys.
 */
async function markFirstSent(deps: StepDeps, runId: string, chunks: readonly ChunkRef[], settlement: HeldSettlement, indexParts: number): Promise<void> {
  const { s3, buckets } = deps;
  const candidates = await readCandidates(deps, runId, settlement, indexParts);
  // Chunks are in record order: the chunk of a number is the last one starting at or before it.
  const starts = chunks.map((c) => c.firstRecord);
  const toRead = new Set<number>();
  for (const n of candidates) toRead.add(lastAtOrBefore(starts, n));
  const key = Buffer.alloc(KEY_BYTES);
  const limit = pLimit(UPLOADS_IN_FLIGHT * 2);
  await Promise.all(
    [...toRead].map((index) =>
      limit(async () => {
        const chunk = chunks[index]!;
        const chunkBody = await openObject(s3, buckets.staging, chunk.key);
        if (!chunkBody) throw new SourceReadError(`Staged chunk s3://${buckets.staging}/${chunk.key} is missing`);
        for await (const line of createInterface({ input: chunkBody, crlfDelay: Infinity })) {
          if (line === '') continue;
          const n = stagedNumberOf(line);
          if (!includes(candidates, n)) continue;
          // Packed and marked in one synchronous step: the chunks read concurrently share the key buffer.
          packKey(stagedItemOf(line), key);
          settlement.markSent(key, n);
        }
      }),
    ),
  );
}

/**
 * The numbers of the records sent as new whose fingerprint a held key shares, from the key index, sorted: kept in a
 * Uint32Array (4 bytes each, off the heap).
 */
async function readCandidates(deps: StepDeps, runId: string, settlement: HeldSettlement, indexParts: number): Promise<Uint32Array> {
  const { s3, buckets } = deps;
  let candidates = new Uint32Array(1024);
  let count = 0;
  for (let part = 0; part < indexParts; part++) {
    const body = await openObject(s3, buckets.staging, KEYS.keyIndex(runId, part));
    if (!body) throw new SourceReadError(`The key index s3://${buckets.staging}/${KEYS.keyIndex(runId, part)} is missing`);
    let rest = Buffer.alloc(0);
    for await (const piece of body) {
      const data = rest.length > 0 ? Buffer.concat([rest, piece as Buffer]) : (piece as Buffer);
      const whole = data.length - (data.length % 8);
      for (let at = 0; at < whole; at += 8) {
        if (!settlement.mayHold(data.readUInt32LE(at))) continue;
        if (count === candidates.length) {
          const grown = new Uint32Array(candidates.length * 2);
          grown.set(candidates);
          candidates = grown;
        }
        candidates[count++] = data.readUInt32LE(at + 4);
      }
      rest = Buffer.from(data.subarray(whole));
    }
  }
  return candidates.subarray(0, count).sort();
}

/** Whether the ascending `sorted` holds `n`. */
function includes(sorted: Uint32Array, n: number): boolean {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < n) lo = mid + 1;
    else hi = mid;
  }
  return lo < sorted.length && sorted[lo] === n;
}

/** The position of the last of the ascending `starts` at or before `n` (0 when none is). */
function lastAtOrBefore(starts: readonly number[], n: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= n) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
