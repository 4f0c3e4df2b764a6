import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { BadgesImportStack } from '../lib/badges-import-stack';
import { parseConfig } from '../src/config/load';
import { threeFlowsDocument, writeConfigFile } from './support/stack-configs';

/**
 * Resources that hold data or that someone subscribed to. CloudFormation replaces a resource whose logical ID
 * changes: a retained bucket, log group or key would be orphaned with its data and a new, empty one created; the
 * alerts topic and its e-mail subscription would need confirming again; a new state machine loses its executions.
 */
const STATEFUL_TYPES = [
  'AWS::S3::Bucket',
  'AWS::S3::BucketPolicy',
  'AWS::Logs::LogGroup',
  'AWS::KMS::Key',
  'AWS::SNS::Topic',
  'AWS::SNS::TopicPolicy',
  'AWS::SNS::Subscription',
  'AWS::SQS::Queue',
  'AWS::StepFunctions::StateMachine',
];

interface Resource {
  Type: string;
  DeletionPolicy?: string;
}

/** The stack's resources for `document`, synthesized without bundling (logical IDs do not depend on the code). */
function resourcesOf(document: Record<string, unknown>, configFile: string): Record<string, Resource> {
  const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'logical-ids-')), context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new BadgesImportStack(app, 'BadgesImport', { config: parseConfig(document), configFile });
  return (app.synth().getStackByName(stack.stackName).template as { Resources: Record<string, Resource> }).Resources;
}

/** Logical ID -> type of the stateful resources. */
function statefulOf(resources: Record<string, Resource>): Record<string, string> {
  return Object.fromEntries(Object.entries(resources).filter(([, r]) => STATEFUL_TYPES.includes(r.Type)).map(([id, r]) => [id, r.Type]));
}

// Shared by both configurations: the buckets, the workflow and its logs, the trigger dead letters, the alerts.
const COMMON = {
  AccessLogs8B620ECA: 'AWS::S3::Bucket',
  AccessLogsPolicyABDC4D2D: 'AWS::S3::BucketPolicy',
  InboxA8E05DC3: 'AWS::S3::Bucket',
  InboxPolicy63A7501F: 'AWS::S3::BucketPolicy',
  Staging12D1754E: 'AWS::S3::Bucket',
  StagingPolicyB16183D3: 'AWS::S3::BucketPolicy',
  DeadLetter70818289: 'AWS::S3::Bucket',
  DeadLetterPolicy1F4DD48A: 'AWS::S3::BucketPolicy',
  Reports65402A0A: 'AWS::S3::Bucket',
  ReportsPolicyA13B441D: 'AWS::S3::BucketPolicy',
  StageFunctionLogsAE95FC40: 'AWS::Logs::LogGroup',
  SendFunctionLogs5C7ED7E1: 'AWS::Logs::LogGroup',
  FinalizeFunctionLogs13B4723D: 'AWS::Logs::LogGroup',
  SweepFunctionLogsC85D57AB: 'AWS::Logs::LogGroup',
  WorkflowLogs6DD5EEB0: 'AWS::Logs::LogGroup',
  Workflow193EF7C1: 'AWS::StepFunctions::StateMachine',
  TriggerDeadLetters88A2981F: 'AWS::SQS::Queue',
  OperationsAlertsKey52B1A80E: 'AWS::KMS::Key',
  OperationsAlerts8251DA1E: 'AWS::SNS::Topic',
  OperationsAlertsPolicy2A4D1A8D: 'AWS::SNS::TopicPolicy',
} as const;

describe('Stack: logical IDs of stateful resources', () => {
  it('keeps them for the example configuration', () => {
    // Prepare
    const configFile = join(__dirname, '..', 'examples', 'config.json');
    const document = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;

    // Act
    const stateful = statefulOf(resourcesOf(document, configFile));

    // Assess
    expect(stateful).toEqual(COMMON);
  });

  it('keeps them for three dataflows (S3, PGP, SFTP) with an e-mail subscription', () => {
    // Prepare
    const document = threeFlowsDocument();

    // Act
    const stateful = statefulOf(resourcesOf(document, writeConfigFile(document)));

    // Assess
    expect(stateful).toEqual({ ...COMMON, OperationsAlertsopsbrandexample838CF6C6: 'AWS::SNS::Subscription' });
  });

  it('covers every resource CloudFormation retains on delete', () => {
    // Prepare
    const document = threeFlowsDocument();

    // Act
    const resources = resourcesOf(document, writeConfigFile(document));
    const retained = Object.entries(resources).filter(([, r]) => r.DeletionPolicy === 'Retain');

    // Assess: a new retained resource is stateful; add its type above (and its ID to the lists) before it ships.
    expect(retained.length).toBeGreaterThan(0);
    for (const [id, r] of retained) expect([id, STATEFUL_TYPES.includes(r.Type)]).toEqual([id, true]);
  });
});
