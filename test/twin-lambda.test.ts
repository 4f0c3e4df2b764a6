import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LambdaInvocationError, LambdaTwin, MAX_CAUSE_CHARS } from '../src/local/lambda';
import type { LambdaFunctionSpec } from '../src/local/lambda-stack';
import type { StepName } from '../src/contracts';

/** A hand-written bundle whose handler does what the event asks: the container's behaviour is what is under test. */
const BUNDLE = `
let invocations = 0;
class MissingColumnError extends Error { constructor(m) { super(m); this.name = 'MissingColumnError'; } }
exports.handler = async (event, context) => {
  invocations += 1;
  switch (event.do) {
    case 'count': return { invocations, pid: process.pid, fn: context.functionName, remaining: context.getRemainingTimeInMillis() > 0, region: process.env.AWS_REGION, key: process.env.AWS_ACCESS_KEY_ID, memory: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE };
    case 'throw': throw new MissingColumnError(event.message ?? 'The header lacks "badge_code"');
    case 'hang': return new Promise(() => {});
    case 'exit': process.exit(3);
    case 'big': return 'x'.repeat(7 * 1024 * 1024);
    case 'metric': console.log(JSON.stringify({ _aws: { Timestamp: 1, CloudWatchMetrics: [{ Namespace: 'BadgesImport', Dimensions: [['service', 'dataflow', 'code']], Metrics: [{ Name: 'RecordsRejected', Unit: 'Count' }] }] }, service: 'badges-import', dataflow: 'weekly', code: 'INVALID_DATE', RecordsRejected: 4 })); return 'ok';
  }
};
`;

function twinOf(timeoutSeconds = 2, sinks: { metrics?: (...args: unknown[]) => void; log?: (line: string) => void } = {}): LambdaTwin {
  const codeDir = mkdtempSync(join(tmpdir(), 'twin-bundle-'));
  writeFileSync(join(codeDir, 'index.js'), BUNDLE);
  const spec = (step: StepName): LambdaFunctionSpec => ({ logicalId: `${step}Function`, step, codeDir, handler: 'index.handler', environment: {}, memorySize: 512, timeoutSeconds, role: `${step}Role` });
  return new LambdaTwin({ functions: { stage: spec('stage'), send: spec('send'), finalize: spec('finalize'), sweep: spec('sweep') }, metrics: sinks.metrics, log: sinks.log });
}

async function failure(promise: Promise<unknown>): Promise<LambdaInvocationError> {
  try {
    await promise;
  } catch (error) {
    return error as LambdaInvocationError;
  }
  throw new Error('The invocation did not fail');
}

describe('Class: LambdaTwin', () => {
  let twin: LambdaTwin;
  afterEach(() => twin.close());

  it('reuses a warm container for the next invocation and gives it a Lambda-like environment and context', async () => {
    // Prepare
    twin = twinOf();

    // Act
    const first = (await twin.invoke('send', { do: 'count' })) as Record<string, unknown>;
    const second = (await twin.invoke('send', { do: 'count' })) as Record<string, unknown>;

    // Assess
    expect(second).toMatchObject({ invocations: 2, pid: first.pid, fn: 'sendFunction', remaining: true, region: 'us-east-1', key: 'sendRole', memory: '512' });
  });

  it('starts another container when every container of the function is busy', async () => {
    // Prepare
    twin = twinOf();

    // Act
    const [a, b] = (await Promise.all([twin.invoke('send', { do: 'count' }), twin.invoke('send', { do: 'count' })])) as Array<Record<string, unknown>>;

    // Assess
    expect(a!.pid).not.toBe(b!.pid);
    expect([a!.invocations, b!.invocations]).toEqual([1, 1]);
  });

  it('reports a thrown error as Lambda does: Error is its name, Cause the JSON error document', async () => {
    // Prepare
    twin = twinOf();

    // Act
    const error = await failure(twin.invoke('stage', { do: 'throw' }));

    // Assess
    expect(error.name).toBe('MissingColumnError');
    expect(JSON.parse(error.message)).toMatchObject({ errorType: 'MissingColumnError', errorMessage: 'The header lacks "badge_code"', trace: expect.arrayContaining([expect.stringContaining('MissingColumnError')]) });
  });

  it('cuts the Cause at 32,768 characters, as Step Functions does', async () => {
    // Prepare
    twin = twinOf();

    // Act
    const error = await failure(twin.invoke('stage', { do: 'throw', message: 'm'.repeat(40_000) }));

    // Assess
    expect(error.message.length).toBe(MAX_CAUSE_CHARS);
  });

  it('stops an invocation at the function timeout with Sandbox.Timedout, and the next one gets a new container', async () => {
    // Prepare
    twin = twinOf(1);
    const before = (await twin.invoke('send', { do: 'count' })) as Record<string, unknown>;

    // Act
    const error = await failure(twin.invoke('send', { do: 'hang' }));
    const after = (await twin.invoke('send', { do: 'count' })) as Record<string, unknown>;

    // Assess
    expect(error.name).toBe('Sandbox.Timedout');
    expect(JSON.parse(error.message).errorMessage).toMatch(/Task timed out after 1\.00 seconds/);
    expect(after.pid).not.toBe(before.pid);
  });

  it('fails a response over 6 MB with Function.ResponseSizeTooLarge', async () => {
    // Prepare
    twin = twinOf();

    // Act
    const error = await failure(twin.invoke('finalize', { do: 'big' }));

    // Assess
    expect(error.name).toBe('Function.ResponseSizeTooLarge');
  });

  it('fails an invocation whose container exits with Runtime.ExitError', async () => {
    // Prepare
    twin = twinOf();

    // Act
    const error = await failure(twin.invoke('stage', { do: 'exit' }));

    // Assess
    expect(error.name).toBe('Runtime.ExitError');
    expect(JSON.parse(error.message).errorMessage).toMatch(/Runtime exited with error: exit status 3/);
  });

  it('reads the EMF lines a function prints into the metrics sink, and every line into the log', async () => {
    // Prepare
    const metrics: unknown[][] = [];
    const lines: string[] = [];
    twin = twinOf(2, { metrics: (...args) => void metrics.push(args), log: (line) => void lines.push(line) });

    // Act
    await twin.invoke('finalize', { do: 'metric' });

    // Assess
    expect(metrics).toEqual([['RecordsRejected', 'Count', 4, 'weekly', { code: 'INVALID_DATE' }]]);
    expect(lines.some((l) => l.includes('"RecordsRejected":4'))).toBe(true);
  });
});
