// One settle worker in its own process (as the Lambda runs it: bundled, the stack's node flags): ranged GETs of one
// partition's segment from every range's keys object in the embedded S3, settlePartition, the duplicates written back
// as JSON. Prints CPU time of the settlement, RSS before and at peak, then (after the peak is taken) the CPU time of
// a native sort of as many doubles, as the in-process baseline.
import { readFileSync } from 'node:fs';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { putJson } from '../src/aws/s3';
import { ENTRY_BYTES, settlePartition } from '../src/core/partitions';

/** The embedded S3's staging bucket (not imported from src/local: that would bundle the whole local stack in). */
const STAGING = 'staging';

/** Segment `[start, end)` of an object, as one Buffer over the bytes the SDK read (no copy). */
async function readSegment(s3: S3Client, key: string, start: number, end: number): Promise<Buffer> {
  if (end === start) return Buffer.alloc(0);
  const response = await s3.send(new GetObjectCommand({ Bucket: STAGING, Key: key, Range: `bytes=${start}-${end - 1}` }));
  const bytes = await response.Body!.transformToByteArray();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The baseline: V8's native sort of one float64 per entry (the least any sort of the entries costs). */
function sortDoubles(entries: number): void {
  const values = new Float64Array(entries);
  for (let i = 0; i < entries; i++) values[i] = Math.random();
  values.sort();
}

/**
 * This process's peak RSS in KiB: VmHWM, the high-water mark of its own address space. Not resourceUsage().maxRSS:
 * Linux carries the parent's peak into a child across spawn (vfork + exec), so a child of a large parent reports the
 * parent's RSS there (measured: a fresh node under a 400 MB parent says 386 MB; VmHWM says 42 MB).
 */
function peakRssKb(): number {
  try {
    const hwm = /VmHWM:\s*(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]);
  } catch {
    // Not Linux: maxRSS is the best there is.
  }
  return process.resourceUsage().maxRSS;
}

const cpuSeconds = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
};

async function main() {
  const [endpoint, rangesJson] = process.argv.slice(2) as [string, string];
  const ranges = JSON.parse(rangesJson) as Array<{ key: string; start: number; end: number }>;
  const s3 = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  // The baseline of the process: Node, the bundle and an S3 client that has made its first request.
  await putJson(s3, STAGING, 'bench/settle/ready.json', {});
  const idleRssKb = peakRssKb();
  const segments = await Promise.all(ranges.map((r) => readSegment(s3, r.key, r.start, r.end)));
  const cpu = process.cpuUsage();
  const readRssKb = peakRssKb();
  const duplicates = settlePartition(segments);
  const settleCpu = cpuSeconds(cpu);
  const settledRssKb = peakRssKb();
  await putJson(s3, STAGING, 'bench/settle/duplicates.json', { duplicates });
  const maxRssKb = peakRssKb();
  // The baseline, after the peak is read, in the same process (a Map of hex keys, the naive way, runs out of the
  // stack's 142 MB old space near 1M entries: it cannot be the baseline).
  const entries = segments.reduce((sum, s) => sum + s.length / ENTRY_BYTES, 0);
  const sortCpu = process.cpuUsage();
  sortDoubles(entries);
  const baselineCpu = cpuSeconds(sortCpu);
  process.stdout.write(`${JSON.stringify({ entries, duplicates: duplicates.length, settleCpu, baselineCpu, idleRssKb, readRssKb, settledRssKb, maxRssKb })}\n`);
}
main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}\n`);
  process.exit(2);
});
