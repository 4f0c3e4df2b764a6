/**
 * `tsx bench/scan.ts`: the boundary scanner's throughput (MB of CPU time, `process.cpuUsage()`, so a loaded machine
 * slows it less than wall time would), on BENCH_SCAN_MB (default 64) of three kinds of CSV, fed in 64 KiB chunks as
 * a ranged GET delivers them: the speculative scan of a range (every entry state), the sequential one (entry known),
 * the same with block hashing (best of three runs each), and, for scale, the text guard (RecordGuard) and a bare `indexOf('\n')` loop.
 */
import { createHash } from 'node:crypto';
import { BoundaryScanner } from '../src/core/ranges';
import { RecordGuard } from '../src/core/guard';

const MB = Number(process.env.BENCH_SCAN_MB ?? 64);
const CHUNK = 64 * 1024;
const csv = { delimiter: ',', quote: '"', encoding: 'utf-8' as const, maxRecordBytes: 65536 };

function build(line: (i: number) => string): Buffer {
  const parts: string[] = [];
  let bytes = 0;
  for (let i = 0; bytes < MB * 1024 * 1024; i++) {
    const text = line(i);
    parts.push(text);
    bytes += text.length;
  }
  return Buffer.from(parts.join(''));
}

const files: Record<string, Buffer> = {
  'plain export': build((i) => `${1_000_000 + i},6571a3b9e4b0c1a2b3c4d5e${i % 3},2026-10-${10 + (i % 18)} 12:${10 + (i % 50)}:00,2027-01-01,app\n`),
  'every field quoted': build((i) => `"${1_000_000 + i}","6571a3b9e4b0c1a2b3c4d5e${i % 3}","2026-10-${10 + (i % 18)} 12:00:00","2027-01-01","app ""x"""\r\n`),
  'long quoted notes': build((i) => `${i},"${'lorem ipsum dolor sit amet, '.repeat(8)}\n${'consectetur '.repeat(10)}",z\n`),
};

function cpu<T>(run: () => T): { ms: number; result: T } {
  const before = process.cpuUsage();
  const result = run();
  const used = process.cpuUsage(before);
  return { ms: (used.user + used.system) / 1000, result };
}

function chunks(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += CHUNK) out.push(bytes.subarray(at, at + CHUNK));
  return out;
}

const ways: Record<string, (parts: Buffer[]) => unknown> = {
  'scan, every entry state': (parts) => {
    const scanner = new BoundaryScanner(csv, { atFileStart: false, offset: 0 });
    for (const part of parts) scanner.write(part);
    return scanner.end(true).byEntry.recordStart?.records;
  },
  'scan, entry known': (parts) => {
    const scanner = new BoundaryScanner(csv, { atFileStart: true, offset: 0 });
    for (const part of parts) scanner.write(part);
    return scanner.end(true).byEntry.recordStart?.records;
  },
  'scan, entry known, hashed': (parts) => {
    const scanner = new BoundaryScanner(csv, { atFileStart: true, offset: 0, hash: true });
    for (const part of parts) scanner.write(part);
    return scanner.end(true).blockDigests?.length;
  },
  'sha-256 alone': (parts) => {
    const hash = createHash('sha256');
    for (const part of parts) hash.update(part);
    return hash.digest('hex').length;
  },
  'RecordGuard (today)': (parts) => {
    const guard = new RecordGuard(csv);
    guard.on('data', () => undefined);
    for (const part of parts) guard.write(part);
    return guard.recordsSeen;
  },
  "indexOf('\\n') loop": (parts) => {
    let n = 0;
    for (const part of parts) for (let at = part.indexOf(10); at >= 0; at = part.indexOf(10, at + 1)) n += 1;
    return n;
  },
};

for (const [kind, bytes] of Object.entries(files)) {
  const parts = chunks(bytes);
  console.log(`${kind}: ${(bytes.length / 1048576).toFixed(0)} MiB`);
  for (const [name, run] of Object.entries(ways)) {
    run(parts.slice(0, 64)); // warm up
    // The best of three: other processes share the cores.
    const runs = [0, 1, 2].map(() => cpu(() => run(parts)));
    const { ms, result } = runs.reduce((best, r) => (r.ms < best.ms ? r : best));
    console.log(`  ${name.padEnd(28)} ${((bytes.length / 1048576) / (ms / 1000)).toFixed(0).padStart(6)} MiB/s of CPU  (${String(result)})`);
  }
}
