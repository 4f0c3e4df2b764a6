import { App, CfnOutput, Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Capture, Match, Template } from 'aws-cdk-lib/assertions';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BadgesImportStack } from '../lib/badges-import-stack';
import { houseBucket } from '../lib/defaults';
import { MAX_OUTPUTS, addDataflowOutputs } from '../lib/outputs';
import { grantVendorAccess } from '../lib/vendor-access';
import { parseConfig } from '../src/config/load';
import { configDocument } from './support/factories';
import { threeFlowsDocument, writeConfigFile } from './support/stack-configs';

// Three dataflows: two S3 drops (one without a schedule) and an SFTP poll. The stack must make one upload rule each
// and a schedule for each that has one.
const threeFlows = threeFlowsDocument();
const configFile = writeConfigFile(threeFlows);

/** Synthesizes an app with cdk-nag's AwsSolutions pack; what it threw (a finding not acknowledged), or undefined. */
function synthesizedWithNag(app: App): unknown {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  try {
    app.synth();
  } catch (error) {
    return error;
  }
  return undefined;
}

// Synthesized once for the whole file: every synth bundles the four Lambdas with esbuild.
const app = new App();
const stack = new BadgesImportStack(app, 'BadgesImportTest', { config: parseConfig(threeFlows), configFile });
const nagError = synthesizedWithNag(app);
const template = Template.fromStack(stack);

describe('Stack: BadgesImportStack', () => {
  it('passes cdk-nag AwsSolutions with every remaining finding acknowledged', () => {
    // Assess
    expect(nagError).toBeUndefined();
  });

  it('schedules each dataflow with its cron in its time zone', () => {
    // Assess
    // Two dataflows' schedules, and weekly-events' arrival check.
    template.resourceCountIs('AWS::Scheduler::Schedule', 3);
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(0 2 ? * MON *)',
      ScheduleExpressionTimezone: 'Asia/Kolkata',
      Target: Match.objectLike({ Input: JSON.stringify({ dataflow: 'weekly-events' }) }),
    });
  });

  it('starts the workflow from S3 "Object Created" events under each dataflow prefix', () => {
    // Assess
    template.resourceCountIs('AWS::Events::Rule', 3);
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.s3'],
        'detail-type': ['Object Created'],
        detail: { bucket: { name: [{ Ref: Match.stringLikeRegexp('^Inbox') }] }, object: { key: [{ prefix: 'inbox/offline-event/' }] } },
      },
      // Through the sweep function, which names executions after the object, so an upload and a sweep cannot both start one.
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SweepFunction'), 'Arn'] }, DeadLetterConfig: Match.anyValue() })],
    });
    template.hasResourceProperties('Custom::S3BucketNotifications', { NotificationConfiguration: { EventBridgeConfiguration: {} } });
  });

  it('fans the staged chunks out with a Distributed Map reading them from S3', () => {
    // Prepare
    const definition = new Capture();
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', { DefinitionString: definition });

    // Act
    const text = JSON.stringify(definition.asObject());

    // Assess
    expect(text).toContain('\\"Mode\\":\\"DISTRIBUTED\\"');
    expect(text).toContain('\\"ItemReader\\":{\\"Resource\\":\\"arn:');
    expect(text).toContain(':states:::s3:getObject\\",\\"ReaderConfig\\":{\\"InputType\\":\\"JSON\\"}');
    expect(text).toContain('\\"Key.$\\":\\"$.chunksKey\\"');
    expect(text).toContain('\\"MaxConcurrencyPath\\":\\"$.maxConcurrency\\"');
    expect(text).toContain('\\"ResultWriter\\"');
    expect(text).toContain('\\"ToleratedFailurePercentage\\":100');
  });

  it('runs every Lambda on Node.js 24 on arm64, with X-Ray and JSON logs', () => {
    // Assess
    const functions = template.findResources('AWS::Lambda::Function', { Properties: { Environment: { Variables: { BADGES_STEP: Match.anyValue() } } } });
    expect(Object.keys(functions)).toHaveLength(4);
    for (const fn of Object.values(functions)) {
      expect(fn.Properties).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'], TracingConfig: { Mode: 'Active' }, LoggingConfig: { LogFormat: 'JSON' } });
    }
  });

  it('traces the workflow with X-Ray, so a trace follows a file from the state machine into each step', () => {
    // Assess
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', { TracingConfiguration: { Enabled: true } });
  });

  it('keeps Powertools Tracer out of the stage only, whose per-record awaits its async hooks would tax', () => {
    // Assess
    const functions = template.findResources('AWS::Lambda::Function', { Properties: { Environment: { Variables: { BADGES_STEP: Match.anyValue() } } } });
    const disabled = Object.values(functions).filter((fn) => fn.Properties.Environment.Variables.POWERTOOLS_TRACE_ENABLED === 'false');
    expect(disabled.map((fn) => fn.Properties.Environment.Variables.BADGES_STEP)).toEqual(['stage']);
  });

  it('bounds the stage function\'s heap, with room for the chunks its largest recordsPerWorker makes', () => {
    // Assess: 25 records per worker in these dataflows: 128 MB + 7 chunks of 25 records at 2 KB, rounded up.
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ BADGES_STEP: 'stage', NODE_OPTIONS: '--enable-source-maps --max-semi-space-size=16 --max-old-space-size=129' }) },
    });
  });

  it('encrypts every bucket, blocks public access and refuses plain HTTP', () => {
    // Assess
    const buckets = template.findResources('AWS::S3::Bucket');
    expect(Object.keys(buckets)).toHaveLength(5);
    for (const bucket of Object.values(buckets)) {
      expect(bucket.Properties).toMatchObject({
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      });
    }
    const policies = template.findResources('AWS::S3::BucketPolicy', {
      Properties: { PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) } },
    });
    expect(Object.keys(policies)).toHaveLength(5);
  });

  it('expires staged data by lifecycle', () => {
    // Assess
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: { Rules: [Match.objectLike({ ExpirationInDays: 7, Status: 'Enabled' })] },
    });
  });

  it('lets the steps that ask whether an object exists list that prefix (else S3 answers 403, not 404)', () => {
    // Prepare
    const statements = (name: RegExp) => {
      const [, policy] = Object.entries(template.findResources('AWS::IAM::Policy')).find(([id]) => name.test(id))!;
      return (policy.Properties as { PolicyDocument: { Statement: Array<{ Action: string | string[]; Condition?: { StringLike?: { 's3:prefix'?: string[] } } }> } }).PolicyDocument.Statement;
    };
    const listedPrefixes = (name: RegExp) => statements(name).filter((s) => [s.Action].flat().includes('s3:ListBucket')).flatMap((s) => s.Condition?.StringLike?.['s3:prefix'] ?? []);

    // Assess
    expect(listedPrefixes(/^StageFunctionServiceRoleDefaultPolicy/).sort()).toEqual(['imported/*', 'inbox/offline-event/*', 'inbox/weekly-events/*', 'sftp/vendor-sftp/*']);
    expect(listedPrefixes(/^FinalizeFunctionServiceRoleDefaultPolicy/).sort()).toEqual(['imported/*', 'runs/*']);
    expect(statements(/^StageFunctionServiceRoleDefaultPolicy/).some((s) => [s.Action].flat().includes('s3:GetObject') && JSON.stringify(s).includes('/runs/*'))).toBe(true);
  });

  it('lets only the send step read the API credentials, only the stage step the PGP secrets, and only sweep and finalize the SFTP ones', () => {
    // Prepare
    const secretsReadBy = (name: RegExp) => {
      const policies = template.findResources('AWS::IAM::Policy');
      const [, policy] = Object.entries(policies).find(([id]) => name.test(id))!;
      const statements = (policy.Properties as { PolicyDocument: { Statement: Array<{ Action: string | string[]; Resource: unknown }> } }).PolicyDocument.Statement;
      return statements
        .filter((s) => [s.Action].flat().includes('secretsmanager:GetSecretValue'))
        .map((s) => JSON.stringify(s.Resource).match(/secret:([\w/]+)-/)![1])
        .sort();
    };
    const readers = template.findResources('AWS::IAM::Policy', {
      Properties: { PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: Match.arrayWith(['secretsmanager:GetSecretValue']) })]) } },
    });

    // Assess
    expect(Object.keys(readers).sort()).toEqual([
      expect.stringMatching(/^FinalizeFunctionServiceRoleDefaultPolicy/),
      expect.stringMatching(/^SendFunctionServiceRoleDefaultPolicy/),
      expect.stringMatching(/^StageFunctionServiceRoleDefaultPolicy/),
      expect.stringMatching(/^SweepFunctionServiceRoleDefaultPolicy/),
    ]);
    expect(secretsReadBy(/^SendFunction/)).toEqual(['api/password', 'api/user', 'other/password', 'other/user']);
    expect(secretsReadBy(/^StageFunction/)).toEqual(['pgp/key', 'pgp/passphrase']);
    // The SFTP credentials: the sweep pulls with them, finalize writes the outcome back with them.
    expect(secretsReadBy(/^SweepFunction/)).toEqual(['sftp/key', 'sftp/passphrase']);
    expect(secretsReadBy(/^FinalizeFunction/)).toEqual(['sftp/key', 'sftp/passphrase']);
  });

  it('lets the sweep stage a pulled file under pulls/ and copy it under its SFTP dataflow prefix only', () => {
    // Prepare
    const [, policy] = Object.entries(template.findResources('AWS::IAM::Policy')).find(([id]) => /^SweepFunctionServiceRoleDefaultPolicy/.test(id))!;
    const statements = (policy.Properties as { PolicyDocument: { Statement: Array<{ Action: string | string[]; Resource: unknown }> } }).PolicyDocument.Statement;
    const writes = statements.filter((s) => [s.Action].flat().includes('s3:PutObject')).map((s) => JSON.stringify(s.Resource));

    // Assess
    expect(writes).toHaveLength(3);
    expect(writes[0]).toContain('/pulls/*');
    expect(writes[1]).toContain('/sftp/vendor-sftp/*');
    expect(writes[2]).toContain('/arrivals/*');
    expect(writes.join()).not.toContain('inbox/weekly-events');
    template.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: { BADGES_STEP: 'sweep' } }, Timeout: 900, MemorySize: 1024 });
  });

  describe('Operations', () => {
    const alarmsNamed = (prefix: string) =>
      Object.entries(template.findResources('AWS::CloudWatch::Alarm')).filter(([id]) => id.startsWith(`Operations${prefix.replace(/-/g, '')}`)).map(([, a]) => a.Properties as Record<string, unknown>);

    it('alarms per dataflow on a FAILED file and on the rejected share, with the threshold from the configuration', () => {
      // Assess: weekly-events sets 2.5%; the others keep the default 1% (Connect+'s).
      for (const name of ['weekly-events', 'offline-event', 'vendor-sftp']) {
        template.hasResourceProperties('AWS::CloudWatch::Alarm', {
          Namespace: 'BadgesImport',
          MetricName: 'FilesFailed',
          Dimensions: Match.arrayWith([{ Name: 'dataflow', Value: name }, { Name: 'service', Value: 'badges-import' }]),
          Statistic: 'Sum',
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          TreatMissingData: 'notBreaching',
        });
      }
      const share = (name: string) => Object.values(template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'RejectedPercent', Dimensions: Match.arrayWith([{ Name: 'dataflow', Value: name }]) } }));
      expect(share('weekly-events').map((a) => (a.Properties as { Threshold: number }).Threshold)).toEqual([2.5]);
      expect(share('offline-event').map((a) => (a.Properties as { Threshold: number }).Threshold)).toEqual([1]);
      expect(alarmsNamed('RejectedShare')).toHaveLength(3);
    });

    it('alarms when the configured share of a file\'s records exhausted their retries (Connect+ alerts at 10%)', () => {
      // Assess
      const exhausted = (name: string) => Object.values(template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'RetriesExhaustedPercent', Dimensions: Match.arrayWith([{ Name: 'dataflow', Value: name }]) } }));
      expect(exhausted('weekly-events').map((a) => a.Properties as Record<string, unknown>)).toEqual([
        expect.objectContaining({ Namespace: 'BadgesImport', Statistic: 'Maximum', Threshold: 25, ComparisonOperator: 'GreaterThanOrEqualToThreshold', TreatMissingData: 'notBreaching', AlarmDescription: expect.stringContaining('RETRIES_EXHAUSTED') }),
      ]);
      expect(exhausted('offline-event').map((a) => (a.Properties as { Threshold: number }).Threshold)).toEqual([10]);
      expect(alarmsNamed('RetriesExhausted')).toHaveLength(3);
    });

    it('checks for a missing file the configured minutes after the schedule, in its time zone, and alarms on it', () => {
      // Assess: schedule 02:00 Asia/Kolkata on Mondays + 90 minutes.
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        ScheduleExpression: 'cron(30 3 ? * MON *)',
        ScheduleExpressionTimezone: 'Asia/Kolkata',
        Target: Match.objectLike({ Input: JSON.stringify({ dataflow: 'weekly-events', check: 'arrival' }) }),
      });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'NoFileArrived', Dimensions: Match.arrayWith([{ Name: 'dataflow', Value: 'weekly-events' }]), Threshold: 1 });
      expect(Object.keys(template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'NoFileArrived' } }))).toHaveLength(1);
    });

    it('alarms on the workflow failing other than by a FAILED file, on timeouts, and on the sweep failing', () => {
      const math = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties as { Metrics?: Array<{ Expression?: string }> }).find((p) => p.Metrics?.some((m) => m.Expression));
      expect(math!.Metrics!.find((m) => m.Expression)!.Expression).toBe('FILL(failed, 0) - FILL(filesFailed, 0)');
      expect(math!.Metrics).toContainEqual(expect.objectContaining({ Id: 'filesFailed', MetricStat: expect.objectContaining({ Metric: { Namespace: 'BadgesImport', MetricName: 'FilesFailed', Dimensions: [{ Name: 'service', Value: 'badges-import' }] } }) }));
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { Namespace: 'AWS/States', MetricName: 'ExecutionsTimedOut', Threshold: 1 });
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { Namespace: 'AWS/Lambda', MetricName: 'Errors', Dimensions: [{ Name: 'FunctionName', Value: { Ref: Match.stringLikeRegexp('^SweepFunction') } }] });
    });

    it('sends every alarm, and the per-file notification, to one encrypted topic with the configured e-mail subscription', () => {
      const topics = template.findResources('AWS::SNS::Topic');
      expect(Object.keys(topics)).toHaveLength(1);
      const [topicId] = Object.keys(topics);
      expect(topics[topicId!]!.Properties).toMatchObject({ KmsMasterKeyId: { 'Fn::GetAtt': [expect.stringMatching(/^OperationsAlertsKey/), 'Arn'] } });
      template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@brand.example', TopicArn: { Ref: topicId } });
      const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
      // Per dataflow: FileFailed, RejectedShare, RetriesExhausted, RecordsUnaccounted; NoFileArrived for one; three for the workflow.
      expect(alarms.length).toBe(3 + 3 + 3 + 3 + 1 + 3);
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: Match.absent(),
        MetricName: 'RecordsUnaccounted',
        Threshold: 1,
        Dimensions: Match.arrayWith([{ Name: 'dataflow', Value: 'weekly-events' }]),
        AlarmDescription: Match.stringLikeRegexp('RECORDS_UNACCOUNTED'),
      });
      for (const a of alarms) expect((a.Properties as { AlarmActions: unknown }).AlarmActions).toEqual([{ Ref: topicId }]);
      // CloudWatch may use the key; finalize may publish and is told where.
      template.hasResourceProperties('AWS::KMS::Key', {
        EnableKeyRotation: true,
        KeyPolicy: { Statement: Match.arrayWith([Match.objectLike({ Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: ['kms:Decrypt', 'kms:GenerateDataKey*'] })]) },
      });
      template.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: Match.objectLike({ BADGES_STEP: 'finalize', ALERTS_TOPIC_ARN: { Ref: topicId } }) } });
    });

    it('names the metric namespace for every Lambda and draws a dashboard of runs, records, latency and throttling', () => {
      const functions = template.findResources('AWS::Lambda::Function', { Properties: { Environment: { Variables: { BADGES_STEP: Match.anyValue() } } } });
      for (const fn of Object.values(functions)) {
        expect(fn.Properties).toMatchObject({ Environment: { Variables: { POWERTOOLS_METRICS_NAMESPACE: 'BadgesImport', POWERTOOLS_SERVICE_NAME: 'badges-import' } } });
      }
      const dashboards = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
      expect(dashboards).toHaveLength(1);
      const body = JSON.stringify(dashboards[0]!.Properties);
      for (const title of ['Runs', 'Records by outcome', 'API latency (ms, mean per chunk)', 'API throttling and retries', 'Alarms']) expect(body).toContain(title);
      for (const metricName of ['FilesProcessed', 'RecordsAccepted', 'RecordsRejected', 'RecordsFiltered', 'ApiLatency', 'ApiThrottles']) expect(body).toContain(metricName);
    });
  });
});

/** A role's statements as `actions -> resource [condition]` lines, logical ids without their hash suffix. */
function statementsIn(synthesized: Template, policyPrefix: string): string[] {
  const [, policy] = Object.entries(synthesized.findResources('AWS::IAM::Policy')).find(([id]) => id.startsWith(policyPrefix))!;
  const name = (r: unknown) =>
    JSON.stringify(r)
      .replace(/\{"Fn::Join":\["",\["arn:",\{"Ref":"AWS::Partition"\},"(:s3:::[^"]+)"\]\]\}/g, 'arn:aws$1')
      .replace(/\{"Fn::GetAtt":\["([A-Za-z]+?)[0-9A-F]{8}","Arn"\]\}/g, '$1')
      .replace(/\{"Ref":"([A-Za-z]+?)[0-9A-F]{8}"\}/g, '$1')
      .replace(/\{"Fn::Join":\["",\[([A-Za-z]+),"([^"]*)"\]\]\}/g, '$1$2')
      .replace(/\{"Fn::Join":\["",\["arn:",\{"Ref":"AWS::Partition"\},":secretsmanager:",\{"Ref":"AWS::Region"\},":",\{"Ref":"AWS::AccountId"\},":secret:([^"]+)"\]\]\}/g, 'secret:$1')
      .replace(/"/g, '');
  const statements = (policy.Properties as { PolicyDocument: { Statement: Array<{ Action: string | string[]; Resource: unknown; Condition?: unknown }> } }).PolicyDocument.Statement;
  return statements.flatMap((s) => [s.Resource].flat().map((r) => `${[s.Action].flat().sort().join(',')} -> ${name(r)}${s.Condition ? ` ${name(s.Condition)}` : ''}`)).sort();
}

describe('IAM: every role, statement by statement', () => {
  const statementsOf = (policyPrefix: string): string[] => statementsIn(template, policyPrefix);
  const XRAY = 'xray:PutTelemetryRecords,xray:PutTraceSegments -> *';
  const prefixes = ['inbox/weekly-events/', 'inbox/offline-event/', 'sftp/vendor-sftp/'];

  it('the stage reads its dataflows\' objects, writes zip entries there and its own staging, and reads only the PGP secrets', () => {
    expect(statementsOf('StageFunctionServiceRoleDefaultPolicy')).toEqual(
      [
        XRAY,
        // Any key a run may start from, by the version its trigger saw (GetObjectVersion).
        ...[...prefixes, 'replays/', 'processed/', 'failed/'].map((p) => `s3:GetObject,s3:GetObjectVersion -> Inbox/${p}*`),
        ...prefixes.map((p) => `s3:AbortMultipartUpload,s3:PutObject -> Inbox/${p}*`),
        's3:AbortMultipartUpload,s3:PutObject -> Staging/runs/*',
        's3:GetObject -> Staging/runs/*',
        's3:ListBucket -> Reports {StringLike:{s3:prefix:[imported/*]}}',
        `s3:ListBucket -> Inbox {StringLike:{s3:prefix:[${prefixes.map((p) => `${p}*`).join(',')}]}}`,
        // The content claim: a conditional put, and a read of the run holding it.
        's3:GetObject,s3:PutObject -> Reports/imported/*',
        'secretsmanager:DescribeSecret,secretsmanager:GetSecretValue -> secret:pgp/key-??????',
        'secretsmanager:DescribeSecret,secretsmanager:GetSecretValue -> secret:pgp/passphrase-??????',
      ].sort(),
    );
  });

  it('the send step reads and writes its run\'s staging, and reads only the API credentials', () => {
    expect(statementsOf('SendFunctionServiceRoleDefaultPolicy')).toEqual(
      [
        XRAY,
        's3:GetObject,s3:PutObject -> Staging/runs/*',
        ...['api/user', 'api/password', 'other/user', 'other/password'].map((n) => `secretsmanager:DescribeSecret,secretsmanager:GetSecretValue -> secret:${n}-??????`),
      ].sort(),
    );
  });

  it('finalize reads staging, writes rejects and reports, moves sources, publishes the summary, and reads only the SFTP credentials', () => {
    expect(statementsOf('FinalizeFunctionServiceRoleDefaultPolicy')).toEqual(
      [
        XRAY,
        's3:ListBucket -> Staging {StringLike:{s3:prefix:[runs/*]}}',
        's3:GetObject -> Staging/runs/*',
        's3:AbortMultipartUpload,s3:PutObject -> DeadLetter/rejected/*',
        's3:PutObject -> Reports/reports/*',
        's3:PutObject -> Reports/imported/*',
        // Settling the content claim: read it, and delete it when a FAILED run sent nothing.
        's3:DeleteObject,s3:GetObject -> Reports/imported/*',
        's3:ListBucket -> Reports {StringLike:{s3:prefix:[imported/*]}}',
        // Moving exactly the version the run read, from wherever a run may start.
        ...[...prefixes, 'replays/', 'processed/', 'failed/'].map((p) => `s3:DeleteObject,s3:DeleteObjectVersion,s3:GetObject,s3:GetObjectVersion -> Inbox/${p}*`),
        // A source over 5 GiB moves by multipart copy, aborted if a part fails.
        's3:AbortMultipartUpload,s3:PutObject -> Inbox/processed/*',
        's3:AbortMultipartUpload,s3:PutObject -> Inbox/failed/*',
        // The SFTP (and S3 errorPrefix) write-back reads the rejected records it wrote.
        's3:GetObject -> DeadLetter/rejected/*',
        // offline-event's outcomes are written back under its errorPrefix in the inbox, and nowhere else.
        's3:AbortMultipartUpload,s3:PutObject -> Inbox/results/offline-event/*',
        'sns:Publish -> OperationsAlerts',
        'kms:Decrypt,kms:GenerateDataKey* -> OperationsAlertsKey',
        'secretsmanager:DescribeSecret,secretsmanager:GetSecretValue -> secret:sftp/key-??????',
        'secretsmanager:DescribeSecret,secretsmanager:GetSecretValue -> secret:sftp/passphrase-??????',
      ].sort(),
    );
  });

  it('the sweep lists the prefixes, starts executions, pulls SFTP files through pulls/, records arrivals, and reads only the SFTP credentials', () => {
    expect(statementsOf('SweepFunctionServiceRoleDefaultPolicy')).toEqual(
      [
        XRAY,
        `s3:ListBucket,s3:ListBucketVersions -> Inbox {StringLike:{s3:prefix:[${prefixes.map((p) => `${p}*`).join(',')}]}}`,
        'states:StartExecution -> Workflow',
        's3:AbortMultipartUpload,s3:DeleteObject,s3:GetObject,s3:PutObject -> Staging/pulls/*',
        's3:AbortMultipartUpload,s3:GetObject,s3:PutObject -> Inbox/sftp/vendor-sftp/*',
        'secretsmanager:DescribeSecret,secretsmanager:GetSecretValue -> secret:sftp/key-??????',
        'secretsmanager:DescribeSecret,secretsmanager:GetSecretValue -> secret:sftp/passphrase-??????',
        's3:GetObject,s3:PutObject -> Reports/arrivals/*',
        's3:ListBucket -> Reports {StringLike:{s3:prefix:[arrivals/*]}}',
      ].sort(),
    );
  });

  it('grants "*" only for X-Ray and log delivery, which take no other resource', () => {
    const wildcards = Object.values(template.findResources('AWS::IAM::Policy')).flatMap((p) =>
      (p.Properties as { PolicyDocument: { Statement: Array<{ Action: string | string[]; Resource: unknown }> } }).PolicyDocument.Statement.filter((s) => [s.Resource].flat().includes('*')).flatMap((s) => [s.Action].flat()),
    );
    expect(wildcards.every((a) => /^(xray|logs):/.test(a))).toBe(true);
    expect(wildcards.length).toBeGreaterThan(0);
  });
});

// The vendor's own bucket (polled, one through an assumed role) and an inbox drop that gets its outcomes written back:
// a synthesis of its own, so that the three-flow stack's listings above stay as they were.
describe('Stack: many dataflows', () => {
  it('synthesizes twelve dataflows: the workflow alarm reads two metrics whatever their number (CloudWatch takes ten)', () => {
    // Prepare: one metric per dataflow in the alarm's math stopped synthesis at ten dataflows (TooManyMetricsInMathExpression).
    const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
    const document = { dataflows: Array.from({ length: 12 }, (_, i) => ({ ...flow, name: `flow-${i}`, source: { type: 's3', prefix: `inbox/flow-${i}/` } })) };

    // Act
    const stack = new BadgesImportStack(new App(), 'Many', { config: parseConfig(document), configFile: writeConfigFile(document) });
    const alarms = Template.fromStack(stack).findResources('AWS::CloudWatch::Alarm');

    // Assess
    const math = Object.values(alarms).map((a) => a.Properties as { Metrics?: unknown[] }).filter((p) => p.Metrics);
    expect(math).toHaveLength(1);
    expect(math[0]!.Metrics).toHaveLength(3);
  });
});

describe('Stack: S3 sources with errorPrefix and vendor buckets', () => {
  const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
  const schedule = { cron: '0/15 * * * ? *', timeZone: 'UTC' };
  const document = {
    dataflows: [
      { ...flow, source: { type: 's3', prefix: 'inbox/weekly-events/', errorPrefix: 'results/weekly-events/' } },
      {
        ...flow,
        name: 'vendor-role',
        source: { type: 's3', bucket: 'brand-exports', region: 'eu-west-1', roleArn: 'arn:aws:iam::111122223333:role/badges-reader', externalId: 'badges-7f3a', prefix: 'outgoing/', processedPrefix: 'done/', errorPrefix: 'results/' },
        schedule,
      },
      { ...flow, name: 'vendor-policy', source: { type: 's3', bucket: 'brand-drop', prefix: 'badges/in/', processedPrefix: 'badges/done/', errorPrefix: 'badges/results/' }, schedule },
    ],
  };
  const vendorApp = new App();
  const vendorStack = new BadgesImportStack(vendorApp, 'BadgesImportVendor', { config: parseConfig(document), configFile: writeConfigFile(document) });
  const vendorNagError = synthesizedWithNag(vendorApp);
  const vendorTemplate = Template.fromStack(vendorStack);

  it('passes cdk-nag with the vendor bucket prefixes acknowledged', () => {
    expect(vendorNagError).toBeUndefined();
  });

  it('lets the sweep assume the vendor role, or list, read and move under the configured prefixes of the bucket that grants our role', () => {
    // Act
    const sweep = statementsIn(vendorTemplate, 'SweepFunctionServiceRoleDefaultPolicy');

    // Assess
    expect(sweep).toEqual(
      expect.arrayContaining([
        'sts:AssumeRole -> arn:aws:iam::111122223333:role/badges-reader',
        's3:ListBucket -> arn:aws:s3:::brand-drop {StringLike:{s3:prefix:[badges/in/*,badges/done/*]}}',
        's3:GetObject -> arn:aws:s3:::brand-drop/badges/in/*',
        's3:GetObject -> arn:aws:s3:::brand-drop/badges/done/*',
        's3:AbortMultipartUpload,s3:PutObject -> arn:aws:s3:::brand-drop/badges/done/*',
        's3:DeleteObject -> arn:aws:s3:::brand-drop/badges/in/*',
        // The copy lands under the dataflow's inbox prefix, where the upload rule starts its run.
        's3:AbortMultipartUpload,s3:GetObject,s3:PutObject -> Inbox/s3/vendor-role/*',
        's3:AbortMultipartUpload,s3:GetObject,s3:PutObject -> Inbox/s3/vendor-policy/*',
      ]),
    );
    // Nothing in the vendor's bucket outside those prefixes, and nothing at all in the one reached by the role.
    expect(sweep.filter((line) => line.includes('brand-')).every((line) => /brand-drop(\/badges\/(in|done)\/\*| \{)/.test(line))).toBe(true);
  });

  it('lets finalize write outcomes under each errorPrefix only: in the inbox for the drop, in the vendor bucket, or as the vendor role', () => {
    const finalize = statementsIn(vendorTemplate, 'FinalizeFunctionServiceRoleDefaultPolicy');

    expect(finalize).toEqual(
      expect.arrayContaining([
        's3:AbortMultipartUpload,s3:PutObject -> Inbox/results/weekly-events/*',
        's3:AbortMultipartUpload,s3:PutObject -> arn:aws:s3:::brand-drop/badges/results/*',
        'sts:AssumeRole -> arn:aws:iam::111122223333:role/badges-reader',
      ]),
    );
    expect(finalize.filter((line) => line.includes('brand-'))).toEqual(['s3:AbortMultipartUpload,s3:PutObject -> arn:aws:s3:::brand-drop/badges/results/*']);
  });

  it('polls each vendor bucket on its schedule, and starts its runs from the upload rule on its inbox prefix', () => {
    for (const name of ['vendor-role', 'vendor-policy']) {
      vendorTemplate.hasResourceProperties('AWS::Scheduler::Schedule', { ScheduleExpression: 'cron(0/15 * * * ? *)', Target: Match.objectLike({ Input: JSON.stringify({ dataflow: name }) }) });
      vendorTemplate.hasResourceProperties('AWS::Events::Rule', { EventPattern: Match.objectLike({ detail: Match.objectLike({ object: { key: [{ prefix: `s3/${name}/` }] } }) }) });
    }
  });
});

describe('Outputs: where each dataflow\'s vendor uploads', () => {
  const inbox = { Ref: Match.stringLikeRegexp('^Inbox[0-9A-F]{8}$') };

  it('gives an inbox dataflow its s3:// location and an aws s3 cp command, keyed by its name', () => {
    // Assess
    template.hasOutput('DataflowWeeklyEventsUploadLocation', { Value: { 'Fn::Join': ['', ['s3://', inbox, '/inbox/weekly-events/']] }, Description: Match.stringLikeRegexp('^weekly-events: Where the vendor puts files .*\\^events_') });
    template.hasOutput('DataflowWeeklyEventsUploadCommand', { Value: { 'Fn::Join': ['', ['aws s3 cp FILE s3://', inbox, '/inbox/weekly-events/']] } });
    template.hasOutput('DataflowOfflineEventUploadCommand', { Value: { 'Fn::Join': ['', ['aws s3 cp FILE s3://', inbox, '/inbox/offline-event/']] } });
  });

  it('gives an SFTP dataflow the vendor\'s directory and an sftp command in batch mode', () => {
    // Assess
    template.hasOutput('DataflowVendorSftpUploadLocation', { Value: 'sftp://brand@sftp.vendor.example:22/outgoing' });
    template.hasOutput('DataflowVendorSftpUploadCommand', { Value: "printf 'put FILE\\n' | sftp -b - -P 22 brand@sftp.vendor.example:/outgoing/" });
  });

  it('keeps the stack\'s own outputs and adds two per dataflow', () => {
    // Assess
    expect(Object.keys(template.findOutputs('*')).sort()).toEqual(
      [
        'InboxBucketName',
        'DeadLetterBucketName',
        'ReportsBucketName',
        'StateMachineArn',
        ...['WeeklyEvents', 'OfflineEvent', 'VendorSftp'].flatMap((id) => [`Dataflow${id}UploadLocation`, `Dataflow${id}UploadCommand`]),
      ].sort(),
    );
  });

  it('stops at CloudFormation\'s 200 outputs and names the dataflows left without, in a warning', () => {
    // Prepare: 4 outputs of the stack's own and 100 dataflows: 98 fit.
    const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
    const config = parseConfig({ dataflows: Array.from({ length: 100 }, (_, i) => ({ ...flow, name: `flow-${i}`, source: { type: 's3', prefix: `inbox/flow-${i}/` } })) });
    const stack = new Stack(new App(), 'Outputs');
    for (const id of ['A', 'B', 'C', 'D']) new CfnOutput(stack, id, { value: id });

    // Act
    addDataflowOutputs(stack, config, new Bucket(stack, 'Inbox'));

    // Assess
    const outputs = Template.fromStack(stack).findOutputs('*');
    expect(Object.keys(outputs)).toHaveLength(MAX_OUTPUTS);
    expect(outputs).toHaveProperty('DataflowFlow97UploadCommand');
    expect(outputs).not.toHaveProperty('DataflowFlow98UploadLocation');
    Annotations.fromStack(stack).hasWarning('/Outputs', Match.stringLikeRegexp('2 dataflow\\(s\\) have no upload outputs \\(flow-98, flow-99\\)'));
  });
});

describe('Inbox policy: vendor access', () => {
  /** The inbox policy's statements for one dataflow's vendor, by Sid. */
  const vendorStatements = () => {
    const [policy] = Object.values(template.findResources('AWS::S3::BucketPolicy', { Properties: { Bucket: { Ref: Match.stringLikeRegexp('^Inbox') } } }));
    const statements = (policy!.Properties as { PolicyDocument: { Statement: Array<{ Sid?: string }> } }).PolicyDocument.Statement;
    return Object.fromEntries(statements.filter((s) => s.Sid?.startsWith('Vendor')).map((s) => [s.Sid, s]));
  };
  const principals = { AWS: ['arn:aws:iam::111122223333:root', { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::444455556666:root']] }] };
  const objects = (prefix: string) => ({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [expect.stringMatching(/^Inbox/), 'Arn'] }, `/${prefix}*`]] });

  it('lets the dataflow\'s principals put under its prefix with the bucket\'s encryption, abort their uploads, and read and list their outcomes', () => {
    // Assess
    expect(vendorStatements()).toEqual({
      VendorOfflineEventUpload: {
        Sid: 'VendorOfflineEventUpload',
        Effect: 'Allow',
        Principal: principals,
        Action: 's3:PutObject',
        Resource: objects('inbox/offline-event/'),
        Condition: {
          StringEqualsIfExists: { 's3:x-amz-server-side-encryption': 'AES256', 's3:x-amz-storage-class': 'STANDARD' },
          Null: { 's3:x-amz-server-side-encryption-customer-algorithm': 'true' },
        },
      },
      VendorOfflineEventMultipart: { Sid: 'VendorOfflineEventMultipart', Effect: 'Allow', Principal: principals, Action: ['s3:AbortMultipartUpload', 's3:ListMultipartUploadParts'], Resource: objects('inbox/offline-event/') },
      VendorOfflineEventReadOutcomes: { Sid: 'VendorOfflineEventReadOutcomes', Effect: 'Allow', Principal: principals, Action: 's3:GetObject', Resource: objects('results/offline-event/') },
      VendorOfflineEventListOutcomes: {
        Sid: 'VendorOfflineEventListOutcomes',
        Effect: 'Allow',
        Principal: principals,
        Action: 's3:ListBucket',
        Resource: { 'Fn::GetAtt': [expect.stringMatching(/^Inbox/), 'Arn'] },
        Condition: { StringLike: { 's3:prefix': ['results/offline-event/*'] } },
      },
    });
  });

  it('warns at synthesis when the vendors\' statements may exceed S3\'s 20 KB bucket policy', () => {
    // Prepare: nine dataflows whose vendors each name twelve roles, and one that names its account.
    const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
    const roles = Array.from({ length: 12 }, (_, i) => `arn:aws:iam::111122223333:role/badges-upload-${i}`);
    const configOf = (count: number, principals: string[]) =>
      parseConfig({ dataflows: Array.from({ length: count }, (_, i) => ({ ...flow, name: `flow-${i}`, source: { type: 's3', prefix: `inbox/flow-${i}/`, errorPrefix: `results/flow-${i}/`, vendorAccess: { principals } } })) });
    const warningsOf = (count: number, principals: string[]) => {
      const stack = new Stack(new App(), 'Policy');
      grantVendorAccess(houseBucket(stack, 'Inbox', undefined), configOf(count, principals));
      return Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('S3 takes 20 KB'));
    };

    // Act
    const large = warningsOf(9, roles);
    const small = warningsOf(1, ['111122223333']);

    // Assess
    expect(large).toHaveLength(1);
    expect(small).toEqual([]);
  });
});
