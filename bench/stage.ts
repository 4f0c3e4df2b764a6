/**
 * `npm run bench:stage:plain` (the first half of `npm run bench:stage`): the staging pipeline on plain generated files
 * of growing size against the embedded S3: prepare → scan workers → plan → range workers → settle workers → finish,
 * each phase a process running the stage bundled as deployed (bench/stage-pipeline.ts), the Maps' workers two at a
 * time (BENCH_PARALLEL). Prints the staging time, records/s, the peak RSS of every worker by phase, and the ratio of
 * the largest worker's peak RSS between the largest and smallest file (flat memory: close to 1). Sizes:
 * BENCH_ROWS="500000,1000000,2000000" (default). BENCH_DRY=1: also the S3 objects and requests of each run.
 *
 * Then the cost of expressions (issue 12): the 1M-row file (or the first size when 1M is not among them) staged with
 * the columns mapped as they are, and with two mapped fields computed by CEL expressions and a filter, alternately
 * BENCH_REPEAT times (default 3); the ratio of the fastest runs (CPU time of the stage's processes, summed, which a
 * shared machine's load stretches less than wall time; wall time beside it) is the expressions' cost (target ≤ 1.10).
 * When the configuration does not take a `filter` yet, the filter's condition is evaluated inside a third mapped
 * expression instead, and the output says so. BENCH_EXPRESSIONS=0 skips the comparison.
 */
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Upload } from '@aws-sdk/lib-storage';
import { parse as parseCsv } from 'csv-parse/sync';
import { loadConfig, parseConfig } from '../src/config/load';
import { compileExpression, toBoolean } from '../src/core/expressions';
import { compileMapper } from '../src/core/mapping';
import { type LocalS3, LOCAL_BUCKETS } from '../src/local/s3';
import { generateEvents } from './generate';
import { buildStageWorker, stageProcessFlags } from './stage-process';
import { countStagedObjects, describePhases, describeWorkers, runPipeline, startCountingS3, warmWorkersFor } from './stage-pipeline';

interface StageRun {
  seconds: number;
  cpuSeconds: number;
  records: number;
  rejected: number;
  chunks: number;
  maxRssKb: number;
}

/** The bench file's two expressions and filter: each gives what the columns give, so both runs do the same work after. */
const BADGE_EXPRESSION = 'channel == "store" ? "6571a3b9e4b0c1a2b3c4d5e7" : badge_code';
const EXPIRY_EXPRESSION = 'size(expiry_date) == 0 ? "2027-12-31" : expiry_date';
const FILTER_EXPRESSION = 'channel != "test"';

/**
 * The example configuration with badgeMetaId and earnExpiresOn computed by expressions, and the filter; `filter` says
 * whether the configuration took the dataflow's `filter`, or its condition rides in customerId's expression instead.
 */
function expressionConfig(dir: string, configFile: string): { file: string; filter: boolean } {
  const document = JSON.parse(readFileSync(configFile, 'utf8')) as { dataflows: Array<{ mapping: Record<string, Record<string, unknown>> } & Record<string, unknown>> };
  const flow = document.dataflows[0]!;
  flow.mapping.badgeMetaId = { expression: BADGE_EXPRESSION };
  flow.mapping.earnExpiresOn = { ...flow.mapping.earnExpiresOn, column: undefined, expression: EXPIRY_EXPRESSION };
  let filter = true;
  try {
    parseConfig({ ...document, dataflows: [{ ...flow, filter: { expression: FILTER_EXPRESSION } }] });
    flow.filter = { expression: FILTER_EXPRESSION };
  } catch {
    filter = false;
    flow.mapping.customerId = { expression: `${FILTER_EXPRESSION} ? member_id : ""` };
  }
  const file = join(dir, 'config-expressions.json');
  writeFileSync(file, JSON.stringify(document));
  return { file, filter };
}

async function runStage(s3: LocalS3, nodeFlags: string[], worker: string, configFile: string, key: string, runId: string, warm: number): Promise<StageRun & { lines: string[] }> {
  const run = await runPipeline({ s3, worker, nodeFlags, configFile, key, runId, parallel: Number(process.env.BENCH_PARALLEL ?? 2), warm });
  const { output, workers } = run;
  return {
    seconds: run.seconds,
    cpuSeconds: workers.reduce((sum, w) => sum + w.cpuSeconds, 0),
    records: output.records,
    rejected: output.rejected,
    chunks: output.chunkCount,
    maxRssKb: Math.max(...workers.map((w) => w.maxRssKb)),
    lines: [...describeWorkers(workers), describePhases(run)],
  };
}

async function upload(s3: LocalS3, dir: string, rows: number): Promise<{ file: string; key: string }> {
  const file = join(dir, `events_bench_${rows}.csv`);
  if (!existsSync(file)) await generateEvents(file, rows);
  const key = `inbox/weekly-events/events_bench_${rows}.csv`;
  await new Upload({ client: s3.client, params: { Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: createReadStream(file) } }).done();
  return { file, key };
}

/** Columns against expressions on one file, alternately, fastest of each; prints both and their ratio. */
async function compareExpressions(s3: LocalS3, dir: string, worker: string, nodeFlags: string[], configFile: string, rows: number): Promise<void> {
  const expressions = expressionConfig(dir, configFile);
  const { file, key } = await upload(s3, dir, rows);
  const repeat = Number(process.env.BENCH_REPEAT ?? 3);
  const best = { columns: { wall: Infinity, cpu: Infinity }, expressions: { wall: Infinity, cpu: Infinity } };
  const keep = (into: { wall: number; cpu: number }, run: StageRun) => {
    into.wall = Math.min(into.wall, run.seconds);
    into.cpu = Math.min(into.cpu, run.cpuSeconds);
  };
  for (let i = 0; i < repeat; i++) {
    // Each goes first every other time: the first of a pair meets a machine that may have been idle.
    const warm = warmWorkersFor(statSync(file).size, rows);
    const runColumns = () => runStage(s3, nodeFlags, worker, configFile, key, `bench-columns-${rows}-${i}`, warm);
    const runExpressions = () => runStage(s3, nodeFlags, worker, expressions.file, key, `bench-expressions-${rows}-${i}`, warm);
    let columns: StageRun;
    let computed: StageRun;
    if (i % 2 === 0) {
      columns = await runColumns();
      computed = await runExpressions();
    } else {
      computed = await runExpressions();
      columns = await runColumns();
    }
    if (computed.records !== columns.records || computed.rejected !== columns.rejected) {
      throw new Error(`The expressions' run staged ${computed.records} records (${computed.rejected} rejected), the columns' ${columns.records} (${columns.rejected}): not the same work`);
    }
    keep(best.columns, columns);
    keep(best.expressions, computed);
    console.log(`  run ${i + 1}: columns ${columns.seconds.toFixed(2)} s (CPU ${columns.cpuSeconds.toFixed(2)} s), expressions ${computed.seconds.toFixed(2)} s (CPU ${computed.cpuSeconds.toFixed(2)} s)`);
  }
  const what = expressions.filter ? 'two expressions and a filter' : "two expressions and a filter's condition (in a third expression: this configuration takes no filter yet)";
  const { columns, expressions: computed } = best;
  console.log(`expressions on ${rows} rows, ${what}; fastest of ${repeat}, target ≤ 1.10:`);
  console.log(`  CPU time ${computed.cpu.toFixed(2)} s against ${columns.cpu.toFixed(2)} s by columns: ratio ${(computed.cpu / columns.cpu).toFixed(3)}`);
  console.log(`  wall time ${computed.wall.toFixed(2)} s against ${columns.wall.toFixed(2)} s by columns: ratio ${(computed.wall / columns.wall).toFixed(3)}`);
  const mapper = mapperCost(configFile, expressions.file, file, Math.min(rows, 200_000));
  const stageCpuUs = (columns.cpu / rows) * 1e6;
  console.log(
    `  the mapper alone, in memory (${mapper.records} records, fastest of 5): ${mapper.columnsUs.toFixed(2)} µs a record by columns, ${mapper.expressionsUs.toFixed(2)} µs with expressions: +${(mapper.expressionsUs - mapper.columnsUs).toFixed(2)} µs, ${((100 * (mapper.expressionsUs - mapper.columnsUs)) / stageCpuUs).toFixed(1)}% of the stage's ${stageCpuUs.toFixed(1)} µs CPU a record`,
  );
}

/**
 * The record mapper alone (compileMapper, plus the dataflow's filter when the configuration has one), on records
 * parsed beforehand: what expressions add per record, free of I/O and of the machine's other load.
 */
function mapperCost(columnsFile: string, expressionsFile: string, file: string, records: number): { records: number; columnsUs: number; expressionsUs: number } {
  const lines = readFileSync(file, 'utf8').split('\n', records + 1);
  const parsed: string[][] = parseCsv(lines.join('\n'), { relax_column_count: true });
  const [header, ...rows] = parsed;
  const time = (configFile: string): number => {
    const flow = loadConfig(configFile).dataflows[0]!;
    const map = compileMapper(flow, header!, () => Date.UTC(2026, 10, 27));
    const filterSource = (flow as { filter?: { expression: string } }).filter?.expression;
    const filter = filterSource === undefined ? undefined : compileExpression(filterSource, header!, 'filter.expression');
    let best = Infinity;
    let kept = 0;
    for (let pass = 0; pass < 5; pass++) {
      const started = process.hrtime.bigint();
      for (const fields of rows) {
        const result = filter?.(fields);
        const keep = result && (result.ok ? toBoolean(result.value) : result);
        if (keep && !(keep.ok && keep.value)) continue;
        if (map(fields).ok) kept += 1;
      }
      best = Math.min(best, Number(process.hrtime.bigint() - started) / 1e3 / rows.length);
    }
    if (kept === 0) throw new Error('the mapper accepted nothing');
    return best;
  };
  return { records: rows.length, columnsUs: time(columnsFile), expressionsUs: time(expressionsFile) };
}

async function main() {
  const sizes = (process.env.BENCH_ROWS ?? '500000,1000000,2000000').split(',').map(Number);
  const dir = join(__dirname, '..', '.bench');
  mkdirSync(dir, { recursive: true });
  const configFile = join(__dirname, '..', 'examples', 'config.json');
  const worker = buildStageWorker(dir);
  const nodeFlags = stageProcessFlags(configFile);
  console.log(`stage process flags: ${nodeFlags.join(' ') || '(V8 defaults)'}`);
  const { s3, requests } = await startCountingS3();
  const results: Array<{ rows: number; mb: number; seconds: number; rssMb: number }> = [];
  try {
    for (const rows of sizes) {
      const { file, key } = await upload(s3, dir, rows);
      const before = new Map(requests);
      const runId = `bench-${rows}-${Date.now()}`;
      const r = await runStage(s3, nodeFlags, worker, configFile, key, runId, warmWorkersFor(statSync(file).size, rows));
      const mb = statSync(file).size / 1e6;
      results.push({ rows, mb, seconds: r.seconds, rssMb: r.maxRssKb / 1024 });
      console.log(
        `${String(rows).padStart(9)} rows  ${mb.toFixed(1).padStart(6)} MB  ${r.seconds.toFixed(2).padStart(7)} s  ${Math.round(r.records / r.seconds).toLocaleString('en-US').padStart(9)} records/s  largest worker's peak RSS ${(r.maxRssKb / 1024).toFixed(0).padStart(4)} MB  (${r.rejected} rejected, ${r.chunks} chunks)`,
      );
      for (const line of r.lines) console.log(line);
      if (process.env.BENCH_DRY === '1') {
        const staged = await countStagedObjects(s3, runId);
        const counted = [...requests].map(([action, n]) => [action, n - (before.get(action) ?? 0)] as const).filter(([, n]) => n > 0);
        console.log(`    S3: ${staged.objects} objects staged (${(staged.bytes / 1e6).toFixed(0)} MB); ${counted.reduce((a, [, n]) => a + n, 0)} requests: ${counted.map(([a, n]) => `${a.replace('s3:', '')} ${n}`).join(', ')}`);
      }
    }
    if (results.length > 1) {
      const first = results[0]!;
      const last = results[results.length - 1]!;
      console.log(`largest worker's peak RSS ratio ${last.rows}/${first.rows} rows: ${(last.rssMb / first.rssMb).toFixed(2)} (1.00 = flat)`);
    }
    if (process.env.BENCH_EXPRESSIONS !== '0') {
      await compareExpressions(s3, dir, worker, nodeFlags, configFile, sizes.includes(1_000_000) ? 1_000_000 : sizes[0]!);
    }
  } finally {
    await s3.close();
  }
}
void main();
