import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { expandZip, isZip } from '../src/core/zip';
import { UnsafeArchiveError } from '../src/errors';
import { makeZip } from './support/zips';

const dir = mkdtempSync(join(tmpdir(), 'zip-'));
const LIMITS = { maxCompressionRatio: 100, maxUncompressedBytes: 1024 ** 3 };

async function expand(entries: Parameters<typeof makeZip>[1], encrypted: string[] = [], mutate?: (b: Buffer) => Buffer) {
  const path = join(dir, `z${Math.random()}.zip`);
  makeZip(path, entries, encrypted);
  const bytes = mutate ? mutate(readFileSync(path)) : readFileSync(path);
  const out: Record<string, string> = {};
  const result = await expandZip(
    async (start, end) => Readable.from([bytes.subarray(start, end)]),
    bytes.length,
    (name) => name.startsWith('events_'),
    async (name, data) => {
      const parts: Buffer[] = [];
      for await (const part of data) parts.push(part as Buffer);
      out[name] = Buffer.concat(parts).toString('utf8');
    },
    LIMITS,
  );
  return { result, out };
}

describe('Function: expandZip', () => {
  it('hands over each entry whose name matches, from any folder, and skips the others', async () => {
    // Act
    const { result, out } = await expand({ 'events_a.csv': 'a,b\n1,2\n', 'week/events_b.csv': 'x\n', 'readme.txt': 'hi', 'week/': '' });

    // Assess
    expect(out).toEqual({ 'events_a.csv': 'a,b\n1,2\n', 'events_b.csv': 'x\n' });
    expect(result.skipped).toEqual(['readme.txt']);
  });

  it.each(['../events_evil.csv', 'a/../../events_evil.csv', '/etc/events_evil.csv'])('refuses a zip-slip entry "%s" and extracts nothing', async (name) => {
    // Act
    const outcome = expand({ 'events_ok.csv': 'fine', [name]: 'evil' });

    // Assess
    await expect(outcome).rejects.toThrow(/leaves its folder/);
  });

  it('refuses an encrypted entry', async () => {
    // Act + Assess
    await expect(expand({ 'events_a.csv': 'a' }, ['events_a.csv'])).rejects.toThrow(/encrypted entry/);
  });

  it('refuses a decompression bomb by its declared ratio, before extracting anything', async () => {
    // Act + Assess
    await expect(expand({ 'events_ok.csv': 'fine', 'events_bomb.csv': { zeros: 64 * 1024 * 1024 } })).rejects.toThrow(/expands more than 100 times/);
  });

  it('refuses a damaged archive', async () => {
    // Act + Assess
    await expect(expand({ 'events_a.csv': 'a'.repeat(1000) }, [], (b) => b.subarray(0, b.length - 30))).rejects.toThrow(UnsafeArchiveError);
  });

  it('recognises a zip by its first bytes', () => {
    // Prepare
    const path = join(dir, 'x.zip');
    makeZip(path, { 'a.csv': 'a' });
    writeFileSync(join(dir, 'plain.csv'), 'a,b\n');

    // Act + Assess
    expect(isZip(readFileSync(path))).toBe(true);
    expect(isZip(readFileSync(join(dir, 'plain.csv')))).toBe(false);
  });
});
