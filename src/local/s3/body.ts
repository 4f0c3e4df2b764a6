import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32 } from 'node:zlib';
import { S3Errors } from './errors';

/** A checksum S3 keeps with an object (`x-amz-checksum-<algorithm>`), base64 as S3 sends it. */
export interface StoredChecksum {
  readonly algorithm: string;
  readonly value: string;
}

/** What a request body turned out to be, once read to its end and checked. */
export interface ReceivedBody {
  readonly size: number;
  /** MD5 of the payload, hex: the ETag of a simple object or part. */
  readonly md5: string;
  readonly checksum?: StoredChecksum;
}

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32c(data: Uint8Array, previous = 0): number {
  let crc = ~previous >>> 0;
  for (let i = 0; i < data.length; i++) crc = CRC32C_TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** A running checksum of one of the algorithms the SDKs send; CRC64NVME is accepted but not verified. */
interface Checksummer {
  update(data: Uint8Array): void;
  digest(): string;
}

function checksummer(algorithm: string): Checksummer | undefined {
  const crc = (fn: (data: Uint8Array, previous: number) => number): Checksummer => {
    let value = 0;
    return {
      update: (data) => (value = fn(data, value)),
      digest: () => {
        const out = Buffer.alloc(4);
        out.writeUInt32BE(value >>> 0);
        return out.toString('base64');
      },
    };
  };
  const hash = (name: string): Checksummer => {
    const h: Hash = createHash(name);
    return { update: (data) => h.update(data), digest: () => h.digest('base64') };
  };
  switch (algorithm) {
    case 'crc32':
      return crc((data, previous) => crc32(data, previous));
    case 'crc32c':
      return crc(crc32c);
    case 'sha1':
      return hash('sha1');
    case 'sha256':
      return hash('sha256');
    default:
      return undefined;
  }
}

const CHECKSUM_HEADER = /^x-amz-checksum-(crc32|crc32c|crc64nvme|sha1|sha256)$/;

/**
 * Decodes `Content-Encoding: aws-chunked` (signed chunks `<hex>;chunk-signature=…` or unsigned `<hex>`), collecting
 * the trailing headers (the SDK's `x-amz-checksum-crc32` of a streamed body).
 */
export class AwsChunkedDecoder extends Transform {
  readonly trailers: Record<string, string> = {};
  private pending = Buffer.alloc(0);
  private remaining = 0;
  private state: 'header' | 'data' | 'crlf' | 'trailer' | 'done' = 'header';

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let buffer = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    try {
      while (buffer.length) {
        if (this.state === 'data') {
          const take = Math.min(this.remaining, buffer.length);
          this.push(buffer.subarray(0, take));
          buffer = buffer.subarray(take);
          this.remaining -= take;
          if (this.remaining === 0) this.state = 'crlf';
          continue;
        }
        if (this.state === 'done') break;
        const end = buffer.indexOf('\r\n');
        if (end < 0) {
          if (buffer.length > 64 * 1024) throw new Error('aws-chunked line too long');
          this.pending = Buffer.from(buffer);
          break;
        }
        const line = buffer.subarray(0, end).toString('latin1');
        buffer = buffer.subarray(end + 2);
        if (this.state === 'crlf') {
          if (line !== '') throw new Error('aws-chunked data not followed by CRLF');
          this.state = 'header';
        } else if (this.state === 'header') {
          const size = parseInt(line.split(';')[0]!, 16);
          if (!Number.isFinite(size) || size < 0) throw new Error(`Bad aws-chunked chunk header: ${line.slice(0, 40)}`);
          if (size === 0) this.state = 'trailer';
          else {
            this.remaining = size;
            this.state = 'data';
          }
        } else if (line === '') this.state = 'done';
        else {
          const colon = line.indexOf(':');
          if (colon > 0) this.trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
        }
      }
      callback();
    } catch (error) {
      callback(S3Errors.invalidRequest(`Malformed aws-chunked body: ${(error as Error).message}`));
    }
  }

  override _flush(callback: TransformCallback): void {
    // A body cut off inside a chunk is incomplete; a missing final CRLF after the trailers is tolerated.
    if (this.state === 'data' || this.state === 'header') callback(S3Errors.incompleteBody());
    else callback();
  }
}

function isChunked(req: IncomingMessage): boolean {
  const encoding = String(req.headers['content-encoding'] ?? '');
  const sha = String(req.headers['x-amz-content-sha256'] ?? '');
  return encoding.split(',').some((e) => e.trim() === 'aws-chunked') || sha.startsWith('STREAMING-');
}

/** The payload length the request announces (decoded length of an aws-chunked body); throws S3's 411 when absent. */
export function declaredLength(req: IncomingMessage): number {
  const value = isChunked(req) ? req.headers['x-amz-decoded-content-length'] : req.headers['content-length'];
  if (value === undefined || !/^\d+$/.test(String(value))) throw S3Errors.missingContentLength();
  return Number(value);
}

/**
 * Reads a request body to `sink` (a file, or memory), decoding aws-chunked, and checks it as S3 does: the announced
 * length, Content-MD5, the flexible checksum (header or trailer) and a hex `x-amz-content-sha256`.
 */
async function receive(req: IncomingMessage, sink: Writable, maxBytes: number): Promise<ReceivedBody> {
  const declared = declaredLength(req);
  if (declared > maxBytes) throw S3Errors.entityTooLarge(maxBytes);
  const chunked = isChunked(req);
  const trailerNames = String(req.headers['x-amz-trailer'] ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  const checksumName = [...Object.keys(req.headers), ...trailerNames].find((name) => CHECKSUM_HEADER.test(name));
  const algorithm = checksumName ? CHECKSUM_HEADER.exec(checksumName)![1]! : undefined;
  const sum = algorithm ? checksummer(algorithm) : undefined;
  const contentSha = String(req.headers['x-amz-content-sha256'] ?? '');
  const sha256 = /^[0-9a-f]{64}$/.test(contentSha) ? createHash('sha256') : undefined;
  const md5 = createHash('md5');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (size > declared) return callback(S3Errors.invalidRequest('The body is longer than the announced Content-Length.'));
      md5.update(chunk);
      sha256?.update(chunk);
      sum?.update(chunk);
      callback(null, chunk);
    },
  });
  const decoder = chunked ? new AwsChunkedDecoder() : undefined;
  await pipeline(...([req, ...(decoder ? [decoder] : []), tap, sink] as [IncomingMessage, Transform, Writable]));
  if (size !== declared) throw S3Errors.incompleteBody();
  const md5Bytes = md5.digest();
  const contentMd5 = req.headers['content-md5'];
  if (contentMd5 !== undefined) {
    if (!/^[A-Za-z0-9+/]{22}==$/.test(String(contentMd5))) throw S3Errors.invalidDigest();
    if (md5Bytes.toString('base64') !== contentMd5) throw S3Errors.badDigest('Content-MD5');
  }
  if (sha256) {
    const computed = sha256.digest('hex');
    if (computed !== contentSha) throw S3Errors.contentSha256Mismatch(contentSha, computed);
  }
  let checksum: StoredChecksum | undefined;
  if (checksumName && algorithm) {
    const sent = String(req.headers[checksumName] ?? decoder?.trailers[checksumName] ?? '');
    if (sum && sent && sum.digest() !== sent) throw S3Errors.badDigest(algorithm.toUpperCase());
    if (sent) checksum = { algorithm: algorithm.toUpperCase(), value: sent };
  }
  return { size, md5: md5Bytes.toString('hex'), checksum };
}

/** Streams a request body into a file (removed again when the body is refused). */
export async function receiveToFile(req: IncomingMessage, path: string, maxBytes: number): Promise<ReceivedBody> {
  try {
    return await receive(req, createWriteStream(path), maxBytes);
  } catch (error) {
    rmSync(path, { force: true });
    throw error;
  }
}

/** Reads a small request body (an XML document) into memory. */
export async function receiveToBuffer(req: IncomingMessage, maxBytes = 16 * 1024 * 1024): Promise<Buffer> {
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      parts.push(chunk);
      callback();
    },
  });
  // An XML request may come without Content-Length only if it has no body at all.
  if (req.headers['content-length'] === undefined && req.headers['x-amz-decoded-content-length'] === undefined && req.headers['transfer-encoding'] === undefined) return Buffer.alloc(0);
  await receive(req, sink, maxBytes);
  return Buffer.concat(parts);
}
