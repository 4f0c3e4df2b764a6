import { Socket, createSocket } from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Context } from 'aws-lambda';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { authProvider } from '../src/api/auth';
import { BadgesApiClient } from '../src/api/client';
import { type Sandbox, startSandbox } from '../src/api/sandbox';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from '../src/local/s3';
import { ENV } from '../src/contracts';
import type { ApiItem } from '../src/core/mapping';
import { SPANS, type SpanAnnotations, type Tracing, trace, useTracing } from '../src/trace';
import type * as RuntimeModule from '../lambdas/runtime';
import type * as SweepModule from '../lambdas/sweep';
import type * as TraceModule from '../src/trace';
import { KNOWN_BADGES, SECRETS, configDocument, makeDataflow } from './support/factories';

const OAUTH_SECRETS = { 'oauth/key': 'client-key', 'oauth/secret': 'client-s3cret' };
const ALL_SECRETS = { ...SECRETS, ...OAUTH_SECRETS };
const EVENT = Date.UTC(2026, 10, 20, 5);
const item = (customerId: number): ApiItem => ({
  badgeMetaId: KNOWN_BADGES[0],
  customerId,
  earnEventDate: EVENT,
  earnExpiresOn: Date.UTC(2027, 0, 1),
  earnEventDateISO: new Date(EVENT).toISOString(),
  earnExpiresOnISO: '2027-01-01T00:00:00.000Z',
});

/** A tracing that records each span's name and annotations, in the order the spans open. */
function recordingTracing(): { spans: Array<{ name: string; annotations?: SpanAnnotations }>; tracing: Tracing } {
  const spans: Array<{ name: string; annotations?: SpanAnnotations }> = [];
  return {
    spans,
    tracing: (name, work, annotations) => {
      spans.push({ name, ...(annotations ? { annotations } : {}) });
      return work();
    },
  };
}

/** A fake Lambda context, as the runtime hands one to the handler. */
function lambdaContext(requestId: string, functionName = 'BadgesImport-Sweep'): Context {
  return {
    awsRequestId: requestId,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:eu-west-1:123456789012:function:${functionName}`,
    memoryLimitInMB: '256',
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: '2026/11/29/[$LATEST]0123456789abcdef',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => 60_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** Loads modules afresh, as a new Lambda container does (Logger and Tracer read the environment when loaded). */
async function freshContainer<T>(load: () => Promise<T>): Promise<T> {
  let loaded!: T;
  await jest.isolateModulesAsync(async () => {
    loaded = await load();
  });
  return loaded;
}

/** Sets environment variables for one test and gives back a function that restores them. */
function withEnv(values: Record<string, string | undefined>): () => void {
  const before = Object.fromEntries(Object.keys(values).map((key) => [key, process.env[key]]));
  const apply = (entries: Record<string, string | undefined>) => {
    for (const [key, value] of Object.entries(entries)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
  apply(values);
  return () => apply(before);
}

/** Captures what is written to stdout (where Powertools' Logger writes) while `work` runs. */
async function capturingStdout(work: () => Promise<void>): Promise<string[]> {
  const chunks: string[] = [];
  const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (chunks.push(String(chunk)), true));
  try {
    await work();
  } finally {
    write.mockRestore();
  }
  return chunks.join('').split('\n').filter((line) => line.startsWith('{'));
}

/** The environment of a Lambda container running the sweep against the local S3 (what lambdaDeps reads). */
function sweepEnvironment(s3: LocalS3): Record<string, string | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'badges-obs-'));
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify(configDocument()));
  return {
    [ENV.configFile]: configFile,
    [ENV.inboxBucket]: LOCAL_BUCKETS.inbox,
    [ENV.stagingBucket]: LOCAL_BUCKETS.staging,
    [ENV.deadLetterBucket]: LOCAL_BUCKETS.deadLetter,
    [ENV.reportsBucket]: LOCAL_BUCKETS.reports,
    [ENV.stateMachineArn]: 'arn:aws:states:eu-west-1:123456789012:stateMachine:BadgesImport',
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_SESSION_TOKEN: undefined,
    // As Lambda sets them; Powertools tells a cold start by the first invocation of an on-demand container.
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    _HANDLER: 'index.handler',
  };
}

let s3: LocalS3;
let sandbox: Sandbox;

beforeAll(async () => {
  s3 = await startLocalS3();
  sandbox = await startSandbox({ oauthClients: [{ key: OAUTH_SECRETS['oauth/key'], secret: OAUTH_SECRETS['oauth/secret'] }], knownBadgeIds: [...KNOWN_BADGES] });
});

afterAll(async () => {
  await sandbox.close();
  await s3.close();
});

describe('Function: trace', () => {
  it('runs the work as it is when no tracing is in use', async () => {
    // Act
    const answer = await trace(SPANS.apiImport, () => Promise.resolve(42));
    const failure = trace(SPANS.apiImport, () => Promise.reject(new Error('refused')));

    // Assess
    expect(answer).toBe(42);
    await expect(failure).rejects.toThrow('refused');
  });

  it('records spans in the tracing in use until it is put back', async () => {
    // Prepare
    const { spans, tracing } = recordingTracing();
    const restore = useTracing(tracing);

    // Act
    await trace(SPANS.sftpList, () => Promise.resolve(), { bytes: 3 });
    restore();
    await trace(SPANS.sftpMove, () => Promise.resolve());

    // Assess
    expect(spans).toEqual([{ name: 'sftp list', annotations: { bytes: 3 } }]);
  });
});

describe('Class: BadgesApiClient', () => {
  it('calls out to the API only inside spans: the token, each badgeMeta check, customer-badges lookup and import batch', async () => {
    // Prepare
    const { spans, tracing } = recordingTracing();
    const restore = useTracing(tracing);
    const destination = { ...makeDataflow().destination, baseUrl: sandbox.url, maxRetries: 1, requestTimeoutMs: 5000 };
    const oauth = { type: 'oauth' as const, keySecret: 'oauth/key', secretSecret: 'oauth/secret' };
    const client = new BadgesApiClient({
      destination,
      auth: authProvider(oauth, new StaticSecretsProvider(ALL_SECRETS), { baseUrl: sandbox.url }),
      requestsPerMinute: 600_000,
      sleep: () => Promise.resolve(),
      random: () => 0.5,
    });

    try {
      // Act: a badge check, then a replayed record (looked up first, then sent), then a batch of two.
      const exists = await client.badgeExists(KNOWN_BADGES[0]);
      const replayed = await client.sendUnlessIssued([item(7_000_001)]);
      const sent = await client.send([item(7_000_002), item(7_000_003)]);

      // Assess: waits (pacing, backoff) are spans of their own, left out here.
      expect([exists, replayed[0]?.accepted, sent.map((o) => o.accepted)]).toEqual([true, true, [true, true]]);
      expect(spans.filter((s) => s.name !== SPANS.apiWait)).toEqual([
        { name: 'api badgeMeta' },
        { name: 'api token' },
        { name: 'api customer-badges' },
        { name: 'api import', annotations: { items: 1 } },
        { name: 'api import', annotations: { items: 2 } },
      ]);
      expect(JSON.stringify(spans)).not.toContain(OAUTH_SECRETS['oauth/secret']);
    } finally {
      restore();
    }
  });
});

describe('Function: lambdaHandler', () => {
  it('writes every log line of an invocation with the Lambda context, the dataflow and the run', async () => {
    // Prepare: the real sweep handler, as its bundle loads it, against the local S3.
    const restoreEnv = withEnv(sweepEnvironment(s3));
    try {
      const { handler } = await freshContainer((): Promise<typeof SweepModule> => import('../lambdas/sweep'));

      // Act: two invocations of one container.
      const lines = await capturingStdout(async () => {
        await handler({ dataflow: 'weekly-events' }, lambdaContext('req-cold'));
        await handler({ dataflow: 'weekly-events' }, lambdaContext('req-warm'));
      });

      // Assess
      const logs = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((log) => log.message === 'Sweep done');
      expect(logs).toHaveLength(2);
      expect(logs[0]).toMatchObject({
        level: 'INFO',
        service: 'badges-import',
        function_request_id: 'req-cold',
        cold_start: true,
        function_name: 'BadgesImport-Sweep',
        function_arn: 'arn:aws:lambda:eu-west-1:123456789012:function:BadgesImport-Sweep',
        function_memory_size: '256',
        dataflow: 'weekly-events',
      });
      expect(logs[1]).toMatchObject({ function_request_id: 'req-warm', cold_start: false, function_name: 'BadgesImport-Sweep' });
    } finally {
      restoreEnv();
    }
  });

  it('does not carry one invocation’s run into the next', async () => {
    // Prepare
    const restoreEnv = withEnv(sweepEnvironment(s3));
    try {
      const runtime = await freshContainer((): Promise<typeof RuntimeModule> => import('../lambdas/runtime'));
      const handler = runtime.lambdaHandler(async (_event: unknown) => runtime.logger.info('Working'));

      // Act
      const lines = await capturingStdout(async () => {
        await handler({ dataflow: 'weekly-events', runId: 'run-1' }, lambdaContext('req-1'));
        await handler({}, lambdaContext('req-2'));
      });

      // Assess
      const logs = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(logs[0]).toMatchObject({ function_request_id: 'req-1', dataflow: 'weekly-events', runId: 'run-1' });
      expect(logs[1]).toMatchObject({ function_request_id: 'req-2' });
      expect(logs[1]).not.toHaveProperty('runId');
      expect(logs[1]).not.toHaveProperty('dataflow');
    } finally {
      restoreEnv();
    }
  });
});

/**
 * A stand-in X-Ray daemon: a UDP socket that keeps every segment document it receives, and counts every datagram the
 * process sends (the X-Ray SDK sends each one from a new socket, so arrival order proves nothing; the count does).
 */
async function startDaemon(): Promise<{ address: string; documents: unknown[]; sent: () => number; until(done: (documents: unknown[]) => boolean): Promise<void>; close(): void }> {
  const socket = createSocket('udp4');
  const documents: unknown[] = [];
  let waiting: (() => void) | undefined;
  socket.on('message', (message) => {
    const text = message.toString('utf8');
    // Each datagram is a header line and one segment document.
    documents.push(JSON.parse(text.slice(text.indexOf('\n') + 1)));
    waiting?.();
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${socket.address().port}`;
  // Spied, not replaced: the datagrams still go out.
  const send = jest.spyOn(Socket.prototype, 'send');
  return {
    address,
    documents,
    sent: () => send.mock.calls.length,
    until: (done) =>
      new Promise<void>((resolve) => {
        waiting = () => done(documents) && resolve();
        waiting();
      }),
    close: () => {
      send.mockRestore();
      socket.close();
    },
  };
}

/** Every (sub)segment in the documents, nested ones included. */
function segmentsIn(documents: unknown[]): Array<{ name: string; annotations?: Record<string, unknown>; aws?: Record<string, unknown> }> {
  const all: Array<{ name: string; subsegments?: unknown[] }> = [];
  const visit = (doc: { name: string; subsegments?: unknown[] }) => {
    all.push(doc);
    for (const sub of doc.subsegments ?? []) visit(sub as typeof doc);
  };
  for (const doc of documents) visit(doc as { name: string });
  return all;
}

describe('Function: tracingWanted', () => {
  it.each([
    ['in Lambda with an X-Ray daemon', { AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x', AWS_XRAY_DAEMON_ADDRESS: '169.254.79.129:2000' }, true],
    ['not when POWERTOOLS_TRACE_ENABLED is false', { AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x', AWS_XRAY_DAEMON_ADDRESS: '169.254.79.129:2000', POWERTOOLS_TRACE_ENABLED: 'FALSE' }, false],
    ['not without a daemon (the twin)', { AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x' }, false],
    ['not outside Lambda (the CLI, the tests)', { AWS_XRAY_DAEMON_ADDRESS: '127.0.0.1:2000' }, false],
  ])('traces %s', async (_case, env, wanted) => {
    // Act + Assess
    const { tracingWanted } = await import('../lambdas/runtime');
    expect(tracingWanted(env)).toBe(wanted);
  });
});

describe('Function: powertoolsTracing', () => {
  /** Loads the Lambda runtime afresh (it decides at load whether to trace) and runs one traced invocation. */
  async function invokeTraced(env: Record<string, string | undefined>): Promise<{ answer: unknown; printed: unknown[][]; tracerLoaded: boolean }> {
    const restoreEnv = withEnv({ ...sweepEnvironment(s3), AWS_XRAY_CONTEXT_MISSING: undefined, ...env });
    const printed: unknown[][] = [];
    const spies = (['log', 'info', 'warn', 'error', 'debug'] as const).map((level) => jest.spyOn(console, level).mockImplementation((...args: unknown[]) => void printed.push(args)));
    try {
      const [runtime, port] = await freshContainer((): Promise<[typeof RuntimeModule, typeof TraceModule]> => Promise.all([import('../lambdas/runtime'), import('../src/trace')]));
      const deps = runtime.lambdaDeps();
      const handler = runtime.lambdaHandler(async (_event: unknown) => {
        await port.trace(SPANS.apiToken, () => Promise.resolve('token'));
        await deps.s3.send(new ListObjectsV2Command({ Bucket: LOCAL_BUCKETS.inbox, Prefix: 'inbox/' }));
        return port.trace(SPANS.apiImport, () => Promise.resolve('answered'), { items: 10 });
      });
      const answer = await handler({ dataflow: 'weekly-events', runId: 'run-7' }, lambdaContext('req-traced'));
      return { answer, printed, tracerLoaded: runtime.tracer !== undefined };
    } finally {
      for (const spy of spies) spy.mockRestore();
      restoreEnv();
    }
  }
  const LAMBDA = { AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x', LAMBDA_TASK_ROOT: tmpdir() };

  it.each([
    ['outside Lambda', (address: string) => ({ AWS_EXECUTION_ENV: undefined, LAMBDA_TASK_ROOT: undefined, _X_AMZN_TRACE_ID: undefined, AWS_XRAY_DAEMON_ADDRESS: address })],
    // The twin's environment (src/local/lambda.ts) names no daemon and has no trace header.
    ['in a Lambda-like process without an X-Ray daemon (the twin)', (_address: string) => ({ ...LAMBDA, _X_AMZN_TRACE_ID: undefined, AWS_XRAY_DAEMON_ADDRESS: undefined })],
  ])('is not loaded, and nothing is printed or sent, %s', async (_where, environment) => {
    // Prepare
    const daemon = await startDaemon();
    try {
      // Act
      const { answer, printed, tracerLoaded } = await invokeTraced(environment(daemon.address));

      // Assess
      expect(answer).toBe('answered');
      expect(tracerLoaded).toBe(false);
      expect(printed).toEqual([]);
      expect(daemon.sent()).toBe(0);
    } finally {
      daemon.close();
    }
  });

  it('prints and sends nothing for an invocation Lambda did not sample', async () => {
    // Prepare
    const daemon = await startDaemon();
    try {
      // Act
      const { answer, printed, tracerLoaded } = await invokeTraced({ ...LAMBDA, AWS_XRAY_DAEMON_ADDRESS: daemon.address, _X_AMZN_TRACE_ID: 'Root=1-6749f3a2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=0' });

      // Assess
      expect(answer).toBe('answered');
      expect(tracerLoaded).toBe(true);
      expect(printed).toEqual([]);
      expect(daemon.sent()).toBe(0);
    } finally {
      daemon.close();
    }
  });

  it('sends the handler, its S3 calls and its spans as subsegments, annotated, when the invocation is sampled', async () => {
    // Prepare: as Lambda with active tracing sets it for a sampled invocation.
    const daemon = await startDaemon();
    try {
      // Act
      const { answer, printed } = await invokeTraced({ ...LAMBDA, AWS_XRAY_DAEMON_ADDRESS: daemon.address, _X_AMZN_TRACE_ID: 'Root=1-6749f3a2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1' });
      // The handler's subsegment is the last to close: once it is in, all are.
      await daemon.until((documents) => segmentsIn(documents).some((s) => s.name === '## index.handler'));

      // Assess
      expect(answer).toBe('answered');
      expect(printed).toEqual([]);
      // The count the quiet cases find zero sees the datagrams here.
      expect(daemon.sent()).toBeGreaterThan(0);
      const segments = segmentsIn(daemon.documents);
      const byName = (name: string) => segments.find((s) => s.name === name);
      expect(byName('## index.handler')?.annotations).toEqual({ ColdStart: true, Service: 'badges-import', dataflow: 'weekly-events', runId: 'run-7' });
      expect(byName('api token')).toBeDefined();
      expect(byName('api import')?.annotations).toEqual({ items: 10 });
      expect(byName('S3')?.aws).toMatchObject({ operation: 'ListObjectsV2' });
    } finally {
      daemon.close();
    }
  });
});
