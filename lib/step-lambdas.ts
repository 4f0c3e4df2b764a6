import { Aws, Duration } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { type ISecret, Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { type Config, type Dataflow, type VendorBucketSource, decryptSecretNamesOf, secretNamesOf, sourceSecretNamesOf, vendorBucketOf } from '../src/config/schema';
import { ENV, STEP_LAMBDA_SETTINGS } from '../src/contracts';
import { StepLambda, stageNodeOptions } from './defaults';
import type { Storage } from './storage';

/** The three Lambdas the workflow runs for each file. */
export interface StepLambdas {
  stage: StepLambda;
  send: StepLambda;
  finalize: StepLambda;
}

export interface StepLambdasProps {
  config: Config;
  /** Absolute path of the configuration file, bundled with each Lambda. */
  configFile: string;
  buckets: Storage;
  /** The alerts topic: finalize publishes each file's summary to it. */
  alerts: ITopic;
}

export interface SweepLambdaProps extends Omit<StepLambdasProps, 'alerts'> {
  /** The per-file workflow, which the sweep starts. */
  stateMachine: StateMachine;
}

// Least privilege: each step gets only the object actions it performs, on only the key prefixes it touches. Every
// Lambda is created in `scope` (the stack) so that its logical IDs, and those of its log group, stay as they were.

/** Allows `actions` on exactly `resources`. */
function allow(fn: StepLambda, actions: string[], ...resources: string[]): void {
  fn.addToRolePolicy(new PolicyStatement({ actions, resources }));
}

/**
 * Without s3:ListBucket, S3 answers a read of a missing object with 403, not 404: each step that asks whether an
 * object exists may list exactly the prefixes it asks about.
 */
function allowList(fn: StepLambda, bucket: IBucket, prefixes: string[]): void {
  fn.addToRolePolicy(new PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn], conditions: { StringLike: { 's3:prefix': prefixes } } }));
}

/** The secrets of `names`, imported once per scope under `prefix<i>` (a second caller gets the same constructs). */
function secretsNamed(scope: Construct, prefix: string, names: string[]): ISecret[] {
  return [...new Set(names)].map((name, i) => (scope.node.tryFindChild(`${prefix}${i}`) as ISecret | undefined) ?? Secret.fromSecretNameV2(scope, `${prefix}${i}`, name));
}

/** The SFTP dataflows: their sweep pulls from the vendor's server, their finalize writes the outcome back to it. */
function sftpFlowsOf(config: Config): Dataflow[] {
  return config.dataflows.filter((d) => d.source.type === 'sftp');
}

/** The sources that poll a vendor's own bucket (source.bucket). */
export function vendorBucketSourcesOf(config: Config): VendorBucketSource[] {
  return config.dataflows.map(vendorBucketOf).filter((s): s is VendorBucketSource => s !== undefined);
}

/** Inbox drops that write outcomes back under an errorPrefix in the inbox. */
function inboxErrorPrefixesOf(config: Config): string[] {
  return config.dataflows.flatMap((d) => (d.source.type === 's3' && !d.source.bucket && d.source.errorPrefix ? [d.source.errorPrefix] : []));
}

/** `arn:<partition>:s3:::<vendor bucket>/<prefix>*` for each prefix (the bucket is not ours: no construct to ask). */
function vendorObjects(source: VendorBucketSource, prefixes: Array<string | undefined>): string[] {
  return prefixes.filter((p): p is string => p !== undefined).map((p) => `arn:${Aws.PARTITION}:s3:::${source.bucket}/${p}*`);
}

/**
 * A vendor's bucket, reached either as the role the vendor lets us assume (sts:AssumeRole on it; the external id is
 * the vendor's trust policy's condition, not ours) or as our own role (what the vendor's bucket policy grants it,
 * which our identity policy must allow too). `poll`: list, read, move (copy to processedPrefix, delete); `writeBack`:
 * put under errorPrefix.
 */
function allowVendorBuckets(fn: StepLambda, sources: VendorBucketSource[], use: 'poll' | 'writeBack'): void {
  const roles = [...new Set(sources.flatMap((s) => (s.roleArn ? [s.roleArn] : [])))];
  if (roles.length > 0) allow(fn, ['sts:AssumeRole'], ...roles);
  for (const source of sources.filter((s) => !s.roleArn)) {
    if (use === 'writeBack') {
      allow(fn, ['s3:PutObject', 's3:AbortMultipartUpload'], ...vendorObjects(source, [source.errorPrefix]));
      continue;
    }
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [`arn:${Aws.PARTITION}:s3:::${source.bucket}`],
        conditions: { StringLike: { 's3:prefix': [`${source.vendorPrefix}*`, `${source.processedPrefix}*`] } },
      }),
    );
    allow(fn, ['s3:GetObject'], ...vendorObjects(source, [source.vendorPrefix, source.processedPrefix]));
    allow(fn, ['s3:PutObject', 's3:AbortMultipartUpload'], ...vendorObjects(source, [source.processedPrefix]));
    allow(fn, ['s3:DeleteObject'], ...vendorObjects(source, [source.vendorPrefix]));
  }
}

/** The inbox objects of the configured dataflows: `<prefix>*` for each. */
function dataflowObjects(inbox: IBucket, config: Config): string[] {
  return config.dataflows.map((d) => inbox.arnForObjects(`${d.source.prefix}*`));
}

/**
 * Every key a run may start from: a dataflow's drop, an operator's replay, or a file started again from processed/ or
 * failed/ (`badges-import start --key failed/…`). Reads and moves name the version the trigger saw, which S3
 * authorizes as s3:GetObjectVersion and s3:DeleteObjectVersion.
 */
function runSources(inbox: IBucket, config: Config): string[] {
  return [...dataflowObjects(inbox, config), ...['replays/*', 'processed/*', 'failed/*'].map((p) => inbox.arnForObjects(p))];
}

/** The buckets' names, as every step reads them. */
function bucketEnvironment(buckets: Storage): Record<string, string> {
  return {
    [ENV.inboxBucket]: buckets.inbox.bucketName,
    [ENV.stagingBucket]: buckets.staging.bucketName,
    [ENV.deadLetterBucket]: buckets.deadLetter.bucketName,
    [ENV.reportsBucket]: buckets.reports.bucketName,
  };
}

/** Stage, send and finalize, each with its grants. */
export function buildStepLambdas(scope: Construct, props: StepLambdasProps): StepLambdas {
  return { stage: buildStageLambda(scope, props), send: buildSendLambda(scope, props), finalize: buildFinalizeLambda(scope, props) };
}

/** Reads, decrypts, parses and validates a file, writes its chunks under runs/<runId>/ and claims its content. */
function buildStageLambda(scope: Construct, { config, configFile, buckets }: StepLambdasProps): StepLambda {
  const { inbox, staging, reports } = buckets;
  const { memoryMb: memorySize, timeoutSeconds } = STEP_LAMBDA_SETTINGS.stage; // one full vCPU
  const fn = new StepLambda(scope, 'StageFunction', {
    step: 'stage',
    configFile,
    // Powertools Tracer stays unloaded in the stage: the X-Ray SDK under it hooks every promise of the process, and the
    // stage awaits once or twice a record (2 million awaits: 0.4 s without it, 23-27 s with it in Lambda mode), which
    // would more than double a large file's staging. Lambda's own segment still times the invocation; set it to
    // "true" on the function to see the stage's S3 calls while investigating a slow file.
    environment: { ...bucketEnvironment(buckets), POWERTOOLS_TRACE_ENABLED: 'false' },
    timeout: Duration.seconds(timeoutSeconds),
    memorySize,
    nodeOptions: stageNodeOptions(Math.max(...config.dataflows.map((d) => d.destination.recordsPerWorker)), memorySize),
  });
  const runs = staging.arnForObjects('runs/*');
  allow(fn, ['s3:GetObject', 's3:GetObjectVersion'], ...runSources(inbox, config));
  // A zip's matching entries are written back under the dataflow's prefix, each to be imported on its own.
  allow(fn, ['s3:PutObject', 's3:AbortMultipartUpload'], ...dataflowObjects(inbox, config));
  allow(fn, ['s3:PutObject', 's3:AbortMultipartUpload'], runs);
  // The stage reads back what it staged (a decrypted file) before parsing it.
  allow(fn, ['s3:GetObject'], runs);
  allowList(fn, reports, ['imported/*']); // was this content imported before?
  allowList(fn, inbox, config.dataflows.map((d) => `${d.source.prefix}*`)); // is a zip entry's name taken?
  // The content claim: the stage claims a file's content (a conditional put) before anything is sent, and reads the
  // claim of the run that holds it.
  allow(fn, ['s3:GetObject', 's3:PutObject'], reports.arnForObjects('imported/*'));
  // Only the stage step decrypts, so only it may read the PGP key, its passphrase and the vendor's public key.
  for (const secret of secretsNamed(scope, 'DecryptSecret', config.dataflows.flatMap((d) => decryptSecretNamesOf(d.decrypt)))) secret.grantRead(fn);
  return fn;
}

/** Sends one chunk to the badges API (a Distributed Map worker). */
function buildSendLambda(scope: Construct, { config, configFile, buckets }: StepLambdasProps): StepLambda {
  const { memoryMb, timeoutSeconds } = STEP_LAMBDA_SETTINGS.send;
  const fn = new StepLambda(scope, 'SendFunction', { step: 'send', configFile, environment: bucketEnvironment(buckets), timeout: Duration.seconds(timeoutSeconds), memorySize: memoryMb });
  allow(fn, ['s3:GetObject', 's3:PutObject'], buckets.staging.arnForObjects('runs/*'));
  // Only the send step talks to the API, so only it may read the API credentials.
  for (const secret of secretsNamed(scope, 'ApiSecret', config.dataflows.flatMap((d) => secretNamesOf(d.destination.auth)))) secret.grantRead(fn);
  return fn;
}

/** Settles every record, writes the rejected records and the report, settles the content claim, moves the source. */
function buildFinalizeLambda(scope: Construct, { config, configFile, buckets, alerts }: StepLambdasProps): StepLambda {
  const { inbox, staging, deadLetter, reports } = buckets;
  const fn = new StepLambda(scope, 'FinalizeFunction', {
    step: 'finalize',
    configFile,
    environment: { ...bucketEnvironment(buckets), [ENV.alertsTopicArn]: alerts.topicArn },
    timeout: Duration.seconds(STEP_LAMBDA_SETTINGS.finalize.timeoutSeconds),
    memorySize: STEP_LAMBDA_SETTINGS.finalize.memoryMb,
  });
  allowList(fn, staging, ['runs/*']); // did every worker leave a result?
  allow(fn, ['s3:GetObject'], staging.arnForObjects('runs/*'));
  allow(fn, ['s3:PutObject', 's3:AbortMultipartUpload'], deadLetter.arnForObjects('rejected/*'));
  allow(fn, ['s3:PutObject'], reports.arnForObjects('reports/*'), reports.arnForObjects('imported/*'));
  // The content claim: finalize completes, keeps or releases it.
  allow(fn, ['s3:GetObject', 's3:DeleteObject'], reports.arnForObjects('imported/*'));
  allowList(fn, reports, ['imported/*']);
  // Moving the source: read and delete exactly its version wherever a run may start from, write it under processed/
  // or failed/.
  allow(fn, ['s3:GetObject', 's3:GetObjectVersion', 's3:DeleteObject', 's3:DeleteObjectVersion'], ...runSources(inbox, config));
  // A source over 5 GiB moves by multipart copy, aborted if a part fails.
  allow(fn, ['s3:PutObject', 's3:AbortMultipartUpload'], inbox.arnForObjects('processed/*'), inbox.arnForObjects('failed/*'));
  // Finalize writes the rejected records back to an SFTP source's error directory: it reads them back from the
  // dead-letter bucket, and reads the server's credentials.
  allow(fn, ['s3:GetObject'], deadLetter.arnForObjects('rejected/*'));
  for (const secret of secretsNamed(scope, 'SftpSecret', sftpFlowsOf(config).flatMap((d) => sourceSecretNamesOf(d.source)))) secret.grantRead(fn);
  // … and to an S3 source's errorPrefix: in the inbox for a drop, in the vendor's bucket for a polled one.
  const inboxErrors = inboxErrorPrefixesOf(config);
  if (inboxErrors.length > 0) allow(fn, ['s3:PutObject', 's3:AbortMultipartUpload'], ...inboxErrors.map((p) => inbox.arnForObjects(`${p}*`)));
  allowVendorBuckets(fn, vendorBucketSourcesOf(config).filter((s) => s.errorPrefix !== undefined), 'writeBack');
  // Each file's summary goes to the alerts topic.
  alerts.grantPublish(fn);
  return fn;
}

/**
 * Starts an execution per file: for an upload event, for each waiting file on a schedule, and for each file it pulls
 * from an SFTP server or a vendor's own bucket; and checks that a file arrived after a schedule.
 */
export function buildSweepLambda(scope: Construct, { config, configFile, buckets, stateMachine }: SweepLambdaProps): StepLambda {
  const { inbox, staging, reports } = buckets;
  // With an SFTP source the sweep also copies files from the vendor's server: it gets the time and memory for that.
  const sftpFlows = sftpFlowsOf(config);
  const vendorSources = vendorBucketSourcesOf(config);
  const polls = sftpFlows.length + vendorSources.length > 0;
  const fn = new StepLambda(scope, 'SweepFunction', {
    step: 'sweep',
    configFile,
    environment: { ...bucketEnvironment(buckets), [ENV.stateMachineArn]: stateMachine.stateMachineArn },
    timeout: Duration.seconds(polls ? STEP_LAMBDA_SETTINGS.sweep.pollingTimeoutSeconds : STEP_LAMBDA_SETTINGS.sweep.timeoutSeconds),
    memorySize: polls ? STEP_LAMBDA_SETTINGS.sweep.pollingMemoryMb : STEP_LAMBDA_SETTINGS.sweep.memoryMb,
  });
  if (vendorSources.length > 0) {
    // A vendor's object is streamed from their bucket into the inbox under the dataflow's inbox prefix (HeadObject asks
    // whether an earlier poll copied it already), then moved in their bucket.
    allow(fn, ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload'], ...vendorSources.map((s) => inbox.arnForObjects(`${s.prefix}*`)));
    allowVendorBuckets(fn, vendorSources, 'poll');
  }
  if (sftpFlows.length > 0) {
    // A pulled file is copied to staging under pulls/, checked unchanged on the server, then copied under its
    // dataflow's prefix (reading the staged copy, writing the inbox object; HeadObject asks whether it is there).
    allow(fn, ['s3:PutObject', 's3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload'], staging.arnForObjects('pulls/*'));
    allow(fn, ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload'], ...sftpFlows.map((d) => inbox.arnForObjects(`${d.source.prefix}*`)));
    // Only the steps that talk to the vendor's server read its credentials: the sweep (to pull) and finalize.
    for (const secret of secretsNamed(scope, 'SftpSecret', sftpFlows.flatMap((d) => sourceSecretNamesOf(d.source)))) secret.grantRead(fn);
  }
  fn.addToRolePolicy(
    new PolicyStatement({
      // ListObjectVersions (the sweep starts each waiting object's current version) is authorized as s3:ListBucketVersions.
      actions: ['s3:ListBucket', 's3:ListBucketVersions'],
      resources: [inbox.bucketArn],
      conditions: { StringLike: { 's3:prefix': config.dataflows.map((d) => `${d.source.prefix}*`) } },
    }),
  );
  stateMachine.grantStartExecution(fn);
  // The arrival check reads, and every sweep that starts a run writes, when the dataflow last had a file.
  allow(fn, ['s3:GetObject', 's3:PutObject'], reports.arnForObjects('arrivals/*'));
  allowList(fn, reports, ['arrivals/*']);
  return fn;
}
