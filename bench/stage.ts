/**
 * `npm run bench:stage`: the stage step on generated files of growing size, each in a fresh process against the
 * embedded S3. The step runs bundled by esbuild and minified, as the Lambda runs it, on plain Node (no tsx in the
 * process). Prints time, records/s and peak RSS per size, and the RSS ratio between the largest and smallest file
 * (flat memory: close to 1). Sizes: BENCH_ROWS="500000,1000000,2000000" (default).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createReadStream, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Upload } from '@aws-sdk/lib-storage';
import { LOCAL_BUCKETS, startLocalS3 } from '../src/local/s3';
import { generateEvents } from './generate';
import { buildStageWorker, stageProcessFlags } from './stage-process';

async function main() {
  const sizes = (process.env.BENCH_ROWS ?? '500000,1000000,2000000').split(',').map(Number);
  const dir = join(__dirname, '..', '.bench');
  mkdirSync(dir, { recursive: true });
  const configFile = join(__dirname, '..', 'examples', 'config.json');
  const worker = buildStageWorker(dir);
  const nodeFlags = stageProcessFlags(configFile);
  console.log(`stage process flags: ${nodeFlags.join(' ') || '(V8 defaults)'}`);
  const s3 = await startLocalS3();
  const results: Array<{ rows: number; mb: number; seconds: number; rssMb: number }> = [];
  try {
    for (const rows of sizes) {
      const file = join(dir, `events_bench_${rows}.csv`);
      if (!existsSync(file)) await generateEvents(file, rows);
      const key = `inbox/weekly-events/events_bench_${rows}.csv`;
      await new Upload({ client: s3.client, params: { Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: createReadStream(file) } }).done();
      // Asynchronous: the embedded S3 serving the worker runs in this process's event loop.
      const { stdout: out } = await promisify(execFile)(process.execPath, [...nodeFlags, worker, s3.endpoint, configFile, key, `bench-${rows}`], { encoding: 'utf8' });
      const r = JSON.parse(out.trim().split('\n').pop()!) as { seconds: number; records: number; rejected: number; chunks: number; maxRssKb: number };
      const mb = statSync(file).size / 1e6;
      results.push({ rows, mb, seconds: r.seconds, rssMb: r.maxRssKb / 1024 });
      console.log(
        `${String(rows).padStart(9)} rows  ${mb.toFixed(1).padStart(6)} MB  ${r.seconds.toFixed(2).padStart(7)} s  ${Math.round(r.records / r.seconds).toLocaleString('en-US').padStart(9)} records/s  peak RSS ${(r.maxRssKb / 1024).toFixed(0).padStart(4)} MB  (${r.rejected} rejected, ${r.chunks} chunks)`,
      );
    }
  } finally {
    await s3.close();
  }
  if (results.length > 1) {
    const first = results[0]!;
    const last = results[results.length - 1]!;
    console.log(`peak RSS ratio ${last.rows}/${first.rows} rows: ${(last.rssMb / first.rssMb).toFixed(2)} (1.00 = flat)`);
  }
}
void main();
