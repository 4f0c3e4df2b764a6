import { CreateBucketCommand, DeleteObjectCommand, HeadObjectCommand, ListObjectVersionsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { parse } from 'csv-parse/sync';
import { deleteObject, listObjects, readText } from '../src/aws/s3';
import { parseConfig } from '../src/config/load';
import type { Report } from '../src/contracts';
import { ConfigError } from '../src/errors';
import { authorizeTwinRequest, registerExternalIdentity, registerTwinIdentity, stackPolicies } from '../src/local/iam';
import { synthesizeStack } from '../src/local/lambda-stack';
import { runObject } from '../src/local/runner';
import { LOCAL_BUCKETS } from '../src/local/s3';
import { type VendorBucketDeps, pullVendorBucket, writeBackToS3 } from '../src/sources/vendor-bucket';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { pullOriginOf } from '../src/sources/sftp';
import { silentLog } from '../src/steps/deps';
import { sweep } from '../src/steps/sweep';
import { KNOWN_BADGES, UNKNOWN_BADGE, configDocument, toCsv, validRow } from './support/factories';
import { localWorkflow } from './support/local';

// Two buckets of the embedded S3 play the vendors': one whose bucket policy grants our roles (the twin checks our
// side: the sweep's and finalize's synthesized grants), one reached through a role we assume (STS is mocked: nothing
// local plays it; the twin lets that role's key reach its own bucket and nothing of ours).
const POLICY_BUCKET = 'brand-drop';
const ROLE_BUCKET = 'brand-exports';
const ROLE_ARN = 'arn:aws:iam::111122223333:role/badges-reader';
const ROLE_KEY = 'ASIAVENDORROLE000001';
const SWEEP_KEY = 'vendor-test-sweep';
const [base] = configDocument().dataflows as Array<Record<string, unknown>>;
const schedule = { cron: '0/15 * * * ? *', timeZone: 'UTC' };
const document = {
  dataflows: [
    { ...base, name: 'vendor-policy', source: { type: 's3', bucket: POLICY_BUCKET, prefix: 'outgoing/', filePattern: '^events_.*\\.csv$', processedPrefix: 'done/', errorPrefix: 'results/' }, schedule },
    {
      ...base,
      name: 'vendor-role',
      source: { type: 's3', bucket: ROLE_BUCKET, roleArn: ROLE_ARN, externalId: 'badges-7f3a', prefix: 'exports/badges/', processedPrefix: 'exports/done/', errorPrefix: 'exports/results/' },
      schedule,
    },
    { ...base, name: 'drop', source: { type: 's3', prefix: 'inbox/drop/', filePattern: '^events_.*\\.csv$', errorPrefix: 'results/drop/' } },
  ],
};
const flows = localWorkflow('vendor-bucket-', document, { sandbox: { knownBadgeIds: [...KNOWN_BADGES] } });
const sts = mockClient(STSClient);
// Nothing local plays Step Functions for an in-process sweep: its StartExecution is mocked, as in test/sweep.test.ts.
const sfn = mockClient(SFNClient);

beforeAll(async () => {
  for (const bucket of [POLICY_BUCKET, ROLE_BUCKET]) await flows.s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
  // The sweep's own key, held to the sweep role of the stack synthesized from this configuration.
  const stack = synthesizeStack(flows.configFile, LOCAL_BUCKETS);
  const sweepRole = Object.entries(stack.template.Resources).find(([, r]) => r.Type === 'AWS::Lambda::Function' && r.Properties?.Environment?.Variables?.BADGES_STEP === 'sweep')![1];
  registerTwinIdentity(SWEEP_KEY, { role: (sweepRole.Properties!.Role['Fn::GetAtt'] as string[])[0]!, session: 'sweep-function' }, stackPolicies(stack.template, stack.names));
  registerExternalIdentity(ROLE_KEY, { roleArn: ROLE_ARN, session: 'badges-import-vendor-role', buckets: [ROLE_BUCKET] });
}, 120_000);
beforeEach(() => {
  sts.reset();
  sts.on(AssumeRoleCommand).resolves({ Credentials: { AccessKeyId: ROLE_KEY, SecretAccessKey: 'vendor-secret', SessionToken: 'vendor-session', Expiration: new Date(Date.now() + 3_600_000) } });
});

const asSweep = () => ({ endpoint: flows.s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: SWEEP_KEY, secretAccessKey: SWEEP_KEY } });
let sweepS3: S3Client | undefined;
afterAll(() => sweepS3?.destroy());
/** What the sweep gives the puller, as the sweep role; `later` puts the clock past minFileAgeSeconds. */
function pullDeps(extra: Partial<VendorBucketDeps> = {}, later = true): VendorBucketDeps {
  sweepS3 ??= new S3Client(asSweep());
  return { s3: sweepS3, buckets: LOCAL_BUCKETS, log: silentLog, now: () => Date.now() + (later ? 120_000 : 0), vendorS3Config: asSweep(), ...extra };
}
const vendorPut = (bucket: string, key: string, body: string) => flows.s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
async function keysOf(bucket: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of listObjects(flows.s3.client, bucket, prefix)) keys.push(o.key);
  return keys.sort();
}
const csv = (from: number, n: number, unknownLast = false) =>
  toCsv(Array.from({ length: n }, (_, i) => (unknownLast && i === n - 1 ? { ...validRow(i + 1, from), badge_code: UNKNOWN_BADGE } : validRow(i + 1, from))));

describe('Function: pullVendorBucket, with the bucket policy granting our sweep role', () => {
  it('copies a settled matching object into the inbox and moves it to processedPrefix; the run writes its outcome under errorPrefix', async () => {
    // Prepare: 4 good rows and one for a badge the API does not know, and a file the pattern leaves alone.
    await vendorPut(POLICY_BUCKET, 'outgoing/events_1.csv', csv(2_100_000, 5, true));
    await vendorPut(POLICY_BUCKET, 'outgoing/notes.txt', 'not for us');
    const flow = flows.dataflow('vendor-policy');

    // Act
    const pulled = await pullVendorBucket(flow, pullDeps());
    const result = await runObject(flows.options('vendor-policy'), pulled.taken[0]!.key);

    // Assess: copied into the inbox under the dataflow's inbox prefix, moved in the vendor's bucket.
    expect(pulled.taken).toEqual([{ path: 's3://brand-drop/outgoing/events_1.csv', key: 's3/vendor-policy/events_1.csv', movedTo: 's3://brand-drop/done/events_1.csv', bytes: expect.any(Number) }]);
    expect(await keysOf(POLICY_BUCKET, 'outgoing/')).toEqual(['outgoing/notes.txt']);
    expect(await keysOf(POLICY_BUCKET, 'done/')).toEqual(['done/events_1.csv']);
    // Those calls were the sweep role's, held to its synthesized grants: nothing outside the configured prefixes.
    expect(await authorizeTwinRequest({ accessKeyId: SWEEP_KEY, action: 's3:DeleteObject', resource: 'arn:aws:s3:::brand-drop/done/events_1.csv' })).toMatchObject({ allowed: false });
    // Imported like any drop, the report naming where the file came from and went.
    expect(result.report.status).toBe('COMPLETED_WITH_REJECTIONS');
    expect(result.report.rows).toMatchObject({ total: 5, accepted: 4, rejected: 1 });
    expect(result.report.files[0]!.source).toMatchObject({ origin: 's3://brand-drop/outgoing/events_1.csv', remoteMovedTo: 's3://brand-drop/done/events_1.csv' });
    expect(flows.ledgerFor(2_100_000, 5)).toHaveLength(4);
    // The outcome, where the vendor looks: the same names as SFTP's write-back, written by finalize's own role.
    const written = await keysOf(POLICY_BUCKET, 'results/');
    expect(written).toEqual([expect.stringMatching(/^results\/result_\d{14}_events_1\.csv\.rejected\.csv$/), expect.stringMatching(/^results\/result_\d{14}_events_1\.csv\.summary\.txt$/)]);
    expect(result.report.files[0]!.source.writtenBack).toEqual(written.map((k) => `s3://brand-drop/${k}`));
    const rejected = parse<Record<string, string>>((await readText(flows.s3.client, POLICY_BUCKET, written[0]!))!, { columns: true });
    expect(rejected).toEqual([expect.objectContaining({ member_id: '2100005', badge_code: UNKNOWN_BADGE, _row: '5', _error_code: '1054' })]);
    expect(await readText(flows.s3.client, POLICY_BUCKET, written[1]!)).toContain('Records:   5 read, 4 accepted, 1 rejected');
  });

  it('leaves an object modified less than minFileAgeSeconds ago for the next poll', async () => {
    // Prepare
    await vendorPut(POLICY_BUCKET, 'outgoing/events_3.csv', csv(2_100_300, 2));
    const flow = flows.dataflow('vendor-policy');

    // Act
    const first = await pullVendorBucket(flow, pullDeps({}, false));

    // Assess
    expect(first.taken).toEqual([]);
    expect(first.waiting).toEqual([{ path: 's3://brand-drop/outgoing/events_3.csv', reason: expect.stringContaining('under minFileAgeSeconds 60') }]);
    expect(await keysOf(POLICY_BUCKET, 'outgoing/')).toEqual(['outgoing/events_3.csv', 'outgoing/notes.txt']);
    expect(await keysOf(LOCAL_BUCKETS.inbox, 's3/vendor-policy/')).toEqual([]);
    // Once settled, the next poll takes it.
    expect((await pullVendorBucket(flow, pullDeps())).taken.map((t) => t.key)).toEqual(['s3/vendor-policy/events_3.csv']);
    await deleteObject(flows.s3.client, LOCAL_BUCKETS.inbox, 's3/vendor-policy/events_3.csv');
  });

  it('neither loses nor moves an object the vendor overwrote between its copy and its move; the next poll takes the new one', async () => {
    // Prepare
    const key = 'outgoing/events_4.csv';
    await vendorPut(POLICY_BUCKET, key, csv(2_100_400, 2));
    const flow = flows.dataflow('vendor-policy');
    const newer = csv(2_100_450, 3);

    // Act: the vendor delivers again under the same key while the poll is between copy and move.
    const first = await pullVendorBucket(flow, pullDeps({ afterCopy: async () => void (await vendorPut(POLICY_BUCKET, key, newer)) }));

    // Assess: the copied version is in the inbox, the new one is still where the vendor put it, nothing was moved.
    expect(first.taken).toEqual([]);
    expect(first.waiting).toEqual([{ path: `s3://brand-drop/${key}`, reason: expect.stringContaining('overwritten after it was copied') }]);
    expect(await readText(flows.s3.client, POLICY_BUCKET, key)).toBe(newer);
    expect(await keysOf(POLICY_BUCKET, 'done/events_4')).toEqual([]);
    expect(await readText(flows.s3.client, LOCAL_BUCKETS.inbox, 's3/vendor-policy/events_4.csv')).toBe(csv(2_100_400, 2));
    // While the first copy is being imported, the new one waits; once that run has moved it out, the new one is taken.
    expect((await pullVendorBucket(flow, pullDeps())).waiting).toEqual([{ path: `s3://brand-drop/${key}`, reason: expect.stringContaining('still being imported') }]);
    await deleteObject(flows.s3.client, LOCAL_BUCKETS.inbox, 's3/vendor-policy/events_4.csv');
    expect((await pullVendorBucket(flow, pullDeps())).taken.map((t) => t.movedTo)).toEqual(['s3://brand-drop/done/events_4.csv']);
    expect(await readText(flows.s3.client, POLICY_BUCKET, 'done/events_4.csv')).toBe(newer);
    expect(await readText(flows.s3.client, LOCAL_BUCKETS.inbox, 's3/vendor-policy/events_4.csv')).toBe(newer);
  });

  // The multipart threshold lowered from S3's 5 GiB to 1 MiB: an 11 MiB object is moved in their bucket in parts.
  const LOWERED = { copy: { multipartAboveBytes: 1024 * 1024, partBytes: 5 * 1024 * 1024 } };
  const large = (from: number) => `${csv(from, 2)}${'x'.repeat(11 * 1024 * 1024)}\n`;

  it('moves an object over the copy limit to processedPrefix with a multipart copy in their bucket, as the sweep role, its bytes exact', async () => {
    // Prepare
    const body = large(2_100_500);
    await vendorPut(POLICY_BUCKET, 'outgoing/events_big.csv', body);

    // Act
    const pulled = await pullVendorBucket(flows.dataflow('vendor-policy'), pullDeps(LOWERED));

    // Assess: a three-part copy (S3's multipart ETag), not the bytes streamed through us again.
    const head = await flows.s3.client.send(new HeadObjectCommand({ Bucket: POLICY_BUCKET, Key: 'done/events_big.csv' }));
    expect(pulled.failed).toEqual([]);
    expect(pulled.taken.map((t) => t.movedTo)).toEqual(['s3://brand-drop/done/events_big.csv']);
    expect(head.ETag).toMatch(/-3"$/);
    expect(await readText(flows.s3.client, POLICY_BUCKET, 'done/events_big.csv')).toBe(body);
    expect(await keysOf(POLICY_BUCKET, 'outgoing/events_big')).toEqual([]);
    await deleteObject(flows.s3.client, LOCAL_BUCKETS.inbox, 's3/vendor-policy/events_big.csv');
  });

  it('moves nothing over the copy limit that the vendor overwrote between its copy and its move', async () => {
    // Prepare
    const key = 'outgoing/events_big2.csv';
    await vendorPut(POLICY_BUCKET, key, large(2_100_600));
    const newer = large(2_100_700);

    // Act
    const first = await pullVendorBucket(flows.dataflow('vendor-policy'), pullDeps({ ...LOWERED, afterCopy: async () => void (await vendorPut(POLICY_BUCKET, key, newer)) }));

    // Assess
    expect(first.waiting).toEqual([{ path: `s3://brand-drop/${key}`, reason: expect.stringContaining('overwritten after it was copied') }]);
    expect(await readText(flows.s3.client, POLICY_BUCKET, key)).toBe(newer);
    expect(await keysOf(POLICY_BUCKET, 'done/events_big2')).toEqual([]);
    await deleteObject(flows.s3.client, LOCAL_BUCKETS.inbox, 's3/vendor-policy/events_big2.csv');
    await flows.s3.client.send(new DeleteObjectCommand({ Bucket: POLICY_BUCKET, Key: key }));
  });
});

describe('Function: pullVendorBucket, on keys and listings of every shape', () => {
  /** Every version the inbox holds of a key (a second copy would be a second version: a second run). */
  async function inboxVersionsOf(key: string): Promise<number> {
    const page = await flows.s3.client.send(new ListObjectVersionsCommand({ Bucket: LOCAL_BUCKETS.inbox, Prefix: key }));
    return (page.Versions ?? []).filter((v) => v.Key === key).length;
  }

  it('takes a key with spaces, "+", "%" and non-ASCII letters, and records its origin so that the run names it', async () => {
    // Prepare
    const key = 'outgoing/events_7 +50%25 été.csv';
    await vendorPut(POLICY_BUCKET, key, csv(2_100_700, 2));
    const flow = flows.dataflow('vendor-policy');

    // Act
    const pulled = await pullVendorBucket(flow, pullDeps());

    // Assess
    expect(pulled.failed).toEqual([]);
    expect(pulled.taken).toEqual([{ path: `s3://brand-drop/${key}`, key: 's3/vendor-policy/events_7 +50%25 été.csv', movedTo: 's3://brand-drop/done/events_7 +50%25 été.csv', bytes: expect.any(Number) }]);
    expect(await keysOf(POLICY_BUCKET, 'done/events_7')).toEqual(['done/events_7 +50%25 été.csv']);
    const head = await flows.s3.client.send(new HeadObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: 's3/vendor-policy/events_7 +50%25 été.csv' }));
    expect(pullOriginOf(head.Metadata)).toEqual({ origin: `s3://brand-drop/${key}`, path: key, movedTo: 's3://brand-drop/done/events_7 +50%25 été.csv' });
    await deleteObject(flows.s3.client, LOCAL_BUCKETS.inbox, 's3/vendor-policy/events_7 +50%25 été.csv');
  });

  it('takes nested and zero-byte files, and leaves folder placeholders, the prefix itself and names the pattern refuses', async () => {
    // Prepare
    for (const key of ['outgoing/', 'outgoing/2026/', 'outgoing/2026/11/events_8.csv', 'outgoing/events_zero.csv', 'outgoing/events_dir.csv/notes.txt']) await vendorPut(POLICY_BUCKET, key, key.endsWith('zero.csv') || key.endsWith('/') ? '' : csv(2_100_800, 2));
    const flow = flows.dataflow('vendor-policy');

    // Act
    const pulled = await pullVendorBucket(flow, pullDeps());

    // Assess
    expect(pulled.failed).toEqual([]);
    expect(pulled.taken.map((t) => [t.path, t.movedTo]).sort()).toEqual([
      ['s3://brand-drop/outgoing/2026/11/events_8.csv', 's3://brand-drop/done/2026/11/events_8.csv'],
      ['s3://brand-drop/outgoing/events_zero.csv', 's3://brand-drop/done/events_zero.csv'],
    ]);
    expect(await keysOf(POLICY_BUCKET, 'outgoing/')).toEqual(expect.arrayContaining(['outgoing/', 'outgoing/2026/', 'outgoing/events_dir.csv/notes.txt']));
    expect(await keysOf(POLICY_BUCKET, 'outgoing/')).not.toEqual(expect.arrayContaining(['outgoing/2026/11/events_8.csv']));
    for (const key of ['s3/vendor-policy/events_8.csv', 's3/vendor-policy/events_zero.csv']) await deleteObject(flows.s3.client, LOCAL_BUCKETS.inbox, key);
    for (const key of ['outgoing/', 'outgoing/2026/', 'outgoing/events_dir.csv/notes.txt']) await deleteObject(flows.s3.client, POLICY_BUCKET, key);
  });

  it('moves, without copying it again, an object an earlier poll copied before it failed', async () => {
    // Prepare: the first poll fails between the copy and the move.
    const key = 'outgoing/events_9.csv';
    await vendorPut(POLICY_BUCKET, key, csv(2_100_900, 2));
    const flow = flows.dataflow('vendor-policy');
    const first = await pullVendorBucket(flow, pullDeps({ afterCopy: () => Promise.reject(new Error('Lambda timed out')) }));

    // Act
    const second = await pullVendorBucket(flow, pullDeps());

    // Assess
    expect(first.failed).toEqual([{ path: `s3://brand-drop/${key}`, message: 'Lambda timed out' }]);
    expect(second.taken.map((t) => t.movedTo)).toEqual(['s3://brand-drop/done/events_9.csv']);
    expect(await inboxVersionsOf('s3/vendor-policy/events_9.csv')).toBe(1);
    await deleteObject(flows.s3.client, LOCAL_BUCKETS.inbox, 's3/vendor-policy/events_9.csv');
  });

  it('copies an object once when two polls run at once (the schedule and an operator), and neither reports a failure', async () => {
    // Prepare
    const key = 'outgoing/events_10.csv';
    await vendorPut(POLICY_BUCKET, key, csv(2_101_000, 2));
    const flow = flows.dataflow('vendor-policy');

    // Act
    const [a, b] = await Promise.all([pullVendorBucket(flow, pullDeps()), pullVendorBucket(flow, pullDeps())]);

    // Assess
    expect([...a.taken, ...b.taken].map((t) => t.movedTo)).toEqual(['s3://brand-drop/done/events_10.csv']);
    expect([...a.failed, ...b.failed]).toEqual([]);
    expect(await inboxVersionsOf('s3/vendor-policy/events_10.csv')).toBe(1);
    expect(await keysOf(POLICY_BUCKET, 'done/events_10')).toEqual(['done/events_10.csv']);
    await deleteObject(flows.s3.client, LOCAL_BUCKETS.inbox, 's3/vendor-policy/events_10.csv');
  });

  it('reads every page of a listing past 1000 objects', async () => {
    // Prepare: 1000 files the pattern leaves alone, listed before the one it takes.
    for (let i = 0; i < 1000; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => vendorPut(POLICY_BUCKET, `outgoing/a-${String(i + j).padStart(4, '0')}.txt`, 'x')));
    await vendorPut(POLICY_BUCKET, 'outgoing/events_zz.csv', csv(2_101_100, 2));
    const flow = flows.dataflow('vendor-policy');

    // Act
    const pulled = await pullVendorBucket(flow, pullDeps());

    // Assess
    expect(pulled.taken.map((t) => t.path)).toEqual(['s3://brand-drop/outgoing/events_zz.csv']);
    await deleteObject(flows.s3.client, LOCAL_BUCKETS.inbox, 's3/vendor-policy/events_zz.csv');
  }, 120_000);
});

describe('Function: sweep, on the schedule of a vendor-bucket dataflow', () => {
  it('polls the vendor bucket first, then starts a run for what it copied into the inbox', async () => {
    // Prepare
    sfn.reset();
    sfn.on(StartExecutionCommand).resolves({ executionArn: 'arn:x', startDate: new Date() });
    await vendorPut(POLICY_BUCKET, 'outgoing/events_6.csv', csv(2_100_600, 2));
    const deps = { ...pullDeps(), config: flows.config, secrets: new StaticSecretsProvider({}), sfn: new SFNClient({ region: 'us-east-1' }), stateMachineArn: 'arn:aws:states:us-east-1:000000000000:stateMachine:Workflow' };

    // Act
    const output = await sweep({ dataflow: 'vendor-policy' }, deps);

    // Assess
    expect(output.pulled?.taken.map((t) => t.path)).toEqual(['s3://brand-drop/outgoing/events_6.csv']);
    expect(output.started).toContain('s3/vendor-policy/events_6.csv');
    const input = sfn.commandCalls(StartExecutionCommand).map((c) => JSON.parse(c.args[0].input.input!) as Record<string, string>).find((i) => i.key === 's3/vendor-policy/events_6.csv');
    expect(input).toEqual({ dataflow: 'vendor-policy', bucket: LOCAL_BUCKETS.inbox, key: 's3/vendor-policy/events_6.csv', versionId: expect.any(String) });
  });
});

describe('Function: pullVendorBucket, through a role the vendor lets us assume', () => {
  it('assumes the role with the external id and a session naming the dataflow, reads with it and writes the inbox as our own role', async () => {
    // Prepare
    await vendorPut(ROLE_BUCKET, 'exports/badges/2026/events_2.csv', csv(2_100_200, 2));
    const flow = flows.dataflow('vendor-role');

    // Act
    const pulled = await pullVendorBucket(flow, pullDeps());

    // Assess
    expect(sts.commandCalls(AssumeRoleCommand).map((c) => c.args[0].input)).toEqual([{ RoleArn: ROLE_ARN, ExternalId: 'badges-7f3a', RoleSessionName: 'badges-import-vendor-role', DurationSeconds: 3600 }]);
    expect(pulled.taken.map((t) => [t.key, t.movedTo])).toEqual([['s3/vendor-role/events_2.csv', 's3://brand-exports/exports/done/2026/events_2.csv']]);
    expect(await keysOf(ROLE_BUCKET, 'exports/badges/')).toEqual([]);
    const head = await flows.s3.client.send(new HeadObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: 's3/vendor-role/events_2.csv' }));
    expect(head.Metadata).toMatchObject({ 'badges-origin': 's3://brand-exports/exports/badges/2026/events_2.csv' });
    // The vendor's role could not have written it: it reaches nothing of ours.
    expect(await authorizeTwinRequest({ accessKeyId: ROLE_KEY, action: 's3:PutObject', resource: 'arn:aws:s3:::inbox/s3/vendor-role/x.csv' })).toEqual({ allowed: false, message: expect.stringContaining('assumed-role/badges-reader/badges-import-vendor-role is not authorized') });
  });

  it('writes the outcome back under errorPrefix in their bucket as the assumed role, keeping the path relative to their prefix', async () => {
    // Prepare
    const flow = flows.dataflow('vendor-role');
    const report = { runId: 'r1', dataflow: flow.name, status: 'FAILED', dryRun: false, startedAt: '2026-11-29T10:00:00.000Z', finishedAt: '2026-11-29T10:01:02.000Z', durationMs: 62_000, rows: { total: 0, accepted: 0, rejected: 0, valid: 0 }, rejectionsByCode: {}, files: [], error: { code: 'MISSING_COLUMN', message: 'no member_id' } } as unknown as Report;

    // Act
    const written = await writeBackToS3(flow, pullDeps(), 'exports/badges/2026/events_9.csv', report, undefined);

    // Assess
    expect(written).toEqual(['s3://brand-exports/exports/results/2026/result_20261129100102_events_9.csv.summary.txt']);
    expect(await readText(flows.s3.client, ROLE_BUCKET, 'exports/results/2026/result_20261129100102_events_9.csv.summary.txt')).toContain('Error:     MISSING_COLUMN: no member_id');
    expect(sts.commandCalls(AssumeRoleCommand)).toHaveLength(1);
  });
});

describe('Function: writeBackToS3, for two runs of files of the same name that finish in the same second', () => {
  it("overwrites neither run's outcome: the second one's names carry its run id", async () => {
    // Prepare: as the role the vendor lets us assume (finalize's own role writes the other dataflow's); a delivery and its redelivery (a duplicate), finished within the same second.
    const flow = flows.dataflow('vendor-role');
    const report = (runId: string, status: string) =>
      ({ runId, dataflow: flow.name, status, dryRun: false, startedAt: '2026-11-29T11:00:00.000Z', finishedAt: '2026-11-29T11:00:05.000Z', durationMs: 5000, rows: { total: 0, accepted: 0, rejected: 0, valid: 0 }, rejectionsByCode: {}, files: [] }) as unknown as Report;

    // Act
    const first = await writeBackToS3(flow, pullDeps(), 'exports/badges/same/events_11.csv', report('run-a', 'FAILED'), undefined);
    const second = await writeBackToS3(flow, pullDeps(), 'exports/badges/same/events_11.csv', report('run-b', 'SKIPPED_DUPLICATE'), undefined);

    // Assess
    expect([first, second]).toEqual([['s3://brand-exports/exports/results/same/result_20261129110005_events_11.csv.summary.txt'], ['s3://brand-exports/exports/results/same/result_20261129110005_run-b_events_11.csv.summary.txt']]);
    expect(await readText(flows.s3.client, ROLE_BUCKET, 'exports/results/same/result_20261129110005_events_11.csv.summary.txt')).toContain('Status:    FAILED');
    expect(await readText(flows.s3.client, ROLE_BUCKET, 'exports/results/same/result_20261129110005_run-b_events_11.csv.summary.txt')).toContain('Status:    SKIPPED_DUPLICATE');
  });
});

describe('S3 drop with an errorPrefix through the local workflow', () => {
  it("writes the rejected records and the summary under the errorPrefix in the inbox, as SFTP's write-back names them", async () => {
    // Prepare
    await flows.deliver('inbox/drop/events_5.csv', csv(2_100_500, 3, true));

    // Act
    const result = await runObject(flows.options('drop'), 'inbox/drop/events_5.csv');

    // Assess
    expect(result.report.status).toBe('COMPLETED_WITH_REJECTIONS');
    const written = await keysOf(LOCAL_BUCKETS.inbox, 'results/drop/');
    expect(written).toEqual([expect.stringMatching(/^results\/drop\/result_\d{14}_events_5\.csv\.rejected\.csv$/), expect.stringMatching(/^results\/drop\/result_\d{14}_events_5\.csv\.summary\.txt$/)]);
    expect(result.report.files[0]!.source.writtenBack).toEqual(written.map((k) => `s3://inbox/${k}`));
    expect(await readText(flows.s3.client, LOCAL_BUCKETS.inbox, written[1]!)).toContain('Records:   3 read, 2 accepted, 1 rejected');
  });
});

describe('Embedded S3: conditional DeleteObject', () => {
  it('deletes only the object whose ETag If-Match names, as S3 does on general purpose buckets (the move relies on it)', async () => {
    // Prepare
    const key = 'outgoing/conditional.txt';
    const { ETag: first } = await vendorPut(POLICY_BUCKET, key, 'first');
    await vendorPut(POLICY_BUCKET, key, 'second');

    // Act
    const stale = flows.s3.client.send(new DeleteObjectCommand({ Bucket: POLICY_BUCKET, Key: key, IfMatch: first }));

    // Assess
    await expect(stale).rejects.toMatchObject({ name: 'PreconditionFailed' });
    expect(await readText(flows.s3.client, POLICY_BUCKET, key)).toBe('second');
    const { ETag: current } = await flows.s3.client.send(new HeadObjectCommand({ Bucket: POLICY_BUCKET, Key: key }));
    await flows.s3.client.send(new DeleteObjectCommand({ Bucket: POLICY_BUCKET, Key: key, IfMatch: current }));
    expect(await readText(flows.s3.client, POLICY_BUCKET, key)).toBeUndefined();
  });
});

describe('Configuration: S3 sources', () => {
  const problemsOf = (source: Record<string, unknown>, extra: Record<string, unknown> = {}, more: unknown[] = []): string[] => {
    try {
      parseConfig({ dataflows: [{ ...base, name: 'v', source, ...extra }, ...more] });
      return [];
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
  };
  const vendor = { type: 's3', bucket: 'brand-drop', prefix: 'outgoing/', processedPrefix: 'done/' };

  it('keeps source.prefix the inbox prefix, the prefix in their bucket as vendorPrefix, and reads its own output back the same', () => {
    const parsed = parseConfig({ dataflows: [{ ...base, name: 'v', source: vendor }] });
    expect(parsed.dataflows[0]!.source).toMatchObject({ type: 's3', bucket: 'brand-drop', prefix: 's3/v/', vendorPrefix: 'outgoing/', processedPrefix: 'done/', minFileAgeSeconds: 60 });
    expect(parseConfig(JSON.parse(JSON.stringify(parsed)))).toEqual(parsed);
  });

  it('refuses a processedPrefix or errorPrefix equal to or under the prefix, naming its JSON path', () => {
    expect(problemsOf({ ...vendor, processedPrefix: 'outgoing/done/' })).toEqual(['dataflows[0].source.processedPrefix: must not equal, sit under or contain "prefix" ("outgoing/"): files there would be taken again']);
    expect(problemsOf({ ...vendor, errorPrefix: 'outgoing/' })).toEqual(['dataflows[0].source.errorPrefix: must not equal, sit under or contain "prefix" ("outgoing/"): files there would be taken again']);
  });

  it('refuses a vendor bucket without processedPrefix or schedule, and an externalId without roleArn', () => {
    expect(problemsOf({ ...vendor, processedPrefix: undefined, externalId: 'x1' }, { schedule: undefined }).sort()).toEqual([
      'dataflows[0].schedule: is required for a vendor\'s bucket (source.bucket): the schedule is what polls it',
      'dataflows[0].source.externalId: is only used with "roleArn"',
      'dataflows[0].source.processedPrefix: is required with "bucket": a taken file is moved there (else it would be taken again)',
    ]);
    expect(problemsOf({ ...vendor, roleArn: 'arn:aws:iam::1:role/x' })).toEqual(['dataflows[0].source.roleArn: must be an IAM role ARN, e.g. "arn:aws:iam::111122223333:role/badges-reader"']);
  });

  it('refuses vendorAccess with a vendor bucket: it would open our inbox, and their bucket is theirs to grant', () => {
    expect(problemsOf({ ...vendor, vendorAccess: { principals: ['111122223333'] } })).toEqual([
      'dataflows[0].source.vendorAccess: is only used without "bucket": it opens our inbox to the vendor; their own bucket is theirs to grant',
    ]);
  });

  it("refuses an inbox drop's errorPrefix under any dataflow's prefix or under processed/, and vendor-bucket keys without a bucket", () => {
    const other = { ...base, name: 'w', source: { type: 's3', prefix: 'inbox/w/' } };
    expect(problemsOf({ type: 's3', prefix: 'inbox/v/', errorPrefix: 'inbox/w/results/' }, {}, [other])).toEqual([
      'dataflows[0].source.errorPrefix: overlaps dataflows[1].source.prefix "inbox/w/": an outcome written there would be taken as a file to import',
    ]);
    expect(problemsOf({ type: 's3', prefix: 'inbox/v/', errorPrefix: 'inbox/v/' })).toEqual(['dataflows[0].source.errorPrefix: overlaps its own source.prefix "inbox/v/": an outcome written there would be taken as a file to import']);
    expect(problemsOf({ type: 's3', prefix: 'inbox/v/', errorPrefix: 'processed/v/', processedPrefix: 'done/' })).toEqual([
      'dataflows[0].source.processedPrefix: is only used with "bucket" (the vendor\'s own bucket)',
      "dataflows[0].source.errorPrefix: must not sit under processed/ or failed/ (the stack's own)",
    ]);
  });
});
