import type { Dataflow, DateField, DateMapping, PlainMapping } from '../config/schema';
import { VALIDATION_CODES, type ValidationCode } from '../codes';
import { AmbiguousColumnError, ConfigError, MissingColumnError } from '../errors';
import { type DateParser, compileDateParser } from './dates';
import { compileExpression, toFieldText } from './expressions';

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

/** A field's text from a record, or undefined when it has none (an expression failed: the problem is pushed). */
type Getter = (fields: readonly string[], problems: Rejection[]) => string | undefined;
type MappedFieldName = keyof Dataflow['mapping'];

function getterFor(field: MappedFieldName, mapping: PlainMapping | DateMapping, columnIndex: ReadonlyMap<string, number>, header: readonly string[]): Getter {
  if (mapping.expression !== undefined) return expressionGetter(field, mapping.expression, header);
  if (mapping.value !== undefined) {
    const constant = String(mapping.value).trim();
    return () => constant;
  }
  const index = columnIndex.get(mapping.column!)!;
  return (fields) => (fields[index] ?? '').trim();
}

/** The field's text from its expression, compiled once for the file; a failing record is an EXPRESSION_ERROR. */
function expressionGetter(field: MappedFieldName, expression: string, header: readonly string[]): Getter {
  const evaluate = compileExpression(expression, header, `mapping.${field}.expression`);
  return (fields, problems) => {
    const result = evaluate(fields);
    const text = result.ok ? toFieldText(result.value) : result;
    if (text.ok) return text.value;
    problems.push({ code: VALIDATION_CODES.EXPRESSION_ERROR, message: `${field}: ${text.message}` });
    return undefined;
  };
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

/** What a file's header and its dataflow's mapping compile to: a getter per field and a parser per date. */
interface CompiledFields {
  width: number;
  getCustomer: Getter;
  getBadge: Getter;
  event: CompiledDate;
  expiry: CompiledDate;
}
interface CompiledDate {
  field: DateField;
  get: Getter;
  parse: DateParser;
}
type ParsedDate = Extract<ReturnType<DateParser>, { ok: true }>;

/**
 * Compiles the record mapper for one file: header checked once, date parsers built once, then one cheap call per
 * record that returns the API item or the reason the record is rejected (every problem of the record, the first
 * one's code).
 */
export function compileMapper(flow: Dataflow, header: readonly string[], now: () => number = Date.now): RecordMapper {
  const compiled = compileFields(flow, header);
  const epoch = flow.destination.epochUnit === 's' ? (ms: number) => Math.floor(ms / 1000) : (ms: number) => ms;
  return (fields) => {
    const miscounted = fieldCountRejection(fields, compiled.width);
    if (miscounted) return miscounted;
    const problems: Rejection[] = [];
    const customerId = readCustomerId(compiled.getCustomer(fields, problems), problems);
    const badgeMetaId = readBadgeId(compiled.getBadge(fields, problems), problems);
    const dates = readDates(compiled, fields, now(), problems);
    if (problems.length > 0 || !dates) {
      return reject(problems[0]!.code, problems.map((p) => p.message).join('; '));
    }
    const { event, expiry } = dates;
    return {
      ok: true,
      item: {
        // Badge ids are MongoDB ObjectIds, lower-case hex as Capillary writes them: sent in that form whatever the file's case.
        badgeMetaId: badgeMetaId.toLowerCase(),
        customerId,
        earnEventDate: epoch(event.epochMs),
        earnExpiresOn: epoch(expiry.epochMs),
        earnEventDateISO: event.iso,
        earnExpiresOnISO: expiry.iso,
      },
    };
  };
}

function compileFields(flow: Dataflow, header: readonly string[]): CompiledFields {
  const columns = indexHeader(flow, header);
  const { mapping } = flow;
  const compileDate = (field: DateField): CompiledDate => {
    const m = mapping[field];
    let parse: DateParser;
    try {
      parse = compileDateParser(m.format, m.timeZone);
    } catch (error) {
      throw new ConfigError([`mapping.${field}.format: "${m.format}" cannot be used (${(error as Error).message})`]);
    }
    return { field, get: getterFor(field, m, columns, header), parse };
  };
  return {
    width: header.length,
    getCustomer: getterFor('customerId', mapping.customerId, columns, header),
    getBadge: getterFor('badgeMetaId', mapping.badgeMetaId, columns, header),
    event: compileDate('earnEventDate'),
    expiry: compileDate('earnExpiresOn'),
  };
}

function readCustomerId(text: string | undefined, problems: Rejection[]): number {
  if (text === undefined) return NaN;
  const customerId = Number(text);
  if (!CUSTOMER_ID.test(text) || !Number.isSafeInteger(customerId)) {
    problems.push({
      code: VALIDATION_CODES.INVALID_CUSTOMER_ID,
      message: text === '' ? 'customerId is empty' : `customerId "${text}" is not a positive whole number below 2^53`,
    });
  }
  return customerId;
}

function readBadgeId(text: string | undefined, problems: Rejection[]): string {
  if (text === undefined) return '';
  if (!BADGE_ID.test(text)) {
    problems.push({
      code: VALIDATION_CODES.INVALID_BADGE_ID,
      message: text === '' ? 'badgeMetaId is empty' : `badgeMetaId "${text}" is not 24 hexadecimal characters`,
    });
  }
  return text;
}

function readDate({ field, get, parse }: CompiledDate, fields: readonly string[], problems: Rejection[]): ParsedDate | undefined {
  const text = get(fields, problems);
  if (text === undefined) return undefined;
  const date = text === '' ? undefined : parse(text);
  if (date === undefined) problems.push({ code: VALIDATION_CODES.INVALID_DATE, message: `${field} is empty` });
  else if (!date.ok) problems.push({ code: date.code, message: `${field}: ${date.reason}` });
  return date?.ok ? date : undefined;
}

/** Both dates, parsed and checked against each other and the clock; undefined (with problems) when either is unusable. */
function readDates(compiled: CompiledFields, fields: readonly string[], nowMs: number, problems: Rejection[]): { event: ParsedDate; expiry: ParsedDate } | undefined {
  const event = readDate(compiled.event, fields, problems);
  const expiry = readDate(compiled.expiry, fields, problems);
  if (!event || !expiry) return undefined;
  if (expiry.epochMs <= event.epochMs) {
    problems.push({
      code: VALIDATION_CODES.EXPIRY_BEFORE_EVENT,
      message: `earnExpiresOn (${expiry.iso}) is not after earnEventDate (${event.iso})`,
    });
  }
  if (event.epochMs > nowMs + FUTURE_SLACK_MS) {
    problems.push({
      code: VALIDATION_CODES.EVENT_IN_FUTURE,
      message: `earnEventDate (${event.iso}) is more than 24 hours in the future; the API refuses it (750)`,
    });
  }
  return { event, expiry };
}

/** FIELD_COUNT when a record's fields do not number the header's (the stage asks it too, before a filter reads columns). */
export function fieldCountRejection(fields: readonly string[], width: number): MapResult | undefined {
  return fields.length === width ? undefined : reject(VALIDATION_CODES.FIELD_COUNT, `The record has ${fields.length} fields; the header has ${width}`);
}

function reject(code: ValidationCode, message: string): MapResult {
  return { ok: false, rejection: { code, message } };
}
