import type { S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { putText } from '../aws/s3';

/** Chunk uploads in flight while parsing goes on: enough to hide S3 latency, few enough to keep memory flat. */
export const UPLOADS_IN_FLIGHT = 4;

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
  private lines: string[] = [];
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
    if (this.lines.length === 0) this.firstRecord = number;
    this.lines.push(line);
    if (number < this.minRecord) this.minRecord = number;
    if (number > this.maxRecord) this.maxRecord = number;
    if (this.lines.length >= this.recordsPerChunk) await this.flush();
  }

  /** Uploads the chunk being filled; waits while too many uploads are in flight. */
  async flush(): Promise<void> {
    if (this.lines.length === 0) return;
    const chunk: RangeChunk = { key: this.keyOf(this.chunks.length), lines: this.lines.length, firstRecord: this.firstRecord, minRecord: this.minRecord, maxRecord: this.maxRecord };
    this.chunks.push(chunk);
    this.minRecord = Infinity;
    this.maxRecord = 0;
    // Encoded once here: a string body would be encoded for its checksum and again on the socket.
    const body = Buffer.from(this.lines.join('\n'));
    this.lines = [];
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
