import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { parseConfig } from '../src/config/load';
import { runLocal } from '../src/local/runner';
import { CORPUS_DIR, corpusCases, writeCorpus } from './corpus/generate';
import { KNOWN_BADGES, SECRETS, configDocument } from './support/factories';
import { type LocalServices, startLocalServices, stopLocalServices } from './support/local';

/** A CSV's rows as arrays of fields, of whatever length each. */
const rowsOf = (text: string): string[][] => {
  const rows: unknown = parse(text, { relax_column_count: true });
  return rows as string[][];
};
const work = mkdtempSync(join(tmpdir(), 'corpus-'));
const cases = corpusCases();

/** The corpus dataflow: the usual mapping, in Europe/Berlin (it has a daylight-saving gap), 1 MiB unpack limit. */
function dataflowDocument(csv: Record<string, unknown> = {}) {
  const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
  const mapping = flow!.mapping as Record<string, Record<string, unknown>>;
  return {
    dataflows: [
      {
        ...flow,
        name: 'corpus',
        source: { type: 's3', prefix: 'inbox/corpus/', filePattern: '^events_' },
        csv: { ...(flow!.csv as object), ...csv },
        unpack: { maxUncompressedBytes: 1024 * 1024 },
        mapping: { ...mapping, earnEventDate: { ...mapping.earnEventDate, timeZone: 'Europe/Berlin' }, earnExpiresOn: { ...mapping.earnExpiresOn, timeZone: 'Europe/Berlin' } },
      },
    ],
  };
}
const configFile = join(work, 'config.json');
writeFileSync(configFile, JSON.stringify(dataflowDocument()));

let services: LocalServices;
beforeAll(async () => {
  services = await startLocalServices({ users: [{ username: SECRETS['api/user'], password: SECRETS['api/password'] }], knownBadgeIds: [...KNOWN_BADGES] });
});
afterAll(() => stopLocalServices(services));

describe('The broken-input corpus', () => {
  it('is exactly what test/corpus/generate.ts makes (regenerate it with npm run corpus, never by hand)', () => {
    const fresh = join(work, 'fresh');
    writeCorpus(fresh);
    expect(readdirSync(CORPUS_DIR).sort()).toEqual(readdirSync(fresh).sort());
    for (const name of readdirSync(fresh)) expect(readFileSync(join(CORPUS_DIR, name)).equals(readFileSync(join(fresh, name)))).toBe(true);
    expect(readdirSync(fresh).sort()).toEqual(cases.map((c) => c.file).sort());
  });

  it.each(cases.map((c) => [c.what, c] as const))('%s', async (_what, c) => {
    // Prepare
    const config = parseConfig(dataflowDocument(c.csv));

    // Act
    const result = await runLocal({
      config,
      configFile,
      dataflow: config.dataflows[0]!,
      file: join(CORPUS_DIR, c.file),
      secrets: new StaticSecretsProvider(SECRETS),
      s3: services.s3,
      sandbox: services.sandbox,
      outDir: join(work, 'out', c.file),
    });

    // Assess: the file's outcome.
    const { report } = result;
    expect([result.exitCode, report.status]).toEqual([c.expect.exitCode, c.expect.status]);
    if (c.expect.error) {
      expect(report.error?.code).toBe(c.expect.error.code);
      expect(report.error?.message).toMatch(c.expect.error.message);
    } else {
      expect(report.error).toBeUndefined();
    }
    if (c.expect.records !== undefined) expect(report.rows.total).toBe(c.expect.records);
    // Every record in exactly one place: accepted or in the rejected file with its number and code.
    if (c.expect.rejected) {
      // A FIELD_COUNT record keeps its own fields, so its _row, _stage, _error_code, _error_message are its last four.
      const rejected = result.rejectedPath ? rowsOf(readFileSync(result.rejectedPath, 'utf8')).slice(1) : [];
      expect(rejected.map((r) => [Number(r[r.length - 4]), r[r.length - 2]])).toEqual(c.expect.rejected);
      for (const [n, message] of c.expect.messages ?? []) expect(rejected.find((r) => Number(r[r.length - 4]) === n)?.at(-1)).toMatch(message);
      expect(report.rows.accepted + report.rows.rejected).toBe(report.rows.total);
    }
    // What reached the sandbox: exactly the accepted customers, once each (nothing at all for a refused file).
    if (c.customers !== undefined) {
      const ledger = services.sandbox.ledger.filter((e) => e.customerId > c.customers! && e.customerId < c.customers! + 1000).map((e) => e.customerId);
      expect(ledger.sort((a, b) => a - b)).toEqual(c.expect.accepted ?? []);
    }
  });
});
