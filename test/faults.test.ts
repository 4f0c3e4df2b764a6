import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { SEND_CODES } from '../src/codes';
import { runLocal } from '../src/local/runner';
import { localWorkflow } from './support/local';
import { KNOWN_BADGES, SECRETS, TEST_DESTINATION, configDocument, kolkataEpochMs, toCsv, validRow } from './support/factories';

const RECORDS = 3000;
const BASE = 7_000_000;
const document = configDocument({
  destination: {
    ...TEST_DESTINATION,
    batchSize: 50,
    recordsPerWorker: 250,
    maxRetries: 10,
    requestTimeoutMs: 2000,
  },
});
const bench = localWorkflow('faults-', document, {
  sandbox: {
    knownBadgeIds: [...KNOWN_BADGES],
    // 10% 5xx, 10% 429, 5% resets before processing, 2% answers lost after the badges were issued.
    faults: { seed: 20261127, statusRates: { '500': 0.02, '502': 0.02, '503': 0.02, '504': 0.02, '521': 0.02, '429': 0.1 }, resetBeforeProcessing: 0.05, lostAfterProcessing: 0.02 },
  },
});
const { work, config, configFile } = bench;

describe('Workflow: sending through throttling and faults', () => {
  it('accepts every record exactly once or rejects it with a reason: 0 lost, 0 duplicated', async () => {
    // Prepare
    const rows = Array.from({ length: RECORDS }, (_, i) => validRow(i + 1, BASE));
    const file = join(work, 'events_faults.csv');
    writeFileSync(file, toCsv(rows));

    // Act
    const result = await runLocal({ config, configFile, dataflow: config.dataflows[0]!, file, secrets: new StaticSecretsProvider(SECRETS), s3: bench.s3, sandbox: bench.sandbox, outDir: join(work, 'out') });

    // Assess: the faults really happened.
    const counts = bench.sandbox.statusCounts;
    expect(counts[429]).toBeGreaterThan(0);
    expect((counts[500] ?? 0) + (counts[502] ?? 0) + (counts[503] ?? 0) + (counts[504] ?? 0) + (counts[521] ?? 0)).toBeGreaterThan(0);
    expect(counts.reset).toBeGreaterThan(0);

    // Every record is accounted for once.
    const { rows: totals } = result.report;
    expect(totals.total).toBe(RECORDS);
    expect(totals.accepted + totals.rejected).toBe(RECORDS);
    const rejected: Array<Record<string, string>> = result.rejectedPath ? parse(readFileSync(result.rejectedPath), { columns: true }) : [];
    expect(rejected).toHaveLength(totals.rejected);
    const rejectedByCustomer = new Map(rejected.map((r) => [Number(r.member_id), r]));
    expect(rejectedByCustomer.size).toBe(rejected.length);

    // The ledger: no badge issued twice; every accepted record issued once with its own dates; no rejected record
    // issued unless it is parked as AMBIGUOUS (whose whole point is that nobody can tell).
    const key = (e: { customerId: number; badgeMetaId: string; earnEventDate: number }) => `${e.customerId}/${e.badgeMetaId}/${e.earnEventDate}`;
    const issued = new Map<string, number>();
    for (const entry of bench.sandbox.ledger) issued.set(key(entry), (issued.get(key(entry)) ?? 0) + 1);
    const duplicated = [...issued.values()].filter((n) => n > 1).length;
    let lost = 0;
    for (const row of rows) {
      const k = key({ customerId: Number(row.member_id), badgeMetaId: row.badge_code, earnEventDate: kolkataEpochMs(row.event_time) });
      const times = issued.get(k) ?? 0;
      const rejection = rejectedByCustomer.get(Number(row.member_id));
      if (!rejection && times !== 1) lost += 1; // counted accepted, but not issued exactly once
      if (rejection && times > 0 && rejection._error_code !== SEND_CODES.AMBIGUOUS) lost += 1; // issued, yet reported as not
    }
    expect({ lost, duplicated }).toEqual({ lost: 0, duplicated: 0 });
    expect(bench.sandbox.ledger.length).toBe([...issued.keys()].length);
    // With ten retries, nothing should be left over at these fault rates.
    expect(totals.accepted).toBe(RECORDS);
  });
});
