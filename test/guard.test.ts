import { Readable } from 'node:stream';
import { TOO_LONG_MARK, decodeText, guardedText, limitRecords } from '../src/core/guard';
import { ConfigError, EncodingError, MalformedCsvError } from '../src/errors';

/** Feeds `input` in chunks of `size` bytes (so characters and records fall across chunk boundaries). */
async function through(stream: NodeJS.ReadWriteStream, input: Buffer, size: number): Promise<string> {
  const parts: Buffer[] = [];
  const chunks = Array.from({ length: Math.ceil(input.length / size) }, (_, i) => input.subarray(i * size, (i + 1) * size));
  const out = Readable.from(chunks).pipe(stream);
  for await (const part of out) parts.push(part as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

const settings = (maxRecordBytes: number, quote = '"', delimiter = ',') => ({ maxRecordBytes, quote, delimiter });

/** Feeds `input` cut at every position in `cuts` (each a byte offset). */
async function cutAt(stream: NodeJS.ReadWriteStream, input: Buffer, cuts: number[]): Promise<string> {
  const ends = [...cuts, input.length];
  const chunks = ends.map((end, i) => input.subarray(i === 0 ? 0 : ends[i - 1], end));
  const parts: Buffer[] = [];
  for await (const part of Readable.from(chunks).pipe(stream)) parts.push(part as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

describe('Function: limitRecords', () => {
  it.each([1, 3, 7, 1024])('replaces only the records over the limit, quotes respected, fed %i bytes at a time', async (size) => {
    // Prepare: a 30-byte limit; record 2 is long, record 3 has a quoted newline, record 5 is long and quoted, and the
    // last record has no line end.
    const long = 'x'.repeat(40);
    const input = `h1,h2\na,b\n${long},c\n"multi\nline",d\n"e ""q""",f\n"${long}\n${long}",g\nlast,${long}`;
    const guard = limitRecords(settings(30));

    // Act
    const text = await through(guard, Buffer.from(input), size);

    // Assess
    expect(text).toBe(`h1,h2\na,b\n${TOO_LONG_MARK}\n"multi\nline",d\n"e ""q""",f\n${TOO_LONG_MARK}\n${TOO_LONG_MARK}`);
    expect(guard.recordsSeen).toBe(6);
  });

  it.each([1, 2, 5, 4096])('reads a quote inside an unquoted field as a literal character, fed %i bytes at a time', async (size) => {
    // Prepare: inch marks far more than the limit apart; read as opening quotes, they would make one long record.
    const lines = Array.from({ length: 40 }, (_, i) => (i % 10 === 3 ? `${i},TV 55" promo` : `${i},plain`));
    const input = `id,note\n${lines.join('\n')}\n`;
    const guard = limitRecords(settings(64));

    // Act
    const text = await through(guard, Buffer.from(input), size);

    // Assess
    expect(text).toBe(input);
    expect(guard.recordsSeen).toBe(40);
  });

  it.each([1, 2, 3, 4096])('ends lines at \\r\\n, \\n and \\r alike, also mixed, fed %i bytes at a time', async (size) => {
    // Prepare: records far longer in total than the limit, each under it, with every kind of line end, blank lines,
    // and a quoted field holding each kind.
    const input = `h\r${Array.from({ length: 30 }, (_, i) => `record ${i}`).join('\r')}\r\n\r\nx\n\n\ry\r"q\r\nq\rq\nq",z\r`;
    const guard = limitRecords(settings(20));

    // Act
    const text = await through(guard, Buffer.from(input), size);

    // Assess
    expect(text).toBe(input);
    expect(guard.recordsSeen).toBe(33);
  });

  it('replaces a too-long record ended by \\r, and counts a \\r\\n split between chunks as one line end', async () => {
    // Prepare
    const input = Buffer.from(`h\r\n${'x'.repeat(40)}\r\nb\r\n`);
    // Cut between every \r and its \n.
    const cuts = [...input.entries()].filter(([, byte]) => byte === 0x0d).map(([at]) => at + 1);
    const guard = limitRecords(settings(30));

    // Act
    const text = await cutAt(guard, input, cuts);

    // Assess: the \n after the mark's own line end is a blank line, which the parser skips.
    expect(text).toBe(`h\r\n${TOO_LONG_MARK}\n\nb\r\n`);
    expect(guard.recordsSeen).toBe(2);
  });

  it('keeps a doubled quote split between chunks as one literal quote', async () => {
    // Prepare: every cut of `"a""b"` between its quotes.
    const input = Buffer.from('h\n"a""b",c\n');
    for (const cut of [3, 4, 5, 6, 7]) {
      const guard = limitRecords(settings(1024));

      // Act
      const text = await cutAt(guard, input, [cut]);

      // Assess
      expect(text).toBe('h\n"a""b",c\n');
      expect(guard.recordsSeen).toBe(1);
    }
  });

  it('drops one byte-order mark, also split between chunks, and not a second one', async () => {
    // Prepare
    const input = Buffer.from('\uFEFF\uFEFF"h",x\n1,2\n');

    // Act
    const text = await cutAt(limitRecords(settings(1024)), input, [1, 2, 4]);

    // Assess: the second mark is text, so the quote after it does not start the field.
    expect(text).toBe('\uFEFF"h",x\n1,2\n');
  });

  it('does not count blank lines or the header, and counts the last record without a line end', async () => {
    // Prepare
    const guard = limitRecords(settings(1024));

    // Act
    await through(guard, Buffer.from('\n\r\nh\n\na\r\r\n"",b\n\n c'), 3);

    // Assess
    expect(guard.recordsSeen).toBe(3);
  });

  it.each([
    ['a quoted field closed by a quote followed by text', 'h\n1,2\n"x"y,z\n', /at line 3: a quoted field is closed by a quote followed by "y"/],
    ['a quoted field closed by a quote followed by a space', 'h\n"x" ,z\n', /at line 2: .*followed by a space/],
    ['a quoted field never closed', 'h\r\n1\r\n"x,\r\ny\r\n', /at line 3: the quoted field that starts there is never closed/],
    ['a quote opened in a record over the limit and never closed', `h\na\n"${'x'.repeat(40)}\nb\nc\n`, /at line 3: the quoted field that starts there is never closed/],
  ])('fails the file on %s, naming the line', async (_what, input, message) => {
    // Act + Assess
    await expect(through(limitRecords(settings(30)), Buffer.from(input), 2)).rejects.toThrow(MalformedCsvError);
    await expect(through(limitRecords(settings(30)), Buffer.from(input), 2)).rejects.toThrow(message);
  });

  it('refuses a delimiter or quote it cannot read bytewise', () => {
    expect(() => limitRecords(settings(1024, '"', '§'))).toThrow(/csv.delimiter: must be one ASCII character/);
    expect(() => limitRecords(settings(1024, ',', ','))).toThrow(/csv.quote: must differ from csv.delimiter/);
    expect(() => limitRecords(settings(1024, '\n', ','))).toThrow(ConfigError);
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
    for await (const part of guardedText(input, { encoding: 'latin1', ...settings(30) })) parts.push(part as Buffer);
    // 20 × "é" is 40 bytes once in UTF-8: over the limit.
    expect(Buffer.concat(parts).toString()).toBe(`a\n${TOO_LONG_MARK}\nb\n`);
  });
});
