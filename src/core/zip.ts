import { PassThrough, type Readable } from 'node:stream';
import * as yauzl from 'yauzl';
import { UnsafeArchiveError } from '../errors';
import type { UnpackLimits } from './unpack';

/** Whether data starts like a zip file (a local file header, or the end record of an empty archive). */
export function isZip(head: Buffer): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && ((head[2] === 0x03 && head[3] === 0x04) || (head[2] === 0x05 && head[3] === 0x06));
}

/** Opens bytes `start` (inclusive) to `end` (exclusive) of the archive. */
export type RangeOpener = (start: number, end: number) => Promise<Readable>;

/** Reads this small or smaller are served from a window of WINDOW_BYTES read at once. */
const SMALL_READ = 64 * 1024;
const WINDOW_BYTES = 1024 * 1024;

/**
 * yauzl reads the archive through ranges, so it never has to be downloaded whole (S3 ranged GETs in practice). It reads
 * the central directory one small record at a time: those reads are served from a 1 MiB window, so an archive of
 * thousands of entries costs a few requests to list, not two per entry.
 */
class RangeReader extends yauzl.RandomAccessReader {
  private window?: { start: number; end: number; data: Promise<Buffer> };

  constructor(
    private readonly open: RangeOpener,
    private readonly size: number,
  ) {
    super();
  }

  override _readStreamForRange(start: number, end: number): Readable {
    if (end - start <= SMALL_READ) return this.fromWindow(start, end);
    const out = new PassThrough();
    this.open(start, end).then(
      (stream) => {
        stream.on('error', (error) => out.destroy(error));
        stream.pipe(out);
      },
      (error: unknown) => out.destroy(error instanceof Error ? error : new Error(String(error))),
    );
    return out;
  }

  private fromWindow(start: number, end: number): Readable {
    let window = this.window;
    if (!window || start < window.start || end > window.end) {
      const windowEnd = Math.max(end, Math.min(this.size, start + WINDOW_BYTES));
      window = { start, end: windowEnd, data: this.open(start, windowEnd).then(collect) };
      // A failed read is not kept: the next one asks again.
      window.data.catch(() => (this.window = undefined));
      this.window = window;
    }
    const { data, start: at } = window;
    const out = new PassThrough();
    data.then(
      (bytes) => out.end(bytes.subarray(start - at, end - at)),
      (error: unknown) => out.destroy(error instanceof Error ? error : new Error(String(error))),
    );
    return out;
  }
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

const GRACE_BYTES = 16 * 1024 * 1024;

export interface ZipExpansion {
  /** Names (the part after the last "/") of the entries handed to the sink, in archive order. */
  extracted: string[];
  /** Entries left out because their name does not match. */
  skipped: string[];
}

/**
 * Hands each entry of a zip archive whose file name `accept`s to `sink`, as a stream. Every entry is checked before
 * any is extracted, so an unsafe archive extracts nothing: a path that climbs out of its folder or is absolute
 * (zip-slip), an encrypted entry, a declared size beyond `maxUncompressedBytes` in all, or a ratio beyond
 * `maxCompressionRatio`; yauzl checks that every entry's real size is the declared one as it inflates.
 *
 * @throws UnsafeArchiveError with the reason.
 */
export async function expandZip(
  open: RangeOpener,
  size: number,
  accept: (name: string) => boolean,
  sink: (name: string, data: Readable) => Promise<void>,
  limits: UnpackLimits,
  /** Called with the names to extract once every entry has been checked, before anything is extracted. */
  beforeExtract: (names: string[]) => Promise<void> = () => Promise.resolve(),
): Promise<ZipExpansion> {
  let zip: yauzl.ZipFile;
  try {
    zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
      yauzl.fromRandomAccessReader(new RangeReader(open, size), size, { lazyEntries: true, autoClose: false, validateEntrySizes: true, decodeStrings: true }, (error, file) =>
        error ? reject(error) : resolve(file),
      ),
    );
  } catch (error) {
    throw new UnsafeArchiveError(`The zip file cannot be read (${describe(error)})`, { cause: error });
  }
  try {
    const entries = await listEntries(zip);
    let total = 0;
    const wanted: yauzl.Entry[] = [];
    const skipped: string[] = [];
    const names = new Set<string>();
    for (const entry of entries) {
      const path = entry.fileName;
      if (path.endsWith('/')) continue;
      if (path.startsWith('/') || path.includes('\\') || /^[A-Za-z]:/.test(path) || path.split('/').includes('..')) {
        throw new UnsafeArchiveError(`The zip file has an entry whose path leaves its folder ("${path}"); nothing was extracted`);
      }
      if (entry.isEncrypted()) throw new UnsafeArchiveError(`The zip file has an encrypted entry ("${path}"); nothing was extracted`);
      total += entry.uncompressedSize;
      if (total > limits.maxUncompressedBytes) {
        throw new UnsafeArchiveError(`The zip file expands beyond unpack.maxUncompressedBytes (${limits.maxUncompressedBytes} bytes); nothing was extracted`);
      }
      if (entry.uncompressedSize > GRACE_BYTES && entry.uncompressedSize / Math.max(1, entry.compressedSize) > limits.maxCompressionRatio) {
        throw new UnsafeArchiveError(`The zip entry "${path}" expands more than ${limits.maxCompressionRatio} times (a decompression bomb?); nothing was extracted`);
      }
      const name = path.slice(path.lastIndexOf('/') + 1);
      if (!accept(name)) {
        skipped.push(path);
        continue;
      }
      if (names.has(name)) throw new UnsafeArchiveError(`The zip file has two entries named "${name}"; which one is meant cannot be told`);
      names.add(name);
      wanted.push(entry);
    }
    await beforeExtract([...names]);
    for (const entry of wanted) {
      const stream = await new Promise<Readable>((resolve, reject) => zip.openReadStream(entry, (error, s) => (error ? reject(error) : resolve(s))));
      await sink(entry.fileName.slice(entry.fileName.lastIndexOf('/') + 1), stream);
    }
    return { extracted: [...names], skipped };
  } catch (error) {
    if (error instanceof UnsafeArchiveError) throw error;
    // yauzl itself refuses absolute and climbing paths while listing the entries.
    if (/invalid relative path|absolute path|invalid characters in fileName/i.test(describe(error))) {
      throw new UnsafeArchiveError(`The zip file has an entry whose path leaves its folder (${describe(error)}); nothing was extracted`, { cause: error });
    }
    throw new UnsafeArchiveError(`The zip file is damaged (${describe(error)}); it was not imported`, { cause: error });
  } finally {
    zip.close();
  }
}

function listEntries(zip: yauzl.ZipFile): Promise<yauzl.Entry[]> {
  return new Promise((resolve, reject) => {
    const entries: yauzl.Entry[] = [];
    zip.on('entry', (entry: yauzl.Entry) => {
      entries.push(entry);
      zip.readEntry();
    });
    zip.once('end', () => resolve(entries));
    zip.once('error', reject);
    zip.readEntry();
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
