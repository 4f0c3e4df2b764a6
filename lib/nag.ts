import { type CfnElement, type Stack, Validations } from 'aws-cdk-lib';
import type { Bucket } from 'aws-cdk-lib/aws-s3';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import type { Config } from '../src/config/schema';
import type { StepLambda } from './defaults';
import { type StepLambdas, vendorBucketSourcesOf } from './step-lambdas';
import type { Storage } from './storage';
import { STATE_NAMES } from './workflow';

export interface FindingsProps {
  config: Config;
  buckets: Storage;
  lambdas: StepLambdas;
  sweep: StepLambda;
  stateMachine: StateMachine;
}

/** cdk-nag AwsSolutions findings that remain by design, each acknowledged with its reason and nothing broader. */
export function acknowledgeFindings(stack: Stack, props: FindingsProps): void {
  const functions = [props.lambdas.stage, props.lambdas.send, props.lambdas.finalize, props.sweep];
  acknowledgeLambdaFindings(stack, functions, objectPatterns(props.buckets, props.config), props.config);
  Validations.of(props.lambdas.finalize).acknowledge({
    id: 'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
    reason: 'Publishing to the encrypted alerts topic needs the GenerateDataKey family (as CDK grants it), on the alerts key only.',
  });
  acknowledgeWorkflowFindings(stack, props.stateMachine, functions, props.buckets.staging);
  Validations.of(stack).acknowledge({ id: `AwsSolutions-IAM5[Resource::${arnOf(stack, props.sweep)}:*]`, reason: 'EventBridge Scheduler invokes the sweep function by qualified ARN, as CDK grants it.' });
  const notifications = stack.node.tryFindChild('BucketNotificationsHandler050a0587b7544547bf325f094a3db834');
  if (notifications) {
    Validations.of(notifications).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      reason: "CDK's own handler that turns on EventBridge notifications for the inbox bucket; it only needs to log.",
    });
  }
}

/** How cdk-nag names a resource's ARN in its finding IDs. */
function arnOf(stack: Stack, construct: Construct): string {
  return `<${stack.getLogicalId(construct.node.defaultChild as CfnElement)}.Arn>`;
}

/** The object key patterns the steps are granted, each with why it has to be a pattern. */
function objectPatterns({ inbox, staging, deadLetter, reports }: Storage, config: Config): Array<[Bucket, string, string]> {
  return [
    [staging, 'runs/*', 'Each run writes and reads its own staging objects under runs/<runId>/; the run id is known only at run time.'],
    [staging, 'pulls/*', 'A file pulled from SFTP is staged under pulls/<dataflow>/<uuid>/ before it is copied into the inbox.'],
    [deadLetter, 'rejected/*', 'One rejected-records file per run under rejected/<dataflow>/<runId>/.'],
    [reports, 'reports/*', 'One report per run under reports/<dataflow>/<runId>/.'],
    [reports, 'imported/*', 'One marker per imported content under imported/<dataflow>/<sha256>.json, named by a hash known at run time.'],
    [reports, 'arrivals/*', 'One object per dataflow, arrivals/<dataflow>.json: when the sweep last started a run for it.'],
    [inbox, 'processed/*', 'Processed sources are moved under processed/<dataflow>/<runId>/.'],
    [inbox, 'failed/*', 'Failed sources are moved under failed/<dataflow>/<runId>/.'],
    [inbox, 'replays/*', 'An operator replay puts its records under replays/<dataflow>/<time>/, named at run time.'],
    ...config.dataflows.flatMap((d): Array<[Bucket, string, string]> =>
      d.source.type === 's3' && !d.source.bucket && d.source.errorPrefix
        ? [[inbox, `${d.source.errorPrefix}*`, `Finalize writes each run's outcome of ${d.name} under its errorPrefix, named by the run's time and file.`]]
        : [],
    ),
    ...config.dataflows.map((d): [Bucket, string, string] => [
      inbox,
      `${d.source.prefix}*`,
      d.source.type === 'sftp'
        ? `Files pulled from the ${d.name} SFTP server keep their names under the dataflow's prefix; the file pattern is checked by the sweep and the stage step.`
        : `Vendors name their files freely under the ${d.name} prefix; the file pattern is checked by the stage step.`,
    ]),
  ];
}

/** The managed logging policy, X-Ray's "*", and the run-time object keys, on every step Lambda's role. */
function acknowledgeLambdaFindings(stack: Stack, functions: StepLambda[], patterns: Array<[Bucket, string, string]>, config: Config): void {
  for (const fn of functions) {
    Validations.of(fn).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      reason: 'Grants only logs:CreateLogGroup, logs:CreateLogStream and logs:PutLogEvents, which every function needs to log.',
    });
    Validations.of(fn).acknowledge({ id: 'AwsSolutions-IAM5[Resource::*]', reason: 'xray:PutTraceSegments and xray:PutTelemetryRecords take no resource other than "*".' });
    for (const [bucket, pattern, reason] of patterns) Validations.of(fn).acknowledge({ id: `AwsSolutions-IAM5[Resource::${arnOf(stack, bucket)}/${pattern}]`, reason });
    for (const source of vendorBucketSourcesOf(config)) {
      for (const prefix of [source.vendorPrefix, source.processedPrefix, source.errorPrefix].filter((p) => p !== undefined)) {
        Validations.of(fn).acknowledge({
          id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${source.bucket}/${prefix}*]`,
          reason: "The vendor's bucket: its files are named freely under the prefixes the configuration gives (delivery, processed, error).",
        });
      }
    }
  }
}

/** Qualified Lambda ARNs, X-Ray and log delivery, the Distributed Map's staging objects and child executions. */
function acknowledgeWorkflowFindings(stack: Stack, workflow: StateMachine, functions: StepLambda[], staging: Bucket): void {
  for (const fn of functions) {
    Validations.of(workflow).acknowledge({ id: `AwsSolutions-IAM5[Resource::${arnOf(stack, fn)}:*]`, reason: 'Step Functions invokes the function by qualified ARN (version or alias); CDK grants those forms.' });
  }
  Validations.of(workflow).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason: 'X-Ray tracing and CloudWatch Logs delivery (logs:CreateLogDelivery and friends) take no resource other than "*".',
  });
  Validations.of(workflow).acknowledge({
    id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::<${stack.getLogicalId(staging.node.defaultChild as CfnElement)}>/*]`,
    reason: 'The Distributed Map reads its item list and writes its results (ResultWriter) in the staging bucket, under run-specific keys.',
  });
  const self = `{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"${stack.getLogicalId(workflow.node.defaultChild as CfnElement)}"}]}]}`;
  for (const suffix of [':*', `/${STATE_NAMES.sendChunks}:*`]) {
    Validations.of(workflow).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${self}${suffix}]`,
      reason: 'A Distributed Map starts, describes and stops child executions of its own state machine, whose names are made at run time.',
    });
  }
}
