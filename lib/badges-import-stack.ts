import { type CfnElement, CfnOutput, Duration, Stack, type StackProps, TimeZone, Validations } from 'aws-cdk-lib';
import { EventField, Rule, RuleTargetInput } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { type Bucket, type IBucket, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import { Schedule, ScheduleExpression, ScheduleTargetInput } from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke as ScheduleLambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import {
  Choice,
  Condition,
  DefinitionBody,
  DistributedMap,
  Fail,
  JsonPath,
  LogLevel,
  ResultWriterV2,
  S3JsonItemReader,
  StateMachine,
  Succeed,
  TaskInput,
  Timeout,
} from 'aws-cdk-lib/aws-stepfunctions';
import { LambdaInvoke } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { STEPFUNCTIONS_USE_DISTRIBUTED_MAP_RESULT_WRITER_V2 } from 'aws-cdk-lib/cx-api';
import type { Construct } from 'constructs';
import { type Config, decryptSecretNamesOf, secretNamesOf, sourceSecretNamesOf } from '../src/config/schema';
import { ENV, KEYS } from '../src/contracts';
import { FATAL_ERROR_NAMES } from '../src/errors';
import { StepFunction, houseBucket, stageNodeOptions } from './defaults';
import { Operations } from './operations';

export interface BadgesImportStackProps extends StackProps {
  /** The validated configuration. */
  config: Config;
  /** Absolute path of the configuration file, bundled with each Lambda and validated again at run time. */
  configFile: string;
  /** Days staged chunks and step results are kept. @default 7 */
  stagingRetentionDays?: number;
}

/** State names of the per-file workflow; the local runner binds its handlers by these. */
export const STATE_NAMES = {
  stage: 'Stage',
  send: 'Send',
  sendChunks: 'SendChunks',
  finalize: 'Finalize',
} as const;

/**
 * The badges-import workflow: S3 uploads (and a schedule per dataflow) start a Step Functions execution per file
 * that stages it, fans its chunks out to the badges API through a Distributed Map, and finalizes a report.
 */
export class BadgesImportStack extends Stack {
  readonly stateMachine: StateMachine;
  readonly operations: Operations;
  readonly buckets: { inbox: Bucket; staging: Bucket; deadLetter: Bucket; reports: Bucket; accessLogs: Bucket };

  constructor(scope: Construct, id: string, props: BadgesImportStackProps) {
    super(scope, id, props);
    // Set here rather than in cdk.json so that every app building this stack (cdk, tests, the local runner) renders
    // the Distributed Map's ResultWriter the same way.
    this.node.setContext(STEPFUNCTIONS_USE_DISTRIBUTED_MAP_RESULT_WRITER_V2, true);
    const { config, configFile } = props;

    // S3 delivers access logs through the log-delivery ACL, which needs object-writer ownership.
    const accessLogs = houseBucket(this, 'AccessLogs', undefined, { objectOwnership: ObjectOwnership.OBJECT_WRITER });
    Validations.of(accessLogs).acknowledge({ id: 'AwsSolutions-S1', reason: 'This is the access-log bucket of the other buckets; logging it into itself would loop.' });
    this.buckets = {
      accessLogs,
      inbox: houseBucket(this, 'Inbox', accessLogs, { eventBridgeEnabled: true, versioned: true }),
      staging: houseBucket(this, 'Staging', accessLogs, {
        lifecycleRules: [{ expiration: Duration.days(props.stagingRetentionDays ?? 7), abortIncompleteMultipartUploadAfter: Duration.days(1) }],
      }),
      deadLetter: houseBucket(this, 'DeadLetter', accessLogs, { versioned: true }),
      reports: houseBucket(this, 'Reports', accessLogs, { versioned: true }),
    };
    const { inbox, staging, deadLetter, reports } = this.buckets;
    const environment = {
      [ENV.inboxBucket]: inbox.bucketName,
      [ENV.stagingBucket]: staging.bucketName,
      [ENV.deadLetterBucket]: deadLetter.bucketName,
      [ENV.reportsBucket]: reports.bucketName,
    };

    const stageMemory = 1769; // one full vCPU
    const stageFn = new StepFunction(this, 'StageFunction', {
      step: 'stage',
      configFile,
      environment,
      timeout: Duration.minutes(15),
      memorySize: stageMemory,
      nodeOptions: stageNodeOptions(Math.max(...config.dataflows.map((d) => d.destination.recordsPerWorker)), stageMemory),
    });
    const sendFn = new StepFunction(this, 'SendFunction', { step: 'send', configFile, environment, timeout: Duration.minutes(5) });
    const finalizeFn = new StepFunction(this, 'FinalizeFunction', { step: 'finalize', configFile, environment, timeout: Duration.minutes(15), memorySize: 1024 });
    // Least privilege: each step gets only the object actions it performs, on only the key prefixes it touches.
    const allow = (fn: StepFunction, actions: string[], ...resources: string[]) => fn.addToRolePolicy(new PolicyStatement({ actions, resources }));
    const runs = staging.arnForObjects('runs/*');
    // Every key a run may start from: a dataflow's drop, an operator's replay, or a file started again from processed/
    // or failed/ (`badges-import start --key failed/…`). Reads and moves name the version the trigger saw, which S3
    // authorizes as s3:GetObjectVersion and s3:DeleteObjectVersion.
    const sources = [...dataflowObjects(inbox, config), ...['replays/*', 'processed/*', 'failed/*'].map((p) => inbox.arnForObjects(p))];
    allow(stageFn, ['s3:GetObject', 's3:GetObjectVersion'], ...sources);
    // A zip's matching entries are written back under the dataflow's prefix, each to be imported on its own.
    allow(stageFn, ['s3:PutObject', 's3:AbortMultipartUpload'], ...dataflowObjects(inbox, config));
    allow(stageFn, ['s3:PutObject', 's3:AbortMultipartUpload'], runs);
    // The stage reads back what it staged (a decrypted file) before parsing it.
    allow(stageFn, ['s3:GetObject'], runs);
    // Without s3:ListBucket, S3 answers a read of a missing object with 403, not 404: each step that asks whether an
    // object exists may list exactly the prefix it asks about.
    const allowList = (fn: StepFunction, bucket: IBucket, prefixes: string[]) =>
      fn.addToRolePolicy(new PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn], conditions: { StringLike: { 's3:prefix': prefixes } } }));
    allowList(stageFn, reports, ['imported/*']); // was this content imported before?
    allowList(stageFn, inbox, config.dataflows.map((d) => `${d.source.prefix}*`)); // is a zip entry's name taken?
    allowList(finalizeFn, staging, ['runs/*']); // did every worker leave a result?
    allow(sendFn, ['s3:GetObject', 's3:PutObject'], runs);
    allow(finalizeFn, ['s3:GetObject'], runs);
    allow(finalizeFn, ['s3:PutObject', 's3:AbortMultipartUpload'], deadLetter.arnForObjects('rejected/*'));
    allow(finalizeFn, ['s3:PutObject'], reports.arnForObjects('reports/*'), reports.arnForObjects('imported/*'));
    // The content claim: the stage claims a file's content (a conditional put) before anything is sent, and reads the
    // claim of the run that holds it; finalize completes, keeps or releases it.
    allow(stageFn, ['s3:GetObject', 's3:PutObject'], reports.arnForObjects('imported/*'));
    allow(finalizeFn, ['s3:GetObject', 's3:DeleteObject'], reports.arnForObjects('imported/*'));
    allowList(finalizeFn, reports, ['imported/*']);
    // Moving the source: read and delete exactly its version wherever a run may start from, write it under processed/
    // or failed/.
    allow(finalizeFn, ['s3:GetObject', 's3:GetObjectVersion', 's3:DeleteObject', 's3:DeleteObjectVersion'], ...sources);
    allow(finalizeFn, ['s3:PutObject'], inbox.arnForObjects('processed/*'), inbox.arnForObjects('failed/*'));
    // Finalize writes the rejected records back to an SFTP source's error directory: it reads them back from the dead-letter bucket.
    allow(finalizeFn, ['s3:GetObject'], deadLetter.arnForObjects('rejected/*'));
    // Only the send step talks to the API, so only it may read the API credentials.
    const secretNames = [...new Set(config.dataflows.flatMap((d) => secretNamesOf(d.destination.auth)))];
    secretNames.forEach((name, i) => Secret.fromSecretNameV2(this, `ApiSecret${i}`, name).grantRead(sendFn));
    // Only the stage step decrypts, so only it may read the PGP key, its passphrase and the vendor's public key.
    const decryptNames = [...new Set(config.dataflows.flatMap((d) => decryptSecretNamesOf(d.decrypt)))];
    decryptNames.forEach((name, i) => Secret.fromSecretNameV2(this, `DecryptSecret${i}`, name).grantRead(stageFn));

    const finalize = new LambdaInvoke(this, STATE_NAMES.finalize, {
      lambdaFunction: finalizeFn,
      payloadResponseOnly: true,
      payload: TaskInput.fromObject({ state: JsonPath.entirePayload, runId: JsonPath.executionName, startedAt: JsonPath.executionStartTime }),
      taskTimeout: Timeout.duration(Duration.minutes(15)),
      retryOnServiceExceptions: false,
    }).addRetry({ errors: ['States.ALL'], maxAttempts: 3, interval: Duration.seconds(5), backoffRate: 2 });
    finalize.next(
      new Choice(this, 'FileFailed?')
        .when(Condition.stringEquals('$.status', 'FAILED'), new Fail(this, 'FileFailed', { error: 'FileFailed', cause: 'The file failed; its report says why' }))
        .otherwise(new Succeed(this, 'Done')),
    );

    const stage = new LambdaInvoke(this, STATE_NAMES.stage, {
      lambdaFunction: stageFn,
      payloadResponseOnly: true,
      payload: TaskInput.fromObject({ input: JsonPath.entirePayload, runId: JsonPath.executionName, startedAt: JsonPath.executionStartTime }),
      taskTimeout: Timeout.duration(Duration.minutes(15)),
      retryOnServiceExceptions: false,
    })
      // Staging writes only under runs/<runId>/, so a retry after a transient fault starts clean.
      .addRetry({ errors: ['Lambda.ServiceException', 'Lambda.AWSLambdaException', 'Lambda.SdkClientException', 'Lambda.TooManyRequestsException'], maxAttempts: 3, interval: Duration.seconds(2), backoffRate: 2 })
      .addCatch(finalize, { errors: [...FATAL_ERROR_NAMES], resultPath: '$.error' })
      .addCatch(finalize, { errors: ['States.ALL'], resultPath: '$.error' });

    const send = new LambdaInvoke(this, STATE_NAMES.send, {
      lambdaFunction: sendFn,
      payloadResponseOnly: true,
      taskTimeout: Timeout.duration(Duration.minutes(5)),
      retryOnServiceExceptions: false,
      // A worker that ran may have sent part of its chunk; only a throttled invocation (which never ran) is safe to repeat.
    }).addRetry({ errors: ['Lambda.TooManyRequestsException'], maxAttempts: 6, interval: Duration.seconds(2), backoffRate: 2 });

    const sendChunks = new DistributedMap(this, STATE_NAMES.sendChunks, {
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

    const definition = stage.next(
      new Choice(this, 'ForThisDataflow?')
        .when(Condition.isPresent('$.skipped'), new Succeed(this, 'NotForThisDataflow', { comment: 'The object name does not match the pattern: left alone' }))
        .otherwise(
          new Choice(this, 'AnythingToSend?')
            .when(Condition.or(Condition.booleanEquals('$.dryRun', true), Condition.numberEquals('$.chunkCount', 0), Condition.isPresent('$.duplicateOf'), Condition.isPresent('$.expanded')), finalize)
            .otherwise(sendChunks),
        ),
    );

    this.stateMachine = new StateMachine(this, 'Workflow', {
      definitionBody: DefinitionBody.fromChainable(definition),
      timeout: Duration.hours(24),
      tracingEnabled: true,
      logs: { destination: new LogGroup(this, 'WorkflowLogs', { retention: RetentionDays.THREE_MONTHS }), level: LogLevel.ALL, includeExecutionData: false },
    });

    // With an SFTP source the sweep also copies files from the vendor's server: it gets the time and memory for that.
    const sftpFlows = config.dataflows.filter((d) => d.source.type === 'sftp');
    const sweepFn = new StepFunction(this, 'SweepFunction', {
      step: 'sweep',
      configFile,
      environment: { ...environment, [ENV.stateMachineArn]: this.stateMachine.stateMachineArn },
      timeout: Duration.minutes(sftpFlows.length > 0 ? 15 : 5),
      memorySize: sftpFlows.length > 0 ? 1024 : 256,
    });
    if (sftpFlows.length > 0) {
      // A pulled file is copied to staging under pulls/, checked unchanged on the server, then copied under its
      // dataflow's prefix (reading the staged copy, writing the inbox object; HeadObject asks whether it is there).
      allow(sweepFn, ['s3:PutObject', 's3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload'], staging.arnForObjects('pulls/*'));
      allow(sweepFn, ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload'], ...sftpFlows.map((d) => inbox.arnForObjects(`${d.source.prefix}*`)));
      // Only the steps that talk to the vendor's server read its credentials: the sweep (to pull) and finalize (to
      // write the outcome back to the error directory).
      const sftpNames = [...new Set(sftpFlows.flatMap((d) => sourceSecretNamesOf(d.source)))];
      sftpNames.forEach((name, i) => {
        const secret = Secret.fromSecretNameV2(this, `SftpSecret${i}`, name);
        secret.grantRead(sweepFn);
        secret.grantRead(finalizeFn);
      });
    }
    sweepFn.addToRolePolicy(
      new PolicyStatement({
        // ListObjectVersions (the sweep starts each waiting object's current version) is authorized as s3:ListBucketVersions.
        actions: ['s3:ListBucket', 's3:ListBucketVersions'],
        resources: [inbox.bucketArn],
        conditions: { StringLike: { 's3:prefix': config.dataflows.map((d) => `${d.source.prefix}*`) } },
      }),
    );
    this.stateMachine.grantStartExecution(sweepFn);

    // Failed deliveries of triggers land here instead of vanishing.
    const triggerDlq = new Queue(this, 'TriggerDeadLetters', { encryption: QueueEncryption.SQS_MANAGED, enforceSSL: true, retentionPeriod: Duration.days(14) });
    Validations.of(triggerDlq).acknowledge({ id: 'AwsSolutions-SQS3', reason: 'This queue is itself the dead-letter queue of the triggers.' });

    for (const flow of config.dataflows) {
      new Rule(this, `Upload-${flow.name}`, {
        description: `Starts the workflow for objects created under s3://…/${flow.source.prefix} (dataflow ${flow.name})`,
        eventPattern: {
          source: ['aws.s3'],
          detailType: ['Object Created'],
          detail: { bucket: { name: [inbox.bucketName] }, object: { key: [{ prefix: flow.source.prefix }] } },
        },
        // Through the sweep function, which names the execution after the object (key and ETag), as the schedule's
        // sweep does: Step Functions then refuses a second execution of an object both of them found.
        targets: [
          new LambdaFunction(sweepFn, {
            event: RuleTargetInput.fromObject({
              dataflow: flow.name,
              key: EventField.fromPath('$.detail.object.key'),
              etag: EventField.fromPath('$.detail.object.etag'),
              versionId: EventField.fromPath('$.detail.object.version-id'),
            }),
            deadLetterQueue: triggerDlq,
            retryAttempts: 8,
          }),
        ],
      });
      if (flow.schedule) {
        new Schedule(this, `Schedule-${flow.name}`, {
          description: `Sweeps ${flow.source.prefix} for files of dataflow ${flow.name}`,
          schedule: ScheduleExpression.expression(`cron(${flow.schedule.cron})`, TimeZone.of(flow.schedule.timeZone)),
          target: new ScheduleLambdaInvoke(sweepFn, { input: ScheduleTargetInput.fromObject({ dataflow: flow.name }), deadLetterQueue: triggerDlq, retryAttempts: 8 }),
        });
      }
    }

    // Metrics, alarms, the alerts topic (also the per-file notifications) and the dashboard.
    this.operations = new Operations(this, 'Operations', { config, stateMachine: this.stateMachine, sweepFunction: sweepFn, triggerDlq });
    finalizeFn.addEnvironment(ENV.alertsTopicArn, this.operations.topic.topicArn);
    this.operations.topic.grantPublish(finalizeFn);
    Validations.of(finalizeFn).acknowledge({
      id: 'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
      reason: 'Publishing to the encrypted alerts topic needs the GenerateDataKey family (as CDK grants it), on the alerts key only.',
    });
    // The arrival check reads, and every sweep that starts a run writes, when the dataflow last had a file.
    allow(sweepFn, ['s3:GetObject', 's3:PutObject'], reports.arnForObjects('arrivals/*'));
    allowList(sweepFn, reports, ['arrivals/*']);

    this.acknowledgeFindings([stageFn, sendFn, finalizeFn, sweepFn], config);

    new CfnOutput(this, 'InboxBucketName', { value: inbox.bucketName, description: 'Vendors drop files here, under each dataflow prefix' });
    new CfnOutput(this, 'DeadLetterBucketName', { value: deadLetter.bucketName, description: 'Rejected records, one CSV per file' });
    new CfnOutput(this, 'ReportsBucketName', { value: reports.bucketName, description: 'One report.json per run' });
    new CfnOutput(this, 'StateMachineArn', { value: this.stateMachine.stateMachineArn });
  }

  /** cdk-nag findings that remain by design, each acknowledged with its reason and nothing broader. */
  private acknowledgeFindings(functions: StepFunction[], config: Config): void {
    const arn = (c: Construct) => `<${this.getLogicalId(c.node.defaultChild as CfnElement)}.Arn>`;
    const { inbox, staging, deadLetter, reports } = this.buckets;
    const objectReasons: Array<[Bucket, string, string]> = [
      [staging, 'runs/*', 'Each run writes and reads its own staging objects under runs/<runId>/; the run id is known only at run time.'],
      [staging, 'pulls/*', 'A file pulled from SFTP is staged under pulls/<dataflow>/<uuid>/ before it is copied into the inbox.'],
      [deadLetter, 'rejected/*', 'One rejected-records file per run under rejected/<dataflow>/<runId>/.'],
      [reports, 'reports/*', 'One report per run under reports/<dataflow>/<runId>/.'],
      [reports, 'imported/*', 'One marker per imported content under imported/<dataflow>/<sha256>.json, named by a hash known at run time.'],
      [reports, 'arrivals/*', 'One object per dataflow, arrivals/<dataflow>.json: when the sweep last started a run for it.'],
      [inbox, 'processed/*', 'Processed sources are moved under processed/<dataflow>/<runId>/.'],
      [inbox, 'failed/*', 'Failed sources are moved under failed/<dataflow>/<runId>/.'],
      [inbox, 'replays/*', 'An operator replay puts its records under replays/<dataflow>/<time>/, named at run time.'],
      ...config.dataflows.map((d): [Bucket, string, string] => [
        inbox,
        `${d.source.prefix}*`,
        d.source.type === 'sftp'
          ? `Files pulled from the ${d.name} SFTP server keep their names under the dataflow's prefix; the file pattern is checked by the sweep and the stage step.`
          : `Vendors name their files freely under the ${d.name} prefix; the file pattern is checked by the stage step.`,
      ]),
    ];
    for (const fn of functions) {
      Validations.of(fn).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason: 'Grants only logs:CreateLogGroup, logs:CreateLogStream and logs:PutLogEvents, which every function needs to log.',
      });
      Validations.of(fn).acknowledge({ id: 'AwsSolutions-IAM5[Resource::*]', reason: 'xray:PutTraceSegments and xray:PutTelemetryRecords take no resource other than "*".' });
      for (const [bucket, pattern, reason] of objectReasons) Validations.of(fn).acknowledge({ id: `AwsSolutions-IAM5[Resource::${arn(bucket)}/${pattern}]`, reason });
    }
    const workflow = this.stateMachine;
    for (const fn of functions) {
      Validations.of(workflow).acknowledge({ id: `AwsSolutions-IAM5[Resource::${arn(fn)}:*]`, reason: 'Step Functions invokes the function by qualified ARN (version or alias); CDK grants those forms.' });
    }
    Validations.of(workflow).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'X-Ray tracing and CloudWatch Logs delivery (logs:CreateLogDelivery and friends) take no resource other than "*".',
    });
    Validations.of(workflow).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::<${this.getLogicalId(staging.node.defaultChild as CfnElement)}>/*]`,
      reason: 'The Distributed Map reads its item list and writes its results (ResultWriter) in the staging bucket, under run-specific keys.',
    });
    const self = `{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"${this.getLogicalId(workflow.node.defaultChild as CfnElement)}"}]}]}`;
    for (const suffix of [':*', `/${STATE_NAMES.sendChunks}:*`]) {
      Validations.of(workflow).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${self}${suffix}]`,
        reason: 'A Distributed Map starts, describes and stops child executions of its own state machine, whose names are made at run time.',
      });
    }
    const sweepFn = functions.find((f) => f.node.id === 'SweepFunction');
    if (sweepFn) {
      Validations.of(this).acknowledge({ id: `AwsSolutions-IAM5[Resource::${arn(sweepFn)}:*]`, reason: 'EventBridge Scheduler invokes the sweep function by qualified ARN, as CDK grants it.' });
    }
    const notifications = this.node.tryFindChild('BucketNotificationsHandler050a0587b7544547bf325f094a3db834');
    if (notifications) {
      Validations.of(notifications).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason: "CDK's own handler that turns on EventBridge notifications for the inbox bucket; it only needs to log.",
      });
    }
  }
}

/** The inbox objects of the configured dataflows: `<prefix>*` for each. */
function dataflowObjects(inbox: IBucket, config: Config): string[] {
  return config.dataflows.map((d) => inbox.arnForObjects(`${d.source.prefix}*`));
}
