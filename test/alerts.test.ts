import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SEND_CODES } from '../src/codes';
import { runLocal } from '../src/local/runner';
import { localWorkflow } from './support/local';
import { KNOWN_BADGES, TEST_DESTINATION, configDocument, toCsv, validRow } from './support/factories';

/**
 * Connect+ alerts when 10% or more of a file's records exhaust their retries: finalize measures that share per file
 * (`RetriesExhaustedPercent`), and the stack's `RetriesExhausted-<dataflow>` alarm compares it with
 * `alerts.retriesExhaustedPercent` (test/stack.test.ts).
 */
const RECORDS = 200;
const BASE = 7_500_000;
const document = configDocument({
  destination: {
    ...TEST_DESTINATION,
    recordsPerWorker: 50,
    maxConcurrency: 2,
    // No retry: a batch the API answers 503 is RETRIES_EXHAUSTED at once.
    maxRetries: 0,
    requestTimeoutMs: 2000,
  },
});
// The sandbox answers about a third of the import requests 503, before processing them (nothing issued).
const bench = localWorkflow('alerts-', document, { sandbox: { knownBadgeIds: [...KNOWN_BADGES], faults: { seed: 20261130, statusRates: { '503': 0.35 } } } });

describe('Function: finalize, the share of records that exhausted their retries', () => {
  it('reports the share of a file\'s records not issued after every retry, as the RetriesExhausted alarm reads it', async () => {
    // Prepare
    const file = join(bench.work, 'events_exhausted.csv');
    writeFileSync(file, toCsv(Array.from({ length: RECORDS }, (_, i) => validRow(i + 1, BASE))));
    const metrics: Array<{ name: string; unit: string; value: number }> = [];

    // Act
    const result = await runLocal({
      ...bench.options('weekly-events'),
      file,
      metrics: (name, unit, value, _dataflow, dimensions) => void (dimensions ? undefined : metrics.push({ name, unit, value })),
    });

    // Assess: some batches were refused and not retried; the metric is their records' share of the file.
    const exhausted = result.report.rejectionsByCode[SEND_CODES.RETRIES_EXHAUSTED] ?? 0;
    expect(exhausted).toBeGreaterThanOrEqual(RECORDS / 10);
    expect(exhausted % 10).toBe(0);
    expect(bench.ledgerFor(BASE, RECORDS)).toHaveLength(RECORDS - exhausted);
    expect(metrics.filter((m) => m.name === 'RetriesExhaustedPercent')).toEqual([{ name: 'RetriesExhaustedPercent', unit: 'Percent', value: (100 * exhausted) / RECORDS }]);
  });
});
