import type { Dataflow, DateField, DateMapping, PlainMapping } from '../config/schema';
import { VALIDATION_CODES, type ValidationCode } from '../codes';
import { AmbiguousColumnError, ConfigError, MissingColumnError } from '../errors';
import { type DateParser, compileDateParser } from './dates';

/** One item of the import API's request array (see capillary-badges-api.md). */
export interface ApiItem {
  badgeMetaId: string;
  customerId: number;
  earnEventDate: number;
  earnExpiresOn: number;
  earnEventDateISO: string;
  earnExpiresOnISO: string;
}

export interface Rejection {
  code: ValidationCode;
  message: string;
}
export type MapResult = { ok: true; item: ApiItem } | { ok: false; rejection: Rejection };
export type RecordMapper = (fields: readonly string[]) => MapResult;

/** Capillary refuses earn events dated in the future (error 750); a day of slack covers clock and zone skew. */
const FUTURE_SLACK_MS = 24 * 60 * 60 * 1000;
const CUSTOMER_ID = /^[1-9]\d{0,15}$/;
const BADGE_ID = /^[0-9a-fA-F]{24}$/;

type Getter = (fields: readonly string[]) => string;

function getterFor(mapping: PlainMapping | DateMapping, columnIndex: ReadonlyMap<string, number>): Getter {
  if (mapping.value !== undefined) {
    const constant = String(mapping.value).trim();
    return () => constant;
  }
  const index = columnIndex.get(mapping.column!)!;
  return (fields) => (fields[index] ?? '').trim();
}

/**
 * Indexes the header and checks that every mapped column is there exactly once.
 *
 * @throws MissingColumnError naming every absent column; AmbiguousColumnError naming a column that appears twice.
 */
export function indexHeader(flow: Dataflow, header: readonly string[]): Map<string, number> {
  const names = header.map((h) => h.trim());
  const index = new Map<string, number>();
  const repeated = new Set<string>();
  names.forEach((name, i) => (index.has(name) ? repeated.add(name) : index.set(name, i)));
  const used = Object.entries(flow.mapping)
    .filter(([, m]) => m.column !== undefined)
    .map(([field, m]) => ({ field, column: m.column! }));
  const missing = used.filter((u) => !index.has(u.column));
  if (missing.length > 0) {
    throw new MissingColumnError(
      `The header lacks ${missing.map((m) => `"${m.column}" (mapped to ${m.field})`).join(', ')}; it has: ${names.map((n) => `"${n}"`).join(', ')}`,
    );
  }
  const ambiguous = used.filter((u) => repeated.has(u.column));
  if (ambiguous.length > 0) {
    throw new AmbiguousColumnError(`The header has ${ambiguous.map((a) => `"${a.column}"`).join(', ')} more than once; which one is meant cannot be told`);
  }
  return index;
}

/**
 * Compiles the record mapper for one file: header checked once, date parsers built once, then one cheap call per
 * record that returns the API item or the reason the record is rejected.
 */
export function compileMapper(flow: Dataflow, header: readonly string[], now: () => number = Date.now): RecordMapper {
  const columns = indexHeader(flow, header);
  const width = header.length;
  const { mapping } = flow;
  const getCustomer = getterFor(mapping.customerId, columns);
  const getBadge = getterFor(mapping.badgeMetaId, columns);
  const dates = (['earnEventDate', 'earnExpiresOn'] as const).map((field: DateField) => {
    const m = mapping[field];
    let parse: DateParser;
    try {
      parse = compileDateParser(m.format, m.timeZone);
    } catch (error) {
      throw new ConfigError([`mapping.${field}.format: "${m.format}" cannot be used (${(error as Error).message})`]);
    }
    return { field, get: getterFor(m, columns), parse };
  });
  const [event, expiry] = dates as [(typeof dates)[number], (typeof dates)[number]];
  const epoch = flow.destination.epochUnit === 's' ? (ms: number) => Math.floor(ms / 1000) : (ms: number) => ms;

  return (fields) => {
    if (fields.length !== width) {
      return reject(VALIDATION_CODES.FIELD_COUNT, `The record has ${fields.length} fields; the header has ${width}`);
    }
    const problems: Rejection[] = [];

    const customerText = getCustomer(fields);
    const customerId = Number(customerText);
    if (!CUSTOMER_ID.test(customerText) || !Number.isSafeInteger(customerId)) {
      problems.push({
        code: VALIDATION_CODES.INVALID_CUSTOMER_ID,
        message: customerText === '' ? 'customerId is empty' : `customerId "${customerText}" is not a positive whole number below 2^53`,
      });
    }
    const badgeMetaId = getBadge(fields);
    if (!BADGE_ID.test(badgeMetaId)) {
      problems.push({
        code: VALIDATION_CODES.INVALID_BADGE_ID,
        message: badgeMetaId === '' ? 'badgeMetaId is empty' : `badgeMetaId "${badgeMetaId}" is not 24 hexadecimal characters`,
      });
    }
    const eventText = event.get(fields);
    const eventDate = eventText === '' ? undefined : event.parse(eventText);
    const expiryText = expiry.get(fields);
    const expiryDate = expiryText === '' ? undefined : expiry.parse(expiryText);
    for (const [field, parsed] of [
      [event.field, eventDate],
      [expiry.field, expiryDate],
    ] as const) {
      if (parsed === undefined) problems.push({ code: VALIDATION_CODES.INVALID_DATE, message: `${field} is empty` });
      else if (!parsed.ok) problems.push({ code: parsed.code, message: `${field}: ${parsed.reason}` });
    }
    if (eventDate?.ok && expiryDate?.ok) {
      if (expiryDate.epochMs <= eventDate.epochMs) {
        problems.push({
          code: VALIDATION_CODES.EXPIRY_BEFORE_EVENT,
          message: `earnExpiresOn (${expiryDate.iso}) is not after earnEventDate (${eventDate.iso})`,
        });
      }
      if (eventDate.epochMs > now() + FUTURE_SLACK_MS) {
        problems.push({
          code: VALIDATION_CODES.EVENT_IN_FUTURE,
          message: `earnEventDate (${eventDate.iso}) is more than 24 hours in the future; the API refuses it (750)`,
        });
      }
    }
    if (problems.length > 0) {
      return reject(problems[0]!.code, problems.map((p) => p.message).join('; '));
    }
    const ev = eventDate as Extract<typeof eventDate, { ok: true }>;
    const ex = expiryDate as Extract<typeof expiryDate, { ok: true }>;
    return {
      ok: true,
      item: {
        // Badge ids are MongoDB ObjectIds, lower-case hex as Capillary writes them: sent in that form whatever the file's case.
        badgeMetaId: badgeMetaId.toLowerCase(),
        customerId,
        earnEventDate: epoch(ev.epochMs),
        earnExpiresOn: epoch(ex.epochMs),
        earnEventDateISO: ev.iso,
        earnExpiresOnISO: ex.iso,
      },
    };
  };
}

function reject(code: ValidationCode, message: string): MapResult {
  return { ok: false, rejection: { code, message } };
}
