import { type SecretsProvider, StaticSecretsProvider } from '../src/aws/secrets';
import { SecretNotFoundError } from '../src/errors';
import { notificationText } from '../src/report/texts';
import { runObject } from '../src/local/runner';
import { localWorkflow } from './support/local';
import { SECRETS, configDocument, plainRows, toCsv } from './support/factories';

/** What a run's texts (notification, CLI summary) say once records were sent: they follow the report's numbers. */
const bench = localWorkflow('texts-', configDocument());
const { ledgerFor, deliver, options } = bench;
const rowsFor = plainRows;

describe('Function: notificationText', () => {
  it('never says "nothing was sent" in the error of a run that had issued records (a later worker found a secret gone)', async () => {
    // Prepare: four workers at once; the API password is rotated away after the first worker read it, so the
    // other workers refuse their chunks while the first one sends its 25 records.
    await bench.restart();
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
    await bench.restart({ faults: { seed: 7, statusRates: { '503': 0.6 } } });
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
