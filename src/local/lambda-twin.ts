import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import type { SecretsProvider } from '../aws/secrets';
import type { Config } from '../config/schema';
import { BUNDLED_CONFIG_FILE, ENV, type StepName } from '../contracts';
import type { MetricsSink, ProgressEvent } from '../steps/deps';
import { type LocalAwsEndpoints, startLocalAwsEndpoints } from './aws-endpoints';
import { ensureTable, sharedLocalDynamo, tablesOf } from './dynamodb';
import { type Authorize, type TwinIdentity, createAuthorizer, registerTwinIdentity, stackPolicies } from './iam';
import { LambdaTwin } from './lambda';
import { type LambdaFunctionSpec, LOCAL_REGION, type SynthesizeOptions, type SynthesizedStack, lambdaFunctions, synthesizeStack } from './lambda-stack';
import { LOCAL_BUCKETS, type LocalS3 } from './s3';

export interface TwinOptions {
  config: Config;
  /** The configuration file the stack bundles (the synthesis is cached by its content). */
  configFile: string;
  /**
   * The configuration the functions read at run time, when it differs from the bundled one (a local run points the
   * API at the sandbox): written to a file that BADGES_CONFIG_FILE names.
   */
  runtimeConfig?: Config;
  secrets: SecretsProvider;
  s3: LocalS3;
  /** Line by line, what the functions print. */
  log?: (line: string, fn: LambdaFunctionSpec) => void;
  metrics?: MetricsSink;
  progress?: (event: ProgressEvent) => void;
  /** Receives the per-file notification the finalize function publishes to the alerts topic. */
  notify?: (subject: string, message: string) => Promise<void>;
  /** More environment for every function (e.g. AWS_ENDPOINT_URL_SFN of a local Step Functions). */
  environment?: Record<string, string>;
  /** Changes the synthesized template (tests remove a grant). */
  synthesize?: SynthesizeOptions;
  /** Start a container of stage, send and finalize at once, so their cold starts overlap. @default true */
  prewarm?: boolean;
}

/** The stack's functions and IAM, running locally. */
export interface Twin {
  readonly stack: SynthesizedStack;
  readonly functions: Record<StepName, LambdaFunctionSpec>;
  readonly lambdas: LambdaTwin;
  /** Checks a request against the stack's IAM (admin key: always allowed). */
  readonly authorize: Authorize;
  /** The state machine's ARN and execution role, and an S3 client that acts as that role. */
  readonly stateMachine: { arn: string; role: string; accessKeyId: string; s3: S3Client };
  /** Invokes a function's bundle, as Lambda would. */
  invoke(step: StepName, event: unknown): Promise<unknown>;
  /** Points where the functions' lines, metrics, progress and notifications go (a pooled twin serves one run after another). */
  use(sinks: Pick<TwinOptions, 'log' | 'metrics' | 'progress' | 'notify'>): void;
  close(): Promise<void>;
}

/**
 * Starts the twin of the deployed stack's runtime: the stack synthesized with its bundles, local Secrets Manager and
 * SNS endpoints, DynamoDB (dynalite, with the stack's tables), and the functions' containers, each with credentials that name its role.
 */
export async function startTwin(options: TwinOptions): Promise<Twin> {
  const stack = synthesizeStack(options.configFile, LOCAL_BUCKETS, options.synthesize);
  const functions = lambdaFunctions(stack);
  const policies = stackPolicies(stack.template, stack.names);
  // Keys name the role and the stack they belong to, so that several stacks' twins can share one S3.
  const stackKey = stack.id;
  const keyOf = (role: string) => `${role}.${stackKey}`;
  const identities = new Map<string, TwinIdentity>();
  for (const fn of Object.values(functions)) identities.set(keyOf(fn.role), { role: fn.role, session: fn.logicalId });
  const [machineId, machine] = Object.entries(stack.template.Resources).find(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine') ?? [];
  const machineRole = (machine?.Properties?.RoleArn?.['Fn::GetAtt'] as [string, string] | undefined)?.[0] ?? 'StateMachineRole';
  identities.set(keyOf(machineRole), { role: machineRole, session: `${machineId}-execution` });
  for (const [key, identity] of identities) registerTwinIdentity(key, identity, policies);
  const authorize = createAuthorizer(policies, identities);

  const sinks: Pick<TwinOptions, 'log' | 'metrics' | 'progress' | 'notify'> = { log: options.log, metrics: options.metrics, progress: options.progress, notify: options.notify };
  const endpoints: LocalAwsEndpoints = await startLocalAwsEndpoints({
    secrets: options.secrets,
    authorize,
    publish: async (_topic, subject, message) => sinks.notify?.(subject ?? '', message),
  });
  // DynamoDB (the send budget's table) is dynalite, one per process: twins of executions running at once share it, as
  // executions share the stack's table in AWS. Its tables are created as the stack defines them.
  const dynamo = await sharedLocalDynamo();
  for (const table of tablesOf(stack.template)) await ensureTable(dynamo.client, table);
  let configDir: string | undefined;
  const environment: Record<string, string> = {
    AWS_ENDPOINT_URL_S3: options.s3.endpoint,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: endpoints.url,
    AWS_ENDPOINT_URL_SNS: endpoints.url,
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    ...options.environment,
  };
  if (options.runtimeConfig) {
    configDir = mkdtempSync(join(tmpdir(), 'badges-twin-config-'));
    writeFileSync(join(configDir, BUNDLED_CONFIG_FILE), JSON.stringify(options.runtimeConfig));
    environment[ENV.configFile] = join(configDir, BUNDLED_CONFIG_FILE);
  }
  const lambdas = new LambdaTwin({
    functions,
    environment,
    credentials: (fn) => ({ accessKeyId: keyOf(fn.role), secretAccessKey: keyOf(fn.role) }),
    log: (line, fn) => sinks.log?.(line, fn),
    metrics: (...args) => sinks.metrics?.(...args),
    progress: (event) => sinks.progress?.(event),
  });
  if (options.prewarm ?? true) lambdas.prewarm(['stage', 'send', 'finalize']);
  const machineKey = keyOf(machineRole);
  const machineS3 = new S3Client({ endpoint: options.s3.endpoint, forcePathStyle: true, region: LOCAL_REGION, credentials: { accessKeyId: machineKey, secretAccessKey: machineKey } });
  return {
    stack,
    functions,
    lambdas,
    authorize,
    stateMachine: { arn: `arn:aws:states:${LOCAL_REGION}:000000000000:stateMachine:${machineId}`, role: machineRole, accessKeyId: machineKey, s3: machineS3 },
    invoke: (step, event) => lambdas.invoke(step, event),
    use(next) {
      Object.assign(sinks, { log: next.log, metrics: next.metrics, progress: next.progress, notify: next.notify });
    },
    async close() {
      machineS3.destroy();
      await lambdas.close();
      await endpoints.close();
      if (configDir) rmSync(configDir, { recursive: true, force: true });
    },
  };
}

/**
 * Invokes one function's bundle with an event, with the same containers, endpoints and IAM as a local run, e.g. the
 * sweep function with an EventBridge or Scheduler event. Starts a twin for the call and stops it after.
 */
export async function invokeFunction(options: TwinOptions, step: StepName, event: unknown): Promise<unknown> {
  const twin = await startTwin({ prewarm: false, ...options });
  try {
    return await twin.invoke(step, event);
  } finally {
    await twin.close();
  }
}
