import type { ApiItem } from './mapping';

/**
 * Bytes of a packed duplicate key, what makes two records the same earned badge (one customer, one badge, one earn
 * event instant): customerId (float64: a safe integer is exact), the badge id's 12 bytes (24 hex characters, either
 * case), earnEventDate (float64).
 */
export const KEY_BYTES = 28;

/** Packs the item's duplicate key into `into` at `at` (KEY_BYTES bytes). */
export function packKey(item: ApiItem, into: Buffer, at = 0): void {
  into.writeDoubleLE(item.customerId, at);
  // Validated as 24 hex characters, so it fills the 12 bytes exactly; hex decoding ignores case.
  into.write(item.badgeMetaId, at + 8, 12, 'hex');
  into.writeDoubleLE(item.earnEventDate, at + 20);
}

/** Bits per expected record and hash functions: about 0.5% false positives at the expected count. */
const BITS_PER_RECORD = 11;
const HASHES = 7;
/** The filter never takes more than this (16 MiB), however large the file. */
const MAX_BITS = 2 ** 27;
const MIN_BITS = 2 ** 10;

/**
 * A Bloom filter over packed duplicate keys, sized from the expected record count and capped at 16 MiB: it says for
 * sure when a key is new, and "maybe seen" otherwise. Records it is unsure about are held back and settled exactly
 * afterwards (see HeldKeys), so memory stays bounded whatever the file's size.
 */
export class SeenFilter {
  private readonly bits: Uint32Array;
  private readonly size: number;
  /** A 32-bit fingerprint of the key last given to addAndCheck (for the key index). */
  lastFingerprint = 0;

  /** `maxBits` lowers the cap (tests use a small filter to make it unsure often). */
  constructor(expectedRecords: number, maxBits = MAX_BITS) {
    const wanted = Math.min(maxBits, MAX_BITS, Math.max(MIN_BITS, Math.ceil(expectedRecords * BITS_PER_RECORD)));
    this.size = 2 ** Math.ceil(Math.log2(wanted));
    this.bits = new Uint32Array(this.size / 32);
  }

  /** The packed key's 32-bit fingerprint (the first of the filter's two hashes). */
  static fingerprintOf(key: Buffer, at = 0): number {
    return hash(key, at, SEED_1);
  }

  /** Adds the packed key; true when it may have been added before (false: certainly new). */
  addAndCheck(key: Buffer, at = 0): boolean {
    const h1 = hash(key, at, SEED_1);
    const h2 = hash(key, at, SEED_2) | 1;
    this.lastFingerprint = h1;
    const mask = this.size - 1;
    let seen = true;
    for (let k = 0; k < HASHES; k++) {
      const bit = (h1 + Math.imul(k, h2)) & mask;
      const word = bit >>> 5;
      const flag = 1 << (bit & 31);
      if ((this.bits[word]! & flag) === 0) {
        seen = false;
        this.bits[word]! |= flag;
      }
    }
    return seen;
  }
}

const SEED_1 = 0x811c9dc5;
const SEED_2 = 0x5bd1e995;

/** Murmur3 (32-bit) over the packed key's seven 32-bit words: the filter's two positions come from two seeds. */
function hash(key: Buffer, at: number, seed: number): number {
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

/** Held entries per block: 32 bytes each (key, then record number), 1 MiB a block, allocated as they fill. */
const ENTRY_BYTES = 32;
const BLOCK_ENTRIES = 32_768;

/**
 * The records held back as possible duplicates, as (packed key, record number) entries in file order, kept outside the
 * JavaScript heap (Buffers of 1 MiB: 64 MB for 2,000,000 entries, and no object per record). `settle` then works on
 * typed arrays only: the stage's small old space holds none of it.
 */
export class HeldKeys {
  private readonly blocks: Buffer[] = [];
  count = 0;

  /** Holds the record `number` with the packed key at `key[at…]`. */
  add(key: Buffer, number: number, at = 0): void {
    const offset = (this.count % BLOCK_ENTRIES) * ENTRY_BYTES;
    if (offset === 0) this.blocks.push(Buffer.allocUnsafe(BLOCK_ENTRIES * ENTRY_BYTES));
    const block = this.blocks[this.blocks.length - 1]!;
    key.copy(block, offset, at, at + KEY_BYTES);
    block.writeUInt32LE(number, offset + KEY_BYTES);
    this.count += 1;
  }

  private locate(entry: number): { block: Buffer; offset: number } {
    return { block: this.blocks[Math.floor(entry / BLOCK_ENTRIES)]!, offset: (entry % BLOCK_ENTRIES) * ENTRY_BYTES };
  }

  private numberOf(entry: number): number {
    const { block, offset } = this.locate(entry);
    return block.readUInt32LE(offset + KEY_BYTES);
  }

  private sameKey(a: number, b: number): boolean {
    const x = this.locate(a);
    const y = this.locate(b);
    return x.block.compare(y.block, y.offset, y.offset + KEY_BYTES, x.offset, x.offset + KEY_BYTES) === 0;
  }

  private matches(entry: number, key: Buffer, at: number): boolean {
    const { block, offset } = this.locate(entry);
    return block.compare(key, at, at + KEY_BYTES, offset, offset + KEY_BYTES) === 0;
  }

  /**
   * Groups the held entries by key: each distinct key gets one representative (its first held entry), and the
   * representatives are indexed by fingerprint for the settlement's look-ups.
   */
  settle(): HeldSettlement {
    const n = this.count;
    if (n >= 2 ** 21) throw new RangeError(`At most ${2 ** 21 - 1} held records can be settled`);
    // Sort by fingerprint, then entry (file order), in one float64 per entry: fingerprint · 2^21 + entry < 2^53.
    const order = new Float64Array(n);
    for (let e = 0; e < n; e++) {
      const { block, offset } = this.locate(e);
      order[e] = hash(block, offset, SEED_1) * 2 ** 21 + e;
    }
    order.sort();
    /** Each entry's representative (the first held entry with its key), as its position in repEntries. */
    const rep = new Uint32Array(n);
    // Typed arrays sized for the worst case (every key distinct): a JS array of 2,000,000 numbers would sit on the heap.
    const repFingerprints = new Uint32Array(n);
    const repEntries = new Uint32Array(n);
    let reps = 0;
    for (let i = 0; i < n; ) {
      const fingerprint = Math.floor(order[i]! / 2 ** 21);
      let j = i;
      while (j < n && Math.floor(order[j]! / 2 ** 21) === fingerprint) j++;
      // Within one fingerprint, distinct keys are few (a collision); each entry joins the first that shares its key.
      const firsts: number[] = [];
      for (let k = i; k < j; k++) {
        const e = order[k]! % 2 ** 21;
        const position = firsts.find((p) => this.sameKey(repEntries[p]!, e));
        if (position === undefined) {
          firsts.push(reps);
          rep[e] = reps;
          repFingerprints[reps] = fingerprint;
          repEntries[reps++] = e;
        } else {
          rep[e] = position;
        }
      }
      i = j;
    }
    return new HeldSettlement(rep, repFingerprints.subarray(0, reps), repEntries.subarray(0, reps), (e) => this.numberOf(e), (e, key, at) => this.matches(e, key, at));
  }
}

/**
 * The held records grouped by key, to be told which keys went out as new (markSent), then asked, in file order,
 * which held records repeat an earlier one (duplicateOf).
 */
export class HeldSettlement {
  /** For each representative (by position in repEntries), the number of the record with its key sent as new; 0: none. */
  private readonly firstSent: Uint32Array;

  constructor(
    /** Each held entry's representative (the first held entry with its key), as its position in repEntries. */
    private readonly rep: Uint32Array,
    /** Fingerprints of the distinct held keys, ascending (a collision repeats one). */
    readonly fingerprints: Uint32Array,
    private readonly repEntries: Uint32Array,
    private readonly numberOf: (entry: number) => number,
    private readonly matches: (entry: number, key: Buffer, at: number) => boolean,
  ) {
    this.firstSent = new Uint32Array(repEntries.length);
  }

  /** The first position of `fingerprint` among the representatives' fingerprints, or -1. */
  private find(fingerprint: number): number {
    let lo = 0;
    let hi = this.fingerprints.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.fingerprints[mid]! < fingerprint) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.fingerprints.length && this.fingerprints[lo] === fingerprint ? lo : -1;
  }

  /** Whether a record with this fingerprint may have a held key (the key index says which chunks to read back). */
  mayHold(fingerprint: number): boolean {
    return this.find(fingerprint) >= 0;
  }

  /** Notes that record `number`, with the packed key at `key[at…]`, went out as new (in a chunk). */
  markSent(key: Buffer, number: number, at = 0): void {
    const fingerprint = SeenFilter.fingerprintOf(key, at);
    for (let p = this.find(fingerprint); p >= 0 && p < this.fingerprints.length && this.fingerprints[p] === fingerprint; p++) {
      if (this.matches(this.repEntries[p]!, key, at)) {
        this.firstSent[p] = number;
        return;
      }
    }
  }

  /**
   * For held entry `entry` (its place in file order among the held records): the number of the earlier record it
   * repeats, or 0 when it is no duplicate and is sent. A key sent as new is sent once, always before any record held
   * with it; a key never sent as new (the filter was wrong about its first held record) is sent with that record.
   */
  duplicateOf(entry: number): number {
    const position = this.rep[entry]!;
    const sent = this.firstSent[position]!;
    if (sent !== 0) return sent;
    const first = this.repEntries[position]!;
    return first === entry ? 0 : this.numberOf(first);
  }
}
