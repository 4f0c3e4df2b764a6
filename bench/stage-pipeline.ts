/**
 * What the stage benchmarks share: the staging pipeline run as the state machine runs it, every phase a Stage Lambda
 * invocation in a process of its own (the stage bundled as deployed, bench/stage-process.ts), the inline Maps' workers
 * `parallel` at a time (two: this machine's two cores, as parallel Lambdas would use them), against the embedded S3
 * running in this process. It counts the S3 requests by action (through the embedded S3's authorization hook, which
 * allows them all here) and the peak RSS of every worker process.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
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

/** What the worker process answers (bench/stage-worker.ts). */
interface WorkerReport {
  output: unknown;
  seconds: number;
  cpuSeconds: number;
  maxRssKb: number;
  error?: string;
}

/**
 * A pipeline run: the staging phase's wall time (prepare started → finish returned), each phase's (its first worker
 * started → its last returned), its output, every worker, and the workers that had to be started on the clock.
 */
export interface PipelineRun {
  seconds: number;
  phaseSeconds: Record<string, number>;
  output: StageOutput;
  workers: WorkerRun[];
  coldStarts: number;
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
  /**
   * Worker processes started (loaded, waiting for their event) before the clock starts, as warm Lambdas (default 8);
   * see warmWorkersFor.
   */
  warm?: number;
}

/**
 * Stages the object as the state machine would: prepare, then (a plain file) the scan workers and plan, the range
 * workers, the settle workers, finish. Each worker is a process; a Map's workers run `parallel` at a time.
 */
export async function runPipeline(settings: PipelineSettings): Promise<PipelineRun> {
  const { runId, key, configFile } = settings;
  const config = JSON.parse(readFileSync(configFile, 'utf8')) as { dataflows: Array<{ name: string }> };
  const pool = new WorkerPool(settings);
  await pool.warm(settings.warm ?? 8);
  try {
    const startedAt = new Date().toISOString();
    const workers: WorkerRun[] = [];
    const phaseSeconds: Record<string, number> = {};
    const started = process.hrtime.bigint();
    const invoke = async (event: StageEvent): Promise<unknown> => {
      const report = await pool.invoke(event);
      workers.push({ phase: event.phase ?? 'prepare', index: event.index ?? 0, seconds: report.seconds, cpuSeconds: report.cpuSeconds, maxRssKb: report.maxRssKb });
      return report.output;
    };
    const timed = async <T>(phase: string, work: () => Promise<T>): Promise<T> => {
      const from = process.hrtime.bigint();
      const result = await work();
      phaseSeconds[phase] = Number(process.hrtime.bigint() - from) / 1e9;
      return result;
    };
    let state = (await timed('prepare', () => invoke({ input: { dataflow: config.dataflows[0]!.name, bucket: LOCAL_BUCKETS.inbox, key }, runId, startedAt }))) as StageOutput;
    if (!state.plan) throw new Error(`prepare planned nothing: ${JSON.stringify(state)}`);
    const each = (phase: 'scan' | 'range' | 'settle', indexes: number[]) =>
      timed(phase, () => inParallel(indexes, settings.parallel ?? 2, (index) => invoke({ phase, input: state, runId, startedAt, index })));
    if (state.plan.scan) {
      await each('scan', state.plan.scan);
      state = { ...state, plan: (await timed('plan', () => invoke({ phase: 'plan', input: state, runId, startedAt }))) as StagePlanRef };
    }
    await each('range', state.plan!.ranges);
    await each('settle', state.plan!.partitions);
    const output = (await timed('finish', () => invoke({ phase: 'finish', input: state, runId, startedAt }))) as StageOutput;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { seconds, phaseSeconds, output, workers, coldStarts: pool.coldStarts };
  } finally {
    pool.close();
  }
}

/** Enough warm workers for a file of `bytes` and `rows`: its scans or ranges (8 MiB or more each), partitions, 4 more; at most 48. */
export function warmWorkersFor(bytes: number, rows: number): number {
  return Math.min(48, Math.ceil(bytes / (8 * 1024 * 1024)) + Math.ceil(rows / 1_000_000) + 4);
}

async function inParallel(indexes: number[], parallel: number, run: (index: number) => Promise<unknown>): Promise<void> {
  const queue = [...indexes];
  const lane = async () => {
    for (let index = queue.shift(); index !== undefined; index = queue.shift()) await run(index);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, queue.length) }, lane));
}

/**
 * Worker processes, loaded and waiting (warm Lambdas), each taking exactly one invocation so that its peak RSS is that
 * invocation's. One is started in the place of each taken; when none is ready, one is started on the clock (cold).
 */
class WorkerPool {
  coldStarts = 0;
  private readonly ready: ChildProcess[] = [];
  private readonly starting = new Set<Promise<void>>();
  private readonly all = new Set<ChildProcess>();

  constructor(private readonly settings: PipelineSettings) {}

  async warm(count: number): Promise<void> {
    for (let i = 0; i < count; i++) this.start();
    await Promise.all(this.starting);
  }

  async invoke(event: StageEvent): Promise<WorkerReport> {
    if (this.ready.length === 0) {
      this.coldStarts += 1;
      this.start();
      while (this.ready.length === 0) await Promise.race(this.starting);
    }
    const child = this.ready.shift()!;
    // Kept topped up to one more than the Map's workers at once (a long run outlives the processes warmed for it).
    if (this.ready.length + this.starting.size <= (this.settings.parallel ?? 2)) this.start();
    const answer = once(child, 'message') as Promise<[WorkerReport]>;
    const exit = once(child, 'exit').then(([code]) => {
      throw new Error(`The ${event.phase ?? 'prepare'} worker ${event.index ?? 0} exited (${String(code)}) without answering`);
    });
    child.send(event);
    const [report] = await Promise.race([answer, exit]);
    exit.catch(() => undefined);
    if (report.error) throw new Error(`The ${event.phase ?? 'prepare'} worker ${event.index ?? 0} failed: ${report.error}`);
    return report;
  }

  close(): void {
    for (const child of this.all) if (child.exitCode === null) child.kill();
  }

  private start(): void {
    const { worker, nodeFlags, s3, configFile, secretsFile } = this.settings;
    const child = fork(worker, [s3.endpoint, configFile, secretsFile ?? ''], { execArgv: nodeFlags, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.all.add(child);
    child.on('exit', () => this.all.delete(child));
    const loaded = (once(child, 'message') as Promise<[unknown]>).then(() => {
      this.ready.push(child);
      this.starting.delete(loaded);
    });
    this.starting.add(loaded);
  }
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

/** Each phase's wall time (its first worker started → its last returned), and the workers started on the clock. */
export function describePhases(run: PipelineRun): string {
  const phases = Object.entries(run.phaseSeconds).map(([phase, seconds]) => `${phase} ${seconds.toFixed(2)} s`);
  return `    phases: ${phases.join(', ')}${run.coldStarts > 0 ? `; ${run.coldStarts} worker(s) started on the clock (cold)` : ''}`;
}
