import { type Readable } from 'node:stream';
import { CsvError, parse } from 'csv-parse';
import { stringify } from 'csv-stringify/sync';
import type { Dataflow } from '../config/schema';
import { EmptyFileError, MalformedCsvError } from '../errors';
import { TOO_LONG_MARK, guardedText } from './guard';

/** Columns appended to the source's header in every rejected-records file. */
export const REJECT_COLUMNS = ['_row', '_stage', '_error_code', '_error_message'] as const;
export type RejectStage = 'validate' | 'api';

/** One data record of a file: its 1-based number (data records only, not lines) and its fields as read. */
export interface CsvRecord {
  readonly number: number;
  readonly fields: string[];
  /** Replays only: the record's earlier outcome was unknown, so it is looked up before it is sent. */
  readonly checkFirst?: boolean;
  /** The record was longer than csv.maxRecordBytes: its fields were not read. */
  readonly tooLong?: boolean;
}

/** A CSV file as a header and a stream of records. */
export interface CsvFile {
  readonly header: string[];
  readonly records: AsyncIterable<CsvRecord>;
}

/** A CSV file as openCsv reads it: also says how many records the text guard delimited. */
export interface GuardedCsvFile extends CsvFile {
  /**
   * Data records the text guard delimited (after the header; blank lines not counted; a record over
   * csv.maxRecordBytes counted once). Valid once `records` is exhausted: it must equal the records read from it.
   */
  recordsSeen(): number;
}

/**
 * A byte range of a file parsed on its own (parallel staging, see planRanges): it starts just after a record's line
 * end, after the header; the header read once from the file start is given.
 */
export interface CsvRange {
  /** The file's header, read from its start. */
  header: string[];
  /** Number of the range's first data record in the whole file. */
  firstRecord: number;
  /** Line of the range's first byte in the whole file, for messages. */
  firstLine: number;
  /** Absolute offset of the range's first byte, for messages. */
  offset: number;
  /** The range starts at the file's first byte (then a leading BOM is dropped). */
  atFileStart: boolean;
}

/**
 * Streams a delimited file: header row first, then records numbered from 1. Record boundaries follow the text
 * guard's rule (RecordGuard): a quote opens a quoted field only as a field's first character and is a literal
 * character anywhere else; a doubled quote inside a quoted field is one quote; `\r\n`, `\n` and `\r` all end a
 * line; blank lines are not records; a leading UTF-8 BOM is dropped.
 *
 * With `range`, the input is that range of the file only: the header is the one given, records are numbered from
 * its firstRecord, lines and byte offsets in messages are the file's.
 *
 * @throws EmptyFileError when there is no header; MalformedCsvError (with the line) when record boundaries cannot
 *   be trusted — raised from the record iterator, possibly late in the file.
 */
export async function openCsv(input: Readable, csv: Dataflow['csv'], range?: CsvRange): Promise<GuardedCsvFile> {
  // Decoded and checked first (EncodingError), delimited into records by the guard, with records over the limit
  // replaced by TOO_LONG_MARK lines. The parser is set to read the boundaries the guard read: every option below
  // that bears on them says the same as the guard.
  const text = guardedText(input, csv, range);
  const parser = text.pipe(
    parse({
      // The guard has dropped a leading BOM: a second one would be text to the guard, so it is text here too.
      bom: false,
      delimiter: csv.delimiter,
      quote: csv.quote,
      // A doubled quote is one quote (csv-parse's default escape is '"' whatever the quote is).
      escape: csv.quote,
      // A quote that does not start a field is a literal character. (csv-parse would also take `"x"y` for the text
      // `"x"y`; the guard fails such a file before it gets here.)
      relax_quotes: true,
      // Every line end, also mixed in one file (by default csv-parse picks the first style it meets for the file).
      record_delimiter: ['\r\n', '\n', '\r'],
      encoding: 'utf8',
      relax_column_count: true,
      skip_empty_lines: true,
      // A safety net only: the guard has already cut every longer record.
      max_record_size: csv.maxRecordBytes + 1024,
    }),
  );
  text.on('error', (error) => parser.destroy(error));
  const iterator = parser[Symbol.asyncIterator]() as AsyncIterator<string[]>;
  const lineBase = range ? range.firstLine - 1 : 0;

  let header = range?.header;
  if (!header) {
    const first = await next(iterator, lineBase);
    if (first.done) throw new EmptyFileError('The file is empty: it has no header row');
    header = first.value;
  }

  async function* records(): AsyncGenerator<CsvRecord> {
    let number = range ? range.firstRecord - 1 : 0;
    for (;;) {
      const step = await next(iterator, lineBase);
      if (step.done) return;
      number += 1;
      const fields = step.value;
      yield fields.length === 1 && fields[0] === TOO_LONG_MARK ? { number, fields: [], tooLong: true } : { number, fields };
    }
  }
  return { header, records: records(), recordsSeen: () => text.recordsSeen };
}

/** The text guard and the parser counted different records: the file's record boundaries cannot be trusted. */
export function boundariesDisagree(guard: number, parser: number): MalformedCsvError {
  return new MalformedCsvError(`record boundaries disagree: the text guard delimited ${guard} records, the parser ${parser}; nothing was sent`);
}

async function next(iterator: AsyncIterator<string[]>, lineBase: number): Promise<IteratorResult<string[]>> {
  try {
    return await iterator.next();
  } catch (error) {
    if (error instanceof CsvError) {
      const line = (error as CsvError & { lines?: number }).lines;
      throw new MalformedCsvError(`The file is not well-formed CSV${line ? ` at line ${line + lineBase}` : ''}: ${error.message} (${error.code})`, { cause: error });
    }
    throw error;
  }
}

/**
 * The delimiter and quote a rejected-records file is written with: the dataflow's own, so that the stage reads a replay
 * of it (with the dataflow's csv settings, a doubled quote being one quote) as the records it holds.
 */
export interface CsvDialect {
  delimiter: string;
  quote: string;
}

/** The dialect of a dataflow with the default csv settings. */
export const DEFAULT_DIALECT: CsvDialect = { delimiter: ',', quote: '"' };

/** Stringify options for a dialect: a quote inside a field is doubled (escape = quote), as openCsv reads it. */
export function dialectOptions(dialect: CsvDialect): { delimiter: string; quote: string; escape: string } {
  return { delimiter: dialect.delimiter, quote: dialect.quote, escape: dialect.quote };
}

/** The header line of a rejected-records file: the source's columns, then `_row,_stage,_error_code,_error_message`. */
export function rejectHeaderLine(header: readonly string[], dialect: CsvDialect = DEFAULT_DIALECT): string {
  return stringify([[...header, ...REJECT_COLUMNS]], dialectOptions(dialect));
}

/** One rejected record as a CSV line: its values unchanged, then its number, stage, code and message. */
export function rejectLine(record: CsvRecord, stage: RejectStage, code: string, message: string, dialect: CsvDialect = DEFAULT_DIALECT): string {
  return stringify([[...record.fields, String(record.number), stage, code, message]], dialectOptions(dialect));
}
