import { Duration } from 'aws-cdk-lib';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import {
  Choice,
  Condition,
  DefinitionBody,
  DistributedMap,
  Fail,
  type IChainable,
  JsonPath,
  LogLevel,
  Map as InlineMap,
  ResultWriterV2,
  S3JsonItemReader,
  StateMachine,
  Succeed,
  TaskInput,
  type TaskStateBase,
  Timeout,
} from 'aws-cdk-lib/aws-stepfunctions';
import { LambdaInvoke } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';
import { KEYS } from '../src/contracts';
import { FATAL_ERROR_NAMES } from '../src/errors';
import type { StepLambdas } from './step-lambdas';

/** State names of the per-file workflow; the local runner binds its handlers by these. */
export const STATE_NAMES = {
  stage: 'Stage',
  scanRanges: 'ScanRanges',
  scanRange: 'ScanRange',
  planRanges: 'PlanRanges',
  stageRanges: 'StageRanges',
  stageRange: 'StageRange',
  settleDuplicates: 'SettleDuplicates',
  settlePartition: 'SettlePartition',
  finishStage: 'FinishStage',
  send: 'Send',
  sendChunks: 'SendChunks',
  finalize: 'Finalize',
} as const;

export interface WorkflowProps {
  lambdas: StepLambdas;
  /** Where the Distributed Map reads the chunk list and writes its results. */
  staging: IBucket;
  /** How long one execution may run: src/config/limits.ts derives it from the configuration (workflowTimeout). */
  timeout: Duration;
}

// The states are created in `scope` (the stack): a state's construct ID is its name in the definition, and the state
// machine and its log group keep their logical IDs.

/**
 * The per-file workflow: Stage (prepare), the staging phases (scan, plan, ranges, duplicates, finish: every one the
 * stage Lambda's), then (unless there is nothing to send) a Distributed Map of Send over the staged chunks, then
 * Finalize, which every path ends in, a failure included. Nothing is sent before FinishStage has returned.
 */
export function buildWorkflow(scope: Construct, { lambdas, staging, timeout }: WorkflowProps): StateMachine {
  const finalize = finalizeState(scope, lambdas);
  const stage = stageState(scope, lambdas, finalize);
  const sendChunks = sendChunksState(scope, lambdas, staging, finalize);
  const anythingToSend = new Choice(scope, 'AnythingToSend?')
    .when(Condition.or(Condition.booleanEquals('$.dryRun', true), Condition.numberEquals('$.chunkCount', 0), Condition.isPresent('$.duplicateOf'), Condition.isPresent('$.expanded')), finalize)
    .otherwise(sendChunks);
  const staged = stagingPhases(scope, lambdas, finalize, anythingToSend);
  const definition = stage.next(
    new Choice(scope, 'ForThisDataflow?')
      .when(Condition.isPresent('$.skipped'), new Succeed(scope, 'NotForThisDataflow', { comment: 'The object name does not match the pattern: left alone' }))
      .otherwise(new Choice(scope, 'Staged?').when(Condition.isPresent('$.plan'), staged).otherwise(anythingToSend)),
  );
  return new StateMachine(scope, 'Workflow', {
    definitionBody: DefinitionBody.fromChainable(definition),
    timeout,
    // X-Ray: a trace follows a file from the state machine into each step's Lambda (which traces actively too).
    tracingEnabled: true,
    logs: { destination: new LogGroup(scope, 'WorkflowLogs', { retention: RetentionDays.THREE_MONTHS }), level: LogLevel.ALL, includeExecutionData: false },
  });
}

/** Finalize, retried on any error; a FAILED file ends the execution in the Fail state. */
function finalizeState(scope: Construct, lambdas: StepLambdas): TaskStateBase {
  const finalize = new LambdaInvoke(scope, STATE_NAMES.finalize, {
    lambdaFunction: lambdas.finalize,
    payloadResponseOnly: true,
    payload: TaskInput.fromObject({ state: JsonPath.entirePayload, runId: JsonPath.executionName, startedAt: JsonPath.executionStartTime }),
    taskTimeout: Timeout.duration(Duration.minutes(15)),
    retryOnServiceExceptions: false,
  }).addRetry({ errors: ['States.ALL'], maxAttempts: 3, interval: Duration.seconds(5), backoffRate: 2 });
  finalize.next(
    new Choice(scope, 'FileFailed?')
      .when(Condition.stringEquals('$.status', 'FAILED'), new Fail(scope, 'FileFailed', { error: 'FileFailed', cause: 'The file failed; its report says why' }))
      .otherwise(new Succeed(scope, 'Done')),
  );
  return finalize;
}

/** Stage (prepare), retried on Lambda's transient faults only; any error it raises goes to finalize, which reports it. */
function stageState(scope: Construct, lambdas: StepLambdas, finalize: IChainable): TaskStateBase {
  const task = stagePhaseTask(scope, lambdas, STATE_NAMES.stage, { input: JsonPath.entirePayload, runId: JsonPath.executionName, startedAt: JsonPath.executionStartTime });
  return caughtByFinalize(task, finalize);
}

/** Inline Map workers at once: AWS's ceiling for an inline Map. */
const INLINE_MAP_CONCURRENCY = 40;

/**
 * The staging phases after prepare. A plain source is first scanned for record boundaries in parallel (ScanRanges,
 * then PlanRanges); a file that had a sequential pass (PGP, gzip, UTF-16) was planned by prepare. Then the ranges are
 * staged in parallel (StageRanges), the exact duplicates settled per key partition (SettleDuplicates), and FinishStage
 * writes the chunk list and claims the content. Each phase is the stage Lambda's, with the Stage state's retry and
 * Catch: a malformed record in the last range fails its worker, the Map, and the file, before anything is sent.
 */
function stagingPhases(scope: Construct, lambdas: StepLambdas, finalize: IChainable, then: IChainable): IChainable {
  const worker = (mapName: string, taskName: string, itemsPath: string, phase: string) => {
    // No payload template: the worker's input (the ItemSelector's object) is the Lambda's event as it is.
    const task = stagePhaseTask(scope, lambdas, taskName);
    // Workers write their results to staging themselves: nothing of theirs goes through the 256 KiB state.
    const map = new InlineMap(scope, mapName, {
      itemsPath,
      maxConcurrency: INLINE_MAP_CONCURRENCY,
      itemSelector: { phase, input: JsonPath.objectAt('$'), runId: JsonPath.stringAt('$.runId'), startedAt: JsonPath.stringAt('$.startedAt'), index: JsonPath.numberAt('$$.Map.Item.Value') },
      resultPath: JsonPath.DISCARD,
    });
    map.itemProcessor(withTransientRetry(task));
    return map.addCatch(finalize, { errors: ['States.ALL'], resultPath: '$.error' });
  };
  const phaseInput = (phase: string) => ({ phase, input: JsonPath.entirePayload, runId: JsonPath.stringAt('$.runId'), startedAt: JsonPath.stringAt('$.startedAt') });
  const plan = caughtByFinalize(stagePhaseTask(scope, lambdas, STATE_NAMES.planRanges, phaseInput('plan'), '$.plan'), finalize);
  const finish = caughtByFinalize(stagePhaseTask(scope, lambdas, STATE_NAMES.finishStage, phaseInput('finish')), finalize);
  const ranges = worker(STATE_NAMES.stageRanges, STATE_NAMES.stageRange, '$.plan.ranges', 'range')
    .next(worker(STATE_NAMES.settleDuplicates, STATE_NAMES.settlePartition, '$.plan.partitions', 'settle'))
    .next(finish)
    .next(then);
  const scan = worker(STATE_NAMES.scanRanges, STATE_NAMES.scanRange, '$.plan.scan', 'scan').next(plan).next(ranges);
  return new Choice(scope, 'Planned?').when(Condition.isPresent('$.plan.scan'), scan).otherwise(ranges);
}

/** A Task of the stage Lambda with `payload` (else its input), its result in `resultPath` (else the state). */
function stagePhaseTask(scope: Construct, lambdas: StepLambdas, name: string, payload?: Record<string, unknown>, resultPath?: string): LambdaInvoke {
  return new LambdaInvoke(scope, name, {
    lambdaFunction: lambdas.stage,
    payloadResponseOnly: true,
    ...(payload ? { payload: TaskInput.fromObject(payload) } : {}),
    ...(resultPath ? { resultPath } : {}),
    taskTimeout: Timeout.duration(Duration.minutes(15)),
    retryOnServiceExceptions: false,
  });
}

/** Retried on Lambda's transient faults only. Staging writes only under runs/<runId>/, so a retry starts clean. */
function withTransientRetry(task: TaskStateBase): TaskStateBase {
  return task.addRetry({ errors: ['Lambda.ServiceException', 'Lambda.AWSLambdaException', 'Lambda.SdkClientException', 'Lambda.TooManyRequestsException'], maxAttempts: 3, interval: Duration.seconds(2), backoffRate: 2 });
}

/** The Stage state's retry, and any error to finalize, which reports it. */
function caughtByFinalize(task: TaskStateBase, finalize: IChainable): TaskStateBase {
  return withTransientRetry(task)
    .addCatch(finalize, { errors: [...FATAL_ERROR_NAMES], resultPath: '$.error' })
    .addCatch(finalize, { errors: ['States.ALL'], resultPath: '$.error' });
}

/** The Distributed Map of Send over the staged chunk list, then finalize (also on the map's own failure). */
function sendChunksState(scope: Construct, lambdas: StepLambdas, staging: IBucket, finalize: IChainable): DistributedMap {
  const send = new LambdaInvoke(scope, STATE_NAMES.send, {
    lambdaFunction: lambdas.send,
    payloadResponseOnly: true,
    taskTimeout: Timeout.duration(Duration.minutes(5)),
    retryOnServiceExceptions: false,
    // A worker that ran may have sent part of its chunk; only a throttled invocation (which never ran) is safe to repeat.
  }).addRetry({ errors: ['Lambda.TooManyRequestsException'], maxAttempts: 6, interval: Duration.seconds(2), backoffRate: 2 });

  const sendChunks = new DistributedMap(scope, STATE_NAMES.sendChunks, {
    itemReader: new S3JsonItemReader({ bucket: staging, key: JsonPath.stringAt('$.chunksKey') }),
    maxConcurrencyPath: JsonPath.stringAt('$.maxConcurrency'),
    itemSelector: {
      runId: JsonPath.stringAt('$.runId'),
      startedAt: JsonPath.stringAt('$.startedAt'),
      dataflow: JsonPath.stringAt('$.dataflow'),
      chunk: JsonPath.stringAt('$$.Map.Item.Value'),
      concurrency: JsonPath.numberAt('$.maxConcurrency'),
    },
    // Results go to S3, not into the state: a file of millions of rows has thousands of chunks.
    resultWriterV2: new ResultWriterV2({ bucket: staging, prefix: KEYS.mapResults }),
    resultPath: '$.sendResults',
    // A failed worker does not stop the others; finalize settles its records as AMBIGUOUS.
    toleratedFailurePercentage: 100,
    label: 'SendChunks',
  });
  sendChunks.itemProcessor(send);
  sendChunks.addCatch(finalize, { errors: ['States.ALL'], resultPath: '$.error' });
  sendChunks.next(finalize);
  return sendChunks;
}
