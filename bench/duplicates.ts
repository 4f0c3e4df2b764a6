/**
 * `npm run bench:duplicates`: duplicate detection as the parallel stage does it (issue 13).
 *
 * 1. One settle worker at ENTRIES_PER_PARTITION entries (BENCH_ENTRIES="1000000,2000000" for other sizes): the
 *    entries are staged as 16 ranges' keys objects in the embedded S3; the worker (bench/settle-worker.ts, bundled
 *    as the Lambda is and run with the stack's node flags, in its own process) reads its segment of each with a
 *    ranged GET, settles them and writes the duplicates back. By default the second half of the entries repeats the
 *    first (a file delivered twice over: the most duplicates, the largest result); BENCH_REPEAT_SHARE changes the
 *    share. Prints the worker's peak RSS (target: under 256 MB) beside its RSS before reading anything, and the
 *    settlement's CPU time as a ratio to V8's native sort of as many doubles in the same process (the least a sort of
 *    the entries costs). The duplicates it wrote are checked against the ones the generator made, entry by entry.
 * 2. The range side in this process: KeyPartitions.add and toObject for the same entries over 50 partitions (a
 *    50M-row file), as a ratio to packing the keys into one Buffer (what any key store costs at least).
 * CPU time (process.cpuUsage), not wall time: the machine is shared.
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { KEY_BYTES, packKey } from '../src/core/duplicates';
import type { ApiItem } from '../src/core/mapping';
import { ENTRIES_PER_PARTITION, ENTRY_BYTES, KeyPartitions, partitionsFor } from '../src/core/partitions';
import { readJson } from '../src/aws/s3';
import { LOCAL_BUCKETS, startLocalS3 } from '../src/local/s3';
import { buildStageWorker, stageProcessFlags } from './stage-process';

const BADGES = ['6571a3b9e4b0c1a2b3c4d5e6', '6571a3b9e4b0c1a2b3c4d5e7', '6571a3b9e4b0c1a2b3c4d5e8'];
const RANGES = 16;

/** The item of record `n` (1-based) of `entries`, the last `share` of them repeating the records before. */
function itemOf(n: number, entries: number, share: number): ApiItem {
  const distinct = Math.ceil(entries * (1 - share));
  const i = n <= distinct ? n : 1 + ((n - distinct - 1) % distinct);
  const earnEventDate = Date.UTC(2026, 9, 1 + (i % 28), i % 24, i % 60, (i * 7) % 60);
  return { customerId: 1_000_000 + i, badgeMetaId: BADGES[i % 3]!, earnEventDate, earnExpiresOn: earnEventDate + 1, earnEventDateISO: '', earnExpiresOnISO: '' };
}

/** The entries as RANGES keys objects of one partition each (the worker's segments), in record order. */
function rangeObjects(entries: number, share: number): Buffer[] {
  const key = Buffer.alloc(KEY_BYTES);
  const objects: Buffer[] = [];
  for (let r = 0; r < RANGES; r++) {
    const keys = new KeyPartitions(1);
    const [from, to] = [Math.floor((r * entries) / RANGES) + 1, Math.floor(((r + 1) * entries) / RANGES)];
    for (let n = from; n <= to; n++) {
      packKey(itemOf(n, entries, share), key);
      keys.add(key, 0, n);
    }
    objects.push(keys.toObject().body);
  }
  return objects;
}

interface SettleRun {
  entries: number;
  duplicates: number;
  settleCpu: number;
  baselineCpu: number;
  idleRssKb: number;
  readRssKb: number;
  settledRssKb: number;
  maxRssKb: number;
}

/** Whether `duplicates` are exactly the repeats itemOf made: every record past the distinct ones, with its first. */
function agreesWithGenerator(duplicates: Array<[number, number]>, entries: number, share: number): boolean {
  const distinct = Math.ceil(entries * (1 - share));
  if (duplicates.length !== entries - distinct) return false;
  return duplicates.every(([n, first], i) => n === distinct + 1 + i && first === 1 + ((n - distinct - 1) % distinct));
}

async function settleOnce(worker: string, flags: string[], entries: number, share: number): Promise<SettleRun & { agrees: boolean }> {
  const s3 = await startLocalS3();
  try {
    const objects = rangeObjects(entries, share);
    const ranges: Array<{ key: string; start: number; end: number }> = [];
    for (const [r, body] of objects.entries()) {
      const key = `runs/bench-settle/keys/${r}`;
      await s3.client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKETS.staging, Key: key, Body: body }));
      ranges.push({ key, start: 0, end: body.length });
    }
    // Asynchronous: the embedded S3 serving the worker runs in this process's event loop.
    const result = await new Promise<{ failed: boolean; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [...flags, worker, s3.endpoint, JSON.stringify(ranges)], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => resolve({ failed: error !== null, stdout, stderr })),
    );
    if (result.failed) {
      const last = result.stderr.split('\n').filter((l) => /heap|memory|Error/i.test(l)).slice(-3).join(' | ');
      throw new Error(`The settle worker failed at ${entries} entries: ${last || result.stderr.trim().slice(-400)}`);
    }
    const run = JSON.parse(result.stdout.trim().split('\n').pop()!) as SettleRun;
    const written = await readJson<{ duplicates: Array<[number, number]> }>(s3.client, LOCAL_BUCKETS.staging, 'bench/settle/duplicates.json');
    return { ...run, agrees: agreesWithGenerator(written?.duplicates ?? [], entries, share) };
  } finally {
    await s3.close();
  }
}

/** CPU seconds of KeyPartitions (add, then toObject) over 50 partitions, and of packing the same keys into one Buffer. */
function rangeSide(entries: number): { partitionsCpu: number; baselineCpu: number } {
  const key = Buffer.alloc(KEY_BYTES);
  const items = Array.from({ length: 1000 }, (_, i) => itemOf(i + 1, 1000, 0));
  const baseline = process.cpuUsage();
  const flat = Buffer.allocUnsafe(entries * ENTRY_BYTES);
  for (let n = 0; n < entries; n++) {
    packKey(items[n % 1000]!, key);
    key.copy(flat, n * ENTRY_BYTES);
    flat.writeUInt32LE(n, n * ENTRY_BYTES + KEY_BYTES);
  }
  const baselineUsed = process.cpuUsage(baseline);
  const started = process.cpuUsage();
  const keys = new KeyPartitions(partitionsFor(50_000_000));
  for (let n = 0; n < entries; n++) {
    packKey(items[n % 1000]!, key);
    keys.add(key, 0, n);
  }
  const { body } = keys.toObject();
  const used = process.cpuUsage(started);
  if (body.length !== flat.length) throw new Error('KeyPartitions lost entries');
  return { partitionsCpu: (used.user + used.system) / 1e6, baselineCpu: (baselineUsed.user + baselineUsed.system) / 1e6 };
}

async function main() {
  const sizes = (process.env.BENCH_ENTRIES ?? String(ENTRIES_PER_PARTITION)).split(',').map(Number);
  const share = Number(process.env.BENCH_REPEAT_SHARE ?? 0.5);
  const dir = join(__dirname, '..', '.bench');
  mkdirSync(dir, { recursive: true });
  const worker = buildStageWorker(dir, 'settle-worker');
  const flags = stageProcessFlags(join(__dirname, '..', 'examples', 'config.json'));
  console.log(`settle worker flags: ${flags.join(' ') || '(V8 defaults)'}; ENTRIES_PER_PARTITION ${ENTRIES_PER_PARTITION}; ${RANGES} ranges; ${share * 100}% of entries repeat earlier ones`);
  for (const entries of sizes) {
    const r = await settleOnce(worker, flags, entries, share);
    const peak = r.maxRssKb / 1024;
    console.log(
      `${String(entries).padStart(9)} entries  ${r.duplicates} duplicates${r.agrees ? '' : '  <-- NOT the duplicates generated'}  settle CPU ${r.settleCpu.toFixed(2)} s, native sort of ${entries} doubles ${r.baselineCpu.toFixed(2)} s: ratio ${(r.settleCpu / r.baselineCpu).toFixed(2)}` +
        `  peak RSS ${peak.toFixed(0)} MB (idle worker ${(r.idleRssKb / 1024).toFixed(0)} MB, segments read ${(r.readRssKb / 1024).toFixed(0)} MB, settled ${(r.settledRssKb / 1024).toFixed(0)} MB; target < 256 MB: ${peak < 256 ? 'met' : 'NOT met'})`,
    );
    if (!r.agrees || r.duplicates !== entries - Math.ceil(entries * (1 - share))) process.exitCode = 1;
  }
  const side = rangeSide(sizes[0]!);
  console.log(`range side, ${sizes[0]} entries into ${partitionsFor(50_000_000)} partitions: KeyPartitions ${side.partitionsCpu.toFixed(2)} s CPU, packing into one Buffer ${side.baselineCpu.toFixed(2)} s: ratio ${(side.partitionsCpu / side.baselineCpu).toFixed(2)}`);
}
if (require.main === module) void main();
