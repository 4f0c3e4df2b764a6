import type { S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { type ChunkRef, KEYS } from '../contracts';
import { putText } from '../aws/s3';
import { stagedNumberOf } from '../core/staged-record';

/** Chunk uploads in flight while parsing goes on: enough to hide S3 latency, few enough to keep memory flat. */
export const UPLOADS_IN_FLIGHT = 4;
/** The key index goes to staging in parts of about 1 MiB (small puts: no multipart buffers held while reading). */
const INDEX_PART_BYTES = 1024 * 1024;
/** A chunk body's first size; it grows by doubling, and the next chunk starts at the size the last one reached. */
const FIRST_BODY_BYTES = 64 * 1024;
/** The most UTF-8 bytes one UTF-16 code unit takes (a surrogate pair's 4 bytes are 2 per unit). */
const MAX_UTF8_PER_UNIT = 3;

/**
 * Fills the chunk objects the Distributed Map sends, `recordsPerChunk` staged lines each, and owns their uploads (a
 * few in flight while parsing goes on) and the key index: the fingerprint and number of every record staged as new
 * while the file is read, which tells the held records' settlement which chunks to read back.
 */
export class ChunkWriter {
  /** The chunks written so far, in record order. */
  readonly chunks: ChunkRef[] = [];
  /** Key index parts put so far. */
  indexParts = 0;
  /**
   * The chunk being filled, its lines already UTF-8 and joined by "\n": written into one buffer as they come, because
   * joining a thousand strings and encoding the result cost more than encoding the records had (the record path's
   * profile, bench/record-path.ts).
   */
  private body: Buffer = Buffer.allocUnsafe(FIRST_BODY_BYTES);
  private bodyBytes = 0;
  private lineCount = 0;
  private firstRecord = 1;
  /** Fingerprint and number of each line of the chunk being filled, while the file is read (not for held records). */
  private indexed: number[] = [];
  private indexPart: Buffer[] = [];
  private indexPartBytes = 0;
  private readonly uploads = pLimit(UPLOADS_IN_FLIGHT);
  private readonly pending = new Set<Promise<void>>();
  /** The first failed upload: an upload leaves `pending` when it settles, so its failure is kept here. */
  private failure: Error | undefined;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly runId: string,
    private readonly recordsPerChunk: number,
  ) {}

  /** Stages a record read from the file, as new: its line, number and key fingerprint (for the key index). */
  /**
   * Stages a record read from the file, as new: its line, number and key fingerprint (for the key index). Returns a
   * promise only when the chunk is full and goes to S3 (then await it: it waits while too many uploads are in flight),
   * so that the record loop pays for no promise on the other records.
   */
  add(line: string, number: number, fingerprint: number): Promise<void> | undefined {
    if (this.lineCount === 0) this.firstRecord = number;
    this.append(line);
    this.indexed.push(fingerprint, number);
    return this.lineCount >= this.recordsPerChunk ? this.flush() : undefined;
  }

  /** Stages a held record settled as no duplicate (after the file was read: no key index entry). */
  async addSettled(line: string): Promise<void> {
    if (this.lineCount === 0) this.firstRecord = stagedNumberOf(line);
    this.append(line);
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

  /** Uploads the chunk being filled (and a key index part once it is full); waits while too many uploads are in flight. */
  async flush(): Promise<void> {
    if (this.lineCount === 0) return;
    if (this.indexed.length > 0) {
      const part = Buffer.from(Uint32Array.from(this.indexed).buffer);
      this.indexed = [];
      this.indexPart.push(part);
      this.indexPartBytes += part.length;
      if (this.indexPartBytes >= INDEX_PART_BYTES) this.putIndexPart();
    }
    const ref: ChunkRef = { index: this.chunks.length, key: KEYS.chunk(this.runId, this.chunks.length), records: this.lineCount, firstRecord: this.firstRecord };
    this.chunks.push(ref);
    // A Buffer, not a string: a string body would be encoded for its checksum and again on the socket. The upload
    // keeps this one; the next chunk gets a new buffer of the size this one reached.
    const body = this.body.subarray(0, this.bodyBytes);
    this.body = Buffer.allocUnsafe(this.body.length);
    this.bodyBytes = 0;
    this.lineCount = 0;
    this.track(
      this.uploads(() => putText(this.s3, this.bucket, ref.key, body, 'application/x-ndjson')),
      ref.key,
    );
    if (this.pending.size >= UPLOADS_IN_FLIGHT) await Promise.race(this.pending);
    if (this.failure) throw this.failure;
  }

  /** Puts the key index part being filled, if any. */
  putIndexPart(): void {
    if (this.indexPartBytes === 0) return;
    const key = KEYS.keyIndex(this.runId, this.indexParts++);
    const body = Buffer.concat(this.indexPart);
    this.indexPart = [];
    this.indexPartBytes = 0;
    this.track(
      this.uploads(() => putText(this.s3, this.bucket, key, body, 'application/octet-stream')),
      key,
    );
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
