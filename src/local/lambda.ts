import { type ChildProcess, fork } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type * as Esbuild from 'esbuild';
import type { StepName } from '../contracts';
import type { MetricName, MetricUnit, MetricsSink, ProgressEvent } from '../steps/deps';
import { type LambdaFunctionSpec, LOCAL_REGION, twinCacheDir } from './lambda-stack';

/** Step Functions keeps at most this much of a failed task's Cause. */
export const MAX_CAUSE_CHARS = 32_768;
/** Printed by the bootstrap on stdout after each invocation (keep in step with lambda-bootstrap.ts). */
const END_MARKER = '\u0000badges-twin-end ';
const PROJECT_ROOT = join(__dirname, '..', '..');

/** An access key the twin hands a function's containers: it names the role they run as. */
export interface TwinCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface LambdaTwinOptions {
  functions: Record<StepName, LambdaFunctionSpec>;
  /** Added to every function's environment (local endpoints, the local configuration file). */
  environment?: Record<string, string>;
  /** The credentials of a function's containers (by default: access key = the role's logical ID). */
  credentials?: (fn: LambdaFunctionSpec) => TwinCredentials;
  /** Each line the containers print (Powertools JSON logs, EMF metrics), with the function it came from. */
  log?: (line: string, fn: LambdaFunctionSpec) => void;
  /** Receives the metrics read from the EMF lines the functions print. */
  metrics?: MetricsSink;
  /** Receives the progress events the functions send over the IPC channel (local runs only). */
  progress?: (event: ProgressEvent) => void;
}

/**
 * A Lambda invocation that failed, as Step Functions sees it: `name` is the Error (Lambda's `errorType`) and
 * `message` the Cause (the JSON error document Lambda answered, cut at 32,768 characters).
 */
export class LambdaInvocationError extends Error {
  constructor(
    readonly errorType: string,
    readonly errorMessage: string,
    readonly trace: string[] = [],
  ) {
    super(JSON.stringify({ errorType, errorMessage, trace }).slice(0, MAX_CAUSE_CHARS));
    this.name = errorType;
  }
}

interface Pending {
  requestId: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  answer?: { ok: true; payload: string } | { ok: false; error: { errorType: string; errorMessage: string; trace: string[] } };
  printed: boolean;
  timer?: NodeJS.Timeout;
}

/** One warm container: a child process that runs one invocation at a time. */
class Container {
  readonly child: ChildProcess;
  pending?: Pending;
  dead = false;
  /** Resolved when the bundle is loaded (Lambda's init phase, not counted in the function's timeout). */
  readonly ready: Promise<void>;
  private stdout = '';

  constructor(
    readonly fn: LambdaFunctionSpec,
    bootstrap: string,
    env: Record<string, string>,
    private readonly options: LambdaTwinOptions,
  ) {
    this.child = fork(bootstrap, [], { env, execArgv: [], cwd: fn.codeDir, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: 'advanced' });
    // Warm containers wait between runs; they must not keep the process alive (the bootstrap exits when it goes).
    this.child.unref();
    this.child.channel?.unref();
    (this.child.stdout as unknown as { unref?: () => void }).unref?.();
    (this.child.stderr as unknown as { unref?: () => void }).unref?.();
    this.ready = new Promise((resolve) => {
      this.child.on('message', (message: { type: string }) => message.type === 'ready' && resolve());
      this.child.once('exit', () => resolve());
    });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => this.onStdout(chunk));
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) if (line.trim()) options.log?.(line, fn);
    });
    this.child.on('message', (message: { type: string; requestId?: string; event?: ProgressEvent; ok?: boolean; payload?: string; error?: never }) => {
      if (message.type === 'progress' && message.event) options.progress?.(message.event);
      else if (message.type === 'result' && this.pending && this.pending.requestId === message.requestId) {
        this.pending.answer = message as Pending['answer'];
        this.settle();
      }
    });
    this.child.on('exit', (code, signal) => {
      this.dead = true;
      const pending = this.pending;
      if (!pending || pending.answer) return;
      this.finish(new LambdaInvocationError('Runtime.ExitError', `RequestId: ${pending.requestId} Error: Runtime exited with error: ${signal ? `signal: ${signal === 'SIGKILL' ? 'killed' : signal}` : `exit status ${code}`}`));
    });
  }

  async invoke(event: unknown): Promise<unknown> {
    await this.ready;
    // While it runs an invocation, the container keeps the process alive: the run is waiting for it.
    this.child.channel?.ref();
    const requestId = randomUUID();
    const timeoutMs = this.fn.timeoutSeconds * 1000;
    return new Promise((resolve, reject) => {
      this.pending = { requestId, resolve, reject, printed: false };
      if (this.dead) {
        this.finish(new LambdaInvocationError('Runtime.ExitError', `RequestId: ${requestId} Error: Runtime exited with error: exit status ${this.child.exitCode}`));
        return;
      }
      this.pending.timer = setTimeout(() => {
        // Lambda stops the invocation when the function's timeout is reached, and the container with it.
        this.finish(new LambdaInvocationError('Sandbox.Timedout', `RequestId: ${requestId} Error: Task timed out after ${this.fn.timeoutSeconds.toFixed(2)} seconds`));
        this.kill();
      }, timeoutMs);
      this.child.send({ type: 'invoke', requestId, event, deadline: Date.now() + timeoutMs }, (error) => {
        if (error) this.finish(new LambdaInvocationError('Runtime.ExitError', `RequestId: ${requestId} Error: ${error.message}`));
      });
    });
  }

  kill(): void {
    this.dead = true;
    this.child.kill('SIGKILL');
  }

  private onStdout(chunk: string): void {
    this.stdout += chunk;
    let end: number;
    while ((end = this.stdout.indexOf('\n')) >= 0) {
      const line = this.stdout.slice(0, end);
      this.stdout = this.stdout.slice(end + 1);
      if (line.startsWith(END_MARKER)) {
        if (this.pending?.requestId === line.slice(END_MARKER.length)) {
          this.pending.printed = true;
          this.settle();
        }
        continue;
      }
      if (!line.trim()) continue;
      this.options.log?.(line, this.fn);
      if (this.options.metrics && line.includes('"_aws"')) readEmf(line, this.options.metrics);
    }
  }

  /** An invocation ends when its answer has come and every line it printed has been read. */
  private settle(): void {
    const pending = this.pending;
    if (!pending?.answer || !pending.printed) return;
    const { answer } = pending;
    if (answer.ok) this.finish(undefined, JSON.parse(answer.payload) as unknown);
    else this.finish(new LambdaInvocationError(answer.error.errorType, answer.error.errorMessage, answer.error.trace));
  }

  private finish(error: Error | undefined, value?: unknown): void {
    const pending = this.pending;
    if (!pending) return;
    this.pending = undefined;
    clearTimeout(pending.timer);
    this.child.channel?.unref();
    if (error) pending.reject(error);
    else pending.resolve(value);
  }
}

/** Reads an Embedded Metric Format line (Powertools Metrics) into the sink's calls. */
export function readEmf(line: string, sink: MetricsSink): void {
  let document: Record<string, any>;
  try {
    document = JSON.parse(line) as Record<string, any>;
  } catch {
    return;
  }
  for (const directive of (document._aws?.CloudWatchMetrics ?? []) as Array<{ Dimensions: string[][]; Metrics: Array<{ Name: string; Unit: string }> }>) {
    // A stack-wide line (STACK_WIDE_METRICS: `service` alone) repeats a value the sink had with its dataflow.
    if (!directive.Dimensions.flat().includes('dataflow')) continue;
    const dimensions: Record<string, string> = {};
    for (const name of directive.Dimensions.flat()) if (name !== 'service' && name !== 'dataflow') dimensions[name] = String(document[name]);
    for (const metric of directive.Metrics) {
      const values = ([] as unknown[]).concat(document[metric.Name]);
      for (const value of values) {
        sink(metric.Name as MetricName, metric.Unit as MetricUnit, Number(value), String(document.dataflow), Object.keys(dimensions).length ? dimensions : undefined);
      }
    }
  }
}

let bootstrapFile: string | undefined;
/** The bootstrap, bundled once (esbuild) into the twin's cache. */
function bootstrap(): string {
  if (bootstrapFile) return bootstrapFile;
  const source = join(__dirname, 'lambda-bootstrap.ts');
  const file = join(twinCacheDir(), `bootstrap-${createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 12)}.js`);
  if (!existsSync(file)) {
    mkdirSync(twinCacheDir(), { recursive: true });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { buildSync } = require('esbuild') as typeof Esbuild;
    const temporary = `${file}.${process.pid}.tmp`;
    buildSync({ entryPoints: [source], bundle: true, platform: 'node', target: 'node22', format: 'cjs', outfile: temporary, logLevel: 'silent' });
    renameSync(temporary, file);
  }
  bootstrapFile = file;
  return file;
}

/**
 * The stack's Lambda functions, run as Lambda runs them: each warm container a long-lived child process with the
 * function's bundle, environment, NODE_OPTIONS and credentials, one invocation at a time, a new container when all
 * are busy, the function's timeout and response limit enforced, and errors answered as Lambda answers them.
 */
export class LambdaTwin {
  private readonly idle = new Map<StepName, Container[]>();
  private readonly all = new Set<Container>();
  private closed = false;

  constructor(private readonly options: LambdaTwinOptions) {}

  /** The function's spec (bundle, environment, role). */
  spec(step: StepName): LambdaFunctionSpec {
    return this.options.functions[step];
  }

  /**
   * Invokes a function synchronously (RequestResponse), as Step Functions' Lambda integration does: the result, or a
   * LambdaInvocationError named after Lambda's `errorType`.
   */
  async invoke(step: StepName, event: unknown): Promise<unknown> {
    if (this.closed) throw new Error('The Lambda twin is closed');
    const fn = this.options.functions[step];
    const idle = this.idle.get(step) ?? [];
    this.idle.set(step, idle);
    let container = idle.pop();
    while (container?.dead) container = idle.pop();
    container ??= this.start(fn);
    try {
      // A copy through JSON, as the event travels to Lambda: nothing but JSON reaches the function.
      return await container.invoke(JSON.parse(JSON.stringify(event ?? null)));
    } finally {
      if (!container.dead && !this.closed) idle.push(container);
    }
  }

  /**
   * Starts a container for each of these functions now, so that their cold starts (Node, the bundle, the SDK: seconds
   * here) overlap each other and the run's start instead of adding up.
   */
  prewarm(steps: readonly StepName[]): void {
    for (const step of steps) {
      const idle = this.idle.get(step) ?? [];
      this.idle.set(step, idle);
      idle.push(this.start(this.options.functions[step]));
    }
  }

  /** Stops every container. */
  close(): Promise<void> {
    this.closed = true;
    const exits = [...this.all].map((c) => (c.child.exitCode !== null || c.child.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => c.child.once('exit', () => resolve()))));
    for (const container of this.all) container.kill();
    return Promise.all(exits).then(() => undefined);
  }

  private start(fn: LambdaFunctionSpec): Container {
    const credentials = this.options.credentials?.(fn) ?? { accessKeyId: fn.role, secretAccessKey: fn.role };
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      // The runtime provides the AWS SDK (the bundles leave it out); the project's copy stands in for it.
      NODE_PATH: join(PROJECT_ROOT, 'node_modules'),
      TZ: ':UTC',
      LANG: 'en_US.UTF-8',
      LAMBDA_TASK_ROOT: fn.codeDir,
      _HANDLER: fn.handler,
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x',
      AWS_REGION: LOCAL_REGION,
      AWS_DEFAULT_REGION: LOCAL_REGION,
      AWS_LAMBDA_FUNCTION_NAME: fn.logicalId,
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memorySize),
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${fn.logicalId}`,
      // As Lambda sets it: Powertools tells a cold start (`cold_start` in each log line) only of an on-demand container.
      AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_SESSION_TOKEN: `twin-session-${fn.logicalId}`,
      ...fn.environment,
      ...this.options.environment,
      BADGES_TWIN_BUNDLE: fn.codeDir,
    };
    const container = new Container(fn, bootstrap(), env, this.options);
    this.all.add(container);
    container.child.once('exit', () => this.all.delete(container));
    return container;
  }
}
