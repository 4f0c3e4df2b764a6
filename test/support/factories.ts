import type { Config, Dataflow } from '../../src/config/schema';
import { parseConfig } from '../../src/config/load';

export const KNOWN_BADGES = ['6571a3b9e4b0c1a2b3c4d5e6', '6571a3b9e4b0c1a2b3c4d5e7'] as const;
export const UNKNOWN_BADGE = '6571a3b9e4b0c1a2b3c4d5ff';
export const SECRETS = { 'api/user': 'till-user', 'api/password': 'p4ss-w0rd-for-tests' } as const;

/** The test dataflow's destination: the sandbox stands in for the API at this base URL, with Basic credentials. */
export const TEST_DESTINATION = {
  baseUrl: 'https://eu.api.capillarytech.com',
  auth: { type: 'basic', usernameSecret: 'api/user', passwordSecret: 'api/password' },
  batchSize: 10,
  maxConcurrency: 4,
  maxRequestsPerMinute: 60000,
  recordsPerWorker: 25,
  maxRetries: 2,
} as const;

/** A raw configuration document with one dataflow; `overrides` is merged into the dataflow. */
export function configDocument(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    dataflows: [
      {
        name: 'weekly-events',
        source: { type: 's3', prefix: 'inbox/weekly-events/', filePattern: '^events_.*\\.csv$' },
        csv: { delimiter: ',' },
        mapping: {
          customerId: { column: 'member_id' },
          badgeMetaId: { column: 'badge_code' },
          earnEventDate: { column: 'event_time', format: 'yyyy-MM-dd HH:mm:ss', timeZone: 'Asia/Kolkata' },
          earnExpiresOn: { column: 'expiry_date', format: 'yyyy-MM-dd', timeZone: 'Asia/Kolkata' },
        },
        destination: structuredClone(TEST_DESTINATION),
        schedule: { cron: '0 2 ? * MON *', timeZone: 'Asia/Kolkata' },
        ...overrides,
      },
    ],
  };
}

export function makeConfig(overrides: Record<string, unknown> = {}): Config {
  return parseConfig(configDocument(overrides));
}

export function makeDataflow(overrides: Record<string, unknown> = {}): Dataflow {
  return makeConfig(overrides).dataflows[0]!;
}

export interface EventRow {
  member_id: string;
  badge_code: string;
  event_time: string;
  expiry_date: string;
  note?: string;
}

export const HEADER = ['member_id', 'badge_code', 'event_time', 'expiry_date', 'note'] as const;

/** A valid row for record `i` (distinct customers, known badges, dates in November 2026). */
export function validRow(i: number, base = 5_000_000): EventRow {
  return {
    member_id: String(base + i),
    badge_code: KNOWN_BADGES[i % KNOWN_BADGES.length]!,
    event_time: `2026-11-${String(1 + (i % 20)).padStart(2, '0')} ${String(i % 24).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00`,
    expiry_date: `2027-${String(1 + (i % 12)).padStart(2, '0')}-15`,
    note: i % 5 === 0 ? `has "quotes", a comma\nand a newline` : `plain ${i}`,
  };
}

function quote(value: string, delimiter: string): string {
  return /["\r\n]/.test(value) || value.includes(delimiter) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** Renders rows as a delimited file. */
export function toCsv(rows: EventRow[], options: { delimiter?: string; eol?: string; bom?: boolean; header?: readonly string[] } = {}): string {
  const { delimiter = ',', eol = '\n', bom = false, header = HEADER } = options;
  const lines = [header.join(delimiter), ...rows.map((r) => header.map((h) => quote((r as unknown as Record<string, string>)[h] ?? '', delimiter)).join(delimiter))];
  return `${bom ? '\uFEFF' : ''}${lines.join(eol)}${eol}`;
}

/** The instant of a wall-clock time in Asia/Kolkata (UTC+05:30, no daylight saving), computed independently. */
export function kolkataEpochMs(wall: string): number {
  const [date, time = '00:00:00'] = wall.split(' ');
  const [y, mo, d] = date!.split('-').map(Number);
  const [h, mi, s] = time.split(':').map(Number);
  return Date.UTC(y!, mo! - 1, d, h, mi, s) - (5 * 60 + 30) * 60_000;
}

/** `n` valid rows for customers `base + 1`…`base + n`, with plain notes (no quotes or newlines in them). */
export function plainRows(base: number, n: number): EventRow[] {
  return Array.from({ length: n }, (_, i) => ({ ...validRow(i + 1, base), note: `plain ${i + 1}` }));
}
