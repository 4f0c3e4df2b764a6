import { PassThrough, type Readable, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { UnsafeArchiveError } from '../errors';

export interface UnpackLimits {
  /** Most uncompressed bytes per compressed byte. */
  maxCompressionRatio: number;
  /** Most uncompressed bytes in all. */
  maxUncompressedBytes: number;
}

/** The ratio is judged only past this much output: small files legitimately compress very well. */
const RATIO_GRACE_BYTES = 16 * 1024 * 1024;

/** Whether data starts with the gzip magic number. */
export function isGzip(head: Buffer): boolean {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/**
 * Waits for room in the stream, or for its end when a later stage failed and tore the pipeline down; whichever comes,
 * the other listener goes too (left behind, one 'close' listener per wait piled up: MaxListenersExceededWarning).
 */
function roomOrClose(stream: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.once('drain', done);
    stream.once('close', done);
  });
}

/**
 * Passes the stream through, gunzipped when it starts with the gzip magic number (whatever the file is called), and
 * refuses a decompression bomb: more than `maxUncompressedBytes` out, or more than `maxCompressionRatio` bytes out per
 * byte in once past the first 16 MiB. Streaming: nothing is held whole.
 */
export function gunzipIfCompressed(input: Readable, limits: UnpackLimits): Readable {
  const output = new PassThrough();
  const iterator = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  void (async () => {
    const first = await iterator.next();
    const source = new PassThrough();
    const rest = (async () => {
      if (!first.done) source.write(first.value);
      for (let step = await iterator.next(); !step.done; step = await iterator.next()) {
        if (source.destroyed) break;
        if (!source.write(step.value)) await roomOrClose(source);
      }
      if (source.destroyed) input.destroy();
      else source.end();
    })();
    rest.catch((error: unknown) => source.destroy(error instanceof Error ? error : new Error(String(error))));
    if (first.done || !isGzip(first.value)) {
      source.on('error', (error) => output.destroy(error));
      source.pipe(output);
      return;
    }
    let compressed = 0;
    let uncompressed = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        compressed += chunk.length;
        callback(null, chunk);
      },
    });
    const guard = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        uncompressed += chunk.length;
        if (uncompressed > limits.maxUncompressedBytes) {
          return callback(new UnsafeArchiveError(`The gzip file expands beyond unpack.maxUncompressedBytes (${limits.maxUncompressedBytes} bytes); it was not imported`));
        }
        if (uncompressed > RATIO_GRACE_BYTES && uncompressed / Math.max(1, compressed) > limits.maxCompressionRatio) {
          return callback(new UnsafeArchiveError(`The gzip file expands more than ${limits.maxCompressionRatio} times (a decompression bomb?); it was not imported`));
        }
        callback(null, chunk);
      },
    });
    const gunzip = createGunzip();
    gunzip.on('error', (error) => output.destroy(new UnsafeArchiveError(`The gzip file is damaged (${error.message}); it was not imported`)));
    for (const stage of [source, counter, guard]) stage.on('error', (error) => output.destroy(error));
    output.on('close', () => source.destroy());
    source.pipe(counter).pipe(gunzip).pipe(guard).pipe(output);
  })().catch((error: unknown) => output.destroy(error instanceof Error ? error : new Error(String(error))));
  return output;
}
