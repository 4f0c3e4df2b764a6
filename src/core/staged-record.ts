import type { ApiItem } from './mapping';

/**
 * A staged record, the contract between the stage and the send workers (and finalize, for a chunk whose worker left
 * no result): one JSON line per valid record in a chunk object (and in the held-records object), in the order
 * `{"n":…,"f":[…],"i":{…}}` or `{"n":…,"f":[…],"i":{…},"c":1}`. The order is part of the contract: the fast paths
 * below read the number and the item without parsing the fields.
 */
export interface StagedRecord {
  /** The record's number in the file (what a rejection is reported under). */
  n: number;
  /** Its source fields, for the rejected file. */
  f: string[];
  /** The API item. */
  i: ApiItem;
  /** Look it up before sending (a replayed AMBIGUOUS record, which may have been issued). */
  c?: 1;
}

/** The line's prefix up to the record number: `{"n":` (`n` is always the first key, a number). */
const NUMBER_AT = '{"n":'.length;
/** The item's key: it follows the fields, whose values are JSON-escaped, so no field can hold it unescaped. */
const ITEM_KEY = '"i":';
/** The tail of a record to be looked up first (`c` always follows the item). */
const CHECK_FIRST_TAIL = ',"c":1}';

/** Characters JSON leaves unescaped but node:readline ends a line at (LINE SEPARATOR, PARAGRAPH SEPARATOR). */
const READLINE_BREAK = /[\u2028\u2029]/;
const READLINE_BREAKS = /[\u2028\u2029]/g;

/**
 * One staged line (no newline) for a valid record. Every reader splits the chunk with node:readline, which also ends
 * a line at U+2028 and U+2029: a field holding one is written escaped (`\u2028`), which JSON reads back the same.
 */
export function encodeStagedRecord(number: number, fields: string[], item: ApiItem, checkFirst = false): string {
  // Keys in this order, always: the fast paths depend on it.
  const line = JSON.stringify(checkFirst ? { n: number, f: fields, i: item, c: 1 } : { n: number, f: fields, i: item });
  return READLINE_BREAK.test(line) ? line.replace(READLINE_BREAKS, escapeBreak) : line;
}

function escapeBreak(character: string): string {
  return character === '\u2028' ? '\\u2028' : '\\u2029';
}

/** The staged record of one line. */
export function decodeStagedRecord(line: string): StagedRecord {
  return JSON.parse(line) as StagedRecord;
}

/** The record number of a staged line, without parsing it. */
export function stagedNumberOf(line: string): number {
  return Number(line.slice(NUMBER_AT, line.indexOf(',', NUMBER_AT)));
}

/**
 * The item of a staged line, without parsing its fields (settling held records reads every candidate line back).
 * The item runs from its key to the line's end, less the closing brace (and the `c` flag): whatever its values hold.
 */
export function stagedItemOf(line: string): ApiItem {
  const at = line.lastIndexOf(`${ITEM_KEY}{`) + ITEM_KEY.length;
  const end = line.endsWith(CHECK_FIRST_TAIL) ? line.length - CHECK_FIRST_TAIL.length : line.length - 1;
  return JSON.parse(line.slice(at, end)) as ApiItem;
}
