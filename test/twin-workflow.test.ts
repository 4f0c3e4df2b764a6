import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateMachine } from 'aws-local-stepfunctions';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { parseConfig } from '../src/config/load';
import { MAX_STATE_PAYLOAD_BYTES, runLocal, withDataLimit } from '../src/local/runner';
import { type LocalServices, startLocalServices, stopLocalServices } from './support/local';
import { HEADER, KNOWN_BADGES, SECRETS, configDocument, toCsv, validRow } from './support/factories';

const work = mkdtempSync(join(tmpdir(), 'twin-workflow-'));
const configFile = join(work, 'config.json');
writeFileSync(configFile, JSON.stringify(configDocument()));
const config = parseConfig(configDocument());

describe('Function: runLocal (the deployed bundles)', () => {
  let services: LocalServices;
  beforeAll(async () => {
    services = await startLocalServices({ users: [{ username: SECRETS['api/user'], password: SECRETS['api/password'] }], knownBadgeIds: [...KNOWN_BADGES] });
  });
  afterAll(() => stopLocalServices(services));

  it('fails a file missing a mapped column with MISSING_COLUMN: the error keeps its name through the bundle', async () => {
    // Prepare: the header lacks badge_code. A bundle minified without keepNames throws it under a minified name,
    // which no Catch names: the report then said INTERNAL_ERROR, as it did in AWS.
    const file = join(work, 'events_missing.csv');
    writeFileSync(file, toCsv([validRow(1, 92_000)], { header: HEADER.filter((h) => h !== 'badge_code') }));

    // Act
    const result = await runLocal({ config, configFile, dataflow: config.dataflows[0]!, file, secrets: new StaticSecretsProvider(SECRETS), s3: services.s3, sandbox: services.sandbox, outDir: join(work, 'out-missing') });

    // Assess
    expect(result.report).toMatchObject({ status: 'FAILED', error: { code: 'MISSING_COLUMN', message: expect.stringContaining('badge_code') } });
  }, 600_000);
});

describe('Function: withDataLimit', () => {
  it('fails the execution with States.DataLimitExceeded when a Task returns over 256 KiB, past a Catch of States.ALL', async () => {
    // Prepare
    const definition = {
      StartAt: 'Big',
      States: {
        Big: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:000000000000:function:Big', Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }], End: true },
        Caught: { Type: 'Pass', End: true },
      },
    };
    const machine = new StateMachine(definition as never, { validationOptions: { checkPaths: false, checkArn: false } });
    const big = withDataLimit('Big', () => Promise.resolve({ text: 'x'.repeat(MAX_STATE_PAYLOAD_BYTES) }));

    // Act
    const outcome = await machine
      .run({}, { overrides: { taskResourceLocalHandlers: { Big: big } } })
      .result.then(
        () => 'SUCCEEDED',
        (error: Error) => (error.cause as Error).name,
      );

    // Assess
    expect(outcome).toBe('States.DataLimitExceeded');
  });

  it('passes a result of exactly 256 KiB', async () => {
    // Prepare
    const result = JSON.stringify('x'.repeat(MAX_STATE_PAYLOAD_BYTES - 2));
    const handler = withDataLimit('Fits', () => Promise.resolve(JSON.parse(result) as unknown));

    // Act
    const out = await handler({});

    // Assess
    expect(Buffer.byteLength(JSON.stringify(out))).toBe(MAX_STATE_PAYLOAD_BYTES);
  });
});
