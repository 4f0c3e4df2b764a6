import { KEY_BYTES } from './duplicates';

/**
 * Exact duplicate detection at any file size, by hash partitioning. Each range worker puts the packed key of every
 * record it stages, with the record's number, into the partition its key hashes to (KeyPartitions), and writes one
 * object laid out by partition. Then one settle worker per partition reads its segment from every range: equal keys
 * always hash to the same partition, so every repeat in the file is found by the one worker that holds its key
 * (settlePartition). Memory is 32 bytes an entry in Buffers and typed arrays: no JavaScript object per record.
 */

/** Bytes of one entry in a segment: the packed key (KEY_BYTES), then the record number (uint32, little-endian). */
export const ENTRY_BYTES = 32;

/**
 * The entries one settle worker takes. Measured by `npm run bench:duplicates` (the worker bundled, the stack's node
 * flags, ranged GETs from the embedded S3, the duplicates written back as JSON): peak RSS 222 MB at 750,000 entries of
 * which 95% repeat (the result, one small array per duplicate, is what grows), 182 MB at 50%, against 77 MB for the
 * idle worker; 1,000,000 entries at 95% reached 269 MB, past the 256 MB.
 */
export const ENTRIES_PER_PARTITION = 750_000;

/** The number of partitions for a file of `records` records: at least one, each expected to hold ENTRIES_PER_PARTITION at most. */
export function partitionsFor(records: number): number {
  return Math.max(1, Math.ceil(records / ENTRIES_PER_PARTITION));
}

/** Seeds of the two independent hashes: one picks the partition, the other is the settlement's fingerprint. */
const PARTITION_SEED = 0x9747b28c;
const FINGERPRINT_SEED = 0x811c9dc5;

/**
 * Murmur3 (32-bit) over the packed key's seven 32-bit words. It mixes every bit of the key into every bit of the
 * hash, so sequential customer ids and a handful of badge ids still spread evenly.
 */
function murmur(key: Buffer, at: number, seed: number): number {
  let h = seed;
  for (let i = 0; i < KEY_BYTES; i += 4) {
    let k = key.readUInt32LE(at + i);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= KEY_BYTES;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The partition (0 … partitions − 1) of the packed key at `key[at…]`: every record with this key lands in it. */
export function partitionOf(key: Buffer, at: number, partitions: number): number {
  // The hash scaled to the partition count (exact in a double: 2^32 · partitions < 2^53), not taken modulo.
  return Math.floor((murmur(key, at, PARTITION_SEED) * partitions) / 2 ** 32);
}

/**
 * The settlement's 32-bit fingerprint of the packed key at `key[at…]` (a hash independent of the partition's, so
 * the keys of one partition do not share its bits). Exported for tests that need two keys with one fingerprint.
 */
export function fingerprintOf(key: Buffer, at = 0): number {
  return murmur(key, at, FINGERPRINT_SEED);
}

/** A partition's first block holds this many entries; each next block doubles, up to MAX_BLOCK_ENTRIES. */
const FIRST_BLOCK_ENTRIES = 256;
const MAX_BLOCK_ENTRIES = 32_768;

/**
 * One range's keys, by partition: each partition's entries (packed key, record number) in Buffers grown in blocks
 * (8 KiB first, doubling to 1 MiB), so many partitions cost little while empty and a large one costs 32 bytes an entry.
 */
export class KeyPartitions {
  private readonly blocks: Buffer[][];
  /** Entries in each partition's last block. */
  private readonly filled: Uint32Array;
  /** Entries in each partition. */
  private readonly counts: Float64Array;
  /** Entries added in all. */
  count = 0;

  constructor(readonly partitions: number) {
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > 2 ** 20) throw new RangeError(`The partition count must be an integer from 1 to ${2 ** 20}, not ${partitions}`);
    this.blocks = Array.from({ length: partitions }, () => []);
    this.filled = new Uint32Array(partitions);
    this.counts = new Float64Array(partitions);
  }

  /** Adds record `number` (an integer from 0 to 2^32 − 1) with the packed key at `key[at…]`. */
  add(key: Buffer, at: number, number: number): void {
    const p = partitionOf(key, at, this.partitions);
    const blocks = this.blocks[p]!;
    let block = blocks[blocks.length - 1];
    if (block === undefined || this.filled[p]! * ENTRY_BYTES === block.length) {
      const entries = block === undefined ? FIRST_BLOCK_ENTRIES : Math.min(MAX_BLOCK_ENTRIES, (block.length / ENTRY_BYTES) * 2);
      block = Buffer.allocUnsafe(entries * ENTRY_BYTES);
      blocks.push(block);
      this.filled[p] = 0;
    }
    const offset = this.filled[p]! * ENTRY_BYTES;
    key.copy(block, offset, at, at + KEY_BYTES);
    block.writeUInt32LE(number, offset + KEY_BYTES);
    this.filled[p]! += 1;
    this.counts[p]! += 1;
    this.count += 1;
  }

  /** Entries in partition `p`. */
  countOf(p: number): number {
    return this.counts[p]!;
  }

  /**
   * The object a range worker writes: every partition's entries, partition after partition; `offsets[p]` …
   * `offsets[p + 1]` are partition p's bytes (offsets.length = partitions + 1). The blocks are let go as they are
   * copied, so the peak is about twice the entries' bytes for a moment.
   */
  toObject(): { body: Buffer; offsets: number[] } {
    const body = Buffer.allocUnsafe(this.count * ENTRY_BYTES);
    const offsets: number[] = [0];
    let at = 0;
    for (let p = 0; p < this.partitions; p++) {
      const blocks = this.blocks[p]!;
      for (let b = 0; b < blocks.length; b++) {
        const bytes = b === blocks.length - 1 ? this.filled[p]! * ENTRY_BYTES : blocks[b]!.length;
        at += blocks[b]!.copy(body, at, 0, bytes);
      }
      blocks.length = 0;
      this.filled[p] = 0;
      offsets.push(at);
    }
    return { body, offsets };
  }
}

/**
 * Reorders `order` (indexes of entries) stably by `keys[index]` (uint32), in two passes of 16 bits: a radix sort,
 * linear in the entries whatever their count. `scratch` has order's length; the result is back in `order`.
 */
function radixSort(order: Uint32Array, keys: Uint32Array, scratch: Uint32Array): void {
  const counts = new Uint32Array(65_536);
  let from = order;
  let to = scratch;
  for (let shift = 0; shift < 32; shift += 16) {
    counts.fill(0);
    for (let i = 0; i < from.length; i++) counts[(keys[from[i]!]! >>> shift) & 0xffff]! += 1;
    let sum = 0;
    for (let d = 0; d < 65_536; d++) {
      const c = counts[d]!;
      counts[d] = sum;
      sum += c;
    }
    for (let i = 0; i < from.length; i++) {
      const e = from[i]!;
      to[counts[(keys[e]! >>> shift) & 0xffff]!++] = e;
    }
    [from, to] = [to, from];
  }
  // Two passes: the result is back in `order`.
}

/**
 * The entries of several segments, numbered 0 … count − 1 in segment order, read where they lie: the segments are
 * not copied into one Buffer (that would double a settle worker's largest allocation).
 */
class Entries {
  private readonly segments: Buffer[];
  /** The number of the first entry of each segment, and the count after the last. */
  private readonly starts: Float64Array;
  readonly count: number;

  constructor(segments: readonly Buffer[]) {
    for (const s of segments) {
      if (s.length % ENTRY_BYTES !== 0) throw new RangeError(`A key segment's length (${s.length} bytes) is not a multiple of ${ENTRY_BYTES}`);
    }
    this.segments = segments.filter((s) => s.length > 0);
    this.starts = new Float64Array(this.segments.length + 1);
    for (let i = 0; i < this.segments.length; i++) this.starts[i + 1] = this.starts[i]! + this.segments[i]!.length / ENTRY_BYTES;
    this.count = this.starts[this.segments.length]!;
  }

  /** Calls `each(segment, entry)` for each segment with the number of its first entry. */
  forEachSegment(each: (segment: Buffer, first: number) => void): void {
    for (let i = 0; i < this.segments.length; i++) each(this.segments[i]!, this.starts[i]!);
  }

  /** The segment holding entry e. */
  private segmentOf(e: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.starts[mid]! <= e) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Entry a's packed key against entry b's, bytewise: negative, 0 or positive. */
  compareKeys(a: number, b: number): number {
    const i = this.segmentOf(a);
    const j = this.segmentOf(b);
    const x = (a - this.starts[i]!) * ENTRY_BYTES;
    const y = (b - this.starts[j]!) * ENTRY_BYTES;
    return this.segments[i]!.compare(this.segments[j]!, y, y + KEY_BYTES, x, x + KEY_BYTES);
  }
}

/**
 * Every repeat in one partition's segments (one per range, in any order): each entry whose key a lower record
 * number also has, as `[number, firstNumber]` with firstNumber the lowest number with that key, sorted by number.
 * Exact: keys are compared whole (a fingerprint only orders them), so two keys that share a fingerprint stay apart.
 * Record numbers are distinct (one per record). Linear sorts on typed arrays: 16 bytes an entry beside the segments,
 * whatever the count, and the result.
 */
export function settlePartition(segments: readonly Buffer[]): Array<[number, number]> {
  const entries = new Entries(segments);
  const n = entries.count;
  if (n < 2) return [];
  const numbers = new Uint32Array(n);
  const fingerprints = new Uint32Array(n);
  const order = new Uint32Array(n);
  entries.forEachSegment((segment, first) => {
    for (let e = first, at = 0; at < segment.length; e++, at += ENTRY_BYTES) {
      numbers[e] = segment.readUInt32LE(at + KEY_BYTES);
      fingerprints[e] = fingerprintOf(segment, at);
      order[e] = e;
    }
  });
  // By number, then (stably) by fingerprint: equal fingerprints sit together, lowest number first.
  const scratch = new Uint32Array(n);
  radixSort(order, numbers, scratch);
  radixSort(order, fingerprints, scratch);
  /** For each entry, the lowest number with its key (its own number when it is the first). */
  const firsts = scratch;
  let repeats = 0;
  for (let i = 0; i < n; ) {
    let j = i + 1;
    while (j < n && fingerprints[order[j]!] === fingerprints[order[i]!]) j++;
    repeats += settleGroup(entries, numbers, order.subarray(i, j), firsts);
    i = j;
  }
  return repeatsByNumber(numbers, firsts, repeats, order, fingerprints);
}

/**
 * Settles one group of entries that share a fingerprint, ordered by number: sets each one's first number and returns
 * how many repeat an earlier one. Almost always the group holds one key; when a collision mixes keys, the group is
 * sorted by whole key (then number) so that even a large, crafted collision stays O(g log g).
 */
function settleGroup(entries: Entries, numbers: Uint32Array, group: Uint32Array, firsts: Uint32Array): number {
  const head = group[0]!;
  let mixed = false;
  for (let k = 1; k < group.length && !mixed; k++) mixed = entries.compareKeys(head, group[k]!) !== 0;
  if (!mixed) {
    const first = numbers[head]!;
    for (let k = 0; k < group.length; k++) firsts[group[k]!] = first;
    return group.length - 1;
  }
  const byKey = Array.from(group).sort((a, b) => entries.compareKeys(a, b) || numbers[a]! - numbers[b]!);
  let repeats = 0;
  let first = numbers[byKey[0]!]!;
  firsts[byKey[0]!] = first;
  for (let k = 1; k < byKey.length; k++) {
    if (entries.compareKeys(byKey[k - 1]!, byKey[k]!) === 0) repeats++;
    else first = numbers[byKey[k]!]!;
    firsts[byKey[k]!] = first;
  }
  return repeats;
}

/** The repeats (entries whose first number is not their own) as [number, first], sorted by number. */
function repeatsByNumber(numbers: Uint32Array, firsts: Uint32Array, repeats: number, order: Uint32Array, scratch: Uint32Array): Array<[number, number]> {
  let m = 0;
  for (let e = 0; e < numbers.length; e++) if (firsts[e] !== numbers[e]) order[m++] = e;
  const picked = order.subarray(0, m);
  radixSort(picked, numbers, scratch.subarray(0, m));
  const out: Array<[number, number]> = new Array<[number, number]>(repeats);
  for (let k = 0; k < m; k++) out[k] = [numbers[picked[k]!]!, firsts[picked[k]!]!];
  return out;
}
