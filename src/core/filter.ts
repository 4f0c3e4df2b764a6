import { stringify } from 'csv-stringify/sync';
import type { Dataflow } from '../config/schema';
import { VALIDATION_CODES } from '../codes';
import { type CsvDialect, type CsvRecord, DEFAULT_DIALECT, dialectOptions } from './csv';
import { compileExpression, toBoolean } from './expressions';
import type { Rejection } from './mapping';

/** The JSON path of a dataflow's filter expression, as configuration errors and rejection messages name it. */
export const FILTER_PATH = 'filter.expression';

/** What a dataflow's filter says of a record: imported (`keep`), left out (`filtered`), or rejected (the expression failed). */
export type FilterVerdict = { readonly keep: true } | { readonly keep: false; readonly rejection?: undefined } | { readonly keep: false; readonly rejection: Rejection };
export type RecordFilter = (fields: readonly string[]) => FilterVerdict;

const KEEP: FilterVerdict = { keep: true };
const FILTERED: FilterVerdict = { keep: false };

/**
 * Compiles a dataflow's filter once per file (undefined when it has none): per record, `true` keeps it, `false`
 * filters it, and anything else (an evaluation error, a missing key, a result that is not a boolean) rejects it
 * EXPRESSION_ERROR with the expression's message, so that no record is left out for a reason nobody chose.
 *
 * @throws ConfigError naming `filter.expression` when the expression does not compile; MissingColumnError when it
 *   names a variable that is neither `row` nor a column of the file's header (the file fails, as for a mapped column).
 */
export function compileFilter(filter: Dataflow['filter'], header: readonly string[]): RecordFilter | undefined {
  if (!filter) return undefined;
  const evaluate = compileExpression(filter.expression, header, FILTER_PATH);
  return (fields) => {
    const result = evaluate(fields);
    const decision = result.ok ? toBoolean(result.value) : result;
    if (!decision.ok) return { keep: false, rejection: { code: VALIDATION_CODES.EXPRESSION_ERROR, message: `${FILTER_PATH}: ${decision.message}` } };
    return decision.value ? KEEP : FILTERED;
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
