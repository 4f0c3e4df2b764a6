import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Sandbox } from '../src/api/sandbox';
import { type SecretsProvider, StaticSecretsProvider } from '../src/aws/secrets';
import { SecretNotFoundError } from '../src/errors';
import { notificationText } from '../src/report/texts';
import { parseConfig } from '../src/config/load';
import type { Config, Dataflow } from '../src/config/schema';
import { type LocalObjectRunOptions, runObject } from '../src/local/runner';
import type { LocalS3 } from '../src/local/s3';
import { deliverToInbox, startLocalServices, stopLocalServices } from './support/local';
import { SECRETS, configDocument, plainRows, toCsv } from './support/factories';

/** What a run's texts (notification, CLI summary) say once records were sent: they follow the report's numbers. */
const work = mkdtempSync(join(tmpdir(), 'texts-'));
const document = configDocument();
const configFile = join(work, 'config.json');
writeFileSync(configFile, JSON.stringify(document));
const config: Config = parseConfig(document);
const dataflow = (name: string): Dataflow => config.dataflows.find((d) => d.name === name)!;

let s3: LocalS3;
let sandbox: Sandbox;
const users = [{ username: SECRETS['api/user'], password: SECRETS['api/password'] }];
beforeAll(async () => {
  ({ s3, sandbox } = await startLocalServices({ users }));
});
afterAll(() => stopLocalServices({ s3, sandbox }));

const rowsFor = plainRows;
const ledgerFor = (base: number, n: number) => sandbox.ledger.filter((e) => e.customerId > base && e.customerId <= base + n);

const deliver = (key: string, body: string | Buffer) => deliverToInbox(s3, key, body);
let runs = 0;
function options(flowName: string, extra: Partial<LocalObjectRunOptions> = {}): LocalObjectRunOptions {
  return { config, configFile, dataflow: dataflow(flowName), secrets: new StaticSecretsProvider(SECRETS), s3, sandbox, outDir: join(work, 'out', String(++runs)), ...extra };
}

describe('Function: notificationText', () => {
  it('never says "nothing was sent" in the error of a run that had issued records (a later worker found a secret gone)', async () => {
    // Prepare: four workers at once; the API password is rotated away after the first worker read it, so the
    // other workers refuse their chunks while the first one sends its 25 records.
    await stopLocalServices({ s3, sandbox });
    ({ s3, sandbox } = await startLocalServices({ users }));
    let gets = 0;
    const rotating: SecretsProvider = {
      get: (name) => (++gets <= 4 ? new StaticSecretsProvider(SECRETS).get(name) : Promise.reject(new SecretNotFoundError(`Secret "${name}" does not exist in Secrets Manager`))),
    };
    const base = 8_400_000;
    const key = 'inbox/weekly-events/events_rt_rotated.csv';
    const versionId = await deliver(key, toCsv(rowsFor(base, 100)));

    // Act
    const result = await runObject(options('weekly-events', { versionId, secrets: rotating }), key);

    // Assess: records were issued, so no text of the run may say that nothing was.
    expect(ledgerFor(base, 100).length).toBeGreaterThan(0);
    expect(result.report).toMatchObject({ status: 'FAILED', sentBeforeFailure: { accepted: ledgerFor(base, 100).length } });
    expect(notificationText(result.report)).not.toMatch(/nothing was sent/i);
    expect(result.report.error?.message).toMatch(/^Chunk \d of 4 \(from record \d+\): .*; none of this chunk's records were sent$/);
  });

  it('tells the operator to replay the records the API left unsettled, not to deliver the file again', async () => {
    // Prepare: the API answers 503 to about half the requests; with two retries some batches run out of attempts.
    await stopLocalServices({ s3, sandbox });
    ({ s3, sandbox } = await startLocalServices({ users, faults: { seed: 7, statusRates: { '503': 0.6 } } }));
    const base = 8_800_000;
    const key = 'inbox/weekly-events/events_rt_partial.csv';
    const versionId = await deliver(key, toCsv(rowsFor(base, 100)));

    // Act
    const result = await runObject(options('weekly-events', { versionId }), key);

    // Assess: some records were issued and some were not; the texts say what to do with the rest.
    expect(result.report.status).toBe('COMPLETED_WITH_REJECTIONS');
    expect(result.report.rows.accepted).toBeGreaterThan(0);
    expect(result.report.rejectionsByCode.RETRIES_EXHAUSTED).toBeGreaterThan(0);
    expect(notificationText(result.report)).toMatch(/replay/i);
  });
});
