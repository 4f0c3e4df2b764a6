import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { App, Stack } from 'aws-cdk-lib';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { BadgesImportStack } from '../lib/badges-import-stack';
import { uploadTargetOf } from '../lib/outputs';
import { type Authorize, type LocalS3, startLocalS3 } from '../src/local/s3';
import { parseConfig } from '../src/config/load';
import { stackPolicies } from '../src/local/iam';
import { LOCAL_ACCOUNT, type Template } from '../src/local/lambda-stack';
import { configDocument } from './support/factories';
import { SFTP_USERS, type Sshd, startSshd } from './support/sshd';
import { writeConfigFile } from './support/stack-configs';

// The vendor of weekly-events (an account, by its root ARN), the vendor of weekly-events-2 (a role, by its ARN), and
// an account that nothing names. Each grants itself everything: cross-account, only the inbox's policy limits it.
const VENDOR = '111122223333';
const OTHER_VENDOR_ROLE = 'arn:aws:iam::444455556666:role/badges-upload';
const STRANGER = '999988887777';

const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
const document = {
  dataflows: [
    { ...flow, source: { type: 's3', prefix: 'inbox/weekly-events/', errorPrefix: 'results/weekly-events/', vendorAccess: { principals: [`arn:aws:iam::${VENDOR}:root`] } } },
    { ...flow, name: 'weekly-events-2', source: { type: 's3', prefix: 'inbox/weekly-events-2/', vendorAccess: { principals: [OTHER_VENDOR_ROLE] } } },
    { ...flow, name: 'own-team', source: { type: 's3', prefix: 'inbox/own-team/' } },
  ],
};

/** The stack's template, synthesized without bundling (the policies do not depend on the code). */
function synthesize(): Template & { Outputs: Record<string, { Value: unknown }> } {
  const configFile = writeConfigFile(document);
  const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'vendor-access-')), context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new BadgesImportStack(app, 'BadgesImport', { config: parseConfig(document), configFile });
  return app.synth().getStackByName(stack.stackName).template as Template & { Outputs: Record<string, { Value: unknown }> };
}

const template = synthesize();
// Buckets by their role, as the twin names them: the inbox is "inbox", the staging bucket "staging".
const buckets = Object.fromEntries(Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::S3::Bucket').map(([id]) => [id, id.replace(/[A-F0-9]{8}$/, '').toLowerCase()]));
const policies = stackPolicies(template, { buckets });

interface Request {
  /** The caller, e.g. `arn:aws:iam::111122223333:user/uploader`. */
  principal: string;
  action: string;
  resource: string;
  context?: Record<string, string>;
}

/**
 * What AWS decides for a request from another account whose own IAM allows everything. Strict by default: a context key
 * the evaluator ignores for the action (so a condition would not see it) fails the test.
 */
async function decide({ principal, action, resource, context }: Request, strict = true): Promise<string> {
  const account = /::(\d{12}):/.exec(principal)![1]!;
  const bucket = /^arn:aws:s3:::([^/]+)/.exec(resource)![1]!;
  const statements = policies.resourcePolicies.filter((p) => p.arn === `arn:aws:s3:::${bucket}`).flatMap((p) => p.policy.Statement);
  const result = await runSimulation(
    {
      request: {
        principal,
        action,
        resource: { resource, accountId: LOCAL_ACCOUNT },
        contextVariables: { 'aws:SecureTransport': 'true', 'aws:PrincipalAccount': account, ...context },
      },
      identityPolicies: [{ name: 'vendor-admin', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] } }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy: statements.length > 0 ? { Version: '2012-10-17', Statement: statements } : undefined,
    },
    {},
  );
  if (result.resultType === 'error') throw new Error(JSON.stringify(result.errors));
  if (strict && result.resultType === 'single' && (result.result.ignoredContextKeys ?? []).length > 0) throw new Error(`Context keys ignored for ${action}: ${result.result.ignoredContextKeys!.join(', ')}`);
  return result.overallResult;
}

const object = (key: string, bucket = 'inbox') => `arn:aws:s3:::${bucket}/${key}`;
const vendor = `arn:aws:iam::${VENDOR}:user/uploader`;
const otherVendor = 'arn:aws:sts::444455556666:assumed-role/badges-upload/upload-session';

describe('Function: grantVendorAccess', () => {
  it('lets the vendor put a file and abort or resume its multipart upload under its dataflow prefix', async () => {
    // Act
    const decisions = await Promise.all(
      ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'].map((action) => decide({ principal: vendor, action, resource: object('inbox/weekly-events/events_1.csv') })),
    );

    // Assess
    expect(decisions).toEqual(['Allowed', 'Allowed', 'Allowed']);
  });

  it('lets a vendor named by its role put under its prefix from a session of that role', async () => {
    // Act
    const decision = await decide({ principal: otherVendor, action: 's3:PutObject', resource: object('inbox/weekly-events-2/events_1.csv') });

    // Assess
    expect(decision).toBe('Allowed');
  });

  it('refuses a put that would encrypt with another key or archive the file (the stage could not read it), and accepts the bucket default said aloud', async () => {
    // Prepare
    const put = (context: Record<string, string>) => decide({ principal: vendor, action: 's3:PutObject', resource: object('inbox/weekly-events/events_1.csv'), context });

    // Act
    const decisions = await Promise.all([
      put({ 's3:x-amz-server-side-encryption': 'aws:kms' }),
      put({ 's3:x-amz-server-side-encryption-customer-algorithm': 'AES256' }),
      put({ 's3:x-amz-storage-class': 'GLACIER' }),
      put({ 's3:x-amz-server-side-encryption': 'AES256', 's3:x-amz-storage-class': 'STANDARD' }),
    ]);

    // Assess
    expect(decisions).toEqual(['ImplicitlyDenied', 'ImplicitlyDenied', 'ImplicitlyDenied', 'Allowed']);
  });

  it('lets the vendor read and list its outcomes under errorPrefix, and list nothing else', async () => {
    // Act
    const read = await decide({ principal: vendor, action: 's3:GetObject', resource: object('results/weekly-events/result_20261130T0100_events_1.rejected.csv') });
    const listed = await Promise.all(
      ['results/weekly-events/', 'results/', 'inbox/weekly-events/', 'results/weekly-events-2/', ''].map((prefix) =>
        decide({ principal: vendor, action: 's3:ListBucket', resource: 'arn:aws:s3:::inbox', context: { 's3:prefix': prefix } }),
      ),
    );

    // Assess
    expect(read).toBe('Allowed');
    expect(listed).toEqual(['Allowed', 'ImplicitlyDenied', 'ImplicitlyDenied', 'ImplicitlyDenied', 'ImplicitlyDenied']);
  });

  it('gives a vendor without an errorPrefix no read or list at all', async () => {
    // Act
    const decisions = await Promise.all([
      decide({ principal: otherVendor, action: 's3:GetObject', resource: object('inbox/weekly-events-2/events_1.csv') }),
      decide({ principal: otherVendor, action: 's3:GetObject', resource: object('results/weekly-events/x.summary.txt') }),
      decide({ principal: otherVendor, action: 's3:ListBucket', resource: 'arn:aws:s3:::inbox', context: { 's3:prefix': 'inbox/weekly-events-2/' } }),
    ]);

    // Assess
    expect(decisions).toEqual(['ImplicitlyDenied', 'ImplicitlyDenied', 'ImplicitlyDenied']);
  });

  it.each([
    ['another dataflow\'s prefix that starts with the same letters', 's3:PutObject', object('inbox/weekly-events-2/events_1.csv')],
    ['a dataflow without vendor access', 's3:PutObject', object('inbox/own-team/events_1.csv')],
    ['processed/', 's3:PutObject', object('processed/weekly-events/r1/events_1.csv')],
    ['failed/', 's3:PutObject', object('failed/weekly-events/r1/events_1.csv')],
    ['replays/', 's3:PutObject', object('replays/weekly-events/t/events_1.csv')],
    ['its own outcomes (read only)', 's3:PutObject', object('results/weekly-events/x.summary.txt')],
    ['the staging bucket', 's3:PutObject', object('runs/r1/chunks/0.json', 'staging')],
    ['the dead-letter bucket', 's3:PutObject', object('rejected/weekly-events/x.csv', 'deadletter')],
    ['its own uploads (read)', 's3:GetObject', object('inbox/weekly-events/events_1.csv')],
    ['its own uploads (an older version)', 's3:GetObjectVersion', object('inbox/weekly-events/events_1.csv')],
    ['its own uploads (delete)', 's3:DeleteObject', object('inbox/weekly-events/events_1.csv')],
    ['its own outcomes (delete)', 's3:DeleteObject', object('results/weekly-events/x.summary.txt')],
    ['its own uploads (tags)', 's3:PutObjectTagging', object('inbox/weekly-events/events_1.csv')],
    ['processed/ (read)', 's3:GetObject', object('processed/weekly-events/r1/events_1.csv')],
    ['the reports bucket (read)', 's3:GetObject', object('reports/weekly-events/r1/report.json', 'reports')],
    ['the inbox\'s policy', 's3:PutBucketPolicy', 'arn:aws:s3:::inbox'],
    ['the inbox\'s versions', 's3:ListBucketVersions', 'arn:aws:s3:::inbox'],
  ])('refuses the vendor %s (%s)', async (_where, action, resource) => {
    // Act
    const decision = await decide({ principal: vendor, action, resource });

    // Assess
    expect(decision).not.toBe('Allowed');
  });

  it('refuses the vendor over plain HTTP, even under its prefix', async () => {
    // Act
    const decision = await decide({ principal: vendor, action: 's3:PutObject', resource: object('inbox/weekly-events/events_1.csv'), context: { 'aws:SecureTransport': 'false' } });

    // Assess
    expect(decision).toBe('ExplicitlyDenied');
  });

  it('gives a principal that no dataflow names nothing, wherever a vendor may write or read', async () => {
    // Act
    const decisions = await Promise.all([
      decide({ principal: `arn:aws:iam::${STRANGER}:root`, action: 's3:PutObject', resource: object('inbox/weekly-events/events_1.csv') }),
      decide({ principal: `arn:aws:iam::${STRANGER}:user/uploader`, action: 's3:PutObject', resource: object('inbox/weekly-events-2/events_1.csv') }),
      decide({ principal: `arn:aws:iam::${STRANGER}:user/uploader`, action: 's3:GetObject', resource: object('results/weekly-events/x.summary.txt') }),
      decide({ principal: 'arn:aws:sts::444455556666:assumed-role/other-role/s', action: 's3:PutObject', resource: object('inbox/weekly-events-2/events_1.csv') }),
    ]);

    // Assess
    expect(decisions).toEqual(['ImplicitlyDenied', 'ImplicitlyDenied', 'ImplicitlyDenied', 'ImplicitlyDenied']);
  });
});

describe('Function: uploadTargetOf', () => {
  let sshd: Sshd;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(() => sshd.stop());

  it('gives an SFTP dataflow a command that puts the file and its marker into the directory the schedule polls, on a real OpenSSH server', async () => {
    // Prepare: the vendor's side, a key login, the server's host key known, a file and its marker.
    const work = mkdtempSync(join(tmpdir(), 'upload-command-'));
    const source = { type: 'sftp', host: '127.0.0.1', port: sshd.port, username: SFTP_USERS.key, privateKeySecret: 'sftp/key', hostKeySha256: sshd.hostKeySha256, directory: sshd.root, processedDirectory: join(sshd.root, 'done'), requireOkFile: true };
    const sftpFlow = parseConfig(configDocument({ source })).dataflows[0]!;
    writeFileSync(join(work, 'key'), sshd.plainPrivateKey);
    chmodSync(join(work, 'key'), 0o600);
    writeFileSync(join(work, 'known_hosts'), `[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}\n`);
    writeFileSync(join(work, 'events_1.csv'), 'member_id\n1\n');
    writeFileSync(join(work, 'events_1.csv.ok'), '');

    // Act: the output's command, FILE named, the vendor's key and known hosts given to sftp.
    const target = uploadTargetOf(sftpFlow, new Bucket(new Stack(), 'Inbox'));
    const command = target.command.replace(/FILE/g, 'events_1.csv').replace(/^(.*\| sftp) /, `$1 -i ${join(work, 'key')} -o UserKnownHostsFile=${join(work, 'known_hosts')} -o StrictHostKeyChecking=yes `);
    await promisify(execFile)('bash', ['-c', command], { cwd: work });

    // Assess
    expect(target.location).toBe(`sftp://${SFTP_USERS.key}@127.0.0.1:${sshd.port}${sshd.root}`);
    expect(readFileSync(join(sshd.root, 'events_1.csv'), 'utf8')).toBe('member_id\n1\n');
    expect(existsSync(join(sshd.root, 'events_1.csv.ok'))).toBe(true);
  });
});

describe('Function: startLocalS3 with a vendor key held to the inbox policy', () => {
  const VENDOR_KEY = 'AKIAVENDOR111122223333';
  // The vendor's key is evaluated as the vendor (another account) against the synthesized bucket policies; the
  // operator's key, which seeds and reads back, is free.
  const authorize: Authorize = async (request) => {
    if (request.accessKeyId !== VENDOR_KEY) return { allowed: true };
    const decision = await decide({ principal: vendor, action: request.action, resource: request.resource, context: request.context as Record<string, string> }, false);
    return decision === 'Allowed' ? { allowed: true } : { allowed: false, message: `${vendor} may not ${request.action} on ${request.resource}` };
  };
  let s3: LocalS3;
  const work = mkdtempSync(join(tmpdir(), 'vendor-cli-'));
  beforeAll(async () => {
    s3 = await startLocalS3({ authorize });
  });
  afterAll(() => s3.close());

  /** The AWS CLI as the vendor runs it, pointed at the embedded S3. */
  const cli = (command: string) =>
    promisify(execFile)('bash', ['-c', command.replace(/^aws s3 /, `aws s3 --endpoint-url ${s3.endpoint} `)], {
      cwd: work,
      env: { ...process.env, AWS_ACCESS_KEY_ID: VENDOR_KEY, AWS_SECRET_ACCESS_KEY: 'vendor-secret', AWS_DEFAULT_REGION: 'us-east-1', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' },
    }).then(
      () => 'done',
      (error: { stderr: string }) => error.stderr.trim(),
    );

  it('takes the output\'s command, single and multipart, under the prefix and refuses it anywhere else', async () => {
    // Prepare: the output's command for the local inbox; a file of one part and one of two (the CLI splits at 8 MiB).
    const [weekly] = parseConfig(document).dataflows;
    const command = template.Outputs.DataflowWeeklyEventsUploadCommand!.Value as { 'Fn::Join': [string, unknown[]] };
    const ready = command['Fn::Join'][1].map((part) => (typeof part === 'string' ? part : 'inbox')).join('');
    writeFileSync(join(work, 'events_1.csv'), 'member_id\n1\n');
    writeFileSync(join(work, 'events_2.csv'), Buffer.alloc(9 * 1024 * 1024, 'a'));

    // Act
    const single = await cli(ready.replace('FILE', 'events_1.csv'));
    const multipart = await cli(ready.replace('FILE', 'events_2.csv'));
    const elsewhere = await cli('aws s3 cp events_1.csv s3://inbox/processed/weekly-events/');
    const withKms = await cli(`${ready.replace('FILE', 'events_1.csv')} --sse aws:kms`);

    // Assess
    expect(ready).toBe(`aws s3 cp FILE s3://inbox/${weekly!.source.prefix}`);
    expect([single, multipart]).toEqual(['done', 'done']);
    expect(elsewhere).toMatch(/AccessDenied/);
    expect(withKms).toMatch(/AccessDenied/);
  }, 120_000);

  it('lets the vendor list and fetch its outcomes with the CLI, and list nothing else', async () => {
    // Prepare: an outcome finalize wrote back (the operator's key seeds it).
    await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'results/weekly-events/result_20261130T0100_events_1.summary.txt', Body: 'total 1' }));

    // Act
    const listed = await cli('aws s3 ls s3://inbox/results/weekly-events/');
    const fetched = await cli('aws s3 cp s3://inbox/results/weekly-events/result_20261130T0100_events_1.summary.txt .');
    const listAll = await cli('aws s3 ls s3://inbox/');

    // Assess
    expect([listed, fetched]).toEqual(['done', 'done']);
    expect(readFileSync(join(work, 'result_20261130T0100_events_1.summary.txt'), 'utf8')).toBe('total 1');
    expect(listAll).toMatch(/AccessDenied/);
  }, 120_000);
});
