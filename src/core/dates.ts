import { DateTime, FixedOffsetZone, IANAZone, type Zone } from 'luxon';
import { type DateCode, VALIDATION_CODES } from '../codes';

/** A parsed date: the instant, and the UTC offset (minutes) of the configured zone at that instant. */
export interface ParsedDate {
  readonly ok: true;
  readonly epochMs: number;
  readonly offsetMinutes: number;
  /** ISO 8601 with the zone's offset, made once per distinct text (memoised with the parse). */
  readonly iso: string;
}
export interface DateProblem {
  readonly ok: false;
  readonly code: DateCode;
  readonly reason: string;
}
export type DateParseResult = ParsedDate | DateProblem;
export type DateParser = (text: string) => DateParseResult;

/** Formats that are not Luxon token strings. */
export const SPECIAL_DATE_FORMATS = ['epoch-s', 'epoch-ms', 'iso'] as const;

const QUARTER_HOUR_MS = 15 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
/**
 * An offset written after an ISO time (`T15:00Z`, `T15:00:00.5+05:30`, `T1500-0300`). It must follow a time: the
 * `-23` of a date-only `2026-11-23` (or the `-11` of `2026-11`) is the day or month, not an offset.
 */
const EXPLICIT_OFFSET = /[Tt]\d{2}(?::?\d{2}){0,2}(?:[.,]\d+)?(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$/;
const CACHE_LIMIT = 10_000;

/**
 * UTC offsets of one zone, cached per quarter hour of UTC time. Every modern zone changes offset on a quarter-hour
 * boundary, so the cache is exact, and it spares Luxon's Intl-based lookup (~4 µs) on all but the first date of
 * each quarter hour.
 */
class ZoneOffsets {
  private readonly cache = new Map<number, number>();
  constructor(private readonly zone: Zone) {}

  at(epochMs: number): number {
    if (this.zone.isUniversal) return this.zone.offset(epochMs);
    const bucket = Math.floor(epochMs / QUARTER_HOUR_MS);
    let offset = this.cache.get(bucket);
    if (offset === undefined) {
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      offset = this.zone.offset(bucket * QUARTER_HOUR_MS);
      this.cache.set(bucket, offset);
    }
    return offset;
  }

  /**
   * The instant at which the zone's clocks show `wallMs` (wall-clock fields encoded as if UTC), or undefined when
   * that wall time does not exist (skipped by a daylight-saving change). In a repeated hour the earlier instant wins.
   */
  fromWallClock(wallMs: number): { epochMs: number; offsetMinutes: number } | undefined {
    // The offsets in force a day either side cover any change near this time (changes are months apart). A
    // candidate holds when the zone really has that offset at the instant it gives.
    let best: { epochMs: number; offsetMinutes: number } | undefined;
    for (const offset of [this.at(wallMs - DAY_MS), this.at(wallMs + DAY_MS)]) {
      const epochMs = wallMs - offset * 60_000;
      if (this.at(epochMs) === offset && (!best || epochMs < best.epochMs)) best = { epochMs, offsetMinutes: offset };
    }
    return best;
  }

  /**
   * The first instant of a day whose midnight (`wallMs`, wall-clock fields encoded as if UTC) the clocks skip: the
   * instant of the change, with the offset after it (Santiago's 2026-09-06 begins at 01:00-03:00).
   */
  firstInstantOfDay(wallMs: number): { epochMs: number; offsetMinutes: number } {
    const after = this.at(wallMs + DAY_MS);
    const before = this.at(wallMs - DAY_MS);
    // The change lies between midnight read with the later offset and midnight read with the earlier one; changes
    // fall on quarter hours, so the first quarter hour with the later offset is the change.
    const last = wallMs - before * 60_000;
    for (let t = Math.floor((wallMs - after * 60_000) / QUARTER_HOUR_MS) * QUARTER_HOUR_MS; t < last; t += QUARTER_HOUR_MS) {
      if (this.at(t) === after) return { epochMs: t, offsetMinutes: after };
    }
    return { epochMs: last, offsetMinutes: after };
  }
}

function zoneFor(timeZone: string): Zone {
  if (timeZone === 'UTC' || timeZone === 'Etc/UTC') return FixedOffsetZone.utcInstance;
  return IANAZone.create(timeZone);
}

/** Memoises a parser on its input text: file dates repeat (an expiry date, an event day) far more than they differ. */
function memoise(parse: DateParser): DateParser {
  const cache = new Map<string, DateParseResult>();
  return (text) => {
    let result = cache.get(text);
    if (result === undefined) {
      if (cache.size >= CACHE_LIMIT) cache.clear();
      result = parse(text);
      cache.set(text, result);
    }
    return result;
  };
}

function result(epochMs: number, offsetMinutes: number): ParsedDate {
  return { ok: true, epochMs, offsetMinutes, iso: formatIso(epochMs, offsetMinutes) };
}

function invalid(reason: string): DateProblem {
  return { ok: false, code: VALIDATION_CODES.INVALID_DATE, reason };
}

/**
 * Compiles a parser for one date column: `format` is a Luxon token string (`yyyy-MM-dd HH:mm:ss`, `dd/MM/yyyy`,
 * `yyyyMMdd`, …) or `epoch-s`, `epoch-ms`, `iso`; values without an offset are wall-clock times in `timeZone`.
 * A date without a time is the first instant of that day in that zone: 00:00, or the end of the gap on a day whose
 * midnight the clocks skip. A wall time given explicitly in a gap is NONEXISTENT_LOCAL_TIME.
 *
 * @throws Error when the format cannot be compiled (configuration validation reports it).
 */
export function compileDateParser(format: string, timeZone: string): DateParser {
  const zone = zoneFor(timeZone);
  const offsets = new ZoneOffsets(zone);

  if (format === 'epoch-s' || format === 'epoch-ms') {
    const factor = format === 'epoch-s' ? 1000 : 1;
    const digits = format === 'epoch-s' ? /^\d{1,11}$/ : /^\d{1,14}$/;
    return (text) => {
      if (!digits.test(text)) return invalid(`"${text}" is not ${format === 'epoch-s' ? 'epoch seconds' : 'epoch milliseconds'}`);
      const epochMs = Number(text) * factor;
      return result(epochMs, offsets.at(epochMs));
    };
  }

  if (format === 'iso') {
    return memoise((text) => {
      if (EXPLICIT_OFFSET.test(text)) {
        // The text names its offset; `zone` is only the fallback Luxon would otherwise take from the host.
        const parsed = DateTime.fromISO(text, { zone: FixedOffsetZone.utcInstance, setZone: true });
        if (!parsed.isValid) return invalid(`"${text}" is not an ISO 8601 date (${parsed.invalidExplanation ?? parsed.invalidReason})`);
        const epochMs = parsed.toMillis();
        return result(epochMs, offsets.at(epochMs));
      }
      const wall = DateTime.fromISO(text, { zone: FixedOffsetZone.utcInstance });
      if (!wall.isValid) return invalid(`"${text}" is not an ISO 8601 date (${wall.invalidExplanation ?? wall.invalidReason})`);
      // ISO separates a time from its date with T: without one, the value is a day.
      return fromWall(wall.toMillis(), text, !/[Tt]/.test(text));
    });
  }

  const parser = DateTime.buildFormatParser(format, { locale: 'en-US' });
  // Formats carrying their own offset or zone are left to Luxon whole; all others are wall-clock times in the zone.
  const carriesZone = /(?:^|[^'])(?:Z|z)/.test(format.replace(/'[^']*'/g, ''));
  // A format without time tokens (hour, minute, second, fraction, meridiem, time macros, epoch) reads days.
  const dateOnly = !/[HhmsSuaTtfFXx]/.test(format.replace(/'[^']*'/g, ''));
  return memoise((text) => {
    if (carriesZone) {
      const parsed = DateTime.fromFormatParser(text, parser, { zone, setZone: true });
      if (!parsed.isValid) return invalid(`"${text}" does not match the format "${format}" (${parsed.invalidExplanation ?? parsed.invalidReason})`);
      const epochMs = parsed.toMillis();
      return result(epochMs, offsets.at(epochMs));
    }
    const wall = DateTime.fromFormatParser(text, parser, { zone: FixedOffsetZone.utcInstance });
    if (!wall.isValid) {
      return invalid(`"${text}" does not match the format "${format}" or is not a real date (${wall.invalidExplanation ?? wall.invalidReason})`);
    }
    return fromWall(wall.toMillis(), text, dateOnly);
  });

  function fromWall(wallMs: number, text: string, day: boolean): DateParseResult {
    const instant = offsets.fromWallClock(wallMs) ?? (day ? offsets.firstInstantOfDay(wallMs) : undefined);
    if (!instant) return { ok: false, code: VALIDATION_CODES.NONEXISTENT_LOCAL_TIME, reason: `"${text}" does not exist in ${timeZone} (clocks skip it)` };
    return result(instant.epochMs, instant.offsetMinutes);
  }
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** ISO 8601 with the zone's offset, e.g. `2025-09-10T15:00:00+05:30` (milliseconds only when not zero). */
export function formatIso(epochMs: number, offsetMinutes: number): string {
  const local = new Date(epochMs + offsetMinutes * 60_000).toISOString(); // wall clock in the zone, labelled Z
  const millis = epochMs % 1000 === 0 ? '' : local.slice(19, 23);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${local.slice(0, 19)}${millis}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}
