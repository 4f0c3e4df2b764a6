import { DateTime } from 'luxon';
import { KNOWN_BADGES } from './factories';

/** One record of a vendor's sample as values: a customer, a badge, an event and its expiry (UTC instants), a note. */
export interface SampleRecord {
  customer: string;
  badge: string;
  event: number;
  expiry: number;
  note: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * `count` valid records: distinct customers, known badges, events in October 2026 (in the past), expiries in 2027.
 * With `maxDay`, every day of month is at most that (12: a day/month order no value can tell).
 */
export function sampleRecords(count: number, options: { maxDay?: number; base?: number } = {}): SampleRecord[] {
  const maxDay = options.maxDay ?? 28;
  return Array.from({ length: count }, (_, i) => {
    const event = Date.UTC(2026, i % 2 === 0 ? 9 : 8, 1 + ((i * 7) % maxDay), 8 + (i % 10), (i * 13) % 60, (i * 17) % 60);
    const expiry = Date.UTC(2027, i % 12, 1 + ((i * 5) % maxDay), 0, 0, 0);
    return { customer: String((options.base ?? 7_300_000) + i), badge: KNOWN_BADGES[i % KNOWN_BADGES.length]!, event, expiry, note: i % 4 === 0 ? 'Málaga, "centro"' : `store ${i}` };
  });
}

/** A UTC instant in a Luxon format, or as epoch seconds / milliseconds. */
export function formatDate(ms: number, format: string): string {
  if (format === 'epoch-s') return String(Math.floor(ms / 1000));
  if (format === 'epoch-ms') return String(ms);
  return DateTime.fromMillis(ms, { zone: 'utc' }).toFormat(format);
}

/** Renders rows as a delimited text, quoting a field that holds the delimiter, a quote or a line end. */
export function delimited(rows: readonly (readonly string[])[], delimiter: string, eol = '\n'): string {
  const quote = (v: string) => (v.includes(delimiter) || /["\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return rows.map((r) => r.map(quote).join(delimiter)).join(eol) + eol;
}

export { DAY_MS };
