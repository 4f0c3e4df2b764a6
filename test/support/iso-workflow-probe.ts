/**
 * Runs a file of ISO date-only values (dataflow zone Asia/Kolkata) through the local workflow and prints the sandbox
 * ledger as JSON. test/dates.test.ts runs it in a child process under a host zone far from the dataflow's (TZ): Jest
 * gives each test file its own copy of process.env, so a TZ set inside a test never reaches Node's clock.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StaticSecretsProvider } from '../../src/aws/secrets';
import { parseConfig } from '../../src/config/load';
import { runLocal } from '../../src/local/runner';
import { KNOWN_BADGES, SECRETS, configDocument, toCsv } from './factories';
import { startLocalServices, stopLocalServices } from './local';

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'iso-workflow-'));
  const document = configDocument({
    mapping: {
      customerId: { column: 'member_id' },
      badgeMetaId: { column: 'badge_code' },
      earnEventDate: { column: 'event_time', format: 'iso', timeZone: 'Asia/Kolkata' },
      earnExpiresOn: { column: 'expiry_date', format: 'iso', timeZone: 'Asia/Kolkata' },
    },
  });
  const configFile = join(work, 'config.json');
  writeFileSync(configFile, JSON.stringify(document));
  const config = parseConfig(document);
  const file = join(work, 'events_iso.csv');
  writeFileSync(file, toCsv([1, 2].map((i) => ({ member_id: String(7_100_000 + i), badge_code: KNOWN_BADGES[0], event_time: '2026-11-23', expiry_date: '2027-11-23' }))));
  const services = await startLocalServices({ users: [{ username: SECRETS['api/user'], password: SECRETS['api/password'] }], knownBadgeIds: [...KNOWN_BADGES] });
  try {
    const result = await runLocal({ config, configFile, dataflow: config.dataflows[0]!, file, secrets: new StaticSecretsProvider(SECRETS), s3: services.s3, sandbox: services.sandbox, outDir: join(work, 'out') });
    const ledger = (await (await fetch(`${services.sandbox.url}/__sandbox/ledger`)).json()) as unknown[];
    process.stdout.write(`${JSON.stringify({ hostOffset: new Date(Date.UTC(2026, 10, 23)).getTimezoneOffset(), rows: result.report.rows, ledger })}\n`);
  } finally {
    await stopLocalServices(services);
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
