import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { Sandbox } from '../src/api/sandbox';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { parseConfig } from '../src/config/load';
import { type LocalObjectRunOptions, runObject } from '../src/local/runner';
import { LOCAL_BUCKETS, type LocalS3 } from '../src/local/s3';
import { startLocalServices, stopLocalServices } from './support/local';
import { SECRETS, configDocument, toCsv, validRow } from './support/factories';
import { GnuPG } from './support/gpg';

/** The content claim must recognise the same records delivered again, encrypted afresh. */
const brand = new GnuPG();
const brandKey = brand.generate('Brand <brand@brand.test>', 'curve25519');
const secrets = new StaticSecretsProvider({ ...SECRETS, 'pgp/key': Buffer.from(brand.exportSecret(brandKey)).toString('base64') });
const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
const document = { dataflows: [{ ...flow, source: { type: 's3', prefix: 'inbox/weekly-events/', filePattern: '^events_' }, decrypt: { privateKeySecret: 'pgp/key' } }] };
const configFile = join(brand.home, 'config.json');
writeFileSync(configFile, JSON.stringify(document));
const config = parseConfig(document);

let s3: LocalS3;
let sandbox: Sandbox;
beforeAll(async () => {
  ({ s3, sandbox } = await startLocalServices({ users: [{ username: SECRETS['api/user'], password: SECRETS['api/password'] }] }));
});
afterAll(() => stopLocalServices({ s3, sandbox }));

let runs = 0;
const options = (versionId?: string): LocalObjectRunOptions => ({
  config, configFile, dataflow: config.dataflows[0]!, secrets, s3, sandbox, outDir: join(brand.home, 'out', String(++runs)), ...(versionId ? { versionId } : {}),
});

describe('Function: stage, the content claim: the same file encrypted twice', () => {
  it('skips a redelivery of the same records encrypted again (PGP never gives the same bytes twice), issuing each badge once', async () => {
    // Prepare: one CSV, encrypted twice for the brand, as a vendor re-sending "the same file" would.
    const base = 8_900_000;
    const plain = join(brand.home, 'events.csv');
    writeFileSync(plain, toCsv(Array.from({ length: 20 }, (_, i) => ({ ...validRow(i + 1, base), note: 'plain' }))));
    const deliveries = ['events_a.csv.gpg', 'events_b.csv.gpg'].map((name) => {
      brand.encrypt(plain, join(brand.home, name), { recipients: [brandKey] });
      return { key: `inbox/weekly-events/${name}`, body: readFileSync(join(brand.home, name)) };
    });
    expect(deliveries[0]!.body.equals(deliveries[1]!.body)).toBe(false);

    // Act: one after the other.
    const results = [];
    for (const d of deliveries) {
      const put = await s3.client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: d.key, Body: d.body }));
      results.push(await runObject(options(put.VersionId), d.key));
    }

    // Assess
    expect(results[0]!.report).toMatchObject({ status: 'SUCCEEDED', rows: { accepted: 20 } });
    expect(results[1]!.report.status).toBe('SKIPPED_DUPLICATE');
    expect(sandbox.ledger.filter((e) => e.customerId > base && e.customerId <= base + 20)).toHaveLength(20);
  });
});
