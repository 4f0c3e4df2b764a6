import { type Readable } from 'node:stream';
import { CsvError, parse } from 'csv-parse';
import { stringify } from 'csv-stringify/sync';
import type { Dataflow } from '../config/schema';
import { EmptyFileError, MalformedCsvError } from '../errors';

/** Columns appended to the source's header in every rejected-records file. */
export const REJECT_COLUMNS = ['_row', '_stage', '_error_code', '_error_message'] as const;
export type RejectStage = 'validate' | 'api';

/** One data record of a file: its 1-based number (data records only, not lines) and its fields as read. */
export interface CsvRecord {
  readonly number: number;
  readonly fields: string[];
  /** Replays only: the record's earlier outcome was unknown, so it is looked up before it is sent. */
  readonly checkFirst?: boolean;
}

/** A CSV file as a header and a stream of records. */
export interface CsvFile {
  readonly header: string[];
  readonly records: AsyncIterable<CsvRecord>;
}

const ENCODINGS = { 'utf-8': 'utf8', utf8: 'utf8', latin1: 'latin1', 'utf-16le': 'utf16le' } as const;
/** A record longer than this cannot be a badge record; csv-parse stops there instead of buffering without end. */
export const MAX_RECORD_BYTES = 1024 * 1024;

/**
 * Streams a delimited file: header row first, then records numbered from 1. Handles a UTF-8 BOM, CRLF, and quoted
 * fields holding delimiters, quotes and newlines; blank lines are not records.
 *
 * @throws EmptyFileError when there is no header; MalformedCsvError (with the line) when record boundaries cannot
 *   be trusted — raised from the record iterator, possibly late in the file.
 */
export async function openCsv(input: Readable, csv: Dataflow['csv']): Promise<CsvFile> {
  const parser = input.pipe(
    parse({
      bom: true,
      delimiter: csv.delimiter,
      quote: csv.quote,
      encoding: ENCODINGS[csv.encoding],
      relax_column_count: true,
      skip_empty_lines: true,
      max_record_size: MAX_RECORD_BYTES,
    }),
  );
  input.on('error', (error) => parser.destroy(error));
  const iterator = parser[Symbol.asyncIterator]() as AsyncIterator<string[]>;

  const first = await next(iterator);
  if (first.done) throw new EmptyFileError('The file is empty: it has no header row');
  const header = first.value;

  async function* records(): AsyncGenerator<CsvRecord> {
    let number = 0;
    for (;;) {
      const step = await next(iterator);
      if (step.done) return;
      number += 1;
      yield { number, fields: step.value };
    }
  }
  return { header, records: records() };
}

async function next(iterator: AsyncIterator<string[]>): Promise<IteratorResult<string[]>> {
  try {
    return await iterator.next();
  } catch (error) {
    if (error instanceof CsvError) {
      const line = (error as CsvError & { lines?: number }).lines;
      throw new MalformedCsvError(`The file is not well-formed CSV${line ? ` at line ${line}` : ''}: ${error.message} (${error.code})`, { cause: error });
    }
    throw error;
  }
}

/** The header line of a rejected-records file: the source's columns, then `_row,_stage,_error_code,_error_message`. */
export function rejectHeaderLine(header: readonly string[], delimiter = ','): string {
  return stringify([[...header, ...REJECT_COLUMNS]], { delimiter });
}

/** One rejected record as a CSV line: its values unchanged, then its number, stage, code and message. */
export function rejectLine(record: CsvRecord, stage: RejectStage, code: string, message: string, delimiter = ','): string {
  return stringify([[...record.fields, String(record.number), stage, code, message]], { delimiter });
}
