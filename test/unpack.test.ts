import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { gunzipIfCompressed } from '../src/core/unpack';
import { UnsafeArchiveError } from '../src/errors';

const LIMITS = { maxCompressionRatio: 200, maxUncompressedBytes: 1024 ** 3 };

async function read(data: Buffer, limits = LIMITS): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += 4096) chunks.push(data.subarray(i, i + 4096));
  const parts: Buffer[] = [];
  for await (const part of gunzipIfCompressed(Readable.from(chunks), limits)) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

describe('Function: gunzipIfCompressed', () => {
  const text = Buffer.from('member_id,badge\n'.repeat(5000));

  it('passes data that is not gzip through unchanged', async () => {
    // Act + Assess
    expect((await read(text)).equals(text)).toBe(true);
    expect((await read(Buffer.alloc(0))).length).toBe(0);
  });

  it('gunzips gzip data, whatever the file is called', async () => {
    // Act + Assess
    expect((await read(gzipSync(text))).equals(text)).toBe(true);
  });

  it('refuses a decompression bomb by its ratio', async () => {
    // Prepare: 64 MiB of zeros compress about a thousandfold.
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));

    // Act + Assess
    await expect(read(bomb, { ...LIMITS, maxCompressionRatio: 100 })).rejects.toThrow(UnsafeArchiveError);
    await expect(read(bomb, { ...LIMITS, maxCompressionRatio: 100 })).rejects.toThrow(/expands more than 100 times/);
  });

  it('refuses data that expands beyond the total limit', async () => {
    // Act + Assess
    await expect(read(gzipSync(text), { ...LIMITS, maxUncompressedBytes: 1000 })).rejects.toThrow(/beyond unpack.maxUncompressedBytes \(1000 bytes\)/);
  });

  it('refuses a damaged gzip file with a reason', async () => {
    // Prepare
    const damaged = gzipSync(text).subarray(0, 200);

    // Act + Assess
    await expect(read(damaged)).rejects.toThrow(/gzip file is damaged/);
  });
});
