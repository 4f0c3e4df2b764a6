import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomUUID } from 'node:crypto';

/**
 * A local Step Functions service: the JSON protocol of `states` (`X-Amz-Target: AWSStepFunctions.<Action>`, content
 * type `application/x-amz-json-1.0`), so that the sweep's own `SFNClient` talks to it through an endpoint, with the
 * rules of StartExecution that AWS enforces and a plain in-process run taking the place of the state machine.
 *
 * The rules, from the StartExecution API reference
 * (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html):
 * - `name`: length 1–80 (a model constraint: AWS answers `ValidationException` "Member must have length less than or
 *   equal to 80", as seen in wolfeidau/buildkite-serverless-agent#37); it must not contain white space, brackets
 *   `< > { } [ ]`, wildcards `? *`, special characters `" # % \ ^ | ~ ` $ & , ; : /` or control characters
 *   (U+0000–001F, U+007F–009F): `InvalidName`.
 * - "StartExecution is idempotent for STANDARD workflows … if you call StartExecution with the same name and input as
 *   a running execution, the call succeeds and return the same response as the original request. If the execution is
 *   closed or if the input is different, it returns a 400 ExecutionAlreadyExists error. You can reuse names after 90
 *   days."
 * - `input`: at most 262,144 bytes in UTF-8 (a model length constraint: `ValidationException`); input that is not
 *   JSON: `InvalidExecutionInput`.
 * - an unknown state machine: `StateMachineDoesNotExist`; a malformed ARN: `InvalidArn`.
 */

/** How an execution ended, as the run callback reports it. */
export type ExecutionOutcome = { status: 'SUCCEEDED'; output?: unknown } | { status: 'FAILED'; error: string; cause?: string };

/** What the run callback is told about the execution it runs (the context object's `Execution`). */
export interface ExecutionContext {
  name: string;
  arn: string;
  startTime: string;
}

/** Runs one execution; a rejection ends it FAILED with the error's name and message, as a Lambda error would. */
export type ExecutionRunner = (input: unknown, execution: ExecutionContext) => Promise<ExecutionOutcome>;

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED';

/** One execution as the registry keeps it (and DescribeExecution shows it). */
export interface ExecutionRecord {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  status: ExecutionStatus;
  input: string;
  startDate: number;
  stopDate?: number;
  output?: string;
  error?: string;
  cause?: string;
}

export interface LocalStepFunctionsOptions {
  /** The one state machine this service knows (what the sweep is configured with). */
  stateMachineArn: string;
  /** Runs each accepted execution; every execution runs at once, none waits for another. */
  run: ExecutionRunner;
  /**
   * The file that keeps every execution's name, so that a restart still refuses a closed execution's name, as AWS does
   * for 90 days. Without it, the registry lives in memory only.
   */
  registryFile?: string;
  /** @default '127.0.0.1' */
  host?: string;
  /** @default 0 (any free port) */
  port?: number;
  /** The clock (tests move it past 90 days). @default Date.now */
  now?: () => number;
  /** Told of each execution that ends. */
  onClosed?: (execution: ExecutionRecord) => void;
}

export interface LocalStepFunctions {
  /** The endpoint for `new SFNClient({ endpoint })` or `AWS_ENDPOINT_URL_SFN`. */
  readonly endpoint: string;
  readonly stateMachineArn: string;
  /** Every execution the registry holds, oldest first. */
  executions(): ExecutionRecord[];
  /** Resolves when every execution started so far has ended. */
  idle(): Promise<void>;
  /** Stops accepting requests and waits for the running executions to end. */
  close(): Promise<void>;
}

/** Names are refused for this long after their execution closed. */
export const NAME_REUSE_MS = 90 * 24 * 3_600_000;
/** Maximum input size in UTF-8 bytes. */
export const MAX_INPUT_BYTES = 262_144;
/** A task failure's cause is cut at this many characters, as in AWS. */
export const MAX_CAUSE_CHARS = 32_768;

// White space, brackets, wildcards, special characters, control characters: what AWS refuses in a name.
const FORBIDDEN_NAME = /[\s<>{}[\]?*"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f]/u;

/** Whether Step Functions would take `name` as an execution name; the reason when not. */
export function checkExecutionName(name: unknown): { ok: true } | { ok: false; error: 'ValidationException' | 'InvalidName'; message: string } {
  if (typeof name !== 'string' || name.length < 1 || name.length > 80) {
    const value = typeof name === 'string' ? name : '';
    return {
      ok: false,
      error: 'ValidationException',
      message: `1 validation error detected: Value '${value}' at 'name' failed to satisfy constraint: Member must have length ${value.length < 1 ? 'greater than or equal to 1' : 'less than or equal to 80'}`,
    };
  }
  if (FORBIDDEN_NAME.test(name)) return { ok: false, error: 'InvalidName', message: `Invalid Name: '${name}'` };
  return { ok: true };
}

class ServiceError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
    this.name = type;
  }
}

const TYPE_NAMESPACE: Record<string, string> = { ValidationException: 'com.amazon.coral.validate#' };

/** The service's state: the one state machine it knows, every execution's record, the executions running. */
interface Service {
  options: LocalStepFunctionsOptions;
  now: () => number;
  machine: { region: string; account: string; name: string };
  registry: Map<string, ExecutionRecord>;
  running: Set<Promise<void>>;
  closing: boolean;
}

/** Starts the service on a loopback port. */
export async function startLocalStepFunctions(options: LocalStepFunctionsOptions): Promise<LocalStepFunctions> {
  const now = options.now ?? Date.now;
  const arnMatch = /^arn:aws[a-z-]*:states:([a-z0-9-]+):(\d{12}):stateMachine:([A-Za-z0-9_-]+)$/.exec(options.stateMachineArn);
  if (!arnMatch) throw new Error(`Not a state machine ARN: ${options.stateMachineArn}`);
  const [, region = '', account = '', name = ''] = arnMatch;
  const service: Service = { options, now, machine: { region, account, name }, registry: loadRegistry(options.registryFile, now()), running: new Set(), closing: false };
  saveRegistry(service);
  const actions = serviceActions(service);
  const server: Server = createServer((request, response) => void handleRequest(actions, request, response));
  const host = options.host ?? '127.0.0.1';
  const port = await listen(server, host, options.port ?? 0);
  const idle = async () => {
    while (service.running.size > 0) await Promise.allSettled([...service.running]);
  };
  return {
    endpoint: `http://${host}:${port}`,
    stateMachineArn: options.stateMachineArn,
    executions: () => [...service.registry.values()].map((r) => ({ ...r })),
    idle,
    async close() {
      service.closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await idle();
    },
  };
}

/** The actions of the JSON protocol the service answers, by `X-Amz-Target` name. */
function serviceActions(service: Service): Record<string, (body: Record<string, unknown>) => Record<string, unknown>> {
  return {
    StartExecution: (body) => startExecution(service, body),
    DescribeExecution(body) {
      const arn = body.executionArn;
      if (typeof arn !== 'string' || !/^arn:aws[a-z-]*:states:[^:]+:\d{12}:execution:[^:]+:[^:]+$/.test(arn)) throw new ServiceError('InvalidArn', `Invalid Arn: '${String(arn)}'`);
      const record = [...service.registry.values()].find((r) => r.executionArn === arn);
      if (!record) throw new ServiceError('ExecutionDoesNotExist', `Execution Does Not Exist: '${arn}'`);
      return describeExecution(record);
    },
    ListExecutions: (body) => listExecutions(service, body),
  };
}

/**
 * StartExecution with AWS's rules: a valid name and input, and a name not taken (the same name and input as a running
 * execution: the same answer again). The execution then runs on its own, at once: nothing queues it behind another.
 */
function startExecution(service: Service, body: Record<string, unknown>): Record<string, unknown> {
  const { name, input, parsed } = checkStartRequest(service, body);
  const { region, account, name: machineName } = service.machine;
  const executionArn = `arn:aws:states:${region}:${account}:execution:${machineName}:${name}`;
  const existing = service.registry.get(name);
  if (existing && (existing.status !== 'RUNNING' ? service.now() - (existing.stopDate ?? existing.startDate) < NAME_REUSE_MS : true)) {
    if (existing.status === 'RUNNING' && existing.input === input) return { executionArn: existing.executionArn, startDate: existing.startDate / 1000 };
    throw new ServiceError('ExecutionAlreadyExists', `Execution Already Exists: '${executionArn}'`);
  }
  if (service.closing) throw new ServiceError('ServiceUnavailable', 'The local Step Functions service is stopping');
  const record: ExecutionRecord = { executionArn, stateMachineArn: service.options.stateMachineArn, name, status: 'RUNNING', input, startDate: service.now() };
  service.registry.set(record.name, record);
  saveRegistry(service);
  const execution = runExecution(service, record, parsed);
  service.running.add(execution);
  void execution.finally(() => service.running.delete(execution));
  return { executionArn, startDate: record.startDate / 1000 };
}

/** The name (given or generated) and the input of a StartExecution request, refused as AWS refuses them. */
function checkStartRequest(service: Service, body: Record<string, unknown>): { name: string; input: string; parsed: unknown } {
  checkStateMachine(service, body.stateMachineArn);
  const name = body.name ?? randomUUID();
  const checked = checkExecutionName(name);
  if (!checked.ok) throw new ServiceError(checked.error, checked.message);
  const input = body.input === undefined ? '{}' : body.input;
  if (typeof input !== 'string') throw new ServiceError('SerializationException', 'input must be a string');
  if (Buffer.byteLength(input, 'utf8') > MAX_INPUT_BYTES) {
    throw new ServiceError('ValidationException', `1 validation error detected: Value at 'input' failed to satisfy constraint: Member must have length less than or equal to ${MAX_INPUT_BYTES}`);
  }
  try {
    return { name: name as string, input, parsed: JSON.parse(input) };
  } catch (error) {
    throw new ServiceError('InvalidExecutionInput', `Invalid State Machine Execution Input: '${(error as Error).message}'`);
  }
}

/** Runs one execution to its end; a rejection of the runner ends it FAILED, as a Lambda error would. */
async function runExecution(service: Service, record: ExecutionRecord, input: unknown): Promise<void> {
  let outcome: ExecutionOutcome;
  try {
    outcome = await service.options.run(input, { name: record.name, arn: record.executionArn, startTime: new Date(record.startDate).toISOString() });
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    outcome = { status: 'FAILED', error: e.name, cause: e.message };
  }
  closeExecution(service, record, outcome);
}

function closeExecution(service: Service, record: ExecutionRecord, outcome: ExecutionOutcome): void {
  record.stopDate = service.now();
  if (outcome.status === 'SUCCEEDED') {
    record.status = 'SUCCEEDED';
    if (outcome.output !== undefined) record.output = JSON.stringify(outcome.output);
  } else {
    record.status = 'FAILED';
    record.error = outcome.error;
    if (outcome.cause !== undefined) record.cause = outcome.cause.slice(0, MAX_CAUSE_CHARS);
  }
  saveRegistry(service);
  service.options.onClosed?.(record);
}

function checkStateMachine(service: Service, arn: unknown): void {
  if (typeof arn !== 'string' || !/^arn:aws[a-z-]*:states:/.test(arn)) throw new ServiceError('InvalidArn', `Invalid Arn: '${String(arn)}'`);
  if (arn !== service.options.stateMachineArn) throw new ServiceError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${arn}'`);
}

function describeExecution(record: ExecutionRecord): Record<string, unknown> {
  return {
    executionArn: record.executionArn,
    stateMachineArn: record.stateMachineArn,
    name: record.name,
    status: record.status,
    startDate: record.startDate / 1000,
    ...(record.stopDate !== undefined ? { stopDate: record.stopDate / 1000 } : {}),
    input: record.input,
    inputDetails: { included: true },
    ...(record.output !== undefined ? { output: record.output, outputDetails: { included: true } } : {}),
    ...(record.error !== undefined ? { error: record.error } : {}),
    ...(record.cause !== undefined ? { cause: record.cause } : {}),
  };
}

/** ListExecutions: newest first, as AWS lists them, a page at a time. */
function listExecutions(service: Service, body: Record<string, unknown>): Record<string, unknown> {
  checkStateMachine(service, body.stateMachineArn);
  const filter = body.statusFilter as string | undefined;
  const all = [...service.registry.values()].filter((r) => !filter || r.status === filter).reverse();
  const max = typeof body.maxResults === 'number' && body.maxResults > 0 ? Math.min(body.maxResults, 1000) : 100;
  const from = typeof body.nextToken === 'string' ? Number(body.nextToken) : 0;
  const page = all.slice(from, from + max);
  return {
    executions: page.map((r) => ({ executionArn: r.executionArn, stateMachineArn: r.stateMachineArn, name: r.name, status: r.status, startDate: r.startDate / 1000, ...(r.stopDate !== undefined ? { stopDate: r.stopDate / 1000 } : {}) })),
    ...(from + max < all.length ? { nextToken: String(from + max) } : {}),
  };
}

/** One request of the JSON protocol: the action its target names, or the error AWS would answer. */
async function handleRequest(actions: ReturnType<typeof serviceActions>, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const target = String(request.headers['x-amz-target'] ?? '');
  const action = target.startsWith('AWSStepFunctions.') ? actions[target.slice('AWSStepFunctions.'.length)] : undefined;
  const reply = (status: number, body: unknown, type?: string) => {
    response.writeHead(status, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': randomUUID(), ...(type ? { 'x-amzn-errortype': type } : {}) });
    response.end(JSON.stringify(body));
  };
  try {
    if (request.method !== 'POST' || !action) throw new ServiceError('UnknownOperationException', `Unknown operation ${target}`);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
    reply(200, action(body));
  } catch (error) {
    const e = error instanceof ServiceError ? error : new ServiceError('SerializationException', (error as Error).message);
    reply(400, { __type: `${TYPE_NAMESPACE[e.type] ?? 'com.amazonaws.swf.service.v2.model#'}${e.type}`, message: e.message }, e.type);
  }
}

async function listen(server: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return typeof address === 'object' && address ? address.port : port;
}

/** Writes the registry through a temporary file, so that a crash leaves the old one or the new one whole. */
function saveRegistry(service: Service): void {
  const file = service.options.registryFile;
  if (!file) return;
  mkdirSync(dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify([...service.registry.values()]));
  renameSync(temporary, file);
}

/**
 * Reads the registry a previous `serve` left. An execution it left RUNNING was cut off by the stop (in AWS it would
 * have gone on): it is marked ABORTED, so that its name stays refused, as a closed execution's name is.
 */
function loadRegistry(file: string | undefined, now: number): Map<string, ExecutionRecord> {
  const registry = new Map<string, ExecutionRecord>();
  if (!file) return registry;
  let records: ExecutionRecord[] = [];
  try {
    records = JSON.parse(readFileSync(file, 'utf8')) as ExecutionRecord[];
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  for (const record of records) {
    if (record.status === 'RUNNING') Object.assign(record, { status: 'ABORTED', stopDate: now, cause: 'The local service stopped while the execution ran' });
    registry.set(record.name, record);
  }
  return registry;
}
