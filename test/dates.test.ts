import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { compileDateParser, formatIso } from '../src/core/dates';
import { PROBES } from './support/dates-probe';

function ok(result: ReturnType<ReturnType<typeof compileDateParser>>) {
  if (!result.ok) throw new Error(`expected a date, got ${result.code}: ${result.reason}`);
  return result;
}

describe('Function: compileDateParser', () => {
  it('reads a wall-clock time in the configured zone', () => {
    // Prepare
    const parse = compileDateParser('yyyy-MM-dd HH:mm:ss', 'Asia/Kolkata');

    // Act
    const result = ok(parse('2026-11-23 15:00:00'));

    // Assess
    expect(result.epochMs).toBe(Date.UTC(2026, 10, 23, 9, 30, 0));
    expect(result.offsetMinutes).toBe(330);
    expect(formatIso(result.epochMs, result.offsetMinutes)).toBe('2026-11-23T15:00:00+05:30');
  });

  it('takes a date without a time as midnight of that day in the zone', () => {
    // Prepare
    const parse = compileDateParser('dd/MM/yyyy', 'America/New_York');

    // Act
    const winter = ok(parse('15/01/2026'));
    const summer = ok(parse('15/07/2026'));

    // Assess
    expect(formatIso(winter.epochMs, winter.offsetMinutes)).toBe('2026-01-15T00:00:00-05:00');
    expect(formatIso(summer.epochMs, summer.offsetMinutes)).toBe('2026-07-15T00:00:00-04:00');
    expect(summer.epochMs).toBe(Date.UTC(2026, 6, 15, 4, 0, 0));
  });

  it.each([
    ['yyyyMMdd', '20260229'],
    ['dd/MM/yyyy', '31/04/2026'],
    ['yyyy-MM-dd HH:mm:ss', '2026-11-23 25:00:00'],
    ['yyyy-MM-dd', '23-11-2026'],
    ['yyyy-MM-dd', ''],
  ])('rejects %s value "%s" as INVALID_DATE', (format, text) => {
    // Act
    const result = compileDateParser(format, 'UTC')(text);

    // Assess
    expect(result).toMatchObject({ ok: false, code: 'INVALID_DATE' });
  });

  it('rejects a local time skipped by a daylight-saving change', () => {
    // Prepare
    const parse = compileDateParser('yyyy-MM-dd HH:mm', 'Europe/Berlin');

    // Act
    const gap = parse('2026-03-29 02:30');
    const after = ok(parse('2026-03-29 03:30'));
    const before = ok(parse('2026-03-29 01:30'));

    // Assess
    expect(gap).toMatchObject({ ok: false, code: 'NONEXISTENT_LOCAL_TIME' });
    expect(after.epochMs - before.epochMs).toBe(60 * 60_000);
    expect(after.offsetMinutes).toBe(120);
  });

  it.each([
    ['America/Santiago', '2026-09-06', '2026-09-06T01:00:00-03:00'],
    ['America/Havana', '2026-03-08', '2026-03-08T01:00:00-04:00'],
    ['Asia/Beirut', '2026-03-29', '2026-03-29T01:00:00+03:00'],
  ])('reads %s %s, a day whose midnight clocks skip, as its first instant', (zone, text, first) => {
    // Prepare: in these zones daylight saving starts at midnight, so the day begins at 01:00.
    const parse = compileDateParser('yyyy-MM-dd', zone);
    const iso = compileDateParser('iso', zone);

    // Act
    const result = parse(text);
    const isoResult = iso(text);

    // Assess: a real calendar day is never NONEXISTENT_LOCAL_TIME (the record would be rejected for good).
    expect(result).toMatchObject({ ok: true, iso: first });
    expect(isoResult).toMatchObject({ ok: true, iso: first });
  });

  it('still rejects a wall time given explicitly in a gap at midnight', () => {
    // Prepare
    const parse = compileDateParser('yyyy-MM-dd HH:mm', 'America/Santiago');
    const iso = compileDateParser('iso', 'America/Santiago');

    // Act
    const midnight = parse('2026-09-06 00:00');
    const isoMidnight = iso('2026-09-06T00:30');

    // Assess
    expect(midnight).toMatchObject({ ok: false, code: 'NONEXISTENT_LOCAL_TIME' });
    expect(isoMidnight).toMatchObject({ ok: false, code: 'NONEXISTENT_LOCAL_TIME' });
  });

  it('takes the earlier instant of a repeated hour', () => {
    // Prepare
    const parse = compileDateParser('yyyy-MM-dd HH:mm', 'Europe/Berlin');

    // Act
    const repeated = ok(parse('2026-10-25 02:30'));

    // Assess
    expect(repeated.epochMs).toBe(Date.UTC(2026, 9, 25, 0, 30));
    expect(repeated.offsetMinutes).toBe(120);
  });

  it('reads epoch seconds and milliseconds, and refuses anything else', () => {
    // Prepare
    const seconds = compileDateParser('epoch-s', 'Asia/Kolkata');
    const millis = compileDateParser('epoch-ms', 'UTC');

    // Act + Assess
    expect(ok(seconds('1705828011')).epochMs).toBe(1705828011000);
    expect(ok(seconds('1705828011')).offsetMinutes).toBe(330);
    expect(ok(millis('1705828011123')).epochMs).toBe(1705828011123);
    expect(seconds('1705828011.5')).toMatchObject({ ok: false, code: 'INVALID_DATE' });
    expect(millis('-5')).toMatchObject({ ok: false, code: 'INVALID_DATE' });
  });

  it('reads ISO dates with their own offset, and without one in the zone', () => {
    // Prepare
    const parse = compileDateParser('iso', 'Asia/Kolkata');

    // Act
    const withOffset = ok(parse('2025-09-10T15:00:00+02:00'));
    const without = ok(parse('2025-09-10T15:00:00'));

    // Assess
    expect(withOffset.epochMs).toBe(Date.UTC(2025, 8, 10, 13, 0, 0));
    expect(formatIso(withOffset.epochMs, withOffset.offsetMinutes)).toBe('2025-09-10T18:30:00+05:30');
    expect(without.epochMs).toBe(Date.UTC(2025, 8, 10, 9, 30, 0));
  });

  it('takes an ISO date without a time as midnight in the zone, not its day as an offset', () => {
    // Prepare
    const parse = compileDateParser('iso', 'Asia/Kolkata');

    // Act
    const day = ok(parse('2026-11-23'));
    const month = ok(parse('2026-11'));

    // Assess
    expect(day.iso).toBe('2026-11-23T00:00:00+05:30');
    expect(day.epochMs).toBe(Date.UTC(2026, 10, 22, 18, 30, 0));
    expect(month.iso).toBe('2026-11-01T00:00:00+05:30');
  });

  // The host's zone (a Lambda runs in UTC, a laptop wherever it is) must change nothing: the same table is parsed in
  // child processes under three TZ values, two of them far from UTC on either side.
  it.each(['UTC', 'America/New_York', 'Asia/Kolkata'])('gives the same dates whatever the host zone (TZ=%s)', (tz) => {
    // Prepare
    const expected = [
      '2026-11-23T00:00:00+05:30',
      '2026-11-23T10:00:00+05:30',
      '2026-11-23T18:30:00+05:30',
      '2026-11-23T15:30:00+05:30',
      '2026-07-15T00:00:00-04:00',
      '2026-11-23T00:00:00+00:00',
      '2026-11-01T00:00:00+05:30',
      '2026-11-23T00:00:00+05:30',
      '2026-07-15T09:30:00-04:00',
      '2026-11-23T18:30:00+05:30',
      '2026-03-29T00:00:00+01:00',
      '2026-11-23T05:30:00+05:30',
      '2026-11-22T19:00:00-05:00',
    ];
    const root = join(__dirname, '..');

    // Act
    const out = execFileSync(join(root, 'node_modules', '.bin', 'tsx'), [join(__dirname, 'support', 'dates-probe.ts')], {
      cwd: root,
      env: { ...process.env, TZ: tz },
      encoding: 'utf8',
    });
    const probe = JSON.parse(out) as { tz: string; hostOffset: number; results: Array<[string, string, string, { iso?: string; code?: string }]> };

    // Assess
    expect(probe.tz).toBe(tz);
    expect(probe.hostOffset).toBe({ UTC: 0, 'America/New_York': 300, 'Asia/Kolkata': -330 }[tz]);
    expect(probe.results.map(([format, zone, text]) => [format, zone, text])).toEqual(PROBES);
    expect(probe.results.map(([, , , result]) => result.iso ?? result.code)).toEqual(expected);
  });

  it('gives the same answer for a value seen again (memoised)', () => {
    // Prepare
    const parse = compileDateParser('yyyy-MM-dd', 'Asia/Kolkata');

    // Act
    const first = parse('2026-11-23');
    const second = parse('2026-11-23');

    // Assess
    expect(second).toEqual(first);
  });
});

describe('Function: formatIso', () => {
  it('writes milliseconds only when there are some, and negative offsets', () => {
    // Act + Assess
    expect(formatIso(Date.UTC(2026, 0, 1, 12, 0, 0, 250), -210)).toBe('2026-01-01T08:30:00.250-03:30');
    expect(formatIso(Date.UTC(2026, 0, 1), 0)).toBe('2026-01-01T00:00:00+00:00');
  });
});

describe('Function: runLocal', () => {
  it('sends an ISO date-only value as midnight in the dataflow zone, on a host in another zone', () => {
    // Prepare
    const root = join(__dirname, '..');

    // Act
    // A laptop in New York: the workflow runs in a child process with that host zone.
    const out = execFileSync(join(root, 'node_modules', '.bin', 'tsx'), [join(__dirname, 'support', 'iso-workflow-probe.ts')], {
      cwd: root,
      env: { ...process.env, TZ: 'America/New_York' },
      encoding: 'utf8',
    });
    const probe = JSON.parse(out.trim().split('\n').pop()!) as {
      hostOffset: number;
      rows: unknown;
      ledger: Array<{ earnEventDate: number; earnEventDateISO: string; earnExpiresOnISO: string }>;
    };

    // Assess
    expect(probe.hostOffset).toBe(300);
    expect(probe.rows).toMatchObject({ total: 2, accepted: 2, rejected: 0 });
    expect(probe.ledger).toHaveLength(2);
    for (const entry of probe.ledger) {
      expect(entry.earnEventDateISO).toBe('2026-11-23T00:00:00+05:30');
      expect(entry.earnExpiresOnISO).toBe('2027-11-23T00:00:00+05:30');
      expect(entry.earnEventDate).toBe(Date.UTC(2026, 10, 22, 18, 30));
    }
  });
});
