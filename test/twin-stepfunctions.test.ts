import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeExecutionCommand, ExecutionAlreadyExists, InvalidExecutionInput, InvalidName, ListExecutionsCommand, SFNClient, StartExecutionCommand, StateMachineDoesNotExist } from '@aws-sdk/client-sfn';
import { type ExecutionOutcome, type ExecutionRunner, type LocalStepFunctions, NAME_REUSE_MS, startLocalStepFunctions } from '../src/local/stepfunctions';

const ARN = 'arn:aws:states:eu-west-1:111122223333:stateMachine:Workflow';

/** A runner whose executions end only when the test says so. */
function gatedRunner() {
  const waiting = new Map<string, (outcome: ExecutionOutcome) => void>();
  const started: string[] = [];
  let notify = () => {};
  const run: ExecutionRunner = (_input, execution) =>
    new Promise((resolve) => {
      started.push(execution.name);
      waiting.set(execution.name, resolve);
      notify();
    });
  return {
    run,
    started,
    end(name: string, outcome: ExecutionOutcome = { status: 'SUCCEEDED', output: { ok: true } }) {
      waiting.get(name)!(outcome);
      waiting.delete(name);
    },
    /** Resolves once `count` executions are in the runner at the same time. */
    async inFlight(count: number) {
      while (waiting.size < count) await new Promise<void>((resolve) => (notify = resolve));
    },
  };
}

const services: LocalStepFunctions[] = [];
const clients: SFNClient[] = [];
afterAll(async () => {
  clients.forEach((c) => c.destroy());
  for (const s of services) await s.close();
});

async function start(run: ExecutionRunner, extra: { registryFile?: string; now?: () => number } = {}) {
  const service = await startLocalStepFunctions({ stateMachineArn: ARN, run, ...extra });
  services.push(service);
  const client = new SFNClient({ endpoint: service.endpoint, region: 'eu-west-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  clients.push(client);
  return { service, client };
}

async function statusOf(client: SFNClient, executionArn: string) {
  return (await client.send(new DescribeExecutionCommand({ executionArn }))).status;
}

describe('Function: startLocalStepFunctions', () => {
  it('runs executions at once, not one after another, and describes them RUNNING, then SUCCEEDED or FAILED', async () => {
    // Prepare
    const gate = gatedRunner();
    const { client } = await start(gate.run);

    // Act: two executions, neither ended yet; then one succeeds and one fails.
    const a = await client.send(new StartExecutionCommand({ stateMachineArn: ARN, name: 'a', input: '{"key":"a"}' }));
    const b = await client.send(new StartExecutionCommand({ stateMachineArn: ARN, name: 'b', input: '{"key":"b"}' }));
    await gate.inFlight(2);
    const whileRunning = [await statusOf(client, a.executionArn!), await statusOf(client, b.executionArn!)];
    gate.end('a');
    gate.end('b', { status: 'FAILED', error: 'FileFailed', cause: 'missing column' });
    await services[0]!.idle();
    const described = await client.send(new DescribeExecutionCommand({ executionArn: b.executionArn! }));

    // Assess
    expect(a.executionArn).toBe('arn:aws:states:eu-west-1:111122223333:execution:Workflow:a');
    expect(whileRunning).toEqual(['RUNNING', 'RUNNING']);
    expect(await statusOf(client, a.executionArn!)).toBe('SUCCEEDED');
    expect(described).toMatchObject({ status: 'FAILED', error: 'FileFailed', cause: 'missing column', input: '{"key":"b"}' });
    const listed = await client.send(new ListExecutionsCommand({ stateMachineArn: ARN, statusFilter: 'FAILED' }));
    expect(listed.executions!.map((e) => e.name)).toEqual(['b']);
  });

  it('answers the same name and input of a running execution with that execution; a different input with ExecutionAlreadyExists', async () => {
    // Prepare
    const gate = gatedRunner();
    const { client, service } = await start(gate.run);
    const first = await client.send(new StartExecutionCommand({ stateMachineArn: ARN, name: 'same', input: '{"key":"k"}' }));

    // Act
    const again = await client.send(new StartExecutionCommand({ stateMachineArn: ARN, name: 'same', input: '{"key":"k"}' }));
    const other = client.send(new StartExecutionCommand({ stateMachineArn: ARN, name: 'same', input: '{"key":"other"}' }));

    // Assess
    expect(again.executionArn).toBe(first.executionArn);
    await expect(other).rejects.toBeInstanceOf(ExecutionAlreadyExists);
    expect(gate.started).toEqual(['same']);
    gate.end('same');
    await service.idle();
  });

  it('refuses the name of a closed execution whatever the input, also after a restart, until 90 days have passed', async () => {
    // Prepare: an execution that failed, its name kept in the registry file.
    const registryFile = join(mkdtempSync(join(tmpdir(), 'sfn-')), 'executions.json');
    let clock = Date.UTC(2026, 10, 29);
    const now = () => clock;
    const failing: ExecutionRunner = () => Promise.reject(Object.assign(new Error('a column is missing'), { name: 'MissingColumnError' }));
    const first = await start(failing, { registryFile, now });
    await first.client.send(new StartExecutionCommand({ stateMachineArn: ARN, name: 'events_a-123', input: '{"key":"a"}' }));
    await first.service.idle();
    await first.service.close();
    const runs: string[] = [];
    const second = await start(async (_input, execution) => {
      runs.push(execution.name);
      return { status: 'SUCCEEDED' };
    }, { registryFile, now });

    // Act
    const sameInput = second.client.send(new StartExecutionCommand({ stateMachineArn: ARN, name: 'events_a-123', input: '{"key":"a"}' }));
    await expect(sameInput).rejects.toBeInstanceOf(ExecutionAlreadyExists);
    clock += NAME_REUSE_MS - 1;
    const dayBefore = second.client.send(new StartExecutionCommand({ stateMachineArn: ARN, name: 'events_a-123', input: '{"key":"b"}' }));
    await expect(dayBefore).rejects.toBeInstanceOf(ExecutionAlreadyExists);
    clock += 1;
    await second.client.send(new StartExecutionCommand({ stateMachineArn: ARN, name: 'events_a-123', input: '{"key":"a"}' }));
    await second.service.idle();

    // Assess
    const failed = first.service.executions()[0]!;
    expect(failed).toMatchObject({ status: 'FAILED', error: 'MissingColumnError', cause: 'a column is missing' });
    expect(runs).toEqual(['events_a-123']);
  });

  it('refuses names AWS refuses: too long, with white space or a forbidden character; and input that is too big or not JSON', async () => {
    // Prepare
    const { client, service } = await start(async () => ({ status: 'SUCCEEDED' }));
    const startNamed = (name: string, input = '{}') => client.send(new StartExecutionCommand({ stateMachineArn: ARN, name, input }));

    // Act
    const outcomes = await Promise.allSettled([
      startNamed('x'.repeat(81)),
      startNamed('two words'),
      ...['<', '>', '{', '}', '[', ']', '?', '*', '"', '#', '%', '\\', '^', '|', '~', '`', '$', '&', ',', ';', ':', '/', '\u0007', '\u0085'].map((c) => startNamed(`bad${c}name`)),
      startNamed('big', JSON.stringify({ data: 'x'.repeat(262_144) })),
      startNamed('notjson', '{"key":'),
      client.send(new StartExecutionCommand({ stateMachineArn: `${ARN}Other`, name: 'ok', input: '{}' })),
    ]);
    const accepted = await Promise.all([startNamed('x'.repeat(80)), startNamed('events_2026-11-23_csv-0123abcd'), startNamed('fits', JSON.stringify({ data: 'x'.repeat(262_130) }))]);
    await service.idle();

    // Assess
    const errors = outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).name : 'accepted'));
    expect(errors[0]).toBe('ValidationException');
    expect(errors.slice(1, 26).every((e) => e === 'InvalidName')).toBe(true);
    const reasons = outcomes.map((o) => (o.status === 'rejected' ? (o.reason as unknown) : undefined));
    expect(reasons[1]).toBeInstanceOf(InvalidName);
    expect(errors[26]).toBe('ValidationException');
    expect(reasons[27]).toBeInstanceOf(InvalidExecutionInput);
    expect(reasons[28]).toBeInstanceOf(StateMachineDoesNotExist);
    expect(accepted.every((a) => a.executionArn)).toBe(true);
  });
});
