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
 * The per-file workflow: Stage, then (unless there is nothing to send) a Distributed Map of Send over the staged
 * chunks, then Finalize, which every path ends in, a failure included.
 */
export function buildWorkflow(scope: Construct, { lambdas, staging, timeout }: WorkflowProps): StateMachine {
  const finalize = finalizeState(scope, lambdas);
  const stage = stageState(scope, lambdas, finalize);
  const sendChunks = sendChunksState(scope, lambdas, staging, finalize);
  const definition = stage.next(
    new Choice(scope, 'ForThisDataflow?')
      .when(Condition.isPresent('$.skipped'), new Succeed(scope, 'NotForThisDataflow', { comment: 'The object name does not match the pattern: left alone' }))
      .otherwise(
        new Choice(scope, 'AnythingToSend?')
          .when(Condition.or(Condition.booleanEquals('$.dryRun', true), Condition.numberEquals('$.chunkCount', 0), Condition.isPresent('$.duplicateOf'), Condition.isPresent('$.expanded')), finalize)
          .otherwise(sendChunks),
      ),
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

/** Stage, retried on Lambda's transient faults only; any error it raises goes to finalize, which reports it. */
function stageState(scope: Construct, lambdas: StepLambdas, finalize: IChainable): TaskStateBase {
  return (
    new LambdaInvoke(scope, STATE_NAMES.stage, {
      lambdaFunction: lambdas.stage,
      payloadResponseOnly: true,
      payload: TaskInput.fromObject({ input: JsonPath.entirePayload, runId: JsonPath.executionName, startedAt: JsonPath.executionStartTime }),
      taskTimeout: Timeout.duration(Duration.minutes(15)),
      retryOnServiceExceptions: false,
    })
      // Staging writes only under runs/<runId>/, so a retry after a transient fault starts clean.
      .addRetry({ errors: ['Lambda.ServiceException', 'Lambda.AWSLambdaException', 'Lambda.SdkClientException', 'Lambda.TooManyRequestsException'], maxAttempts: 3, interval: Duration.seconds(2), backoffRate: 2 })
      .addCatch(finalize, { errors: [...FATAL_ERROR_NAMES], resultPath: '$.error' })
      .addCatch(finalize, { errors: ['States.ALL'], resultPath: '$.error' })
  );
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
