import { stringify } from 'csv-stringify/sync';
import type { Dataflow } from '../config/schema';
import { VALIDATION_CODES } from '../codes';
import { type CsvDialect, type CsvRecord, DEFAULT_DIALECT, dialectOptions } from './csv';
import { compileExpression } from './expressions';
import type { Rejection } from './mapping';

/** The JSON path of a dataflow's filter expression, as configuration errors and rejection messages name it. */
export const FILTER_PATH = 'filter.expression';

/** What a dataflow's filter says of a record: imported (`keep`), left out (`filtered`), or rejected (the expression failed). */
export type FilterVerdict = { readonly keep: true } | { readonly keep: false; readonly rejection?: undefined } | { readonly keep: false; readonly rejection: Rejection };
export type RecordFilter = (fields: readonly string[]) => FilterVerdict;

const KEEP: FilterVerdict = { keep: true };
const FILTERED: FilterVerdict = { keep: false };

/** What a CEL value is, for a message: a filter must give a boolean. */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'bigint') return `the int ${value}`;
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'number') return `the number ${value}`;
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'a map' : typeof value;
}

/**
 * Compiles a dataflow's filter once per file (undefined when it has none): per record, `true` keeps it, `false`
 * filters it, and anything else (an evaluation error, a missing key, a result that is not a boolean) rejects it
 * EXPRESSION_ERROR with the expression's message, so that no record is left out for a reason nobody chose.
 *
 * @throws ConfigError naming `filter.expression` when the expression does not compile.
 */
export function compileFilter(filter: Dataflow['filter'], header: readonly string[]): RecordFilter | undefined {
  if (!filter) return undefined;
  const evaluate = compileExpression(filter.expression, header, FILTER_PATH);
  return (fields) => {
    const result = evaluate(fields);
    if (!result.ok) return { keep: false, rejection: { code: VALIDATION_CODES.EXPRESSION_ERROR, message: `${FILTER_PATH}: ${result.message}` } };
    if (result.value === true) return KEEP;
    if (result.value === false) return FILTERED;
    return { keep: false, rejection: { code: VALIDATION_CODES.EXPRESSION_ERROR, message: `${FILTER_PATH} gave ${kindOf(result.value)}, not true or false` } };
  };
}

/** Columns appended to the source's header in a filtered-records file: the record's number and the filter that left it out. */
export const FILTERED_COLUMNS = ['_row', '_filter'] as const;

/** The header line of a filtered-records file: the source's columns, then `_row,_filter`. */
export function filteredHeaderLine(header: readonly string[], dialect: CsvDialect = DEFAULT_DIALECT): string {
  return stringify([[...header, ...FILTERED_COLUMNS]], dialectOptions(dialect));
}

/** One filtered record as a CSV line: its values unchanged, then its number and the filter's expression. */
export function filteredLine(record: CsvRecord, expression: string, dialect: CsvDialect = DEFAULT_DIALECT): string {
  return stringify([[...record.fields, String(record.number), expression]], dialectOptions(dialect));
}
