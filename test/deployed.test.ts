import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { parse } from 'csv-parse/sync';
import { listObjects, putText, readText } from '../src/aws/s3';
import { rejectHeaderLine, rejectLine } from '../src/core/csv';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from '../src/local/s3';
import { parseRejectedUri, replayDeployed, startDeployed } from '../src/ops/deployed';
import { runCli } from './support/cli';
import { HEADER, validRow } from './support/factories';

// Step Functions and CloudFormation have no local stand-in: they are mocked. S3 is the embedded S3 (src/local/s3).
const sfnMock = mockClient(SFNClient);
const cfnMock = mockClient(CloudFormationClient);
const STATE_MACHINE = 'arn:aws:states:eu-west-1:111122223333:stateMachine:Workflow';
let s3: LocalS3;
beforeAll(async () => {
  s3 = await startLocalS3();
});
afterAll(() => s3.close());
beforeEach(() => {
  sfnMock.reset();
  cfnMock.reset();
  cfnMock.on(DescribeStacksCommand, { StackName: 'BadgesImport' }).resolves({
    Stacks: [
      {
        StackName: 'BadgesImport',
        CreationTime: new Date(),
        StackStatus: 'CREATE_COMPLETE',
        Outputs: [
          { OutputKey: 'StateMachineArn', OutputValue: STATE_MACHINE },
          { OutputKey: 'InboxBucketName', OutputValue: LOCAL_BUCKETS.inbox },
          { OutputKey: 'DeadLetterBucketName', OutputValue: LOCAL_BUCKETS.deadLetter },
        ],
      },
    ],
  });
  cfnMock.on(DescribeStacksCommand, { StackName: 'Missing' }).rejects(new Error('Stack with id Missing does not exist'));
  sfnMock.on(StartExecutionCommand).resolves({ executionArn: `${STATE_MACHINE.replace('stateMachine', 'execution')}:x`, startDate: new Date() });
});
const clients = () => ({ s3: s3.client, sfn: new SFNClient({ region: 'eu-west-1' }), cloudFormation: new CloudFormationClient({ region: 'eu-west-1' }) });

describe('Function: startDeployed', () => {
  it('starts the stack\'s state machine on an inbox object under a fresh execution name', async () => {
    // Act
    const started = await startDeployed(clients(), { stack: 'BadgesImport', dataflow: 'weekly-events', key: 'processed/weekly-events/run-1/events_1.csv', force: true });

    // Assess
    const call = sfnMock.commandCalls(StartExecutionCommand)[0]!.args[0].input;
    expect(call.stateMachineArn).toBe(STATE_MACHINE);
    expect(call.name).toMatch(/^events_1_csv-start-\d{14}-[0-9a-f]{6}$/);
    expect(JSON.parse(call.input!)).toEqual({ dataflow: 'weekly-events', bucket: 'inbox', key: 'processed/weekly-events/run-1/events_1.csv', force: true });
    expect(started.executionArn).toContain(':execution:');
  });

  it('says which stack it could not read, and how to fix it', async () => {
    await expect(startDeployed(clients(), { stack: 'Missing', dataflow: 'x', key: 'k' })).rejects.toThrow('Stack "Missing" cannot be read: Stack with id Missing does not exist. Check --stack, the region');
  });
});

describe('Function: replayDeployed', () => {
  it('selects the API rejects of a rejected file in the dead-letter bucket, puts them under replays/ and starts a replay run', async () => {
    // Prepare: a ';'-delimited rejected file with two API rejects and one validation reject.
    const line = (n: number, stage: 'api' | 'validate', code: string) => rejectLine({ number: n, fields: HEADER.map((h) => validRow(n, 8_000_000)[h] ?? '') }, stage, code, `reason ${n}`, { delimiter: ';', quote: '"' });
    const key = 'rejected/weekly-events/run-7/events_7.rejected.csv';
    await putText(s3.client, LOCAL_BUCKETS.deadLetter, key, rejectHeaderLine(HEADER, { delimiter: ';', quote: '"' }) + line(2, 'api', 'RETRIES_EXHAUSTED') + line(5, 'validate', 'INVALID_DATE') + line(9, 'api', 'AMBIGUOUS'));

    // Act
    const result = await replayDeployed(clients(), { stack: 'BadgesImport', rejected: `s3://${LOCAL_BUCKETS.deadLetter}/${key}` });

    // Assess
    expect(result.selection).toMatchObject({ kept: 2, left: 1, duplicates: 0, replayedBefore: 0 });
    expect(result.key).toMatch(/^replays\/weekly-events\/\d{8}T\d{9}Z\/events_7\.replay\.csv$/);
    const replayed = parse<Record<string, string>>((await readText(s3.client, LOCAL_BUCKETS.inbox, result.key!))!, { columns: true, delimiter: ';' });
    expect(replayed.map((r) => [r._row, r._error_code])).toEqual([['2', 'RETRIES_EXHAUSTED'], ['9', 'AMBIGUOUS']]);
    const input = JSON.parse(sfnMock.commandCalls(StartExecutionCommand)[0]!.args[0].input.input!) as Record<string, unknown>;
    expect(input).toEqual({ dataflow: 'weekly-events', bucket: 'inbox', key: result.key, versionId: expect.any(String), replay: true });
  });

  it('starts nothing when no record of the chosen stage is in the file, and refuses what is not a rejected file', async () => {
    const key = 'rejected/weekly-events/run-8/events_8.rejected.csv';
    await putText(s3.client, LOCAL_BUCKETS.deadLetter, key, rejectHeaderLine(HEADER) + rejectLine({ number: 1, fields: ['a', 'b', 'c', 'd', 'e'] }, 'validate', 'INVALID_DATE', 'x'));
    await putText(s3.client, LOCAL_BUCKETS.deadLetter, 'rejected/weekly-events/run-8/plain.csv', 'member_id,badge_code\n1,2\n');

    const none = await replayDeployed(clients(), { stack: 'BadgesImport', rejected: `s3://${LOCAL_BUCKETS.deadLetter}/${key}` });

    expect(none).toMatchObject({ selection: { kept: 0, left: 1, duplicates: 0 } });
    const left: string[] = [];
    for await (const object of listObjects(s3.client, LOCAL_BUCKETS.inbox, 'replays/')) left.push(object.key);
    expect(left.filter((k) => k.endsWith('events_8.replay.csv'))).toEqual([]);
    expect(sfnMock.commandCalls(StartExecutionCommand)).toHaveLength(0);
    await expect(replayDeployed(clients(), { stack: 'BadgesImport', rejected: `s3://${LOCAL_BUCKETS.deadLetter}/rejected/weekly-events/run-8/plain.csv` })).rejects.toThrow('Not a rejected-records file');
    expect(() => parseRejectedUri('rejected/x.csv')).toThrow('--rejected must be an s3:// URI');
  });
});

describe('CLI: badges-import start', () => {
  it('starts a run on the deployed stack and prints the execution', async () => {
    const { code, stdout } = await runCli(['start', '--stack', 'BadgesImport', '--dataflow', 'weekly-events', '--key', 'inbox/weekly-events/events_1.csv', '--region', 'eu-west-1']);
    expect(code).toBe(0);
    expect(stdout).toContain('started s3://inbox/inbox/weekly-events/events_1.csv (dataflow weekly-events)');
    expect(sfnMock.commandCalls(StartExecutionCommand)).toHaveLength(1);
  });
});
