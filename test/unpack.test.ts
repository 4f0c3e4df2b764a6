import { EventEmitter } from 'node:events';
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

/**
 * Records each time an emitter comes to hold more listeners of one event than its limit: the condition of Node's
 * MaxListenersExceededWarning (which jest's sandboxed \`process\` does not receive, so the cause is watched instead).
 */
function watchListeners(): { exceeded: string[]; stop(): void } {
  const exceeded: string[] = [];
  const prototype = EventEmitter.prototype;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- put back as they were, and called on their emitter
  const { on, addListener } = prototype;
  const counting = (add: typeof on) =>
    function (this: EventEmitter, event: string | symbol, listener: (...args: any[]) => void) {
      const result = add.call(this, event, listener);
      const max = this.getMaxListeners();
      if (max > 0 && this.listenerCount(event) > max) exceeded.push(`${this.listenerCount(event)} ${String(event)} listeners on ${this.constructor.name}`);
      return result;
    };
  prototype.on = counting(on);
  prototype.addListener = counting(addListener);
  return {
    exceeded,
    stop() {
      prototype.on = on;
      prototype.addListener = addListener;
    },
  };
}

describe('Function: gunzipIfCompressed', () => {
  const text = Buffer.from('member_id,badge\n'.repeat(5000));

  it('passes data that is not gzip through unchanged', async () => {
    // Act + Assess
    expect((await read(text)).equals(text)).toBe(true);
    expect((await read(Buffer.alloc(0))).length).toBe(0);
  });

  it('waits for room without piling listeners on its stream (defect: MaxListenersExceededWarning on a 150,000-row file)', async () => {
    // Prepare: 8 MiB in 64 KiB pieces and a reader slower than the writer (as the stage is), so that writes wait for room.
    const large = Buffer.alloc(8 * 1024 * 1024, 'member_id,badge\n');
    const pieces: Buffer[] = [];
    for (let i = 0; i < large.length; i += 65_536) pieces.push(large.subarray(i, i + 65_536));
    const watch = watchListeners();

    // Act
    let bytes = 0;
    try {
      for await (const part of gunzipIfCompressed(Readable.from(pieces), LIMITS)) {
        bytes += (part as Buffer).length;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      watch.stop();
    }

    // Assess
    expect(bytes).toBe(large.length);
    expect(watch.exceeded).toEqual([]);
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
