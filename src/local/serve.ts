import { join } from 'node:path';
import { SFNClient } from '@aws-sdk/client-sfn';
import type { SecretsProvider } from '../aws/secrets';
import { type SweepEvent, type SweepOutput, sweep } from '../steps/sweep';
import type { Config } from '../config/schema';
import { type ExecutionInput, fileNameOf } from '../contracts';
import { type Sandbox, type SandboxSettings, startSandbox } from '../api/sandbox';
import type { PullResult } from '../sources/sftp';
import { silentLog } from '../steps/deps';
import { type Delivery, type LocalSchedule, type LocalTriggers, type ObjectCreatedNotification, deliveriesOf, objectCreatedEvent, scheduleInput, triggersOf } from './events';
import { synthesizeStack } from './lambda-stack';
import { type LocalRunResult, type RunProgress, runObject } from './runner';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from './s3';
import { type ExecutionContext, type ExecutionOutcome, type ExecutionRunner, type LocalStepFunctions, startLocalStepFunctions } from './stepfunctions';

export type ServeEvent =
  | { type: 'pulled'; dataflow: string; result: PullResult }
  /** The sweep function was invoked by the upload rule or a schedule, and says what it started and found started. */
  | { type: 'delivered'; dataflow: string; trigger: 'upload' | 'schedule'; key?: string; at: number; output: SweepOutput }
  | { type: 'started'; dataflow: string; key: string; execution: string }
  | { type: 'finished'; dataflow: string; key: string; execution: string; result: LocalRunResult }
  | { type: 'error'; dataflow: string; key: string; error: Error };

/** Invokes the sweep function with what a trigger delivers (in AWS: the Lambda service). */
export type SweepInvoker = (event: SweepEvent) => Promise<SweepOutput>;

export interface ServeOptions {
  config: Config;
  configFile: string;
  secrets: SecretsProvider;
  /** Settings of the embedded sandbox; ignored when `apiUrl` is given. */
  sandbox?: SandboxSettings;
  apiUrl?: string;
  host?: string;
  /** @default 4569 */
  s3Port?: number;
  /** @default 8080 */
  apiPort?: number;
  /** The local Step Functions endpoint's port. @default 0 (any free port) */
  sfnPort?: number;
  /**
   * Where the embedded S3 keeps its data, so that it survives restarts; the local Step Functions keeps its execution
   * names there too (`stepfunctions-executions.json`), so that a restart still refuses a closed execution's name.
   */
  dataDir: string;
  /** Where each run's report and rejected records go. */
  outDir: string;
  /** How often the inbox is looked at for new objects, and how often a scheduled sweep runs. @default 1000 */
  pollMs?: number;
  /** How often the scheduled sweep of an SFTP source runs (it polls the server). @default 30000 */
  sftpPollMs?: number;
  /**
   * Invokes the sweep function. @default the sweep module in-process, with an SFNClient on the local Step Functions
   * (to be replaced by an invocation of the sweep function's bundle)
   */
  invokeSweep?: (event: SweepEvent, sfn: { endpoint: string; stateMachineArn: string }) => Promise<SweepOutput>;
  /** Runs one execution of the state machine. @default the local runner on the synthesized definition */
  runExecution?: ExecutionRunner;
  onEvent?: (event: ServeEvent) => void;
  progress?: (event: RunProgress) => void;
}

export interface ServeHandle {
  readonly s3: LocalS3;
  readonly apiUrl: string;
  readonly stepFunctions: LocalStepFunctions;
  stop(): Promise<void>;
}

/** The state machine the twin's Step Functions knows (what the sweep is given as STATE_MACHINE_ARN). */
export const LOCAL_STATE_MACHINE_ARN = 'arn:aws:states:us-east-1:000000000000:stateMachine:BadgesImportWorkflow';

/** The stack's triggers (the upload rules and the schedules), from the twin's one synthesis of the stack. */
export function synthesizeTriggers(configFile: string): LocalTriggers {
  return triggersOf(synthesizeStack(configFile, LOCAL_BUCKETS).template, LOCAL_BUCKETS);
}

/**
 * The local twin of the deployed stack, driven as AWS drives it: every object created in the embedded S3 becomes the
 * S3 "Object Created" event, which the stack's EventBridge rules (read from the synthesized template) match and
 * deliver, transformed, to the sweep; each schedule's input reaches the sweep every `pollMs` (`sftpPollMs` for an
 * SFTP source) instead of at its cron times. The sweep starts executions on a local Step Functions that refuses names
 * as AWS does, and every execution runs at once, so that the races of AWS can happen here too.
 */
export async function startServe(options: ServeOptions): Promise<ServeHandle> {
  const host = options.host ?? '127.0.0.1';
  // The embedded S3 reports every object created, as S3 reports it to EventBridge; the rules are read below.
  let onCreated: (created: ObjectCreatedNotification) => void = () => undefined;
  const s3 = await startLocalS3({
    directory: options.dataDir,
    port: options.s3Port ?? 4569,
    host,
    onObjectCreated: (event) => {
      if (event.bucket === LOCAL_BUCKETS.inbox) onCreated({ ...event, time: new Date(event.time) });
    },
  });
  const sandbox = options.apiUrl ? undefined : await startSandbox(options.sandbox ?? {}, options.apiPort ?? 8080, host);
  const triggers = synthesizeTriggers(options.configFile);
  const stepFunctions = await startLocalStepFunctions({
    stateMachineArn: LOCAL_STATE_MACHINE_ARN,
    registryFile: join(options.dataDir, 'stepfunctions-executions.json'),
    host,
    port: options.sfnPort ?? 0,
    run: options.runExecution ?? workflowRunner(options, s3, sandbox),
  });
  const sfn = new SFNClient({ endpoint: stepFunctions.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  const twin: ServeState = { options, s3, triggers, sweepFunction: triggers.functions.sweep, invokeSweep: sweepInvoker(options, s3, sfn, stepFunctions.endpoint), inFlight: new Set(), stopped: false };
  onCreated = (created) => objectCreated(twin, created);
  const schedules = playSchedules(twin, sweepSchedules(twin));
  return {
    s3,
    apiUrl: options.apiUrl ?? sandbox!.url,
    stepFunctions,
    async stop() {
      twin.stopped = true;
      await schedules;
      while (twin.inFlight.size > 0) await Promise.allSettled([...twin.inFlight]);
      await stepFunctions.close();
      sfn.destroy();
      await sandbox?.close();
      await s3.close();
    },
  };
}

/** What the running twin holds between events: the triggers, how the sweep is invoked, the invocations in flight. */
interface ServeState {
  options: ServeOptions;
  s3: LocalS3;
  triggers: LocalTriggers;
  /** The sweep function's logical ID: the target of the rules and schedules the twin plays. */
  sweepFunction: string | undefined;
  invokeSweep: SweepInvoker;
  inFlight: Set<Promise<void>>;
  stopped: boolean;
}

const errorOf = (error: unknown) => (error instanceof Error ? error : new Error(String(error)));

/** The default execution: the per-file workflow on the local runner, its report copied to `outDir`. */
function workflowRunner(options: ServeOptions, s3: LocalS3, sandbox: Sandbox | undefined): ExecutionRunner {
  let stamp = 0;
  return async (input: unknown, execution: ExecutionContext): Promise<ExecutionOutcome> => {
    const { dataflow: name, key } = input as ExecutionInput;
    const dataflow = options.config.dataflows.find((d) => d.name === name);
    if (!dataflow) throw new Error(`No dataflow ${name}`);
    options.onEvent?.({ type: 'started', dataflow: name, key, execution: execution.name });
    try {
      const outDir = join(options.outDir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}-${++stamp}-${fileNameOf(key)}`);
      // TODO(runner): pass execution.name, so that the run's id (its report's key) is the execution's name as in AWS.
      const result = await runObject({ config: options.config, configFile: options.configFile, dataflow, secrets: options.secrets, s3, sandbox, apiUrl: options.apiUrl, outDir, progress: options.progress }, key);
      options.onEvent?.({ type: 'finished', dataflow: name, key, execution: execution.name, result });
      // A FAILED file ends the execution in the FileFailed state, as the deployed state machine does.
      return result.report.status === 'FAILED' ? { status: 'FAILED', error: 'FileFailed', cause: 'The file failed; its report says why' } : { status: 'SUCCEEDED', output: result.report };
    } catch (error) {
      options.onEvent?.({ type: 'error', dataflow: name, key, error: errorOf(error) });
      throw error;
    }
  };
}

/** How the sweep is invoked: the caller's way, or the sweep module in-process with an SFNClient on the local Step Functions. */
function sweepInvoker(options: ServeOptions, s3: LocalS3, sfn: SFNClient, endpoint: string): SweepInvoker {
  if (options.invokeSweep) return (event) => options.invokeSweep!(event, { endpoint, stateMachineArn: LOCAL_STATE_MACHINE_ARN });
  return (event) => sweep(event, { config: options.config, s3: s3.client, buckets: LOCAL_BUCKETS, secrets: options.secrets, log: silentLog, sfn, stateMachineArn: LOCAL_STATE_MACHINE_ARN });
}

/** One invocation of the sweep, at once: EventBridge does not wait for one delivery before the next. */
function deliver(twin: ServeState, delivery: Delivery, trigger: 'upload' | 'schedule'): Promise<void> {
  const { onEvent } = twin.options;
  const event = delivery.input as SweepEvent;
  const at = Date.now();
  const invocation = (async () => {
    try {
      const output = await twin.invokeSweep(event);
      if (output.pulled) onEvent?.({ type: 'pulled', dataflow: output.dataflow, result: output.pulled });
      onEvent?.({ type: 'delivered', dataflow: output.dataflow, trigger, ...(event.key !== undefined ? { key: event.key } : {}), at, output });
    } catch (error) {
      onEvent?.({ type: 'error', dataflow: event.dataflow ?? '*', key: event.key ?? '*', error: errorOf(error) });
    }
  })();
  twin.inFlight.add(invocation);
  void invocation.finally(() => twin.inFlight.delete(invocation));
  return invocation;
}

/** What S3 does when an object is created: the event goes to EventBridge, whose rules deliver it. */
function objectCreated(twin: ServeState, created: ObjectCreatedNotification): void {
  for (const delivery of deliveriesOf(twin.triggers, objectCreatedEvent(created))) if (delivery.functionId === twin.sweepFunction) void deliver(twin, delivery, 'upload');
}

/**
 * The sweep's schedules the twin plays, each every `pollMs` (`sftpPollMs` for an SFTP source) instead of at its cron
 * times; not the arrival checks, which only make sense at their cron times.
 */
function sweepSchedules(twin: ServeState): PlayedSchedule[] {
  const { options } = twin;
  return twin.triggers.schedules
    .filter((s) => s.functionId === twin.sweepFunction)
    .map((s) => ({ schedule: s, input: scheduleInput(s.input, { scheduleArn: `arn:aws:scheduler:us-east-1:000000000000:schedule/default/${s.id}`, scheduledTime: new Date() }) as SweepEvent }))
    .filter(({ input }) => input.check === undefined)
    .map((s) => {
      const flow = options.config.dataflows.find((d) => d.name === s.input.dataflow);
      return { ...s, everyMs: flow?.source.type === 'sftp' ? (options.sftpPollMs ?? 30_000) : (options.pollMs ?? 1000), last: 0, running: undefined };
    });
}

interface PlayedSchedule {
  schedule: LocalSchedule;
  input: SweepEvent;
  everyMs: number;
  last: number;
  running: Promise<void> | undefined;
}

/** Plays the schedules until the twin stops: each no more often than its cadence, and never twice at once. */
async function playSchedules(twin: ServeState, schedules: PlayedSchedule[]): Promise<void> {
  const { options } = twin;
  while (!twin.stopped) {
    try {
      for (const s of schedules) {
        if (s.running || Date.now() - s.last < s.everyMs) continue;
        s.last = Date.now();
        s.running = deliver(twin, { functionId: twin.sweepFunction!, trigger: s.schedule.id, input: s.input }, 'schedule').finally(() => (s.running = undefined));
      }
    } catch (error) {
      options.onEvent?.({ type: 'error', dataflow: '*', key: '*', error: errorOf(error) });
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1000));
  }
}
