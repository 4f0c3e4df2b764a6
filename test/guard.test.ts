import { Readable } from 'node:stream';
import { TOO_LONG_MARK, decodeText, guardedText, limitRecords } from '../src/core/guard';
import { EncodingError } from '../src/errors';

/** Feeds `input` in chunks of `size` bytes (so characters and records fall across chunk boundaries). */
async function through(stream: NodeJS.ReadWriteStream, input: Buffer, size: number): Promise<string> {
  const parts: Buffer[] = [];
  const chunks = Array.from({ length: Math.ceil(input.length / size) }, (_, i) => input.subarray(i * size, (i + 1) * size));
  const out = Readable.from(chunks).pipe(stream);
  for await (const part of out) parts.push(part as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

describe('Function: limitRecords', () => {
  it.each([1, 3, 7, 1024])('replaces only the records over the limit, quotes respected, fed %i bytes at a time', async (size) => {
    // Prepare: a 30-byte limit; record 2 is long, record 3 has a quoted newline, record 5 is long and quoted, and the
    // last record has no line end.
    const long = 'x'.repeat(40);
    const input = `h1,h2\na,b\n${long},c\n"multi\nline",d\n"e ""q""",f\n"${long}\n${long}",g\nlast,${long}`;

    // Act
    const text = await through(limitRecords(30, '"'), Buffer.from(input), size);

    // Assess
    expect(text).toBe(`h1,h2\na,b\n${TOO_LONG_MARK}\n"multi\nline",d\n"e ""q""",f\n${TOO_LONG_MARK}\n${TOO_LONG_MARK}`);
  });
});

describe('Function: limitRecords, with a quote never closed', () => {
  it('fails the file rather than take the rest of it for one long record', async () => {
    const input = Buffer.from(`h\na\n"${'x'.repeat(40)}\nb\nc\n`);
    await expect(through(limitRecords(30, '"'), input, 8)).rejects.toThrow(/quote opened in a record longer than csv.maxRecordBytes \(30 bytes\) is never closed/);
  });
});

describe('Function: decodeText', () => {
  it.each([1, 2, 5])('passes UTF-8 whose characters fall across chunks (%i bytes at a time)', async (size) => {
    const text = 'naïve,Łódź,日本,😀\n';
    expect(await through(decodeText('utf-8'), Buffer.from(text), size)).toBe(text);
  });

  it('decodes Latin-1 and UTF-16LE when declared', async () => {
    expect(await through(decodeText('latin1'), Buffer.from('Müller\n', 'latin1'), 3)).toBe('Müller\n');
    expect(await through(decodeText('utf-16le'), Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('Łódź,😀\n', 'utf16le')]), 3)).toBe('Łódź,😀\n');
  });

  it('refuses what is not text in the declared encoding, naming the likely one', async () => {
    await expect(through(decodeText('utf-8'), Buffer.from('a,b\nMüller\n', 'latin1'), 4)).rejects.toThrow(/not UTF-8: byte 5 \(0xfc.*Latin-1/);
    await expect(through(decodeText('utf-8'), Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('a,b\n', 'utf16le')]), 4)).rejects.toThrow(/UTF-16LE/);
    await expect(through(decodeText('latin1'), Buffer.from([0x61, 0x2c, 0x00, 0x62]), 4)).rejects.toThrow(/NUL byte at byte 2/);
    await expect(through(decodeText('utf-8'), Buffer.from([0x61, 0xe6, 0x97]), 8)).rejects.toThrow(EncodingError);
  });
});

describe('Function: guardedText', () => {
  it('decodes, then limits', async () => {
    const input = Readable.from([Buffer.from(`a\n${'é'.repeat(20)}\nb\n`, 'latin1')]);
    const parts: Buffer[] = [];
    for await (const part of guardedText(input, 'latin1', 30, '"')) parts.push(part as Buffer);
    // 20 × "é" is 40 bytes once in UTF-8: over the limit.
    expect(Buffer.concat(parts).toString()).toBe(`a\n${TOO_LONG_MARK}\nb\n`);
  });
});
