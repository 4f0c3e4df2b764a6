import type { S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { putText } from '../aws/s3';

/** Chunk uploads in flight while parsing goes on: enough to hide S3 latency, few enough to keep memory flat. */
export const UPLOADS_IN_FLIGHT = 4;
/** A chunk body's first size; it grows by doubling, and the next chunk starts at the size the last one reached. */
const FIRST_BODY_BYTES = 64 * 1024;
/** The most UTF-8 bytes one UTF-16 code unit takes (a surrogate pair's 4 bytes are 2 per unit). */
const MAX_UTF8_PER_UNIT = 3;

/** A chunk a range worker wrote: its key, its lines, and the numbers it holds (finish finds a repeat's chunk by them). */
export interface RangeChunk {
  key: string;
  lines: number;
  firstRecord: number;
  /** Smallest and largest record number of its lines (a replay's numbers need not ascend). */
  minRecord: number;
  maxRecord: number;
}

/**
 * Fills the chunk objects of one range, `recordsPerChunk` staged lines each, and owns their uploads (a few in flight
 * while parsing goes on). FinishStage numbers the chunks of every range in record order for the Distributed Map.
 */
export class ChunkWriter {
  /** The chunks written so far, in record order. */
  readonly chunks: RangeChunk[] = [];
  /**
   * The chunk being filled, its lines already UTF-8 and joined by "\n": written into one buffer as they come, because
   * joining a thousand strings and encoding the result cost more than encoding the records had (the record path's
   * profile, bench/record-path.ts).
   */
  private body: Buffer = Buffer.allocUnsafe(FIRST_BODY_BYTES);
  private bodyBytes = 0;
  private lineCount = 0;
  private firstRecord = 1;
  private minRecord = Infinity;
  private maxRecord = 0;
  private readonly uploads = pLimit(UPLOADS_IN_FLIGHT);
  private readonly pending = new Set<Promise<void>>();
  /** The first failed upload: an upload leaves `pending` when it settles, so its failure is kept here. */
  private failure: Error | undefined;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    /** The staging key of chunk j of this range. */
    private readonly keyOf: (j: number) => string,
    private readonly recordsPerChunk: number,
  ) {}

  /** Stages a record: its staged line and number. */
  async add(line: string, number: number): Promise<void> {
    if (this.lineCount === 0) this.firstRecord = number;
    this.append(line);
    if (number < this.minRecord) this.minRecord = number;
    if (number > this.maxRecord) this.maxRecord = number;
    if (this.lineCount >= this.recordsPerChunk) await this.flush();
  }

  /** Writes the line (after a "\n" unless it is the chunk's first) into the body, which grows when it may not hold it. */
  private append(line: string): void {
    const room = line.length * MAX_UTF8_PER_UNIT + 1;
    if (this.bodyBytes + room > this.body.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.body.length * 2, this.bodyBytes + room));
      this.body.copy(grown, 0, 0, this.bodyBytes);
      this.body = grown;
    }
    if (this.lineCount > 0) this.body[this.bodyBytes++] = 0x0a;
    this.bodyBytes += this.body.write(line, this.bodyBytes);
    this.lineCount += 1;
  }

  /** Uploads the chunk being filled; waits while too many uploads are in flight. */
  async flush(): Promise<void> {
    if (this.lineCount === 0) return;
    const chunk: RangeChunk = { key: this.keyOf(this.chunks.length), lines: this.lineCount, firstRecord: this.firstRecord, minRecord: this.minRecord, maxRecord: this.maxRecord };
    this.chunks.push(chunk);
    this.minRecord = Infinity;
    this.maxRecord = 0;
    // A Buffer, not a string: a string body would be encoded for its checksum and again on the socket. The upload
    // keeps this one; the next chunk gets a new buffer of the size this one reached.
    const body = this.body.subarray(0, this.bodyBytes);
    this.body = Buffer.allocUnsafe(this.body.length);
    this.bodyBytes = 0;
    this.lineCount = 0;
    this.track(
      this.uploads(() => putText(this.s3, this.bucket, chunk.key, body, 'application/x-ndjson')),
      chunk.key,
    );
    if (this.pending.size >= UPLOADS_IN_FLIGHT) await Promise.race(this.pending);
    if (this.failure) throw this.failure;
  }

  /** Waits for every upload; throws the first that failed. */
  async drain(): Promise<void> {
    await Promise.all(this.pending);
    if (this.failure) throw this.failure;
  }

  /** Waits for every upload, whatever its outcome (the stage is failing). */
  async abandon(): Promise<void> {
    await Promise.allSettled(this.pending);
  }

  private track(upload: Promise<void>, key: string): void {
    const settled = upload.catch((error: unknown) => {
      this.failure ??= error instanceof Error ? error : new Error(`Staging upload of ${key} failed`);
    });
    this.pending.add(settled);
    void settled.finally(() => this.pending.delete(settled));
  }
}
