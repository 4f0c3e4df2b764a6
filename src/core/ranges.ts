import { createHash, type Hash } from 'node:crypto';
import type { Dataflow } from '../config/schema';
import { EmptyFileError } from '../errors';
import { badClose, checkDialect, unclosedQuote } from './guard';

/**
 * Bytes of plaintext hashed as one block of the content digest. Scans of ranges that start at multiples of it hash
 * their blocks each, so that the digest is the same whether the file was read in one pass or in parallel ranges.
 */
export const HASH_BLOCK_BYTES = 8 * 1024 * 1024;

/**
 * The digest of a file's content from the SHA-256 of each of its blocks (HASH_BLOCK_BYTES each, the last one
 * shorter): a file of one block (or none) is that block's SHA-256 (the plain SHA-256 of the file, as the content
 * claim has always been keyed); more blocks: the SHA-256 of their digests concatenated.
 */
export function contentDigest(blockDigests: ReadonlyArray<Buffer | string>): string {
  const digests = blockDigests.map((d) => (typeof d === 'string' ? Buffer.from(d, 'hex') : d));
  if (digests.length === 0) return createHash('sha256').digest('hex');
  if (digests.length === 1) return digests[0]!.toString('hex');
  const tree = createHash('sha256');
  for (const digest of digests) tree.update(digest);
  return tree.digest('hex');
}

/**
 * Where the text guard (RecordGuard) can be at a byte boundary; the index of each is the guard's own state number.
 * A range's scan starts in one of these: known at the file start, unknown (every one of them tried) elsewhere.
 */
export const ENTRY_STATES = ['unquoted', 'quoted', 'recordStart', 'fieldStart', 'afterQuote'] as const;
export type EntryState = (typeof ENTRY_STATES)[number];

/** What a range's bytes do when the guard enters them in one state. Offsets are absolute (bytes from the file start). */
export interface EntryOutcome {
  /** The state after the range's last byte, or 'error' when the range is malformed read from this state. */
  exit: EntryState | 'error';
  /** Records that end in the range (the header counted, blank lines not; a record ending at the file end counted). */
  records: number;
  /** Just past the line end of the first record that ends in the range (past the `\n` of a `\r\n` seen in the range). */
  firstRecordEnd?: number;
  /** Line ends of the range before firstRecordEnd (its own line end included). */
  firstRecordLineEnds?: number;
  /** Just past the line end of the last record that ends in the range (the file end for a last record without one). */
  lastRecordEnd?: number;
  /**
   * exit 'quoted' or 'afterQuote': line ends of the range before the quote that opened the field still open (absent:
   * opened before the range).
   */
  openQuoteLineEnds?: number;
  /** exit 'error': where and what (line ends of the range before it, and the byte that follows the closing quote). */
  error?: { at: number; lineEnds: number; byte: number };
}

/** One range's scan: what its bytes do from every entry state tried. JSON-safe (scan workers store it). */
export interface RangeScan {
  offset: number;
  bytes: number;
  atFileStart: boolean;
  atFileEnd: boolean;
  /** Line ends in the range (`\r\n` one; a `\n` at its start counted: planRanges corrects it after a range ending in `\r`). */
  lineEnds: number;
  endsWithCR: boolean;
  startsWithLF: boolean;
  /** SHA-256 (hex) of each HASH_BLOCK_BYTES-aligned block of the range, when hashing was asked. */
  blockDigests?: string[];
  byEntry: Partial<Record<EntryState, EntryOutcome>>;
}

/** The dialect the scanner reads: the guard's delimiter and quote; a UTF-8 BOM is dropped unless the file is latin1. */
export type ScanDialect = Pick<Dataflow['csv'], 'delimiter' | 'quote'> & { encoding?: Dataflow['csv']['encoding'] };

/** Where a scan starts, and what it does besides. */
export interface ScanPosition {
  /** The range starts at the file's first byte: the entry state is recordStart and a leading BOM is dropped. */
  atFileStart: boolean;
  /** Absolute offset of the range's first byte. */
  offset: number;
  /** The entry state when it is known (a sequential pass); else every state is tried. */
  entry?: EntryState;
  /** Hash the range's blocks (the range must start at a multiple of blockBytes). @default false */
  hash?: boolean;
  /** Block size of the content digest: tests only. @default HASH_BLOCK_BYTES */
  blockBytes?: number;
}

// Byte kinds and states, numbered as in RecordGuard.
const CONTENT = 0;
const DELIMITER = 1;
const QUOTE = 2;
const LINE_END = 3;
const UNQUOTED = 0;
const QUOTED = 1;
const RECORD_START = 2;
const FIELD_START = 3;
const AFTER_QUOTE = 4;
const DEAD = 5;
const CR = 0x0d;
const LF = 0x0a;
const UTF8_BOM = [0xef, 0xbb, 0xbf];

/** The guard's rule for one state and one byte kind (RecordGuard.#scan, written as a function). */
function step(state: number, kind: number): number {
  if (state === DEAD) return DEAD;
  switch (kind) {
    case CONTENT:
      if (state === AFTER_QUOTE) return DEAD;
      return state === QUOTED ? QUOTED : UNQUOTED;
    case DELIMITER:
      return state === QUOTED ? QUOTED : FIELD_START;
    case QUOTE:
      if (state === QUOTED) return AFTER_QUOTE;
      if (state === AFTER_QUOTE) return QUOTED;
      return state === UNQUOTED ? UNQUOTED : QUOTED;
    default:
      return state === QUOTED ? QUOTED : RECORD_START;
  }
}

// Every entry state is followed at once as one composite state: the tuple of the five hypotheses' states, a base-6
// number. Hypotheses that reach the same state stay identical from there on; one table lookup a byte moves them all.
// The composites reachable from a scan's start (every state, or one known) get dense ids: a few dozen.
const ENTRIES = ENTRY_STATES.length;
const POWERS = [1, 6, 36, 216, 1296];
const component = (cs: number, e: number) => Math.floor(cs / POWERS[e]!) % 6;

/** The composite state of a scan entered in `entry` (one hypothesis, the others dead), or in every state. */
function startComposite(entry: EntryState | undefined): number {
  if (entry === undefined) return ENTRY_STATES.reduce((cs, _s, e) => cs + e * POWERS[e]!, 0);
  const known = ENTRY_STATES.indexOf(entry);
  return ENTRY_STATES.reduce((cs, _s, e) => cs + (e === known ? known : DEAD) * POWERS[e]!, 0);
}

/** Composite of each dense id, and the id of each composite reached. */
const COMPOSITE_OF: number[] = [];
const ID_OF = new Map<number, number>();
/** By id << 2 | kind: the next id, and whether the byte needs more than the table (see #event). */
const NEXT_ID: number[] = [];
const EVENT_AT: boolean[] = [];
{
  const idOf = (cs: number): number => {
    let id = ID_OF.get(cs);
    if (id === undefined) {
      id = COMPOSITE_OF.length;
      ID_OF.set(cs, id);
      COMPOSITE_OF.push(cs);
    }
    return id;
  };
  for (const entry of [undefined, ...ENTRY_STATES]) idOf(startComposite(entry));
  for (let id = 0; id < COMPOSITE_OF.length; id++) {
    const cs = COMPOSITE_OF[id]!;
    const states = ENTRY_STATES.map((_s, e) => component(cs, e));
    for (let kind = 0; kind < 4; kind++) {
      const next = states.reduce((sum, state, e) => sum + step(state, kind) * POWERS[e]!, 0);
      NEXT_ID[(id << 2) | kind] = idOf(next);
      // A line end (lines and records are counted), a quote opening a field, a hypothesis failing.
      EVENT_AT[(id << 2) | kind] =
        kind === LINE_END || (kind === QUOTE && states.some((x) => x === RECORD_START || x === FIELD_START)) || (kind === CONTENT && states.includes(AFTER_QUOTE));
    }
  }
}
const STATES = COMPOSITE_OF.length;
/** By id: the hypotheses (bit e) that end a record on a line end, open a quoted field on a quote, fail on content. */
const ENDS = new Uint8Array(STATES);
const OPENS = new Uint8Array(STATES);
const FAILS = new Uint8Array(STATES);
for (let id = 0; id < STATES; id++) {
  for (let e = 0; e < ENTRIES; e++) {
    const state = component(COMPOSITE_OF[id]!, e);
    if (state === UNQUOTED || state === FIELD_START || state === AFTER_QUOTE) ENDS[id] = ENDS[id]! | (1 << e);
    if (state === RECORD_START || state === FIELD_START) OPENS[id] = OPENS[id]! | (1 << e);
    if (state === AFTER_QUOTE) FAILS[id] = FAILS[id]! | (1 << e);
  }
}

/**
 * By id << 2 | kind: (next id << 1) | 1 when the byte goes to #event; and 1 in SKIP when the byte changes nothing (a
 * self-loop without event: content inside a field, a delimiter inside quotes), so that the hot loop passes it after
 * two loads that do not depend on the previous byte's (branchy code outruns a chain of dependent table lookups).
 */
const TABLE = new Int32Array(STATES << 2);
const SKIP = new Uint8Array(STATES << 2);
for (let at = 0; at < STATES << 2; at++) {
  TABLE[at] = (NEXT_ID[at]! << 1) | (EVENT_AT[at] ? 1 : 0);
  SKIP[at] = NEXT_ID[at] === at >> 2 && !EVENT_AT[at] ? 1 : 0;
}

/**
 * Reads a byte range of a delimited file and says, for every state the text guard may be in at its first byte, where
 * its records end, how many end in it, and in which state it leaves the guard: the guard's record rule (RecordGuard)
 * over raw bytes, so that a file can be cut at record boundaries by workers that each read only their own range.
 * With the entry state known (the file start, a sequential pass) one hypothesis runs. Hashes the range's blocks for
 * the content digest when asked. Memory: a few tables; nothing of the bytes is kept.
 */
export class BoundaryScanner {
  readonly #kinds = new Uint8Array(256);
  readonly #offset: number;
  readonly #atFileStart: boolean;
  readonly #dropBom: boolean;
  readonly #entries: number;
  /** The composite state's id (see COMPOSITE_OF). */
  #id: number;
  /** Absolute offset of the next byte. */
  #at: number;
  #lineEnds = 0;
  #lastByte = -1;
  #firstByte = -1;
  /** The first bytes while they may be a BOM to drop (at the file start only); undefined once decided. */
  #head: Buffer | undefined;
  /** Per composite state (id): records ended from it, and just past the last one. */
  readonly #records = new Float64Array(STATES);
  readonly #lastEnd = new Float64Array(STATES).fill(-1);
  /** Per composite state (id): where (and after how many line ends) a quoted field was last opened from it. */
  readonly #openAt = new Float64Array(STATES).fill(-1);
  readonly #openLineEnds = new Float64Array(STATES);
  /** Per hypothesis: its first record end, its failure. */
  readonly #firstEnd: Array<{ at: number; lineEnds: number } | undefined> = [];
  #noFirstEnd: number;
  readonly #errors: Array<{ at: number; lineEnds: number; byte: number } | undefined> = [];
  /** A record ended by a `\r` just before this offset (from composite #crCs): a `\n` next moves its end past it. */
  #crEnd = -1;
  #crCs = 0;
  readonly #hash: boolean;
  readonly #blockBytes: number;
  #block: Hash | undefined;
  #blockFill = 0;
  readonly #blockDigests: string[] = [];

  /** @throws ConfigError when the delimiter or quote cannot be read bytewise (as RecordGuard). */
  constructor(csv: ScanDialect, position: ScanPosition) {
    checkDialect(csv);
    this.#kinds[csv.delimiter.charCodeAt(0)] = DELIMITER;
    this.#kinds[csv.quote.charCodeAt(0)] = QUOTE;
    this.#kinds[CR] = LINE_END;
    this.#kinds[LF] = LINE_END;
    this.#offset = position.offset;
    this.#at = position.offset;
    this.#atFileStart = position.atFileStart;
    this.#dropBom = position.atFileStart && csv.encoding !== 'latin1';
    this.#head = this.#dropBom ? Buffer.alloc(0) : undefined;
    const entry = position.atFileStart ? 'recordStart' : position.entry;
    this.#id = ID_OF.get(startComposite(entry))!;
    this.#entries = entry === undefined ? 0b11111 : 1 << ENTRY_STATES.indexOf(entry);
    this.#noFirstEnd = this.#entries;
    this.#hash = position.hash ?? false;
    this.#blockBytes = position.blockBytes ?? HASH_BLOCK_BYTES;
    if (this.#hash && position.offset % this.#blockBytes !== 0) {
      throw new Error(`A hashing scan must start at a multiple of ${this.#blockBytes} bytes (got ${position.offset})`);
    }
  }

  /** Reads the range's next bytes (in order). */
  write(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.#hash) this.#hashBlocks(chunk);
    if (this.#firstByte < 0) this.#firstByte = chunk[0]!;
    let bytes = chunk;
    if (this.#head) {
      const head = this.#head.length > 0 ? Buffer.concat([this.#head, chunk]) : chunk;
      const bom = UTF8_BOM.every((b, i) => i >= head.length || head[i] === b);
      if (bom && head.length < 3) {
        this.#head = Buffer.from(head);
        return;
      }
      this.#head = undefined;
      // The bytes held back (not counted in #at yet) are scanned with this chunk.
      if (bom) {
        this.#at += 3;
        bytes = head.subarray(3);
      } else {
        bytes = head;
      }
    }
    this.#scan(bytes);
  }

  /**
   * The range's scan. `atFileEnd`: the range ends at the file end, so a last record without a line end ends there.
   * @throws Error when a hashing scan that is not the file's last ends inside a block.
   */
  end(atFileEnd: boolean): RangeScan {
    if (this.#head && this.#head.length > 0) {
      // Whether a BOM is dropped is known only with the file's first 3 bytes: a first range holds them all.
      if (!atFileEnd) throw new Error(`The first range must hold the file's first ${UTF8_BOM.length} bytes (it ends inside what may be a byte-order mark)`);
      // A file shorter than a BOM: its bytes are text.
      const head = this.#head;
      this.#head = undefined;
      this.#scan(head);
    }
    const bytes = this.#at - this.#offset;
    const blockDigests = this.#hash ? this.#endBlocks(atFileEnd, bytes) : undefined;
    const byEntry: RangeScan['byEntry'] = {};
    for (let e = 0; e < ENTRIES; e++) {
      if (this.#entries & (1 << e)) byEntry[ENTRY_STATES[e]!] = this.#outcome(e, atFileEnd);
    }
    return {
      offset: this.#offset,
      bytes,
      atFileStart: this.#atFileStart,
      atFileEnd,
      lineEnds: this.#lineEnds,
      endsWithCR: this.#lastByte === CR,
      startsWithLF: this.#firstByte === LF,
      ...(blockDigests ? { blockDigests } : {}),
      byEntry,
    };
  }

  /** The hot loop: table lookups by byte kind; line ends, quotes opening a field and failures go to #event. */
  #scan(chunk: Buffer): void {
    const kinds = this.#kinds;
    const n = chunk.length;
    if (n === 0) return;
    let id = this.#id;
    let row = id << 2;
    for (let i = 0; i < n; i++) {
      const at = row | kinds[chunk[i]!]!;
      if (SKIP[at] === 1) continue;
      const t = TABLE[at]!;
      if (t & 1) this.#event(id, chunk, i);
      id = t >> 1;
      row = id << 2;
    }
    this.#id = id;
    this.#at += n;
    this.#lastByte = chunk[n - 1]!;
  }

  /** A byte that moves more than the state: counts lines, records and their ends, opening quotes, failures. */
  #event(cs: number, chunk: Buffer, i: number): void {
    const byte = chunk[i]!;
    const at = this.#at + i;
    const kind = this.#kinds[byte];
    if (kind === LINE_END) {
      const previous = i > 0 ? chunk[i - 1]! : this.#lastByte;
      if (byte === CR || previous !== CR) this.#lineEnds += 1;
      else if (this.#crEnd === at) this.#pastLF(at);
      const ends = ENDS[cs]!;
      if (ends === 0) return;
      this.#records[cs] = this.#records[cs]! + 1;
      this.#lastEnd[cs] = at + 1;
      if (byte === CR) {
        this.#crEnd = at + 1;
        this.#crCs = cs;
      }
      const first = ends & this.#noFirstEnd;
      if (first) {
        for (let e = 0; e < ENTRIES; e++) if (first & (1 << e)) this.#firstEnd[e] = { at: at + 1, lineEnds: this.#lineEnds };
        this.#noFirstEnd &= ~first;
      }
    } else if (kind === QUOTE) {
      this.#openAt[cs] = at;
      this.#openLineEnds[cs] = this.#lineEnds;
    } else {
      const fails = FAILS[cs]!;
      for (let e = 0; e < ENTRIES; e++) if (fails & (1 << e)) this.#errors[e] = { at, lineEnds: this.#lineEnds, byte };
    }
  }

  /** The `\n` of a `\r\n` whose `\r` ended a record: the record's end (the cut after it) moves past the `\n`. */
  #pastLF(at: number): void {
    for (const first of this.#firstEnd) if (first?.at === at) first.at = at + 1;
    if (this.#lastEnd[this.#crCs] === at) this.#lastEnd[this.#crCs] = at + 1;
  }

  /** Hypothesis e's outcome, gathered from the composite states it went through. */
  #outcome(e: number, atFileEnd: boolean): EntryOutcome {
    const state = component(COMPOSITE_OF[this.#id]!, e);
    if (state === DEAD) {
      const error = this.#errors[e]!;
      return { exit: 'error', records: 0, error };
    }
    const bit = 1 << e;
    let records = 0;
    let lastRecordEnd = -1;
    let openAt = -1;
    let openLineEnds = 0;
    for (let cs = 0; cs < STATES; cs++) {
      if (ENDS[cs]! & bit) {
        records += this.#records[cs]!;
        lastRecordEnd = Math.max(lastRecordEnd, this.#lastEnd[cs]!);
      }
      if (OPENS[cs]! & bit && this.#openAt[cs]! > openAt) {
        openAt = this.#openAt[cs]!;
        openLineEnds = this.#openLineEnds[cs]!;
      }
    }
    let first = this.#firstEnd[e];
    if (atFileEnd && state !== RECORD_START && state !== QUOTED) {
      // The last record has no line end: it ends at the file end.
      records += 1;
      lastRecordEnd = this.#at;
      first ??= { at: this.#at, lineEnds: this.#lineEnds };
    }
    return {
      exit: ENTRY_STATES[state]!,
      records,
      ...(first ? { firstRecordEnd: first.at, firstRecordLineEnds: first.lineEnds } : {}),
      ...(lastRecordEnd >= 0 ? { lastRecordEnd } : {}),
      // After a quote in a quoted field the field may go on (a doubled quote): the opening's line is kept too.
      ...((state === QUOTED || state === AFTER_QUOTE) && openAt >= 0 ? { openQuoteLineEnds: openLineEnds } : {}),
    };
  }

  #hashBlocks(chunk: Buffer): void {
    let from = 0;
    while (from < chunk.length) {
      this.#block ??= createHash('sha256');
      const take = Math.min(chunk.length - from, this.#blockBytes - this.#blockFill);
      this.#block.update(chunk.subarray(from, from + take));
      this.#blockFill += take;
      from += take;
      if (this.#blockFill === this.#blockBytes) {
        this.#blockDigests.push(this.#block.digest('hex'));
        this.#block = undefined;
        this.#blockFill = 0;
      }
    }
  }

  #endBlocks(atFileEnd: boolean, bytes: number): string[] {
    if (this.#blockFill > 0) {
      if (!atFileEnd) throw new Error(`A hashing scan that is not the file's last must end at a multiple of ${this.#blockBytes} bytes (it read ${bytes})`);
      this.#blockDigests.push(this.#block!.digest('hex'));
      this.#block = undefined;
      this.#blockFill = 0;
    }
    // An empty file is one empty block: its digest is the SHA-256 of nothing, as contentDigest([]) is.
    return this.#blockDigests;
  }
}

/**
 * Scans a file read in one sequential pass (a decryption, a gunzip) as consecutive ranges of `rangeBytes`, each
 * with the entry state the previous one left: the same RangeScans as parallel scan workers give, one hypothesis each.
 * Hashes the content blocks on the way (each block listed with the range it starts in).
 */
export class SequentialScanner {
  readonly #csv: ScanDialect;
  readonly #rangeBytes: number;
  readonly #blockBytes: number;
  readonly #hash: boolean;
  readonly #scans: RangeScan[] = [];
  #current: BoundaryScanner;
  #filled = 0;
  #offset = 0;
  /** A range left the guard failed: later ranges are not scanned (planRanges reports the failure). */
  #failed = false;

  constructor(csv: ScanDialect, options: { rangeBytes: number; hash?: boolean; blockBytes?: number }) {
    this.#csv = csv;
    this.#rangeBytes = options.rangeBytes;
    this.#blockBytes = options.blockBytes ?? HASH_BLOCK_BYTES;
    this.#hash = options.hash ?? false;
    if (this.#hash && this.#rangeBytes % this.#blockBytes !== 0) throw new Error(`rangeBytes must be a multiple of ${this.#blockBytes} to hash blocks`);
    this.#current = new BoundaryScanner(csv, { atFileStart: true, offset: 0, hash: this.#hash, blockBytes: this.#blockBytes });
  }

  write(chunk: Buffer): void {
    let from = 0;
    while (from < chunk.length && !this.#failed) {
      const take = Math.min(chunk.length - from, this.#rangeBytes - this.#filled);
      this.#current.write(chunk.subarray(from, from + take));
      this.#filled += take;
      from += take;
      if (this.#filled === this.#rangeBytes) this.#next();
    }
  }

  /** The scans of every range read, the last one ended at the file end. */
  end(): RangeScan[] {
    if (!this.#failed) this.#scans.push(this.#current.end(true));
    return this.#scans;
  }

  #next(): void {
    const scan = this.#current.end(false);
    this.#scans.push(scan);
    const exit = Object.values(scan.byEntry)[0]!.exit;
    this.#offset += this.#filled;
    this.#filled = 0;
    if (exit === 'error') {
      this.#failed = true;
      return;
    }
    this.#current = new BoundaryScanner(this.#csv, { atFileStart: false, offset: this.#offset, entry: exit, hash: this.#hash, blockBytes: this.#blockBytes });
  }
}

/** A range of the file to parse on its own: `[start, end)`, starting just after a record's line end. */
export interface PlannedRange {
  index: number;
  start: number;
  end: number;
  /** Number of the range's first data record, as openCsv numbers the whole file (the header not counted). */
  firstRecord: number;
  /** Line of the range's first byte (1-based, `\r\n` one line end). */
  firstLine: number;
  /** Data records that end in the range. */
  records: number;
}

/**
 * The file cut into ranges: where the header ends (range 0 starts there), the ranges, and the file's data records.
 * The ranges cover the file after the header but for trailing blank lines (no range holds no record).
 */
export interface RangePlan {
  headerEnd: number;
  ranges: PlannedRange[];
  records: number;
  bytes: number;
}

/** A scan's outcome read from the entry state the file's start implies (its line ends corrected for a split `\r\n`). */
interface ChainedScan {
  scan: RangeScan;
  outcome: EntryOutcome;
  /** Records ended and line ends before the scan. */
  recordsBefore: number;
  lineEndsBefore: number;
  /** 1 when the scan starts with the `\n` of a `\r\n` whose `\r` ends the previous one (counted there). */
  splitLF: number;
}

/**
 * Cuts a file into ranges at record boundaries from the scans of its consecutive byte ranges: chains the true entry
 * state from the file start, and starts a planned range at the first record end at or after the start of each scan
 * (each scan starting at a multiple of `target.rangeBytes`, when given); a scan where no record ends joins the
 * previous range. Range 0 starts after the header record. Record numbers and lines are exact: numbered as openCsv
 * numbers the whole file.
 *
 * @throws MalformedCsvError (naming the line, as the guard would) when the file is malformed; EmptyFileError when it
 *   has no header; Error when the scans are not the file's consecutive ranges.
 */
export function planRanges(scans: readonly RangeScan[], target: { rangeBytes?: number } = {}): RangePlan {
  const chained = chainScans(scans);
  const last = chained[chained.length - 1];
  const bytes = last ? last.scan.offset + last.scan.bytes : 0;
  const cuts: Array<{ at: number; records: number; lineEnds: number }> = [];
  for (let j = 0; j < chained.length; j++) {
    const { scan } = chained[j]!;
    if (j > 0 && target.rangeBytes && scan.offset % target.rangeBytes !== 0) continue;
    const cut = cutAtOrAfter(chained, j);
    // The header's end may be the file's end; any other cut there would start an empty range.
    if (cut && (cuts.length === 0 || (cut.at > cuts[cuts.length - 1]!.at && cut.at < bytes))) cuts.push(cut);
  }
  if (cuts.length === 0) throw new EmptyFileError('The file is empty: it has no header row');
  const total = last ? last.recordsBefore + last.outcome.records : 0;
  const ranges: PlannedRange[] = [];
  for (let k = 0; k < cuts.length; k++) {
    const cut = cuts[k]!;
    const next = cuts[k + 1] ?? { at: bytes, records: total };
    // Only the last range can hold no record (blank lines after the last one): no worker for it.
    if (next.records === cut.records) continue;
    ranges.push({ index: ranges.length, start: cut.at, end: next.at, firstRecord: cut.records, firstLine: cut.lineEnds + 1, records: next.records - cut.records });
  }
  return { headerEnd: cuts[0]!.at, ranges, records: Math.max(0, total - 1), bytes };
}

/** Each scan with the outcome of its true entry state; throws on the first malformed one. */
function chainScans(scans: readonly RangeScan[]): ChainedScan[] {
  const chained: ChainedScan[] = [];
  let entry: EntryState = 'recordStart';
  let recordsBefore = 0;
  let lineEndsBefore = 0;
  let openLine = 0;
  let expected = 0;
  for (const [j, scan] of scans.entries()) {
    if (scan.offset !== expected || (j === 0) !== scan.atFileStart) throw new Error(`Scan ${j} starts at ${scan.offset}, not at ${expected}: the scans must be the file's consecutive ranges`);
    const outcome: EntryOutcome | undefined = scan.byEntry[entry];
    if (!outcome) throw new Error(`Scan ${j} was not read from entry state ${entry}`);
    const splitLF = j > 0 && scans[j - 1]!.endsWithCR && scan.startsWithLF ? 1 : 0;
    if (outcome.exit === 'error') throw badClose(outcome.error!.byte, lineEndsBefore + outcome.error!.lineEnds - splitLF + 1);
    chained.push({ scan, outcome, recordsBefore, lineEndsBefore, splitLF });
    if (outcome.openQuoteLineEnds !== undefined) openLine = lineEndsBefore + outcome.openQuoteLineEnds - splitLF + 1;
    recordsBefore += outcome.records;
    lineEndsBefore += scan.lineEnds - splitLF;
    expected = scan.offset + scan.bytes;
    entry = outcome.exit;
  }
  const last = scans[scans.length - 1];
  if (last && !last.atFileEnd) throw new Error('The last scan does not end at the file end');
  if (entry === 'quoted') throw unclosedQuote(openLine);
  return chained;
}

/** The first record end at or after scan j's start, with the records and line ends up to it; undefined: none. */
function cutAtOrAfter(chained: readonly ChainedScan[], j: number): { at: number; records: number; lineEnds: number } | undefined {
  const previous = chained[j - 1];
  const start = chained[j]!.scan.offset;
  if (previous?.outcome.lastRecordEnd === start) {
    // The previous range's last byte ends a record: the cut is at the start (past a `\n` completing its `\r\n`).
    return { at: start + chained[j]!.splitLF, records: chained[j]!.recordsBefore, lineEnds: chained[j]!.lineEndsBefore };
  }
  for (let m = j; m < chained.length; m++) {
    const { scan, outcome, recordsBefore, lineEndsBefore, splitLF }: ChainedScan = chained[m]!;
    if (outcome.firstRecordEnd === undefined) continue;
    let at = outcome.firstRecordEnd;
    const next = chained[m + 1];
    if (at === scan.offset + scan.bytes && next?.splitLF) at += 1;
    return { at, records: recordsBefore + 1, lineEnds: lineEndsBefore + outcome.firstRecordLineEnds! - splitLF };
  }
  return undefined;
}
