import { randomUUID } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { JSONPath } from 'jsonpath-plus';
import pLimit from 'p-limit';
import { StateMachine } from 'aws-local-stepfunctions';
import { putJson, readText } from '../aws/s3';
import { countTransitions } from './transitions';
import type { AslDefinition, AslState } from './definition';

/** A local Task handler, as aws-local-stepfunctions takes it. */
export type LocalHandler = (input: any) => Promise<any>;

export interface DistributedMapOptions {
  s3: S3Client;
  /** Handlers of the Task states inside the item processors, by state name. */
  handlers: Record<string, LocalHandler>;
  /** The parent execution's context object (`$$.Execution`). */
  execution: { Name: string; StartTime: string; Id?: string };
  /** Called after each item, with the number done and the total. */
  onItem?: (done: number, total: number) => void;
  /** Checks that the state machine's role may start the child executions (`states:StartExecution`); throws if not. */
  authorizeChildren?: () => Promise<void>;
  /**
   * Told of billed state transitions in the child executions: one for each child started (Step Functions bills "one
   * state transition for each child workflow execution that the Distributed Map state starts"), then each state
   * entered and each retry in it.
   */
  onTransitions?: (n: number) => void;
}

const LOCAL_MAP_ARN = 'arn:aws:lambda:us-east-1:000000000000:function:LocalDistributedMap';
/** Step Functions' default concurrency when a Distributed Map gives none. */
const DEFAULT_MAX_CONCURRENCY = 1000;
/** Fields of a Map state that a Task state also has, and keep their meaning. */
const KEPT_FIELDS = ['Next', 'End', 'Comment', 'InputPath', 'OutputPath', 'ResultPath', 'ResultSelector', 'Retry', 'Catch'] as const;

/**
 * aws-local-stepfunctions validates a Distributed Map but cannot run one (no ItemReader, ItemBatcher, ResultWriter
 * or failure tolerance). This replaces each DISTRIBUTED Map state with a Task bound to a local function that does
 * what Step Functions does: reads the items from S3, applies ItemSelector (and ItemBatcher), runs the ItemProcessor's
 * own states as a child state machine per item with MaxConcurrency, applies the failure tolerance, and writes the
 * results as ResultWriter would. Everything else about the definition is left as synthesized.
 */
export function emulateDistributedMaps(definition: AslDefinition, options: DistributedMapOptions): { definition: AslDefinition; handlers: Record<string, LocalHandler> } {
  // A JSON copy, not structuredClone: under jest the latter yields objects of another realm, which the engine's
  // payload-template code does not treat as plain objects (their `.$` paths then go unresolved).
  const rewritten = JSON.parse(JSON.stringify(definition)) as AslDefinition;
  const handlers: Record<string, LocalHandler> = {};
  for (const [name, state] of Object.entries(rewritten.States)) {
    if (state.Type !== 'Map' || state.ItemProcessor?.ProcessorConfig?.Mode !== 'DISTRIBUTED') continue;
    const task: AslState = { Type: 'Task', Resource: `${LOCAL_MAP_ARN}-${name.replace(/[^A-Za-z0-9-_]/g, '_')}`, TimeoutSeconds: 2_000_000 } // the Map's own time is bounded by the state machine's timeout; setTimeout takes at most 2^31 ms;
    for (const field of KEPT_FIELDS) if (state[field] !== undefined) task[field] = state[field];
    // The engine resolves the `.$` paths of these parameters against the state's input, as it would for the Map.
    const reader = state.ItemReader as { Parameters?: Record<string, unknown> } | undefined;
    task.Parameters = {
      'input.$': '$',
      ...(reader?.Parameters ? { reader: reader.Parameters } : {}),
      ...(typeof state.MaxConcurrencyPath === 'string' ? { 'maxConcurrency.$': state.MaxConcurrencyPath } : { maxConcurrency: state.MaxConcurrency ?? 0 }),
      ...(typeof state.ItemsPath === 'string' ? { 'items.$': state.ItemsPath } : {}),
    };
    rewritten.States[name] = task;
    handlers[name] = (params: MapTaskParameters) => runDistributedMap(name, state, params, options);
  }
  return { definition: rewritten, handlers };
}

interface MapTaskParameters {
  input: unknown;
  reader?: { Bucket: string; Key: string };
  maxConcurrency: number | string;
  items?: unknown[];
}

async function readItems(state: AslState, params: MapTaskParameters, s3: S3Client): Promise<unknown[]> {
  const reader = state.ItemReader as { Resource?: string; ReaderConfig?: { InputType?: string; MaxItems?: number } } | undefined;
  if (!reader) {
    if (!Array.isArray(params.items ?? params.input)) throw Object.assign(new Error('Map input is not an array'), { name: 'States.Runtime' });
    return (params.items ?? params.input) as unknown[];
  }
  if (!reader.Resource?.endsWith(':s3:getObject') || !params.reader) {
    throw new Error(`The local Distributed Map reads only s3:getObject item readers (got ${reader.Resource})`);
  }
  const text = await readText(s3, params.reader.Bucket, params.reader.Key);
  if (text === undefined) throw Object.assign(new Error(`ItemReader: s3://${params.reader.Bucket}/${params.reader.Key} does not exist`), { name: 'States.ItemReaderFailed' });
  const type = reader.ReaderConfig?.InputType ?? 'JSON';
  let items: unknown[];
  if (type === 'JSON') items = JSON.parse(text) as unknown[];
  else if (type === 'JSONL') items = text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as unknown);
  else throw new Error(`The local Distributed Map does not read InputType ${type}`);
  if (!Array.isArray(items)) throw Object.assign(new Error('ItemReader: the object is not a JSON array'), { name: 'States.ItemReaderFailed' });
  const max = reader.ReaderConfig?.MaxItems;
  return max ? items.slice(0, max) : items;
}

/** Applies a payload template (`"key.$": "path"`) with `$` the Map's input and `$$` the context object. */
function applyTemplate(template: unknown, input: unknown, context: unknown): unknown {
  if (Array.isArray(template)) return template.map((t) => applyTemplate(t, input, context));
  if (template === null || typeof template !== 'object') return template;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(template)) {
    if (key.endsWith('.$') && typeof value === 'string') {
      const fromContext = value.startsWith('$$');
      out[key.slice(0, -2)] = JSONPath({ path: fromContext ? value.slice(1) : value, json: (fromContext ? context : input) as object, wrap: false });
    } else {
      out[key] = applyTemplate(value, input, context);
    }
  }
  return out;
}

/** One run of a Distributed Map state: the state, what it was given, and the id its children and results are named by. */
interface MapRun {
  readonly name: string;
  readonly state: AslState;
  readonly params: MapTaskParameters;
  readonly options: DistributedMapOptions;
  readonly id: string;
}

/** How one child execution ended. */
type Outcome = { ok: true; input: unknown; output: unknown; name: string } | { ok: false; input: unknown; error: string; cause: string; name: string };

/**
 * What Step Functions does for a Distributed Map: read the items, select and batch them, run one child execution per
 * input within MaxConcurrency, write the results, and only then fail the Map if more children failed than tolerated.
 */
async function runDistributedMap(name: string, state: AslState, params: MapTaskParameters, options: DistributedMapOptions): Promise<unknown> {
  const run: MapRun = { name, state, params, options, id: randomUUID() };
  const items = await readItems(state, params, options.s3);
  const inputs = batchInputs(run, selectItems(run, items));
  if (inputs.length > 0) await options.authorizeChildren?.();
  const outcomes = await runChildren(run, inputs);
  const result = await writeResults(run, outcomes);
  failBeyondTolerance(run, outcomes);
  return result;
}

/** ItemSelector applied to each item, with `$$.Map.Item` and `$$.Execution` in its context. */
function selectItems(run: MapRun, items: unknown[]): unknown[] {
  const selector = run.state.ItemSelector as Record<string, unknown> | undefined;
  const execution = run.options.execution;
  return items.map((value, index) => (selector ? applyTemplate(selector, run.params.input, { Map: { Item: { Value: value, Index: index } }, Execution: execution }) : value));
}

/** ItemBatcher: `{ BatchInput?, Items }` per MaxItemsPerBatch inputs (all in one without a maximum). */
function batchInputs(run: MapRun, inputs: unknown[]): unknown[] {
  const batcher = run.state.ItemBatcher as { MaxItemsPerBatch?: number; BatchInput?: Record<string, unknown> } | undefined;
  if (!batcher) return inputs;
  const size = batcher.MaxItemsPerBatch ?? inputs.length;
  const batches: unknown[] = [];
  const batchInput = batcher.BatchInput ? applyTemplate(batcher.BatchInput, run.params.input, { Execution: run.options.execution }) : undefined;
  for (let i = 0; i < inputs.length; i += size) batches.push({ ...(batchInput ? { BatchInput: batchInput } : {}), Items: inputs.slice(i, i + size) });
  return batches;
}

/** The ItemProcessor's states as a child state machine, one execution per input, at most MaxConcurrency at once. */
async function runChildren(run: MapRun, inputs: unknown[]): Promise<Outcome[]> {
  const { options } = run;
  const processor = run.state.ItemProcessor!;
  const child = new StateMachine({ StartAt: processor.StartAt, States: processor.States } as never, { validationOptions: { checkPaths: false, checkArn: false } });
  const limit = pLimit(Number(run.params.maxConcurrency) || DEFAULT_MAX_CONCURRENCY);
  let done = 0;
  return Promise.all(
    inputs.map((input, i) =>
      limit(async (): Promise<Outcome> => {
        const childName = `${run.id}:${i}`;
        try {
          const execution = child.run(input as never, {
            overrides: { taskResourceLocalHandlers: options.handlers },
            context: { Execution: { Name: childName, StartTime: new Date().toISOString(), Input: input } } as never,
          });
          const onTransitions = options.onTransitions;
          let counting: Promise<void> | undefined;
          if (onTransitions) {
            onTransitions(1);
            counting = countTransitions(execution.eventLogs, onTransitions);
          }
          return { ok: true, input, output: await execution.result.finally(() => counting), name: childName };
        } catch (error) {
          const cause = ((error as Error).cause ?? error) as Error;
          return { ok: false, input, error: cause.name ?? 'Error', cause: cause.message ?? String(cause), name: childName };
        } finally {
          options.onItem?.(++done, inputs.length);
        }
      }),
    ),
  );
}

/** As ResultWriter does: SUCCEEDED_0.json, FAILED_0.json and a manifest under `Prefix/<map run id>/`; without one, the outputs in order. */
async function writeResults(run: MapRun, outcomes: Outcome[]): Promise<unknown> {
  const writer = run.state.ResultWriter as { Parameters?: { Bucket: string; Prefix?: string } } | undefined;
  if (!writer?.Parameters) return outcomes.map((o) => (o.ok ? o.output : null));
  const { s3 } = run.options;
  const prefix = `${(writer.Parameters.Prefix ?? '').replace(/\/?$/, '/')}${run.id}/`;
  const { Bucket } = writer.Parameters;
  const entry = (o: Outcome) => ({
    ExecutionArn: `arn:aws:states:us-east-1:000000000000:execution:local:${o.name}`,
    Input: JSON.stringify(o.input),
    InputDetails: { Included: true },
    Name: o.name,
    ...(o.ok ? { Output: JSON.stringify(o.output), OutputDetails: { Included: true }, Status: 'SUCCEEDED' } : { Error: o.error, Cause: o.cause, Status: 'FAILED' }),
  });
  const succeeded = outcomes.filter((o) => o.ok);
  const failed = outcomes.filter((o) => !o.ok);
  const files = [];
  if (succeeded.length) {
    await putJson(s3, Bucket, `${prefix}SUCCEEDED_0.json`, succeeded.map(entry));
    files.push({ Key: `${prefix}SUCCEEDED_0.json`, Size: 0 });
  }
  if (failed.length) {
    await putJson(s3, Bucket, `${prefix}FAILED_0.json`, failed.map(entry));
    files.push({ Key: `${prefix}FAILED_0.json`, Size: 0 });
  }
  const manifestKey = `${prefix}manifest.json`;
  const mapRunArn = `arn:aws:states:us-east-1:000000000000:mapRun:local/${run.name}:${run.id}`;
  await putJson(s3, Bucket, manifestKey, {
    DestinationBucket: Bucket,
    MapRunArn: mapRunArn,
    ResultFiles: { FAILED: files.filter((f) => f.Key.includes('FAILED_')), PENDING: [], SUCCEEDED: files.filter((f) => f.Key.includes('SUCCEEDED_')) },
  });
  return { MapRunArn: mapRunArn, ResultWriterDetails: { Bucket, Key: manifestKey } };
}

/** States.ExceedToleratedFailureThreshold when more children failed than ToleratedFailurePercentage or ToleratedFailureCount allow. */
function failBeyondTolerance(run: MapRun, outcomes: Outcome[]): void {
  const { state } = run;
  const failed = outcomes.filter((o) => !o.ok);
  const tolerance = Number(state.ToleratedFailurePercentage ?? 0);
  const toleratedCount = state.ToleratedFailureCount === undefined ? Infinity : Number(state.ToleratedFailureCount);
  const exceeded = failed.length > 0 && (failed.length > toleratedCount || (failed.length / outcomes.length) * 100 > tolerance);
  if (!exceeded) return;
  throw Object.assign(new Error(`${failed.length} of ${outcomes.length} items failed (tolerated: ${tolerance}%); first: ${failed[0]!.ok ? '' : `${failed[0]!.error}: ${failed[0]!.cause}`}`), {
    name: 'States.ExceedToleratedFailureThreshold',
  });
}
