import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from '../src/local/s3';
import { readText } from '../src/aws/s3';
import { ChunkWriter } from '../src/steps/chunk-writer';

let s3: LocalS3;
beforeAll(async () => {
  s3 = await startLocalS3();
});
afterAll(async () => {
  await s3.close();
});

/** Lines of every width and script: ASCII, 2-, 3- and 4-byte UTF-8, empty, and one far over the body's first size. */
const LINES = ['{"n":1}', 'café', '日本語のテキスト', '🙂🙂', '', 'x'.repeat(200_000), '\u2028 escaped by the encoder, not here', 'z'];

describe('Class: ChunkWriter', () => {
  it('writes each chunk as its lines joined by "\\n", whatever their width, and lists them in record order', async () => {
    // Prepare: lines that make the body grow more than once (one is three times its first size).
    const writer = new ChunkWriter(s3.client, LOCAL_BUCKETS.staging, (j) => `runs/chunk-writer/${j}.jsonl`, 3);
    const lines = Array.from({ length: 20 }, (_, k) => `${LINES[k % LINES.length]!}#${k}`);

    // Act
    for (const [k, line] of lines.entries()) await writer.add(line, k + 1);
    await writer.flush();
    await writer.drain();

    // Assess: the chunks hold the lines three at a time, as joining them would, and say which records they hold.
    const expected = Array.from({ length: 7 }, (_, j) => lines.slice(3 * j, 3 * j + 3));
    const bodies = await Promise.all(writer.chunks.map((chunk) => readText(s3.client, LOCAL_BUCKETS.staging, chunk.key)));
    expect(bodies).toEqual(expected.map((group) => group.join('\n')));
    expect(writer.chunks.map((c) => [c.lines, c.firstRecord, c.minRecord, c.maxRecord])).toEqual(expected.map((group, j) => [group.length, 3 * j + 1, 3 * j + 1, 3 * j + group.length]));
  });

  it('keeps every byte of a line whose UTF-8 is several times its length in characters', async () => {
    // Prepare: fewer characters than the body's first size, more bytes (2 and 3 bytes each).
    const writer = new ChunkWriter(s3.client, LOCAL_BUCKETS.staging, (j) => `runs/chunk-writer-wide/${j}.jsonl`, 2);
    const lines = ['é'.repeat(40_000), '日'.repeat(30_000)];

    // Act
    for (const [k, line] of lines.entries()) await writer.add(line, k + 1);
    await writer.drain();

    // Assess
    expect(await readText(s3.client, LOCAL_BUCKETS.staging, writer.chunks[0]!.key)).toBe(lines.join('\n'));
  });
});
