import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { listLatestVersions, putText } from '../src/aws/s3';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from '../src/local/s3';
import { silentLog } from '../src/steps/deps';
import { executionName, sweep } from '../src/steps/sweep';
import { makeConfig } from './support/factories';

const sfnMock = mockClient(SFNClient);
const STATE_MACHINE = 'arn:aws:states:eu-west-1:111122223333:stateMachine:Workflow';
let s3: LocalS3;

beforeAll(async () => {
  s3 = await startLocalS3();
  for (const key of ['inbox/weekly-events/events_1.csv', 'inbox/weekly-events/events_2.csv', 'inbox/weekly-events/notes.txt', 'inbox/weekly-events/sub/events_3.csv', 'inbox/other/events_4.csv']) {
    await putText(s3.client, LOCAL_BUCKETS.inbox, key, 'member_id\n');
  }
});
afterAll(() => s3.close());
beforeEach(() => sfnMock.reset());

const deps = () => ({ config: makeConfig(), s3: s3.client, buckets: LOCAL_BUCKETS, secrets: new StaticSecretsProvider({}), log: silentLog, sfn: new SFNClient({ region: 'eu-west-1' }), stateMachineArn: STATE_MACHINE });

describe('Function: sweep', () => {
  it('starts one execution per waiting file that matches the pattern, directly under the prefix', async () => {
    // Prepare
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:x', startDate: new Date() });

    // Act
    const output = await sweep({ dataflow: 'weekly-events' }, deps());

    // Assess
    expect(output.started).toEqual(['inbox/weekly-events/events_1.csv', 'inbox/weekly-events/events_2.csv']);
    const inputs = sfnMock.commandCalls(StartExecutionCommand).map((c) => c.args[0].input);
    expect(inputs.map((i) => JSON.parse(i.input!))).toEqual([
      { dataflow: 'weekly-events', bucket: LOCAL_BUCKETS.inbox, key: 'inbox/weekly-events/events_1.csv', versionId: expect.any(String) },
      { dataflow: 'weekly-events', bucket: LOCAL_BUCKETS.inbox, key: 'inbox/weekly-events/events_2.csv', versionId: expect.any(String) },
    ]);
    expect(inputs.every((i) => i.stateMachineArn === STATE_MACHINE)).toBe(true);
  });

  it('counts a file whose execution already exists as already started, not as an error', async () => {
    // Prepare
    sfnMock.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));

    // Act
    const output = await sweep({ dataflow: 'weekly-events' }, deps());

    // Assess
    expect(output.started).toEqual([]);
    expect(output.alreadyStarted).toHaveLength(2);
  });

  it('lets other Step Functions errors through', async () => {
    // Prepare
    sfnMock.on(StartExecutionCommand).rejects(new Error('throttled'));

    // Act + Assess
    await expect(sweep({ dataflow: 'weekly-events' }, deps())).rejects.toThrow('throttled');
  });
});

describe('Function: sweep, given one object by an upload event', () => {
  it('starts that object under the same execution name a scheduled sweep would use', async () => {
    // Prepare
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:x', startDate: new Date() });
    await sweep({ dataflow: 'weekly-events' }, deps());
    const swept = sfnMock.commandCalls(StartExecutionCommand).find((c) => c.args[0].input.input!.includes('events_1.csv'))!.args[0].input;
    sfnMock.reset();
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:y', startDate: new Date() });
    let object: { etag: string; versionId?: string } = { etag: '' };
    for await (const o of listLatestVersions(s3.client, LOCAL_BUCKETS.inbox, 'inbox/weekly-events/events_1')) object = o;

    // Act: the event carries the object's ETag (quoted, as S3 writes it) and its version.
    const output = await sweep({ dataflow: 'weekly-events', key: 'inbox/weekly-events/events_1.csv', etag: `"${object.etag}"`, versionId: object.versionId }, deps());

    // Assess
    expect(output.started).toEqual(['inbox/weekly-events/events_1.csv']);
    expect(sfnMock.commandCalls(StartExecutionCommand)[0]!.args[0].input.name).toBe(swept.name);
  });

  it('ignores an object that is not directly under the prefix or does not match the pattern', async () => {
    // Prepare
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:x', startDate: new Date() });

    // Act
    const nested = await sweep({ dataflow: 'weekly-events', key: 'inbox/weekly-events/sub/events_3.csv', etag: 'e' }, deps());
    const other = await sweep({ dataflow: 'weekly-events', key: 'inbox/weekly-events/notes.txt', etag: 'e' }, deps());

    // Assess
    expect([nested.started, other.started]).toEqual([[], []]);
    expect(sfnMock.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });
});

describe('Function: executionName', () => {
  it('is stable for one object version, differs for another, and fits Step Functions limits', () => {
    // Act: a redelivery of the same bytes under the same key is a new S3 version, with the same ETag.
    const a = executionName('weekly-events', 'inbox/weekly-events/events 1.csv', { etag: 'etag1', versionId: 'v1' });
    const again = executionName('weekly-events', 'inbox/weekly-events/events 1.csv', { etag: 'etag1', versionId: 'v1' });
    const redelivered = executionName('weekly-events', 'inbox/weekly-events/events 1.csv', { etag: 'etag1', versionId: 'v2' });
    const long = executionName('weekly-events', `inbox/weekly-events/${'x'.repeat(200)}.csv`, { etag: 'e' });

    // Assess
    expect(a).toBe(again);
    expect(a).not.toBe(redelivered);
    expect(a).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
    expect(long.length).toBeLessThanOrEqual(80);
  });

  it('records each run it starts, so that the arrival check after the schedule knows a file came; alarms when none did', async () => {
    // Prepare: a dataflow whose files must arrive within 30 minutes of the schedule.
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:x', startDate: new Date() });
    const config = makeConfig({ name: 'arrivals-flow', source: { type: 's3', prefix: 'inbox/arrivals/' }, alerts: { noFileWithinMinutes: 30 } });
    const metrics: Array<[string, number]> = [];
    const at = (now: number) => ({ ...deps(), config, now: () => now, metrics: (name: string, _unit: string, value: number) => void metrics.push([name, value]) });
    const scheduled = Date.UTC(2026, 10, 23, 2, 0);

    // Act: nothing has ever arrived; then a file is delivered and started; then the next week's check.
    const before = await sweep({ dataflow: 'arrivals-flow', check: 'arrival' }, at(scheduled + 30 * 60_000));
    await putText(s3.client, LOCAL_BUCKETS.inbox, 'inbox/arrivals/events_a.csv', 'member_id\n');
    await sweep({ dataflow: 'arrivals-flow' }, at(scheduled + 10 * 60_000));
    const after = await sweep({ dataflow: 'arrivals-flow', check: 'arrival' }, at(scheduled + 30 * 60_000));
    const nextWeek = await sweep({ dataflow: 'arrivals-flow', check: 'arrival' }, at(scheduled + 7 * 24 * 3_600_000 + 30 * 60_000));

    // Assess
    expect([before.noFileArrived, after.noFileArrived, nextWeek.noFileArrived]).toEqual([true, false, true]);
    expect(metrics.filter(([name]) => name === 'NoFileArrived')).toEqual([['NoFileArrived', 1], ['NoFileArrived', 0], ['NoFileArrived', 1]]);
    expect(metrics.filter(([name]) => name === 'FilesStarted')).toEqual([['FilesStarted', 1]]);
    // The check starts nothing.
    expect(sfnMock.commandCalls(StartExecutionCommand)).toHaveLength(1);
  });
});
