import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { readBudget } from '../src/aws/budget';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { destinationKey } from '../src/core/budget';
import { sharedLocalDynamo, tablesOf } from '../src/local/dynamodb';
import { parseConfig } from '../src/config/load';
import { type LocalAwsEndpoints, startLocalAwsEndpoints } from '../src/local/aws-endpoints';
import { type Authorize, type TwinIdentity, createAuthorizer, stackPolicies } from '../src/local/iam';
import { type TemplateTransform, localSecretArn, synthesizeStack } from '../src/local/lambda-stack';
import { runLocal } from '../src/local/runner';
import { LOCAL_BUCKETS } from '../src/local/s3';
import { type LocalServices, startLocalServices, stopLocalServices } from './support/local';
import { KNOWN_BADGES, SECRETS, configDocument, toCsv, validRow } from './support/factories';

const work = mkdtempSync(join(tmpdir(), 'twin-iam-'));
const configFile = join(work, 'config.json');
writeFileSync(configFile, JSON.stringify(configDocument()));
const config = parseConfig(JSON.parse(readFileSync(configFile, 'utf8')));

/** The roles of the synthesized stack, by the step whose function assumes them, each with a key of its own. */
function rolesOf(template: ReturnType<typeof synthesizeStack>['template']): Record<string, string> {
  const roles: Record<string, string> = {};
  for (const r of Object.values(template.Resources)) {
    const step = r.Properties?.Environment?.Variables?.BADGES_STEP as string | undefined;
    if (r.Type === 'AWS::Lambda::Function' && step) roles[step] = (r.Properties!.Role['Fn::GetAtt'] as string[])[0]!;
  }
  return roles;
}

describe('Function: createAuthorizer', () => {
  const stack = synthesizeStack(configFile, LOCAL_BUCKETS);
  const roles = rolesOf(stack.template);
  const identities = new Map<string, TwinIdentity>(Object.entries(roles).map(([step, role]) => [`key-${step}`, { role, session: `${step}-function` }]));
  const authorize: Authorize = createAuthorizer(stackPolicies(stack.template, stack.names), identities);

  it('allows finalize to write the rejected file', async () => {
    // Act
    const decision = await authorize({ accessKeyId: 'key-finalize', action: 's3:PutObject', resource: 'arn:aws:s3:::dead-letter/rejected/weekly-events/r1/x.rejected.csv' });

    // Assess
    expect(decision).toEqual({ allowed: true });
  });

  it('allows finalize to read the rejected file back (the SFTP write-back does; defect 10), and denies what it was not granted, in the words AWS uses', async () => {
    // Act
    const readBack = await authorize({ accessKeyId: 'key-finalize', action: 's3:GetObject', resource: 'arn:aws:s3:::dead-letter/rejected/x' });
    const decision = await authorize({ accessKeyId: 'key-finalize', action: 's3:GetObject', resource: 'arn:aws:s3:::dead-letter/elsewhere/x' });

    // Assess
    expect(readBack).toEqual({ allowed: true });
    expect(decision).toEqual({
      allowed: false,
      message: `User: arn:aws:sts::000000000000:assumed-role/${roles.finalize}/finalize-function is not authorized to perform: s3:GetObject on resource: "arn:aws:s3:::dead-letter/elsewhere/x" because no identity-based policy allows the s3:GetObject action`,
    });
  });

  it('denies the stage reading a source already moved under failed/', async () => {
    // Act
    const decision = await authorize({ accessKeyId: 'key-stage', action: 's3:GetObject', resource: 'arn:aws:s3:::inbox/inbox/failed/x' });

    // Assess
    expect(decision.allowed).toBe(false);
  });

  it('lets finalize list the staging bucket only under the prefix its grant names', async () => {
    // Act
    const runs = await authorize({ accessKeyId: 'key-finalize', action: 's3:ListBucket', resource: 'arn:aws:s3:::staging', context: { 's3:prefix': 'runs/r1/results/' } });
    const other = await authorize({ accessKeyId: 'key-finalize', action: 's3:ListBucket', resource: 'arn:aws:s3:::staging', context: { 's3:prefix': 'pulls/' } });

    // Assess
    expect([runs.allowed, other.allowed]).toEqual([true, false]);
  });

  it('lets only the send function read the API credentials', async () => {
    // Act
    const send = await authorize({ accessKeyId: 'key-send', action: 'secretsmanager:GetSecretValue', resource: localSecretArn('api/user') });
    const stage = await authorize({ accessKeyId: 'key-stage', action: 'secretsmanager:GetSecretValue', resource: localSecretArn('api/user') });

    // Assess
    expect([send.allowed, stage.allowed]).toEqual([true, false]);
  });

  it('lets only the send function take slots of the send budget\'s table, and nothing but its three item actions', async () => {
    // Prepare
    const [tableId] = Object.entries(stack.template.Resources).find(([, r]) => r.Type === 'AWS::DynamoDB::Table')!;
    const table = `arn:aws:dynamodb:us-east-1:000000000000:table/${tableId}`;
    const ask = (step: string, action: string, resource = table) => authorize({ accessKeyId: `key-${step}`, action, resource }).then((d) => d.allowed);

    // Act
    const send = await Promise.all(['dynamodb:UpdateItem', 'dynamodb:GetItem', 'dynamodb:PutItem'].map((action) => ask('send', action)));
    const sendBeyond = await Promise.all([ask('send', 'dynamodb:Scan'), ask('send', 'dynamodb:DeleteItem'), ask('send', 'dynamodb:UpdateItem', 'arn:aws:dynamodb:us-east-1:000000000000:table/other')]);
    const others = await Promise.all(['stage', 'finalize', 'sweep'].flatMap((step) => ['dynamodb:UpdateItem', 'dynamodb:GetItem'].map((action) => ask(step, action))));

    // Assess
    expect(send).toEqual([true, true, true]);
    expect(sendBeyond).toEqual([false, false, false]);
    expect(others.every((allowed) => !allowed)).toBe(true);
  });

  it('leaves the admin key unrestricted and refuses a key the twin never issued', async () => {
    // Act
    const admin = await authorize({ accessKeyId: 'S3RVER', action: 's3:GetObject', resource: 'arn:aws:s3:::dead-letter/rejected/x' });
    const stranger = await authorize({ accessKeyId: 'AKIASTRANGER', action: 's3:GetObject', resource: 'arn:aws:s3:::dead-letter/rejected/x' });

    // Assess
    expect([admin.allowed, stranger.allowed]).toEqual([true, false]);
  });
});

describe('Function: startLocalAwsEndpoints', () => {
  const stack = synthesizeStack(configFile, LOCAL_BUCKETS);
  const roles = rolesOf(stack.template);
  const identities = new Map<string, TwinIdentity>(Object.entries(roles).map(([step, role]) => [`key-${step}`, { role, session: `${step}-function` }]));
  let endpoints: LocalAwsEndpoints;
  beforeAll(async () => {
    endpoints = await startLocalAwsEndpoints({ secrets: new StaticSecretsProvider(SECRETS), authorize: createAuthorizer(stackPolicies(stack.template, stack.names), identities) });
  });
  afterAll(() => endpoints.close());
  const client = (key: string) => new SecretsManagerClient({ endpoint: endpoints.url, region: 'us-east-1', credentials: { accessKeyId: key, secretAccessKey: key } });

  it('answers GetSecretValue to the role that was granted the secret', async () => {
    // Act
    const response = await client('key-send').send(new GetSecretValueCommand({ SecretId: 'api/user' }));

    // Assess
    expect(response).toMatchObject({ Name: 'api/user', SecretString: SECRETS['api/user'], ARN: localSecretArn('api/user') });
  });

  it('refuses GetSecretValue to a role without the grant with AccessDeniedException naming role, action and secret', async () => {
    // Act
    const refused = await client('key-stage')
      .send(new GetSecretValueCommand({ SecretId: 'api/password' }))
      .catch((error: Error) => error);

    // Assess
    expect(refused).toMatchObject({ name: 'AccessDeniedException', message: expect.stringContaining(`assumed-role/${roles.stage}/stage-function is not authorized to perform: secretsmanager:GetSecretValue on resource: "${localSecretArn('api/password')}"`) });
  });
});

describe('Function: runLocal with a grant removed from the stack', () => {
  let services: LocalServices;
  beforeAll(async () => {
    services = await startLocalServices({ users: [{ username: SECRETS['api/user'], password: SECRETS['api/password'] }], knownBadgeIds: [...KNOWN_BADGES] });
  });
  afterAll(() => stopLocalServices(services));

  it('fails the run with the AccessDenied message that names the action, the secret and the send role', async () => {
    // Prepare: the same stack without the send function's grants on the API secrets.
    const file = join(work, 'events_grant.csv');
    writeFileSync(file, toCsv(Array.from({ length: 5 }, (_, i) => validRow(i + 1, 91_000))));
    const withoutSecretGrants: TemplateTransform = {
      name: 'send-without-secret-grants',
      apply: (template) => {
        for (const [id, resource] of Object.entries(template.Resources)) {
          if (resource.Type !== 'AWS::IAM::Policy' || !id.startsWith('SendFunctionServiceRoleDefaultPolicy')) continue;
          const document = resource.Properties!.PolicyDocument as { Statement: Array<{ Action: string | string[] }> };
          document.Statement = document.Statement.filter((s) => ![s.Action].flat().some((a) => a.startsWith('secretsmanager:')));
        }
        return template;
      },
    };

    // Act
    const result = await runLocal({ config, configFile, dataflow: config.dataflows[0]!, file, secrets: new StaticSecretsProvider(SECRETS), s3: services.s3, sandbox: services.sandbox, outDir: join(work, 'out-grant'), synthesize: { transform: withoutSecretGrants } });

    // Assess
    const log = readFileSync(join(work, 'out-grant', 'run.log'), 'utf8');
    const stack = synthesizeStack(configFile, LOCAL_BUCKETS, { transform: withoutSecretGrants });
    const sendRole = rolesOf(stack.template).send;
    expect(result.report.status).not.toBe('SUCCEEDED');
    expect(result.report.rows.accepted).toBe(0);
    expect(log).toContain(`assumed-role/${sendRole}/`);
    const arns = [localSecretArn('api/user'), localSecretArn('api/password')];
    expect(arns.some((arn) => log.includes(`is not authorized to perform: secretsmanager:GetSecretValue on resource: \\"${arn}\\" because no identity-based policy allows`))).toBe(true);
    // A synthesis with bundling of a stack of its own: minutes on a loaded machine.
  }, 600_000);
});

describe('Function: runLocal and the shared send budget', () => {
  let services: LocalServices;
  beforeAll(async () => {
    services = await startLocalServices({ users: [{ username: SECRETS['api/user'], password: SECRETS['api/password'] }], knownBadgeIds: [...KNOWN_BADGES] });
  });
  afterAll(() => stopLocalServices(services));

  it('has the send function take its request slots from the stack\'s table in dynalite, through the stack\'s IAM', async () => {
    // Prepare
    const file = join(work, 'events_budget.csv');
    writeFileSync(file, toCsv(Array.from({ length: 5 }, (_, i) => validRow(i + 1, 92_000))));

    // Act
    const result = await runLocal({ config, configFile, dataflow: config.dataflows[0]!, file, secrets: new StaticSecretsProvider(SECRETS), s3: services.s3, sandbox: services.sandbox, outDir: join(work, 'out-budget') });

    // Assess: the destination's item counts every request the sandbox answered (imports, and the badge checks)
    const dynamo = await sharedLocalDynamo();
    const [table] = tablesOf(synthesizeStack(configFile, LOCAL_BUCKETS).template);
    const destination = { ...config.dataflows[0]!.destination, baseUrl: services.sandbox.url };
    const state = await readBudget(dynamo.client, table!.TableName, destinationKey(destination));
    const imports = Object.values(services.sandbox.statusCounts).reduce((a, b) => a + b, 0);
    expect(result.report.rows.accepted).toBe(5);
    expect(imports).toBeGreaterThan(0);
    expect(state?.taken).toBeGreaterThanOrEqual(imports);
    expect(readFileSync(join(work, 'out-budget', 'run.log'), 'utf8')).not.toContain('paces itself');
  }, 600_000);
});
