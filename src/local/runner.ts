import { type WriteStream, createReadStream, createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { StateMachine } from 'aws-local-stepfunctions';
import type { SecretsProvider } from '../aws/secrets';
import { ERROR_CODES } from '../codes';
import { BadgesImportError, FileNotMatchedError } from '../errors';
import { openObject, readJson } from '../aws/s3';
import type { Config, Dataflow } from '../config/schema';
import { type ExecutionInput, KEYS, type Report, type StepName, finalizeOutputOf } from '../contracts';
import type { Sandbox } from '../api/sandbox';
import { type ContainerState, type Log, type MetricsSink, type ProgressEvent, type StepDeps, newContainerState } from '../steps/deps';
import { finalize } from '../steps/finalize';
import { send } from '../steps/send';
import { stage } from '../steps/stage';
import { resolveDefinition } from './definition';
import { type LocalHandler, emulateDistributedMaps } from './distributed-map';
import { LOCAL_BUCKETS, type LocalS3, type S3RequestCounts } from './s3';
import { type SynthesizeOptions, synthesizeStack } from './lambda-stack';
import { type Twin, type TwinOptions, startTwin } from './lambda-twin';
import { countTransitions } from './transitions';

/** What a local run may print while it goes. */
export type RunProgress = ProgressEvent | { step: 'chunks'; done: number; total: number };

export interface LocalObjectRunOptions {
  config: Config;
  /** The configuration file, bundled as in a deployment (the definition is synthesized from it). */
  configFile: string;
  dataflow: Dataflow;
  secrets: SecretsProvider;
  s3: LocalS3;
  /** The embedded API sandbox; when absent, `apiUrl` must be given. */
  sandbox?: Sandbox;
  apiUrl?: string;
  /** Directory that receives report.json and the rejected-records file. */
  outDir: string;
  dryRun?: boolean;
  /** Import even if the same content was imported before. */
  force?: boolean;
  /** The object is a replay file (see replayRecords): records keep their original numbers. */
  replay?: boolean;
  /** The object version the run reads and moves (what the upload event names); absent: the current one. */
  versionId?: string;
  progress?: (event: RunProgress) => void;
  fetch?: typeof fetch;
  /** Receives the steps' metrics (in AWS: CloudWatch, through Powertools). */
  metrics?: MetricsSink;
  /** Receives the per-file notification (in AWS: the alerts topic). */
  notify?: (subject: string, message: string) => Promise<void>;
  /** The execution's name (its runId). @default `local-<time>-<random>` */
  executionName?: string;
  /**
   * Runs the steps' TypeScript modules in-process instead of the deployed bundles in Lambda containers: faster to
   * debug, but without the bundling, the containers, the local endpoints and IAM. Not what the end-to-end tests use.
   * @default false
   */
  sourceMode?: boolean;
  /** More environment for every function (e.g. the endpoint of a local Step Functions for the sweep). */
  environment?: Record<string, string>;
  /** Changes the synthesized template (a test removes a grant to see the run fail as in AWS). */
  synthesize?: SynthesizeOptions;
}

export interface LocalRunOptions extends LocalObjectRunOptions {
  /** The local file to process as if it had been dropped into the dataflow's source. */
  file: string;
}

export interface LocalRunResult {
  /** The execution's name (the report's runId). */
  executionName: string;
  report: Report;
  reportPath: string;
  rejectedPath?: string;
  /** The records the dataflow's filter left out, copied beside the rejected ones, when there are any. */
  filteredPath?: string;
  exitCode: 0 | 1 | 3;
  /** What the execution did, counted as AWS bills it: the cost model (src/ops/estimate.ts) is checked against these. */
  counts: RunCounts;
}

/**
 * What one execution did, counted where it happened: Lambda invocations per function (`stage`, `send`, `finalize`)
 * and per stage phase (`stage:range`…, when the event names one), state transitions as Step Functions Standard bills
 * them (every state entered, in Map iterations too, every retry, and one for each Distributed Map child execution
 * started), and the embedded S3's requests during the execution (runs sharing one S3 at once would mix theirs).
 */
export interface RunCounts {
  invocations: Record<string, number>;
  transitions: number;
  s3: S3RequestCounts;
}

/** Counts invocations by function and phase; wraps each step's handler. */
function countInvocations(steps: Record<StepName, LocalHandler>, invocations: Record<string, number>): Record<StepName, LocalHandler> {
  const counted = {} as Record<StepName, LocalHandler>;
  for (const [step, handler] of Object.entries(steps) as Array<[StepName, LocalHandler]>) {
    counted[step] = (event: { phase?: unknown }) => {
      invocations[step] = (invocations[step] ?? 0) + 1;
      if (typeof event?.phase === 'string') invocations[`${step}:${event.phase}`] = (invocations[`${step}:${event.phase}`] ?? 0) + 1;
      return handler(event);
    };
  }
  return counted;
}


/** Exit status of a run: 0 every record accepted, 3 some rejected, 1 the file failed. */
export function exitCodeOf(report: Report): 0 | 1 | 3 {
  return report.status === 'FAILED' ? 1 : report.status === 'COMPLETED_WITH_REJECTIONS' ? 3 : 0; // SKIPPED_DUPLICATE: 0
}

/**
 * Runs one file through the state machine that CDK synthesizes, on aws-local-stepfunctions, with each Task bound to
 * the stack's functions (their bundles in local containers; in source mode, the step modules in-process), S3 on the
 * embedded S3, and the API on the sandbox unless `apiUrl` says otherwise.
 */
export async function runLocal(options: LocalRunOptions): Promise<LocalRunResult> {
  const { dataflow } = options;
  // A dropped file whose name does not match the pattern is left alone; a local run says so instead of doing nothing.
  if (!new RegExp(dataflow.source.filePattern).test(basename(options.file))) {
    throw new FileNotMatchedError(`"${basename(options.file)}" does not match the file pattern of dataflow ${dataflow.name} (${dataflow.source.filePattern}): a vendor file so named would be left alone. Rename it, or choose another dataflow.`);
  }
  const key = `${dataflow.source.prefix}${basename(options.file)}`;
  const uploaded = await new Upload({ client: options.s3.client, params: { Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: createReadStream(options.file) } }).done();
  return runObject({ ...options, ...(uploaded.VersionId ? { versionId: uploaded.VersionId } : {}) }, key);
}

/** One local execution: its name, input and log, and how its Task states reach the step functions. */
interface LocalExecution {
  runId: string;
  input: ExecutionInput;
  /** The context object's `Execution`. */
  context: { Name: string; StartTime: string; Id: string };
  logStream: WriteStream;
  log: Log;
  /** The configuration the functions read at run time: the dataflow's API pointed at the local one. */
  runtimeConfig: Config;
}

/** The step functions an execution's Task states call, and what its Distributed Map acts as. */
interface BoundSteps {
  steps: Record<StepName, LocalHandler>;
  /** The Distributed Map's own S3 client (the state machine role's, on the twin). */
  mapS3: S3Client;
  /** Checks that the state machine role may start the Map's child executions. */
  authorizeChildren?: () => Promise<void>;
  /** The twin the steps run on, given back to the pool after the run. */
  twin?: Twin;
}

/** Runs the per-file workflow on an object already in the local inbox, as its upload event would. */
export async function runObject(options: LocalObjectRunOptions, key: string): Promise<LocalRunResult> {
  const execution = await prepareExecution(options, key);
  let bound: BoundSteps | undefined;
  let report: Report;
  const counts: RunCounts = { invocations: {}, transitions: 0, s3: { byOperation: {}, byTier: { putCopyPostList: 0, getAndOther: 0, free: 0 } } };
  try {
    bound = await bindSteps(options, execution);
    bound = { ...bound, steps: countInvocations(bound.steps, counts.invocations) };
    report = await runStateMachine(options, execution, bound, counts);
  } finally {
    if (bound?.twin) releaseTwin(bound.twin);
    await new Promise((resolve) => execution.logStream.end(resolve));
  }
  return { executionName: execution.runId, ...(await writeOutputs(report, options, options.s3)), counts };
}

/** The execution's name, input, log, and the configuration its functions read (the API is the local one). */
async function prepareExecution(options: LocalObjectRunOptions, key: string): Promise<LocalExecution> {
  const { dataflow } = options;
  const baseUrl = options.apiUrl ?? options.sandbox?.url;
  if (!baseUrl) throw new Error('A local run needs the sandbox or an explicit API URL');
  // The API a local run talks to is the sandbox unless the operator named one: never the configured one by accident
  // (an OAuth token URL of the configuration is dropped too: tokens come from the same local API).
  const local = (d: Dataflow): Dataflow => {
    const auth = d.destination.auth.type === 'oauth' ? { ...d.destination.auth, tokenUrl: undefined } : d.destination.auth;
    return { ...d, destination: { ...d.destination, baseUrl: baseUrl.replace(/\/+$/, ''), auth } };
  };
  const runtimeConfig: Config = { ...options.config, dataflows: options.config.dataflows.map((d) => (d.name === dataflow.name ? local(d) : d)) };
  if (options.sandbox) await registerSandboxUser(options.sandbox, dataflow, options.secrets);

  const runId = options.executionName ?? `local-${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}-${randomBytes(3).toString('hex')}`;
  mkdirSync(options.outDir, { recursive: true });
  const logStream = createWriteStream(join(options.outDir, 'run.log'), { flags: 'a' });
  const context = { Name: runId, StartTime: new Date().toISOString(), Id: `arn:aws:states:us-east-1:000000000000:execution:local:${runId}` };
  const input: ExecutionInput = { dataflow: dataflow.name, bucket: LOCAL_BUCKETS.inbox, key, ...(options.versionId ? { versionId: options.versionId } : {}), ...(options.dryRun ? { dryRun: true } : {}), ...(options.force ? { force: true } : {}), ...(options.replay ? { replay: true } : {}) };
  return { runId, input, context, logStream, log: fileLog(logStream, runId), runtimeConfig };
}

/**
 * Binds the Task states to the step functions: the deployed bundles in the twin's containers, with the stack's IAM
 * (or, in source mode, the steps' modules in-process).
 */
async function bindSteps(options: LocalObjectRunOptions, execution: LocalExecution): Promise<BoundSteps> {
  const { s3 } = options;
  const progress = options.progress && acrossRanges(options.progress);
  if (options.sourceMode) {
    const deps = { config: execution.runtimeConfig, s3: s3.client, buckets: LOCAL_BUCKETS, secrets: options.secrets, log: execution.log, fetch: options.fetch, progress, metrics: options.metrics, notify: options.notify };
    return { steps: sourceSteps(deps), mapS3: s3.client };
  }
  const twin = await acquireTwin({
    config: options.config,
    configFile: options.configFile,
    runtimeConfig: execution.runtimeConfig,
    secrets: options.secrets,
    s3,
    environment: options.environment,
    synthesize: options.synthesize,
  });
  const { logStream, runId } = execution;
  twin.use({
    // A container's stderr may trail the run's end; the log is closed by then.
    log: (line, fn) => !logStream.writableEnded && logStream.write(`${line.startsWith('{') ? line.replace(/^\{/, `{"function":${JSON.stringify(fn.logicalId)},`) : JSON.stringify({ function: fn.logicalId, runId, message: line })}\n`),
    metrics: options.metrics,
    progress,
    notify: options.notify,
  });
  const machine = twin.stateMachine;
  return {
    steps: { stage: (e) => twin.invoke('stage', e), send: (e) => twin.invoke('send', e), finalize: (e) => twin.invoke('finalize', e), sweep: (e) => twin.invoke('sweep', e) },
    // The Distributed Map's own S3 calls and child executions are the state machine role's.
    mapS3: machine.s3,
    authorizeChildren: async () => {
      const decision = await twin.authorize({ accessKeyId: machine.accessKeyId, action: 'states:StartExecution', resource: machine.arn });
      if (!decision.allowed) throw Object.assign(new Error(decision.message), { name: 'States.Runtime' });
    },
    twin,
  };
}

/**
 * Runs the synthesized state machine on aws-local-stepfunctions, each Task bound to its step, and reads the report
 * the execution wrote: a FAILED file ends in the Fail state after writing it; an execution without one failed.
 */
async function runStateMachine(options: LocalObjectRunOptions, execution: LocalExecution, bound: BoundSteps, counts: RunCounts): Promise<Report> {
  const { s3, dataflow } = options;
  const { runId, input, context, log } = execution;
  // The definition comes from the same synthesis as the bundles (source mode too: the same cached assembly).
  const synthesized = resolveDefinition((bound.twin?.stack ?? synthesizeStack(options.configFile, LOCAL_BUCKETS, options.synthesize)).template, LOCAL_BUCKETS);
  const handlers: Record<string, LocalHandler> = {};
  for (const [state, step] of Object.entries(synthesized.taskSteps)) handlers[state] = withDataLimit(state, bound.steps[step]);
  const emulated = emulateDistributedMaps(synthesized.definition, {
    s3: bound.mapS3,
    handlers,
    execution: context,
    onItem: (done, total) => options.progress?.({ step: 'chunks', done, total }),
    authorizeChildren: bound.authorizeChildren,
    onTransitions: (n) => (counts.transitions += n),
  });
  Object.assign(handlers, emulated.handlers);

  const machine = new StateMachine(emulated.definition as never, { validationOptions: { checkPaths: false, checkArn: false } });
  const reportKey = KEYS.report(dataflow.name, runId);
  const s3Before = s3.requests.snapshot();
  let counting: Promise<void> | undefined;
  const settleCounts = async () => {
    await counting;
    counts.s3 = s3.requests.since(s3Before);
  };
  try {
    const run = machine.run(input as never, { overrides: { taskResourceLocalHandlers: handlers }, context: { Execution: { ...context, Input: input } } as never });
    counting = countTransitions(run.eventLogs, (n) => (counts.transitions += n));
    await run.result.finally(settleCounts);
    // The state holds only the outcome (FinalizeOutput); the report is in the reports bucket, as in AWS.
    const report = await readJson<Report>(s3.client, LOCAL_BUCKETS.reports, reportKey);
    if (!report) throw new ExecutionFailedError(runId, 'NoReport', `the execution succeeded but s3://${LOCAL_BUCKETS.reports}/${reportKey} is missing`);
    return report;
  } catch (error) {
    if (error instanceof ExecutionFailedError) throw error;
    // A FAILED file ends the execution in the Fail state; its report was written before.
    const report = await readJson<Report>(s3.client, LOCAL_BUCKETS.reports, reportKey);
    if (report) return report;
    const failure = ((error as Error).cause ?? error) as Error;
    log.error('The execution failed without a report', { error: failure.name, cause: failure.message });
    throw new ExecutionFailedError(runId, failure.name, failure.message, { cause: error });
  }
}

/**
 * The stage's range workers report their own range's records; a watcher is told the file's: the sum over the ranges
 * so far (the finish phase's `done` event gives the file's totals).
 */
function acrossRanges(progress: (event: RunProgress) => void): (event: RunProgress) => void {
  const ranges = new Map<number, { records: number; rejected: number; filtered: number }>();
  return (event) => {
    if (event.step !== 'stage' || event.range === undefined) return progress(event);
    ranges.set(event.range, { records: event.records, rejected: event.rejected, filtered: event.filtered ?? 0 });
    const all = [...ranges.values()];
    const sum = (field: 'records' | 'rejected' | 'filtered') => all.reduce((n, r) => n + r[field], 0);
    progress({ step: 'stage', records: sum('records'), rejected: sum('rejected'), filtered: sum('filtered'), done: false });
  };
}

/** Idle twins, by what they were started with: the next run of the same kind finds its containers warm, as in Lambda. */
const idleTwins: Array<{ key: string; twin: Twin }> = [];
const twinKeys = new WeakMap<Twin, string>();
const secretsIds = new WeakMap<object, number>();
let nextSecretsId = 0;
/** Idle twins kept at most (each holds a few Node processes). */
const MAX_IDLE_TWINS = 2;

function twinKey(options: TwinOptions): string {
  if (!secretsIds.has(options.secrets)) secretsIds.set(options.secrets, ++nextSecretsId);
  return JSON.stringify([options.configFile, options.s3.endpoint, options.runtimeConfig, options.environment ?? {}, options.synthesize?.transform?.name ?? '', secretsIds.get(options.secrets)]);
}

async function acquireTwin(options: TwinOptions): Promise<Twin> {
  const key = twinKey(options);
  const index = idleTwins.findIndex((t) => t.key === key);
  if (index >= 0) return idleTwins.splice(index, 1)[0]!.twin;
  const twin = await startTwin(options);
  twinKeys.set(twin, key);
  return twin;
}

function releaseTwin(twin: Twin): void {
  twin.use({});
  idleTwins.push({ key: twinKeys.get(twin)!, twin });
  while (idleTwins.length > MAX_IDLE_TWINS) void idleTwins.shift()!.twin.close();
}

/** Stops the idle twins this process keeps (their containers would end with the process anyway). */
export async function closeIdleTwins(): Promise<void> {
  await Promise.all(idleTwins.splice(0).map((t) => t.twin.close()));
}

/** Step Functions' cap on a state's input and output (UTF-8 bytes). */
export const MAX_STATE_PAYLOAD_BYTES = 262_144;

/** The execution failed with no report, e.g. `States.DataLimitExceeded`, which no Catch can catch. */
export class ExecutionFailedError extends BadgesImportError {
  static override readonly code = ERROR_CODES.EXECUTION_FAILED;
  constructor(
    readonly executionName: string,
    readonly error: string,
    readonly causeText: string,
    options?: { cause?: unknown },
  ) {
    super(`The execution ${executionName} FAILED with ${error} and wrote no report: ${causeText}`, options);
  }
}

/** A Task's input or result over 256 KiB fails the execution with States.DataLimitExceeded, which no Catch catches. */
export function withDataLimit(state: string, handler: LocalHandler): LocalHandler {
  const check = (what: 'input' | 'output', value: unknown) => {
    const bytes = Buffer.byteLength(JSON.stringify(value ?? null));
    if (bytes > MAX_STATE_PAYLOAD_BYTES) {
      throw Object.assign(new Error(`The state/task '${state}' ${what === 'input' ? 'input' : 'returned a result'} with a size (${bytes} bytes) exceeding the maximum number of bytes service limit (${MAX_STATE_PAYLOAD_BYTES} bytes).`), {
        name: 'States.DataLimitExceeded',
        isCatchable: false,
        isRetryable: false,
      });
    }
  };
  return async (event) => {
    check('input', event);
    const result: unknown = await handler(event);
    check('output', result);
    return result;
  };
}

/** The steps' modules, called in-process (sourceMode): the way the runner worked before it ran the bundles. */
function sourceSteps(deps: StepDeps): Record<StepName, LocalHandler> {
  const containers: ContainerState[] = [];
  return {
    stage: (event) => stage(event, deps),
    send: async (event) => {
      const container = containers.pop() ?? newContainerState();
      try {
        return await send(event, { ...deps, container });
      } finally {
        containers.push(container);
      }
    },
    // As the finalize Lambda does: the state gets the outcome, the reports bucket the report.
    finalize: async (event) => finalizeOutputOf(await finalize(event, deps)),
    sweep: () => Promise.reject(new Error('The sweep step is not part of the per-file workflow')),
  };
}

async function registerSandboxUser(sandbox: Sandbox, dataflow: Dataflow, secrets: SecretsProvider): Promise<void> {
  const { auth } = dataflow.destination;
  try {
    if (auth.type === 'basic') sandbox.addUser(await secrets.get(auth.usernameSecret), await secrets.get(auth.passwordSecret));
    else sandbox.addOAuthClient(await secrets.get(auth.keySecret), await secrets.get(auth.secretSecret));
  } catch {
    // A missing secret is reported by the send step, where it would surface in AWS too.
  }
}

/** Copies the report and the rejected (and filtered) records out of the local S3, pointing the report at the local copies. */
async function writeOutputs(report: Report, options: LocalObjectRunOptions, s3: LocalS3): Promise<Omit<LocalRunResult, 'executionName' | 'counts'>> {
  const { outDir } = options;
  let rejectedPath: string | undefined;
  let filteredPath: string | undefined;
  const files = [];
  for (const file of report.files) {
    rejectedPath = await copyOut(file.rejectedFile, outDir, s3);
    filteredPath = await copyOut(file.filteredFile, outDir, s3);
    const rejectedFile = rejectedPath ? relative(outDir, rejectedPath) : file.rejectedFile;
    const filteredFile = filteredPath ? relative(outDir, filteredPath) : file.filteredFile;
    files.push({ ...file, ...(rejectedFile ? { rejectedFile } : {}), ...(filteredFile ? { filteredFile } : {}) });
  }
  const local: Report = { ...report, files };
  const reportPath = join(outDir, 'report.json');
  writeFileSync(reportPath, `${JSON.stringify(local, null, 2)}\n`);
  return { report: local, reportPath, ...(rejectedPath ? { rejectedPath } : {}), ...(filteredPath ? { filteredPath } : {}), exitCode: exitCodeOf(local) };
}

/** Copies an `s3://` object of the local S3 to `<outDir>/rejected/`; returns the local path, when it was copied. */
async function copyOut(uri: string | undefined, outDir: string, s3: LocalS3): Promise<string | undefined> {
  const match = uri ? /^s3:\/\/([^/]+)\/(.+)$/.exec(uri) : null;
  if (!match) return undefined;
  const body = await openObject(s3.client, match[1]!, match[2]!);
  if (!body) return undefined;
  const path = join(outDir, 'rejected', basename(match[2]!));
  mkdirSync(join(outDir, 'rejected'), { recursive: true });
  await pipeline(body, createWriteStream(path));
  return path;
}

/** JSON lines into the run's log file; the terminal shows progress, not logs. */
function fileLog(stream: NodeJS.WritableStream, runId: string): Log {
  const write = (level: string) => (message: string, ...extra: Array<Record<string, unknown>>) => {
    stream.write(`${JSON.stringify({ level, time: new Date().toISOString(), runId, message, ...Object.assign({}, ...extra) })}\n`);
  };
  return { debug: write('DEBUG'), info: write('INFO'), warn: write('WARN'), error: write('ERROR') };
}
