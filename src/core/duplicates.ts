import type { ApiItem } from './mapping';

/** What makes two records the same earned badge: one customer, one badge, one earn event instant. */
export function duplicateKey(item: ApiItem): string {
  return `${item.customerId}|${item.badgeMetaId.toLowerCase()}|${item.earnEventDate}`;
}

/** Bits per expected record and hash functions: about 0.5% false positives at the expected count. */
const BITS_PER_RECORD = 11;
const HASHES = 7;
/** The filter never takes more than this (16 MiB), however large the file. */
const MAX_BITS = 2 ** 27;
const MIN_BITS = 2 ** 10;

/**
 * A Bloom filter over duplicate keys, sized from the expected record count and capped at 16 MiB: it says for sure
 * when a key is new, and "maybe seen" otherwise. Records it is unsure about are held back and settled exactly
 * afterwards (see settleDuplicates), so memory stays bounded whatever the file's size.
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

  /** The key's 32-bit fingerprint (the first of the filter's two hashes). */
  static fingerprintOf(key: string): number {
    return hashes(key)[0];
  }

  /** Adds the key; true when it may have been added before (false: certainly new). */
  addAndCheck(key: string): boolean {
    const [h1, h2] = hashes(key);
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

/** Two FNV-1a style hashes with different seeds, combined (Kirsch–Mitzenmacher) into the filter's positions. */
function hashes(key: string): [number, number] {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) ^ (h2 >>> 13);
  }
  return [h1 >>> 0, h2 | 1];
}

/**
 * Settles the held records. `held` maps each key the filter was unsure about to the numbers of the records held with
 * it (in file order); `firstSent` maps such keys to the number of the record with that key that went out as new (a
 * key is sent as new at most once, always before any record held with it). Returns, for every duplicate, the number
 * of the first record with its key; a held record not in the result is no duplicate and is sent.
 */
export function settleDuplicates(held: ReadonlyMap<string, readonly number[]>, firstSent: ReadonlyMap<string, number>): Map<number, number> {
  const duplicates = new Map<number, number>();
  for (const [key, numbers] of held) {
    const first = firstSent.get(key);
    if (first !== undefined) {
      for (const n of numbers) duplicates.set(n, first);
    } else {
      // The filter was wrong about the first of them: it is the original, the others repeat it.
      for (const n of numbers.slice(1)) duplicates.set(n, numbers[0]!);
    }
  }
  return duplicates;
}

/** The item of a staged line (`{"n":…,"f":[…],"i":{…}}`) without parsing its fields. */
export function itemOfStagedLine(line: string): ApiItem {
  // Field values are JSON-escaped, so an unescaped `"i":{` can only be the item's own key; the item is flat (numbers,
  // hex ids and ISO dates), so its first "}" ends it.
  const at = line.lastIndexOf('"i":{') + 4;
  return JSON.parse(line.slice(at, line.indexOf('}', at) + 1)) as ApiItem;
}
