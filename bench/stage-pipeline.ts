/**
 * What the stage benchmarks share: the staging pipeline run as the state machine runs it, every phase a Stage Lambda
 * invocation in a process of its own (the stage bundled as deployed, bench/stage-process.ts), the inline Maps' workers
 * `parallel` at a time (two: this machine's two cores, as parallel Lambdas would use them), against the embedded S3
 * running in this process. It counts the S3 requests by action (through the embedded S3's authorization hook, which
 * allows them all here) and the peak RSS of every worker process.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { paginateListObjectsV2 } from '@aws-sdk/client-s3';
import type { StageEvent, StageOutput, StagePlanRef } from '../src/contracts';
import { type LocalS3, LOCAL_BUCKETS, startLocalS3 } from '../src/local/s3';

/** One phase's invocation, as its process reported it. */
export interface WorkerRun {
  phase: string;
  index: number;
  seconds: number;
  cpuSeconds: number;
  maxRssKb: number;
}

/** What the worker process prints (bench/stage-worker.ts). */
interface WorkerReport {
  output: unknown;
  seconds: number;
  cpuSeconds: number;
  maxRssKb: number;
}

/** A pipeline run: the staging phase's wall time (prepare started → finish returned), its output, every worker. */
export interface PipelineRun {
  seconds: number;
  output: StageOutput;
  workers: WorkerRun[];
}

/** The embedded S3, allowing every request and counting them by action (`s3:PutObject`, `s3:GetObject`, …). */
export async function startCountingS3(): Promise<{ s3: LocalS3; requests: Map<string, number> }> {
  const requests = new Map<string, number>();
  const s3 = await startLocalS3({
    authorize: (request) => {
      requests.set(request.action, (requests.get(request.action) ?? 0) + 1);
      return { allowed: true };
    },
  });
  return { s3, requests };
}

/** The settings of a pipeline run. */
export interface PipelineSettings {
  s3: LocalS3;
  /** The bundled worker (buildStageWorker(dir, 'stage-worker')) and its node flags (stageProcessFlags). */
  worker: string;
  nodeFlags: string[];
  configFile: string;
  secretsFile?: string;
  /** The object in the inbox. */
  key: string;
  runId: string;
  /** Workers of one inline Map at once (default 2). */
  parallel?: number;
  /** Where the events handed to the workers are written. */
  dir: string;
}

/**
 * Stages the object as the state machine would: prepare, then (a plain file) the scan workers and plan, the range
 * workers, the settle workers, finish. Each worker is a process; a Map's workers run `parallel` at a time.
 */
export async function runPipeline(settings: PipelineSettings): Promise<PipelineRun> {
  const { runId, key, configFile } = settings;
  const config = JSON.parse(readFileSync(configFile, 'utf8')) as { dataflows: Array<{ name: string }> };
  const startedAt = new Date().toISOString();
  const workers: WorkerRun[] = [];
  const started = process.hrtime.bigint();
  const invoke = async (event: StageEvent): Promise<unknown> => {
    const report = await runWorker(settings, event);
    workers.push({ phase: event.phase ?? 'prepare', index: event.index ?? 0, seconds: report.seconds, cpuSeconds: report.cpuSeconds, maxRssKb: report.maxRssKb });
    return report.output;
  };
  let state = (await invoke({ input: { dataflow: config.dataflows[0]!.name, bucket: LOCAL_BUCKETS.inbox, key }, runId, startedAt })) as StageOutput;
  if (!state.plan) throw new Error(`prepare planned nothing: ${JSON.stringify(state)}`);
  const each = (phase: 'scan' | 'range' | 'settle', indexes: number[]) => inParallel(indexes, settings.parallel ?? 2, (index) => invoke({ phase, input: state, runId, startedAt, index }));
  if (state.plan.scan) {
    await each('scan', state.plan.scan);
    state = { ...state, plan: (await invoke({ phase: 'plan', input: state, runId, startedAt })) as StagePlanRef };
  }
  await each('range', state.plan!.ranges);
  await each('settle', state.plan!.partitions);
  const output = (await invoke({ phase: 'finish', input: state, runId, startedAt })) as StageOutput;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { seconds, output, workers };
}

async function inParallel(indexes: number[], parallel: number, run: (index: number) => Promise<unknown>): Promise<void> {
  const queue = [...indexes];
  const lane = async () => {
    for (let index = queue.shift(); index !== undefined; index = queue.shift()) await run(index);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, queue.length) }, lane));
}

async function runWorker(settings: PipelineSettings, event: StageEvent): Promise<WorkerReport> {
  const eventFile = join(settings.dir, `event-${event.runId}-${event.phase ?? 'prepare'}-${event.index ?? 0}.json`);
  writeFileSync(eventFile, JSON.stringify(event));
  const args = [...settings.nodeFlags, settings.worker, settings.s3.endpoint, settings.configFile, eventFile, ...(settings.secretsFile ? [settings.secretsFile] : [])];
  // Asynchronous: the embedded S3 serving the worker runs in this process's event loop.
  const { stdout } = await promisify(execFile)(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as WorkerReport;
}

/** Objects the run left in staging (under runs/<runId>/). */
export async function countStagedObjects(s3: LocalS3, runId: string): Promise<{ objects: number; bytes: number }> {
  let objects = 0;
  let bytes = 0;
  for await (const page of paginateListObjectsV2({ client: s3.client }, { Bucket: LOCAL_BUCKETS.staging, Prefix: `runs/${runId}/` })) {
    for (const object of page.Contents ?? []) {
      objects += 1;
      bytes += object.Size ?? 0;
    }
  }
  return { objects, bytes };
}

/** The workers' peak RSS by phase: the largest, in MB. */
export function peakRssByPhase(workers: WorkerRun[]): Record<string, number> {
  const peaks: Record<string, number> = {};
  for (const w of workers) peaks[w.phase] = Math.max(peaks[w.phase] ?? 0, w.maxRssKb / 1024);
  return peaks;
}

/** One line per phase: workers, peak RSS (largest worker), CPU seconds summed and the slowest worker's wall time. */
export function describeWorkers(workers: WorkerRun[]): string[] {
  const phases = [...new Set(workers.map((w) => w.phase))];
  return phases.map((phase) => {
    const of = workers.filter((w) => w.phase === phase);
    const rss = of.map((w) => (w.maxRssKb / 1024).toFixed(0)).join('/');
    const cpu = of.reduce((sum, w) => sum + w.cpuSeconds, 0);
    const slowest = Math.max(...of.map((w) => w.seconds));
    return `    ${phase.padEnd(7)} ${String(of.length).padStart(3)} worker(s)  peak RSS ${rss} MB  CPU ${cpu.toFixed(2)} s  slowest ${slowest.toFixed(2)} s`;
  });
}
