import { Annotations, CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { STEPFUNCTIONS_USE_DISTRIBUTED_MAP_RESULT_WRITER_V2 } from 'aws-cdk-lib/cx-api';
import type { Construct } from 'constructs';
import { DEFAULT_STAGING_RETENTION_DAYS, type WorkflowTimeout, workflowTimeout } from '../src/config/limits';
import type { Config } from '../src/config/schema';
import type { StepLambda } from './defaults';
import { acknowledgeFindings } from './nag';
import { Operations } from './operations';
import { addDataflowOutputs } from './outputs';
import { type StepLambdas, buildStepLambdas, buildSweepLambda } from './step-lambdas';
import { type Storage, buildStorage } from './storage';
import { buildTriggers } from './triggers';
import { grantVendorAccess } from './vendor-access';
import { buildWorkflow } from './workflow';

export { STATE_NAMES } from './workflow';

export interface BadgesImportStackProps extends StackProps {
  /** The validated configuration. */
  config: Config;
  /** Absolute path of the configuration file, bundled with each Lambda and validated again at run time. */
  configFile: string;
  /** Days staged chunks and step results are kept; also the longest a run may last (its chunks must outlive it). @default 7 */
  stagingRetentionDays?: number;
}

/**
 * The badges-import workflow: S3 uploads (and a schedule per dataflow) start a Step Functions execution per file
 * that stages it, fans its chunks out to the badges API through a Distributed Map, and finalizes a report.
 *
 * Built from helpers in the manner of AWS Solutions Constructs: storage, the step Lambdas (each with its grants), the
 * workflow, the sweep Lambda, the triggers, operations, and the cdk-nag acknowledgements. The helpers create their
 * resources in the stack itself, not in constructs of their own, so that every logical ID stays as it was: the
 * buckets and log groups are retained on delete, and a new ID would orphan them (test/logical-ids.test.ts).
 */
export class BadgesImportStack extends Stack {
  readonly stateMachine: StateMachine;
  readonly operations: Operations;
  readonly buckets: Storage;
  readonly lambdas: StepLambdas & { sweep: StepLambda };
  /** The state machine's timeout and what decided it. */
  readonly timeout: WorkflowTimeout;

  constructor(scope: Construct, id: string, props: BadgesImportStackProps) {
    super(scope, id, props);
    // Set here rather than in cdk.json so that every app building this stack (cdk, tests, the local runner) renders
    // the Distributed Map's ResultWriter the same way.
    this.node.setContext(STEPFUNCTIONS_USE_DISTRIBUTED_MAP_RESULT_WRITER_V2, true);
    const { config, configFile } = props;

    const stagingRetentionDays = props.stagingRetentionDays ?? DEFAULT_STAGING_RETENTION_DAYS;
    this.buckets = buildStorage(this, { stagingRetentionDays });
    grantVendorAccess(this.buckets.inbox, config);
    // The alerts topic comes first: finalize publishes each file's summary to it.
    this.operations = new Operations(this, 'Operations', { config });
    const lambdas = buildStepLambdas(this, { config, configFile, buckets: this.buckets, alerts: this.operations.topic });
    this.timeout = workflowTimeout(config, { stagingRetentionDays });
    this.stateMachine = buildWorkflow(this, { lambdas, staging: this.buckets.staging, timeout: Duration.seconds(this.timeout.seconds) });
    if (this.timeout.capped) {
      const { decidedBy, neededSeconds, ceilingSeconds } = this.timeout;
      Annotations.of(this.stateMachine).addWarningV2(
        '@badges-import/workflow-timeout',
        `The largest files of ${decidedBy.map((d) => `${d.dataflow} (csv.maxRecords ${d.maxRecords})`).join(', ')} need ${hours(neededSeconds)} h at the configured rate, more than the ${hours(ceilingSeconds)} h a run may last (the staging retention): such a file would time out. Lower csv.maxRecords, raise the rate or batchSize, or raise stagingRetentionDays`,
      );
    }
    const sweep = buildSweepLambda(this, { config, configFile, buckets: this.buckets, stateMachine: this.stateMachine });
    this.lambdas = { ...lambdas, sweep };
    const triggerDlq = buildTriggers(this, { config, inbox: this.buckets.inbox, sweep });
    this.operations.watch({ stateMachine: this.stateMachine, sweepFunction: sweep, triggerDlq });
    acknowledgeFindings(this, { config, buckets: this.buckets, lambdas, sweep, stateMachine: this.stateMachine });

    new CfnOutput(this, 'InboxBucketName', { value: this.buckets.inbox.bucketName, description: 'Vendors drop files here, under each dataflow prefix' });
    new CfnOutput(this, 'DeadLetterBucketName', { value: this.buckets.deadLetter.bucketName, description: 'Rejected records, one CSV per file' });
    new CfnOutput(this, 'ReportsBucketName', { value: this.buckets.reports.bucketName, description: 'One report.json per run' });
    new CfnOutput(this, 'StateMachineArn', { value: this.stateMachine.stateMachineArn });
    // Per dataflow: where its vendor uploads, and a command that does it.
    addDataflowOutputs(this, config, this.buckets.inbox);
  }
}

const hours = (seconds: number) => (seconds / 3600).toFixed(1);
