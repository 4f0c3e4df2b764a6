/**
 * `npm run bench:duplicates`: the stage step, bundled as the Lambda and run with the stack's node flags, on a file of
 * N distinct valid records followed by the same N records again (N = BENCH_ROWS, default 1,000,000): every repeat is
 * held as a possible duplicate and must end rejected DUPLICATE_IN_FILE. Prints time, peak RSS and the rejections by
 * code; a stage that runs out of heap is reported as such (its exit status and last words), not hidden.
 * BENCH_OLD_SPACE_MB overrides --max-old-space-size (to find where the held records stop fitting).
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, createWriteStream, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Upload } from '@aws-sdk/lib-storage';
import { LOCAL_BUCKETS, startLocalS3 } from '../src/local/s3';
import { buildStageWorker, stageProcessFlags } from './stage-process';

const BADGES = ['6571a3b9e4b0c1a2b3c4d5e6', '6571a3b9e4b0c1a2b3c4d5e7', '6571a3b9e4b0c1a2b3c4d5e8'];

/** N distinct valid records (one customer each), then the same N again, in the example configuration's layout. */
export async function generateRepeated(path: string, rows: number): Promise<void> {
  const out = createWriteStream(path);
  const pad = (n: number) => (n < 10 ? `0${n}` : String(n));
  out.write('member_id,badge_code,event_time,expiry_date,channel\n');
  for (let pass = 0; pass < 2; pass++) {
    let buffer = '';
    for (let i = 1; i <= rows; i++) {
      const day = 1 + (i % 28);
      buffer += `${1_000_000 + i},${BADGES[i % 3]},2026-10-${pad(day)} ${pad(i % 24)}:${pad(i % 60)}:${pad((i * 7) % 60)},2027-${pad(1 + (i % 12))}-${pad(day)},${pass === 0 ? 'app' : 'again'}\n`;
      if (buffer.length > 1 << 16) {
        if (!out.write(buffer)) await once(out, 'drain');
        buffer = '';
      }
    }
    if (!out.write(buffer)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

async function main() {
  const rows = Number(process.env.BENCH_ROWS ?? 1_000_000);
  const dir = join(__dirname, '..', '.bench');
  mkdirSync(dir, { recursive: true });
  const configFile = join(__dirname, '..', 'examples', 'config.json');
  const worker = buildStageWorker(dir, 'duplicates-worker');
  let nodeFlags = stageProcessFlags(configFile);
  if (process.env.BENCH_OLD_SPACE_MB) nodeFlags = [...nodeFlags.filter((f) => !f.startsWith('--max-old-space-size=')), `--max-old-space-size=${process.env.BENCH_OLD_SPACE_MB}`];
  console.log(`stage process flags: ${nodeFlags.join(' ') || '(V8 defaults)'}`);
  const file = join(dir, `events_repeated_${rows}.csv`);
  if (!existsSync(file)) await generateRepeated(file, rows);
  const s3 = await startLocalS3();
  try {
    const key = `inbox/weekly-events/events_repeated_${rows}.csv`;
    await new Upload({ client: s3.client, params: { Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: createReadStream(file) } }).done();
    // Asynchronous: the embedded S3 serving the worker runs in this process's event loop.
    const started = Date.now();
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [...nodeFlags, worker, s3.endpoint, configFile, key, `bench-dup-${rows}`], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
    const mb = statSync(file).size / 1e6;
    if (result.code !== 0) {
      const last = result.stderr.trim().split('\n').filter((l) => /heap|memory|Error/i.test(l)).slice(-2).join(' | ');
      console.log(`${rows} distinct + ${rows} repeated records (${mb.toFixed(1)} MB): the stage FAILED after ${((Date.now() - started) / 1000).toFixed(1)} s (exit ${result.code}): ${last || result.stderr.trim().slice(-300)}`);
      process.exitCode = 1;
      return;
    }
    const r = JSON.parse(result.stdout.trim().split('\n').pop()!) as { seconds: number; records: number; valid: number; rejected: number; rejectionsByCode: Record<string, number>; maxRssKb: number };
    const duplicates = r.rejectionsByCode.DUPLICATE_IN_FILE ?? 0;
    console.log(
      `${rows} distinct + ${rows} repeated records (${mb.toFixed(1)} MB): ${r.seconds.toFixed(2)} s, peak RSS ${(r.maxRssKb / 1024).toFixed(0)} MB, ${r.valid} staged, ${duplicates} rejected DUPLICATE_IN_FILE` +
        ` (rejections by code: ${JSON.stringify(r.rejectionsByCode)})${duplicates === rows && r.valid === rows ? '' : '  <-- NOT the expected result'}`,
    );
    if (duplicates !== rows || r.valid !== rows) process.exitCode = 1;
  } finally {
    await s3.close();
  }
}
if (require.main === module) void main();
