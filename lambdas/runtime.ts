import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from 'aws-lambda';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SNSClient } from '@aws-sdk/client-sns';
import { Logger } from '@aws-lambda-powertools/logger';
import type * as TracerModule from '@aws-lambda-powertools/tracer';
import { SERVICE_NAME, powertoolsMetrics, snsNotifier } from '../src/aws/metrics';
import { SecretsManagerProvider } from '../src/aws/secrets';
import { powertoolsTracing } from '../src/aws/tracer';
import { parseConfig } from '../src/config/load';
import { BUNDLED_CONFIG_FILE, ENV } from '../src/contracts';
import { type ProgressEvent, type StagePlanSizes, type StepDeps, newContainerState } from '../src/steps/deps';
import { trace, useTracing } from '../src/trace';

/** One logger per container, as Powertools expects: its first invocation is the cold start. */
export const logger = new Logger({ serviceName: SERVICE_NAME });

/**
 * Whether this container traces: in Lambda (`AWS_EXECUTION_ENV`) where an X-Ray daemon takes the segments
 * (`AWS_XRAY_DAEMON_ADDRESS`), unless `POWERTOOLS_TRACE_ENABLED=false`. The twin runs the bundles without a daemon.
 */
export function tracingWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.AWS_EXECUTION_ENV) && Boolean(env.AWS_XRAY_DAEMON_ADDRESS) && env.POWERTOOLS_TRACE_ENABLED?.toLowerCase() !== 'false';
}

/**
 * One tracer per container, or none. Loaded only when tracing is wanted: the X-Ray SDK under Tracer switches on async
 * hooks for the whole process as it loads, and they tax every promise whether or not anything is traced
 * (aws/aws-xray-sdk-node#420; 2 million awaits took 0.4 s without it, 6-9 s with it loaded, 23-27 s in Lambda mode).
 * It does not patch `http`/`fetch`: the URL of a customer-badges lookup holds a customer id, a record's content; the
 * API calls are spans of the client's own instead (src/trace.ts), named by what they do.
 */
export const tracer: TracerModule.Tracer | undefined = tracingWanted() ? loadTracer() : undefined;
if (tracer) useTracing(powertoolsTracing(tracer));

function loadTracer(): TracerModule.Tracer {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on condition, see `tracer`
  const { Tracer } = require('@aws-lambda-powertools/tracer') as typeof TracerModule;
  return new Tracer({ serviceName: SERVICE_NAME, captureHTTPsRequests: false });
}

/** An AWS SDK v3 client whose calls are subsegments of the trace (as it is, when this container does not trace). */
export function traced<T>(client: T): T {
  return tracer ? tracer.captureAWSv3Client(client) : client;
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`Environment variable ${name} is not set`);
  return value;
}

/** Built once per container: configuration (validated again at run time), clients (traced), logger. */
export function lambdaDeps(): StepDeps {
  const file = process.env[ENV.configFile] ?? join(__dirname, BUNDLED_CONFIG_FILE);
  const topicArn = process.env[ENV.alertsTopicArn];
  return {
    config: parseConfig(JSON.parse(readFileSync(file, 'utf8'))),
    s3: traced(new S3Client({})),
    buckets: {
      inbox: required(ENV.inboxBucket),
      staging: required(ENV.stagingBucket),
      deadLetter: required(ENV.deadLetterBucket),
      reports: required(ENV.reportsBucket),
    },
    secrets: new SecretsManagerProvider(traced(new SecretsManagerClient({}))),
    log: logger,
    metrics: powertoolsMetrics(),
    ...(topicArn ? { notify: snsNotifier(traced(new SNSClient({})), topicArn) } : {}),
    // Local twin only (src/local/lambda.ts forks each container with an IPC channel): progress for the CLI's bar.
    ...(process.env.BADGES_TWIN_BUNDLE && process.send ? { progress: (event: ProgressEvent) => void process.send!({ type: 'progress', event }) } : {}),
    // Test and bench knob (the stack never sets it): several ranges and partitions from a small file.
    ...(process.env[ENV.stagePlan] ? { stagePlan: JSON.parse(process.env[ENV.stagePlan]!) as StagePlanSizes } : {}),
    // Built once per container, so it is this container's state across invocations.
    container: newContainerState(),
  };
}

/** What an invocation works on, as its log lines and its trace name it: never a record, never a secret. */
export type InvocationSubject = { dataflow?: string; runId?: string };

/**
 * The dataflow and run an event is about, read from any step's event (`dataflow`, `input.dataflow` of the stage,
 * `state.dataflow` of finalize; `runId`). Tolerant: a malformed event is the step's to refuse, not the wrapper's.
 */
export function subjectOf(event: unknown): InvocationSubject {
  const e = (typeof event === 'object' && event !== null ? event : {}) as { dataflow?: unknown; runId?: unknown; input?: { dataflow?: unknown }; state?: { dataflow?: unknown } };
  const dataflow = [e.dataflow, e.input?.dataflow, e.state?.dataflow].find((value): value is string => typeof value === 'string');
  return { ...(dataflow ? { dataflow } : {}), ...(typeof e.runId === 'string' ? { runId: e.runId } : {}) };
}

/**
 * Wraps a step as a Lambda handler, the middy-free way of Powertools' `injectLambdaContext` and
 * `captureLambdaHandler`: every log line of the invocation carries the Lambda context (request id, cold start,
 * function name, ARN, memory; the X-Ray trace id) and the dataflow and run; the invocation is one subsegment
 * (`## index.handler`, annotated ColdStart, Service, dataflow, runId) that the spans of its S3, API and SFTP calls
 * hang from.
 */
export function lambdaHandler<E, R>(step: (event: E, context: Context) => Promise<R>): (event: E, context: Context) => Promise<R> {
  return async (event, context) => {
    logger.addContext(context);
    const subject = subjectOf(event);
    logger.appendKeys({ ...subject });
    logger.logEventIfEnabled(event);
    try {
      if (!tracer) return await step(event, context);
      return await trace(
        `## ${process.env._HANDLER ?? 'handler'}`,
        () => {
          tracer.annotateColdStart();
          tracer.addServiceNameAnnotation();
          return step(event, context);
        },
        subject,
      );
    } finally {
      // Keys of this invocation must not leak into the next one of the same container.
      logger.resetKeys();
    }
  };
}
