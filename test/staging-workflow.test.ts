import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import { listObjects, readJson } from '../src/aws/s3';
import { ENV } from '../src/contracts';
import { type LocalRunResult, runObject } from '../src/local/runner';
import { LOCAL_BUCKETS } from '../src/local/s3';
import type { StagePlan } from '../src/steps/stage-plan';
import { localWorkflow } from './support/local';
import { KNOWN_BADGES, SECRETS, configDocument, toCsv, validRow } from './support/factories';
import { GnuPG } from './support/gpg';

// The end-to-end staging pipeline on the twin: the synthesized state machine (its inline Maps of stage workers) with
// the bundled Lambdas, ranges of 2 KiB and partitions of 40 records, so a file of a hundred records or two is staged
// by several range and settle workers at once (each a Lambda container of the twin: a cold start each, hence the time).
const brand = new GnuPG();
const PASSPHRASE = 'brand passphrase for staging tests';
const brandKey = brand.generate('Brand <brand@brand.test>', 'curve25519', PASSPHRASE);
const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
const workflow = localWorkflow(
  'staging-workflow-',
  {
    dataflows: [
      flow,
      { ...flow, name: 'encrypted-events', source: { type: 's3', prefix: 'inbox/encrypted/', filePattern: '^events_' }, decrypt: { privateKeySecret: 'pgp/key', passphraseSecret: 'pgp/passphrase' } },
      { ...flow, name: 'packed-events', source: { type: 's3', prefix: 'inbox/packed/', filePattern: '^events_' } },
    ],
  },
  { sandbox: { knownBadgeIds: [...KNOWN_BADGES] }, secrets: { ...SECRETS, 'pgp/key': Buffer.from(brand.exportSecret(brandKey, PASSPHRASE)).toString('base64'), 'pgp/passphrase': PASSPHRASE } },
);
/** Each run starts Lambda containers for its ranges and partitions (cold starts on a loaded machine). */
const RUN_TIMEOUT_MS = 600_000;
const SMALL_PLAN = { [ENV.stagePlan]: JSON.stringify({ rangeBytes: 2048, partitionRecords: 40 }) };

/** Runs `body` delivered as `name` into the dataflow's prefix, staged over small ranges unless `single`. */
async function run(flowName: string, name: string, body: string | Buffer, extra: { single?: boolean; dryRun?: boolean } = {}): Promise<LocalRunResult> {
  const prefix = (workflow.dataflow(flowName).source as { prefix: string }).prefix;
  const versionId = await workflow.deliver(`${prefix}${name}`, body);
  return runObject(workflow.options(flowName, { ...(extra.single ? {} : { environment: SMALL_PLAN }), ...(versionId ? { versionId } : {}), ...(extra.dryRun ? { dryRun: true } : {}) }), `${prefix}${name}`);
}

const importRequests = () => Object.values(workflow.sandbox.statusCounts).reduce((a, n) => a + n, 0);
const planOf = (result: LocalRunResult) => readJson<StagePlan>(workflow.s3.client, LOCAL_BUCKETS.staging, `runs/${result.executionName}/plan.json`);
const rejectedRows = (result: LocalRunResult): string[][] => parse(readFileSync(result.rejectedPath!, 'utf8'), { from_line: 2 });

describe('Workflow: staging in parallel ranges', () => {
  it('sends nothing and reports FAILED when the last range holds a malformed record', async () => {
    // Prepare: 200 valid records (some with quoted newlines), then a quote left open on the last line.
    const csv = `${toCsv(Array.from({ length: 200 }, (_, i) => validRow(i + 1, 7_100_000)))}7100999,${KNOWN_BADGES[0]},2026-11-01 10:00:00,2027-01-15,"never closed\n`;
    const requestsBefore = importRequests();

    // Act
    const result = await run('weekly-events', 'events_malformed_last.csv', csv);

    // Assess: the file failed whole, every range but the last staged, and the API never called.
    expect(result.report).toMatchObject({ status: 'FAILED', error: { code: 'MALFORMED_CSV' }, rows: { accepted: 0 } });
    expect(importRequests()).toBe(requestsBefore);
    expect(workflow.ledgerFor(7_100_000, 1000)).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('rejects a repeat split from its first record across ranges and partitions once, as DUPLICATE_IN_FILE, and sends the first', async () => {
    // Prepare: record 150 repeats record 3 (same customer, badge and event time; another note), ranges away from it.
    const rows = Array.from({ length: 149 }, (_, i) => validRow(i + 1, 7_200_000));
    rows.push({ ...rows[2]!, note: 'sent again' });

    // Act
    const result = await run('weekly-events', 'events_repeat.csv', toCsv(rows));

    // Assess
    expect(result.report).toMatchObject({ status: 'COMPLETED_WITH_REJECTIONS', rows: { total: 150, accepted: 149, rejected: 1 }, rejectionsByCode: { DUPLICATE_IN_FILE: 1 } });
    expect(rejectedRows(result).map((r) => r.slice(-4))).toEqual([['150', 'validate', 'DUPLICATE_IN_FILE', 'The same customerId, badgeMetaId and earnEventDate as record 3: not sent twice']]);
    expect(workflow.ledgerFor(7_200_000, 1000).filter((e) => e.customerId === 7_200_003)).toHaveLength(1);
    expect(workflow.ledgerFor(7_200_000, 1000)).toHaveLength(149);
    const plan = (await planOf(result))!;
    expect(plan.ranges!.length).toBeGreaterThan(3);
    expect(plan.partitions).toBeGreaterThan(2);
  }, RUN_TIMEOUT_MS);

  it('numbers records across ranges exactly as one range does', async () => {
    // Prepare: every seventh record invalid, every fifth with a quoted newline (a line is not a record).
    const rows = Array.from({ length: 180 }, (_, i) => ({ ...validRow(i + 1, 7_300_000), ...((i + 1) % 7 === 0 ? { member_id: 'x' } : {}) }));
    const csv = toCsv(rows, { eol: '\r\n' });

    // Act
    const ranged = await run('weekly-events', 'events_numbers_a.csv', csv, { dryRun: true });
    const single = await run('weekly-events', 'events_numbers_b.csv', csv, { dryRun: true, single: true });

    // Assess
    expect((await planOf(ranged))!.ranges!.length).toBeGreaterThan(3);
    expect((await planOf(single))!.ranges).toHaveLength(1);
    const numbers = (result: LocalRunResult) => rejectedRows(result).map((r) => r.at(-4));
    expect(numbers(ranged)).toEqual(Array.from({ length: 25 }, (_, i) => String(7 * (i + 1))));
    expect(numbers(ranged)).toEqual(numbers(single));
    expect(readFileSync(ranged.rejectedPath!, 'utf8')).toBe(readFileSync(single.rejectedPath!, 'utf8'));
  }, RUN_TIMEOUT_MS);

  it('stages a gzip file through one sequential pass, then in ranges', async () => {
    // Prepare
    const rows = Array.from({ length: 120 }, (_, i) => validRow(i + 1, 7_400_000));

    // Act
    const result = await run('packed-events', 'events_packed.csv.gz', gzipSync(toCsv(rows)));

    // Assess
    expect(result.report).toMatchObject({ status: 'SUCCEEDED', rows: { total: 120, accepted: 120 } });
    expect(workflow.ledgerFor(7_400_000, 1000)).toHaveLength(120);
    const plan = (await planOf(result))!;
    expect(plan.text.key).toBe(`runs/${result.executionName}/plaintext`);
    expect(plan.ranges!.length).toBeGreaterThan(2);
  }, RUN_TIMEOUT_MS);

  it.each([
    ['a gpg-encrypted file', false],
    ['a gpg-encrypted gzip file', true],
  ])('stages %s through one sequential pass, verified, then in ranges', async (_label, gzipped) => {
    // Prepare
    const base = gzipped ? 7_600_000 : 7_500_000;
    const plain = join(brand.home, `plain-${base}.csv`);
    const text = toCsv(Array.from({ length: 120 }, (_, i) => validRow(i + 1, base)));
    writeFileSync(plain, gzipped ? gzipSync(text) : text);
    brand.encrypt(plain, `${plain}.gpg`, { recipients: [brandKey] });

    // Act
    const result = await run('encrypted-events', `events_${base}.csv.gpg`, readFileSync(`${plain}.gpg`));

    // Assess
    expect(result.report).toMatchObject({ status: 'SUCCEEDED', rows: { total: 120, accepted: 120 } });
    expect(workflow.ledgerFor(base, 1000)).toHaveLength(120);
    const plan = (await planOf(result))!;
    expect(plan.text.key).toBe(`runs/${result.executionName}/${gzipped ? 'plaintext.unpacked' : 'plaintext'}`);
    expect(plan.ranges!.length).toBeGreaterThan(2);
  }, RUN_TIMEOUT_MS);

  it('parses nothing of a tampered gpg file: no plan, no range staged, nothing sent', async () => {
    // Prepare
    const plain = join(brand.home, 'plain-tampered.csv');
    writeFileSync(plain, toCsv(Array.from({ length: 120 }, (_, i) => validRow(i + 1, 7_700_000))));
    brand.encrypt(plain, `${plain}.gpg`, { recipients: [brandKey] });
    const bytes = readFileSync(`${plain}.gpg`);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    const requestsBefore = importRequests();

    // Act
    const result = await run('encrypted-events', 'events_tampered.csv.gpg', bytes);

    // Assess
    expect(result.report).toMatchObject({ status: 'FAILED', error: { code: 'INTEGRITY_CHECK_FAILED' }, rows: { total: 0, accepted: 0 } });
    const staged: string[] = [];
    for await (const object of listObjects(workflow.s3.client, LOCAL_BUCKETS.staging, `runs/${result.executionName}/`)) staged.push(object.key);
    expect(staged.filter((key) => /plan\.json|\/ranges\/|\/scans\/|plaintext/.test(key))).toEqual([]);
    expect(importRequests()).toBe(requestsBefore);
  }, RUN_TIMEOUT_MS);
});
