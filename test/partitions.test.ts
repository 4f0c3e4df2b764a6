import { KEY_BYTES, packKey } from '../src/core/duplicates';
import type { ApiItem } from '../src/core/mapping';
import { ENTRIES_PER_PARTITION, ENTRY_BYTES, KeyPartitions, fingerprintOf, partitionOf, partitionsFor, settlePartition } from '../src/core/partitions';
import { KNOWN_BADGES } from './support/factories';

const EVENT = 1_700_000_000_000;

const itemOf = (customerId: number, badgeMetaId: string = KNOWN_BADGES[0], earnEventDate = EVENT): ApiItem => ({
  customerId,
  badgeMetaId,
  earnEventDate,
  earnExpiresOn: earnEventDate + 1,
  earnEventDateISO: '',
  earnExpiresOnISO: '',
});

const packed = (item: ApiItem): Buffer => {
  const key = Buffer.alloc(KEY_BYTES);
  packKey(item, key);
  return key;
};

/** A range's object cut into its segments, one per partition. */
const segmentsOf = (keys: KeyPartitions): Buffer[] => {
  const { body, offsets } = keys.toObject();
  return offsets.slice(0, -1).map((start, p) => body.subarray(start, offsets[p + 1]));
};

/** Settles every partition over the ranges' objects, as the settle workers do: the union of their repeats, by number. */
const settleAll = (ranges: KeyPartitions[], partitions: number): Array<[number, number]> => {
  const byRange = ranges.map(segmentsOf);
  const all: Array<[number, number]> = [];
  for (let p = 0; p < partitions; p++) all.push(...settlePartition(byRange.map((segments) => segments[p]!)));
  return all.sort((a, b) => a[0] - b[0]);
};

/** One partition's segment holding the given (key, number) entries, in that order. */
const segment = (entries: Array<[Buffer, number]>): Buffer => {
  const body = Buffer.alloc(entries.length * ENTRY_BYTES);
  entries.forEach(([key, number], e) => {
    key.copy(body, e * ENTRY_BYTES);
    body.writeUInt32LE(number, e * ENTRY_BYTES + KEY_BYTES);
  });
  return body;
};

describe('Function: partitionOf', () => {
  it('spreads sequential customer ids with a few badges evenly over the partitions', () => {
    // Prepare: 120,000 keys as a real export has them: sequential customers, three badges, one event time.
    const partitions = 12;
    const counts = new Array<number>(partitions).fill(0);
    const badges = [KNOWN_BADGES[0], KNOWN_BADGES[1], '6571a3b9e4b0c1a2b3c4d5e8'];

    // Act
    for (let i = 0; i < 120_000; i++) counts[partitionOf(packed(itemOf(1_000_000 + i, badges[i % 3])), 0, partitions)]! += 1;

    // Assess: each within 5% of the 10,000 expected (a uniform hash strays about 1%).
    for (const count of counts) expect(Math.abs(count - 10_000)).toBeLessThan(500);
  });

  it('reads the key at the given offset', () => {
    // Prepare
    const key = packed(itemOf(42));
    const shifted = Buffer.concat([Buffer.alloc(5, 0xff), key]);

    // Act / Assess
    expect(partitionOf(shifted, 5, 1000)).toBe(partitionOf(key, 0, 1000));
  });
});

describe('Function: partitionsFor', () => {
  it('gives one partition for an empty or small file and one more for each ENTRIES_PER_PARTITION', () => {
    // Act / Assess
    expect([0, 1, ENTRIES_PER_PARTITION, ENTRIES_PER_PARTITION + 1, 50 * ENTRIES_PER_PARTITION].map(partitionsFor)).toEqual([1, 1, 1, 2, 50]);
  });
});

describe('Class: KeyPartitions', () => {
  it('lays the entries out by partition, with an offset for each partition and one past the end', () => {
    // Prepare: enough entries that every partition grows past its first blocks.
    const keys = new KeyPartitions(7);
    for (let n = 1; n <= 5_000; n++) keys.add(packed(itemOf(n)), 0, n);

    // Act
    const { body, offsets } = keys.toObject();

    // Assess: each entry sits in its key's partition, in the order added, and nothing is lost.
    expect(offsets).toHaveLength(8);
    expect(offsets[7]).toBe(body.length);
    expect(body.length).toBe(5_000 * ENTRY_BYTES);
    const numbers: number[] = [];
    for (let p = 0; p < 7; p++) {
      const inPartition: number[] = [];
      for (let at = offsets[p]!; at < offsets[p + 1]!; at += ENTRY_BYTES) {
        expect(partitionOf(body, at, 7)).toBe(p);
        const number = body.readUInt32LE(at + KEY_BYTES);
        expect(body.subarray(at, at + KEY_BYTES)).toEqual(packed(itemOf(number)));
        inPartition.push(number);
      }
      expect(inPartition).toEqual([...inPartition].sort((a, b) => a - b));
      expect(inPartition).toHaveLength(keys.countOf(p));
      numbers.push(...inPartition);
    }
    expect(numbers.sort((a, b) => a - b)).toEqual(Array.from({ length: 5_000 }, (_, i) => i + 1));
  });

  it('writes an object of empty segments when no record was staged', () => {
    // Act
    const { body, offsets } = new KeyPartitions(3).toObject();

    // Assess
    expect(body.length).toBe(0);
    expect(offsets).toEqual([0, 0, 0, 0]);
  });

  it('keeps record numbers up to 2^32 - 1', () => {
    // Prepare
    const keys = new KeyPartitions(1);
    keys.add(packed(itemOf(1)), 0, 2 ** 32 - 1);

    // Act
    const { body } = keys.toObject();

    // Assess
    expect(body.readUInt32LE(KEY_BYTES)).toBe(2 ** 32 - 1);
  });

  it('refuses a partition count that is not a positive integer', () => {
    // Act / Assess
    expect(() => new KeyPartitions(0)).toThrow(RangeError);
    expect(() => new KeyPartitions(1.5)).toThrow(RangeError);
  });
});

describe('Function: settlePartition', () => {
  it('finds a duplicate pair split across two ranges in the one partition its key lands in', () => {
    // Prepare: records 5 (first range) and 90,005 (second range) share a key; other keys fill both ranges, spread
    // over 4 partitions.
    const partitions = 4;
    const [first, second] = [new KeyPartitions(partitions), new KeyPartitions(partitions)];
    for (let n = 1; n <= 1_000; n++) first.add(packed(itemOf(n === 5 ? 777 : 10_000 + n)), 0, n);
    for (let n = 90_001; n <= 91_000; n++) second.add(packed(itemOf(n === 90_005 ? 777 : 20_000 + n)), 0, n);
    const home = partitionOf(packed(itemOf(777)), 0, partitions);
    const [a, b] = [segmentsOf(first), segmentsOf(second)];

    // Act
    const found = Array.from({ length: partitions }, (_, p) => settlePartition([a[p]!, b[p]!]));

    // Assess: the pair is in its home partition's segment of both ranges, and found there alone.
    expect(found[home]).toEqual([[90_005, 5]]);
    expect(found.filter((_, p) => p !== home).flat()).toEqual([]);
  });

  it('finds pairs whose keys land in different partitions, each in its own', () => {
    // Prepare: 40 keys each staged twice, once in each of two ranges.
    const partitions = 8;
    const ranges = [new KeyPartitions(partitions), new KeyPartitions(partitions)];
    for (let k = 0; k < 40; k++) {
      ranges[0]!.add(packed(itemOf(500 + k)), 0, 1 + k);
      ranges[1]!.add(packed(itemOf(500 + k)), 0, 1_001 + k);
    }
    const homes = new Set(Array.from({ length: 40 }, (_, k) => partitionOf(packed(itemOf(500 + k)), 0, partitions)));

    // Act
    const found = settleAll(ranges, partitions);

    // Assess
    expect(homes.size).toBeGreaterThan(4);
    expect(found).toEqual(Array.from({ length: 40 }, (_, k) => [1_001 + k, 1 + k]));
  });

  it('gives every repeat of one key the lowest number as its first, whatever the order of the segments', () => {
    // Prepare: one key in three segments, handed over last range first, each segment in its own order.
    const key = packed(itemOf(9));
    const segments = [segment([[key, 3_000_000_000], [key, 2_000]]), segment([[key, 700], [key, 12]]), segment([[key, 40]])];

    // Act
    const found = settlePartition(segments);

    // Assess
    expect(found).toEqual([
      [40, 12],
      [700, 12],
      [2_000, 12],
      [3_000_000_000, 12],
    ]);
  });

  it('does not take a key that differs in one byte for a duplicate', () => {
    // Prepare: the same key with its last byte changed, and with the badge id in upper case (the same key).
    const key = packed(itemOf(9));
    const other = Buffer.from(key);
    other[KEY_BYTES - 1]! ^= 0x01;
    const upper = packed(itemOf(9, KNOWN_BADGES[0].toUpperCase()));

    // Act
    const found = settlePartition([segment([[key, 1], [other, 2], [upper, 3]])]);

    // Assess
    expect(found).toEqual([[3, 1]]);
  });

  it('keeps apart two different keys that share a fingerprint', () => {
    // Prepare: two keys with one 32-bit fingerprint (found once by a birthday search over customer ids), interleaved.
    const [x, y] = [1_776_506, 2_100_333].map((id) => packed(itemOf(id))) as [Buffer, Buffer];
    expect(fingerprintOf(x)).toBe(fingerprintOf(y));
    expect(x.equals(y)).toBe(false);

    // Act
    const found = settlePartition([segment([[y, 2], [x, 3], [y, 4]]), segment([[x, 1], [x, 6], [y, 5]])]);

    // Assess
    expect(found).toEqual([
      [3, 1],
      [4, 2],
      [5, 2],
      [6, 1],
    ]);
  });

  it('finds nothing in no entries, one entry, or empty segments', () => {
    // Prepare
    const one = segment([[packed(itemOf(1)), 1]]);

    // Act / Assess
    expect(settlePartition([])).toEqual([]);
    expect(settlePartition([Buffer.alloc(0), Buffer.alloc(0)])).toEqual([]);
    expect(settlePartition([one, Buffer.alloc(0)])).toEqual([]);
  });

  it('refuses a segment that is not whole entries', () => {
    // Act / Assess
    expect(() => settlePartition([Buffer.alloc(ENTRY_BYTES + 1)])).toThrow(RangeError);
  });

  it('finds exactly the repeats a Map finds, over 200,000 random records in 5 ranges and 7 partitions', () => {
    // Prepare: about 5% of records repeat an earlier key (some many times); customers, badges and times vary, and
    // keys differ from one another in single fields. A seeded generator keeps the test the same every run.
    let seed = 0x2545f491;
    const random = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    const total = 200_000;
    const partitions = 7;
    const ranges = Array.from({ length: 5 }, () => new KeyPartitions(partitions));
    const items: ApiItem[] = [];
    const oracle = new Map<string, number>();
    const expected: Array<[number, number]> = [];
    for (let n = 1; n <= total; n++) {
      const item =
        n > 1 && random() < 0.05 ? items[Math.floor(random() * items.length)]! : itemOf(Math.floor(random() * 150_000), KNOWN_BADGES[Math.floor(random() * 2)], EVENT + Math.floor(random() * 3) * 1000);
      items.push(item);
      const key = packed(item);
      const text = key.toString('hex');
      const first = oracle.get(text);
      if (first === undefined) oracle.set(text, n);
      else expected.push([n, first]);
      ranges[Math.floor(((n - 1) * ranges.length) / total)]!.add(key, 0, n);
    }

    // Act
    const found = settleAll(ranges.reverse(), partitions);

    // Assess
    expect(expected.length).toBeGreaterThan(9_000);
    expect(found).toEqual(expected);
  });
});
