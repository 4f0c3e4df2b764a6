import { type Hash, createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { Dataflow } from '../config/schema';
import { checkFileRecords } from '../config/limits';
import { KEYS, type StageEvent, type StagePlanRef } from '../contracts';
import { openRange, putJson, readJson } from '../aws/s3';
import { type CsvFile, openCsv } from '../core/csv';
import { ENTRIES_PER_PARTITION } from '../core/partitions';
import { BoundaryScanner, HASH_BLOCK_BYTES, type PlannedRange, type RangeScan, type ScanDialect, SequentialScanner, contentDigest, planRanges } from '../core/ranges';
import { EmptyFileError, SourceReadError } from '../errors';
import type { StagePlanSizes, StepDeps } from './deps';

/** Most bytes of a nominal range: a range worker's share of the text (its memory does not depend on it). */
export const MAX_RANGE_BYTES = 64 * 1024 * 1024;
/** Fewest bytes of a nominal range: one content hash block, so the scan workers hash whole blocks. */
export const MIN_RANGE_BYTES = HASH_BLOCK_BYTES;

/**
 * The nominal range of a text of `size` bytes: `⌈size / n⌉` rounded up to a whole number of hash blocks (8 MiB),
 * where n is the fewest ranges of at most 64 MiB, and at least 2 once the text is over 16 MiB (two cores work);
 * so between 8 and 64 MiB. `sizes.rangeBytes` (a test's) replaces it; over one hash block it is still rounded up to
 * whole blocks, since the scan workers hash whole blocks.
 */
export function rangeBytesFor(size: number, sizes: StagePlanSizes = {}): number {
  const roundUp = (n: number) => Math.ceil(n / HASH_BLOCK_BYTES) * HASH_BLOCK_BYTES;
  if (sizes.rangeBytes) return size > HASH_BLOCK_BYTES ? roundUp(sizes.rangeBytes) : Math.max(1, sizes.rangeBytes);
  const ranges = Math.max(Math.ceil(size / MAX_RANGE_BYTES), size > 2 * MIN_RANGE_BYTES ? 2 : 1);
  return Math.min(MAX_RANGE_BYTES, Math.max(MIN_RANGE_BYTES, roundUp(Math.ceil(size / ranges))));
}

/** Key partitions for `records` records (ENTRIES_PER_PARTITION each, or a test's `partitionRecords`): at least one. */
export function partitionCount(records: number, sizes: StagePlanSizes = {}): number {
  return Math.max(1, Math.ceil(records / (sizes.partitionRecords ?? ENTRIES_PER_PARTITION)));
}

/** The scanners' dialect: the guard's delimiter and quote, and the encoding (a latin1 file keeps a leading BOM). */
export function scanDialect(flow: Dataflow, encoding: Dataflow['csv']['encoding']): ScanDialect {
  return { delimiter: flow.csv.delimiter, quote: flow.csv.quote, encoding };
}

/** Where the text the range workers parse is: the source object (exactly its version), or a staged plaintext. */
export interface StagedText {
  bucket: string;
  key: string;
  versionId?: string;
  /** Without a version id (an unversioned bucket): the object's ETag, every read made only while it matches. */
  etag?: string;
  size: number;
  /** The text's encoding: the dataflow's, or utf-8 once transcoded from utf-16le. */
  encoding: Dataflow['csv']['encoding'];
}

/** The staging plan (KEYS.plan): written by prepare (a plain file: `scans` to do) and completed by plan. */
export interface StagePlan {
  text: StagedText;
  /** Nominal bytes of a scan (plain file) or of a scanner piece (sequential pass). */
  rangeBytes: number;
  /** Nominal ranges to scan (a plain file, before the plan phase). */
  scans?: number;
  /** SHA-256 of the delivered bytes, when a sequential pass read them (else the content digest stands for it). */
  deliveredSha256?: string;
  deliveredBytes: number;
  /** Set once planned. */
  header?: string[];
  ranges?: PlannedRange[];
  records?: number;
  partitions?: number;
  contentSha256?: string;
  /** The content digest is the block-tree digest (the text is over one hash block). */
  tree?: boolean;
}

/** The state's plan reference for a plan: index lists only. */
export function planRefOf(runId: string, plan: StagePlan): StagePlanRef {
  const indexes = (n: number) => Array.from({ length: n }, (_, i) => i);
  if (plan.scans !== undefined && !plan.ranges) return { key: KEYS.plan(runId), ranges: [], partitions: [], scan: indexes(plan.scans) };
  return { key: KEYS.plan(runId), ranges: indexes(plan.ranges?.length ?? 0), partitions: indexes(plan.partitions ?? 1) };
}

/** Reads the run's plan; a missing one is a fault of the run (its prepare did not finish). */
export async function readPlan(deps: StepDeps, runId: string): Promise<StagePlan> {
  const plan = await readJson<StagePlan>(deps.s3, deps.buckets.staging, KEYS.plan(runId));
  if (!plan) throw new SourceReadError(`The staging plan s3://${deps.buckets.staging}/${KEYS.plan(runId)} is missing`);
  return plan;
}

/** The scan phase: one worker reads its nominal range of a plain source once, for record boundaries and block digests. */
export async function scanRange(event: StageEvent, deps: StepDeps, flow: Dataflow): Promise<void> {
  const plan = await readPlan(deps, event.runId);
  const index = event.index ?? 0;
  const start = index * plan.rangeBytes;
  const end = Math.min(plan.text.size, start + plan.rangeBytes);
  const scanner = new BoundaryScanner(scanDialect(flow, plan.text.encoding), { atFileStart: start === 0, offset: start });
  const blocks = new BlockHasher(start);
  if (end > start) {
    const body = await openRange(deps.s3, plan.text.bucket, plan.text.key, start, end, plan.text.versionId, plan.text.etag);
    for await (const piece of body) {
      scanner.write(piece as Buffer);
      blocks.update(piece as Buffer);
    }
  }
  const scan = scanner.end(end >= plan.text.size);
  await putJson(deps.s3, deps.buckets.staging, KEYS.scan(event.runId, index), { ...scan, blockDigests: blocks.end() });
}

/**
 * The plan phase (a plain file): reads every scan, cuts the ranges at record boundaries, reads the header record, and
 * completes the plan. Returns the state's plan reference (ResultPath `$.plan`).
 */
export async function planFromScans(event: StageEvent, deps: StepDeps, flow: Dataflow): Promise<StagePlanRef> {
  const plan = await readPlan(deps, event.runId);
  // A retry of this phase whose first attempt wrote the plan (its answer lost): the plan no longer lists scans.
  if (plan.ranges) return planRefOf(event.runId, plan);
  const scans: RangeScan[] = [];
  for (let i = 0; i < (plan.scans ?? 0); i++) {
    const scan = await readJson<RangeScan>(deps.s3, deps.buckets.staging, KEYS.scan(event.runId, i));
    if (!scan) throw new SourceReadError(`The scan s3://${deps.buckets.staging}/${KEYS.scan(event.runId, i)} is missing`);
    scans.push(scan);
  }
  const digests = scans.flatMap((s) => s.blockDigests ?? []);
  // A text of one block or less: its SHA-256 (the scans hashed their parts of it, not the block whole).
  const content = plan.text.size <= HASH_BLOCK_BYTES ? await sha256Of(deps, plan.text) : contentDigest(digests.map((d) => Buffer.from(d, 'hex')));
  const planned = await completePlan(deps, flow, plan, scans, content, plan.text.size > HASH_BLOCK_BYTES);
  await putJson(deps.s3, deps.buckets.staging, KEYS.plan(event.runId), planned);
  return planRefOf(event.runId, planned);
}

/** The plan with its ranges, header, partitions and content digest. */
export async function completePlan(deps: StepDeps, flow: Dataflow, plan: StagePlan, scans: RangeScan[], contentSha256: string, tree: boolean): Promise<StagePlan> {
  const planned = planRanges(scans, { rangeBytes: rangeBytesFor(plan.text.size, deps.stagePlan) });
  const header = await readHeader(deps, flow, plan.text, planned.headerEnd);
  const { records } = planned;
  // Counted exactly before any range is parsed: a file over csv.maxRecords (the workflow's timeout is sized for it) sends nothing.
  checkFileRecords(flow, records);
  return { ...plan, scans: undefined, header, ranges: planned.ranges, records, partitions: partitionCount(records, deps.stagePlan), contentSha256, tree };
}

/** The header record (the text's first, up to `headerEnd`), read with openCsv as a single pass reads it. */
async function readHeader(deps: StepDeps, flow: Dataflow, text: StagedText, headerEnd: number): Promise<string[]> {
  if (headerEnd <= 0) throw new EmptyFileError('The file is empty: it has no header row');
  const csv: CsvFile = await openCsv(await openRange(deps.s3, text.bucket, text.key, 0, headerEnd, text.versionId, text.etag), { ...flow.csv, encoding: text.encoding });
  for await (const record of csv.records) throw new Error(`The header of ${text.key} ends at byte ${headerEnd}, yet record ${record.number} follows it`);
  return csv.header;
}

/** The SHA-256 of a small text (one hash block or less), read whole. */
async function sha256Of(deps: StepDeps, text: StagedText): Promise<string> {
  const hash = createHash('sha256');
  if (text.size > 0) for await (const piece of await openRange(deps.s3, text.bucket, text.key, 0, text.size, text.versionId, text.etag)) hash.update(piece as Buffer);
  return hash.digest('hex');
}

/**
 * The SHA-256 of every whole hash block (8 MiB, from offset 0) of the bytes given from `offset` on, and of the last
 * partial one: a range's share of the content digest. Blocks are aligned on the text, so ranges that are whole
 * blocks each hash their own.
 */
export class BlockHasher {
  private hash: Hash = createHash('sha256');
  private inBlock: number;
  private readonly digests: string[] = [];
  private any = false;

  constructor(offset = 0) {
    this.inBlock = offset % HASH_BLOCK_BYTES;
  }

  update(data: Buffer): void {
    let at = 0;
    while (at < data.length) {
      const take = Math.min(data.length - at, HASH_BLOCK_BYTES - this.inBlock);
      this.hash.update(data.subarray(at, at + take));
      this.any = true;
      this.inBlock += take;
      at += take;
      if (this.inBlock === HASH_BLOCK_BYTES) {
        this.digests.push(this.hash.digest('hex'));
        this.hash = createHash('sha256');
        this.inBlock = 0;
        this.any = false;
      }
    }
  }

  end(): string[] {
    if (this.any || this.digests.length === 0) this.digests.push(this.hash.digest('hex'));
    return this.digests;
  }

  /** The content digest of a whole text hashed from its start. */
  digest(): { contentSha256: string; tree: boolean } {
    const digests = this.end();
    return { contentSha256: digests.length === 1 ? digests[0]! : contentDigest(digests.map((d) => Buffer.from(d, 'hex'))), tree: digests.length > 1 };
  }
}

/**
 * The sequential pass's tap: passes the text through unchanged while the boundary scanner reads it in pieces of
 * `pieceBytes` (each a RangeScan, as the scan workers write for a plain file, the entry state known) and the hash
 * blocks are hashed.
 */
export class ScanningTap extends Transform {
  readonly blocks = new BlockHasher();
  bytes = 0;
  private readonly scanner: SequentialScanner;

  constructor(dialect: ScanDialect, pieceBytes: number) {
    super();
    this.scanner = new SequentialScanner(dialect, { rangeBytes: pieceBytes });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null, data?: Buffer) => void): void {
    try {
      this.observe(chunk);
      callback(null, chunk);
    } catch (error) {
      callback(error as Error);
    }
  }

  /** Scans and hashes the next bytes of the text (what the tap does to what passes through it). */
  observe(chunk: Buffer): void {
    this.blocks.update(chunk);
    this.scanner.write(chunk);
    this.bytes += chunk.length;
  }

  /** The scans of the whole text (call once it has all passed). */
  finish(): RangeScan[] {
    return this.scanner.end();
  }
}
