import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { parseConfig } from '../src/config/load';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from '../src/local/s3';
import { silentLog } from '../src/steps/deps';
import { stageFile } from '../src/steps/stage';
import { SECRETS, configDocument, toCsv, validRow } from './support/factories';
import { GnuPG } from './support/gpg';

/** Red team: the same CSV delivered plain, gzipped and encrypted is one content; over one hash block too. */
const brand = new GnuPG();
const brandKey = brand.generate('Brand <brand@brand.test>', 'curve25519');
const secrets = new StaticSecretsProvider({ ...SECRETS, 'pgp/key': Buffer.from(brand.exportSecret(brandKey)).toString('base64') });
const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
const config = parseConfig({ dataflows: [{ ...flow, source: { type: 's3', prefix: 'inbox/weekly-events/', filePattern: '^events_' }, decrypt: { privateKeySecret: 'pgp/key' } }] });

let s3: LocalS3;
beforeAll(async () => {
  s3 = await startLocalS3();
});
afterAll(() => s3.close());

async function deliver(name: string, body: Buffer, runId: string) {
  const key = `inbox/weekly-events/${name}`;
  const put = await s3.client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: body }));
  const deps = { config, s3: s3.client, buckets: LOCAL_BUCKETS, secrets, log: silentLog, now: () => Date.UTC(2026, 10, 27) };
  return stageFile({ input: { dataflow: 'weekly-events', bucket: LOCAL_BUCKETS.inbox, key, versionId: put.VersionId }, runId, startedAt: new Date().toISOString() }, deps);
}

describe('Red team: the content claim across deliveries', () => {
  it.each([
    ['over one hash block', 9_500, 7_100_000],
    ['under one hash block', 500, 7_200_000],
  ])('recognises the same CSV plain, gzipped, encrypted and gzipped then encrypted (%s)', async (_, rows, base) => {
    // Prepare
    const csv = Buffer.from(toCsv(Array.from({ length: rows }, (_x, i) => ({ ...validRow(i + 1, base), note: `n${i}`.padEnd(1000, '.') }))));
    const plain = join(brand.home, `events_${base}.csv`);
    writeFileSync(plain, csv);
    writeFileSync(`${plain}.gz`, gzipSync(csv));
    brand.encrypt(plain, `${plain}.gpg`, { recipients: [brandKey] });
    brand.encrypt(`${plain}.gz`, `${plain}.gz.gpg`, { recipients: [brandKey] });

    // Act
    const first = await deliver(`events_${base}.csv`, csv, `run-claim-${base}-a`);
    const again = [];
    for (const suffix of ['.gz', '.gpg', '.gz.gpg']) again.push(await deliver(`events_${base}.csv${suffix}`, readFileSync(`${plain}${suffix}`), `run-claim-${base}${suffix}`));

    // Assess
    expect(first).toMatchObject({ records: rows, valid: rows });
    expect(first.duplicateOf).toBeUndefined();
    for (const output of again) expect(output.duplicateOf).toMatchObject({ runId: `run-claim-${base}-a` });
  });
});
