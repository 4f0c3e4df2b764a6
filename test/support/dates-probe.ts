/**
 * Parses a fixed table of date values and prints the results as JSON (one `[format, zone, text, result]` row each).
 * test/dates.test.ts runs it under several host zones (TZ) in child processes: the results must not depend on them.
 */
import { compileDateParser } from '../../src/core/dates';

export const PROBES: ReadonlyArray<readonly [format: string, timeZone: string, text: string]> = [
  ['iso', 'Asia/Kolkata', '2026-11-23'],
  ['iso', 'Asia/Kolkata', '2026-11-23T10:00:00'],
  ['iso', 'Asia/Kolkata', '2026-11-23T10:00:00-03:00'],
  ['iso', 'Asia/Kolkata', '2026-11-23T10:00Z'],
  ['iso', 'America/New_York', '2026-07-15'],
  ['iso', 'UTC', '2026-11-23'],
  ['iso', 'Asia/Kolkata', '2026-11'],
  ['yyyy-MM-dd', 'Asia/Kolkata', '2026-11-23'],
  ['dd/MM/yyyy HH:mm', 'America/New_York', '15/07/2026 09:30'],
  ['yyyy-MM-dd HH:mm ZZ', 'Asia/Kolkata', '2026-11-23 10:00 -03:00'],
  ['dd MMM yyyy', 'Europe/Berlin', '29 Mar 2026'],
  ['epoch-s', 'Asia/Kolkata', '1795392000'],
  ['epoch-ms', 'America/New_York', '1795392000000'],
];

function probe(): unknown[] {
  return PROBES.map(([format, timeZone, text]) => {
    const result = compileDateParser(format, timeZone)(text);
    return [format, timeZone, text, result.ok ? { epochMs: result.epochMs, iso: result.iso } : { code: result.code }];
  });
}

if (require.main === module) process.stdout.write(JSON.stringify({ tz: process.env.TZ, hostOffset: new Date(Date.UTC(2026, 10, 23)).getTimezoneOffset(), results: probe() }));
