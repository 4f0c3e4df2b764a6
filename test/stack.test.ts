import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { Capture, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BadgesImportStack } from '../lib/badges-import-stack';
import { parseConfig } from '../src/config/load';
import { configDocument } from './support/factories';

// Three dataflows: two S3 drops (one without a schedule) and an SFTP poll. The stack must make one upload rule each
// and a schedule for each that has one.
const document = configDocument();
const [flow] = document.dataflows as Array<Record<string, unknown>>;
const sftpSource = {
  type: 'sftp',
  host: 'sftp.vendor.example',
  username: 'brand',
  privateKeySecret: 'sftp/key',
  privateKeyPassphraseSecret: 'sftp/passphrase',
  hostKeySha256: 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s',
  directory: '/outgoing',
  processedDirectory: '/outgoing/done',
};
const twoFlows = {
  dataflows: [
    flow,
    { ...flow, name: 'offline-event', source: { type: 's3', prefix: 'inbox/offline-event/' }, schedule: undefined, decrypt: { privateKeySecret: 'pgp/key', passphraseSecret: 'pgp/passphrase' }, destination: { ...(flow!.destination as object), auth: { type: 'basic', usernameSecret: 'other/user', passwordSecret: 'other/password' } } },
    { ...flow, name: 'vendor-sftp', source: sftpSource, schedule: { cron: '0/15 * * * ? *', timeZone: 'UTC' } },
  ],
};
const configFile = join(mkdtempSync(join(tmpdir(), 'stack-')), 'config.json');
writeFileSync(configFile, JSON.stringify(twoFlows));

// Synthesized once for the whole file: every synth bundles the four Lambdas with esbuild.
const app = new App();
const stack = new BadgesImportStack(app, 'BadgesImportTest', { config: parseConfig(twoFlows), configFile });
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
let nagError: unknown;
try {
  app.synth();
} catch (error) {
  nagError = error;
}
const template = Template.fromStack(stack);

describe('Stack: BadgesImportStack', () => {
  it('passes cdk-nag AwsSolutions with every remaining finding acknowledged', () => {
    // Assess
    expect(nagError).toBeUndefined();
  });

  it('schedules each dataflow with its cron in its time zone', () => {
    // Assess
    template.resourceCountIs('AWS::Scheduler::Schedule', 2);
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
    expect(listedPrefixes(/^FinalizeFunctionServiceRoleDefaultPolicy/)).toEqual(['runs/*']);
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
    expect(writes).toHaveLength(2);
    expect(writes[0]).toContain('/pulls/*');
    expect(writes[1]).toContain('/sftp/vendor-sftp/*');
    expect(writes.join()).not.toContain('inbox/weekly-events');
    template.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: { BADGES_STEP: 'sweep' } }, Timeout: 900, MemorySize: 1024 });
  });
});
