import { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import { stringify } from 'csv-stringify/sync';
import { SEND_CODES, VALIDATION_CODES } from '../codes';
import { ReplayFileError } from '../errors';
import { type CsvDialect, type CsvFile, type CsvRecord, REJECT_COLUMNS, dialectOptions } from './csv';

const WIDTH = REJECT_COLUMNS.length;

/** Whether a header is a rejected-records file's: the source's columns, then _row, _stage, _error_code, _error_message. */
export function isRejectHeader(header: readonly string[]): boolean {
  return header.length > WIDTH && header.slice(-WIDTH).join() === REJECT_COLUMNS.join();
}

/** The name a replay file gets: `…/events_1.rejected.csv` → `events_1.replay.csv` (a path or an S3 key). */
export function replayNameOf(rejectedFile: string): string {
  return `${rejectedFile.slice(rejectedFile.lastIndexOf('/') + 1).replace(/(\.rejected)?\.csv$/i, '')}.replay.csv`;
}

/**
 * Records of a replay file that were rejected as DUPLICATE_IN_FILE, with their earlier message. selectForReplay never
 * selects them; one put back in a replay file by hand is rejected again by the stage (see replayedDuplicate).
 */
const replayedDuplicates = new WeakMap<CsvRecord, string>();

/**
 * The message to reject a replayed record with when it was a DUPLICATE_IN_FILE of the original file (its first
 * occurrence is the one that was sent, or is to be replayed); undefined for any other record.
 */
export function replayedDuplicate(record: CsvRecord): string | undefined {
  const earlier = replayedDuplicates.get(record);
  return earlier === undefined ? undefined : `Rejected as ${VALIDATION_CODES.DUPLICATE_IN_FILE} in the original file (${earlier}): a replay never sends it; replay its first occurrence`;
}

/**
 * Reads a replay file (a rejected-records file, or a selection of it) as the original file's records: the source's
 * columns without `_row,_stage,_error_code,_error_message`, each record under its original number (`_row`), so the new
 * report ties back to the original file. A record rejected as AMBIGUOUS is marked to be looked up before it is sent.
 */
export function replayRecords(file: CsvFile): CsvFile {
  if (!isRejectHeader(file.header)) {
    throw new ReplayFileError(`A replay file is a rejected-records file: its header must end with ${REJECT_COLUMNS.join(',')}; this one ends with ${file.header.slice(-WIDTH).join(',') || '(nothing)'}`);
  }
  async function* records(): AsyncGenerator<CsvRecord> {
    for await (const record of file.records) {
      const fields = record.fields;
      const [row, , code, message] = fields.slice(-WIDTH);
      const number = Number(row);
      if (fields.length <= WIDTH || !/^[1-9]\d*$/.test(row ?? '') || !Number.isSafeInteger(number)) {
        throw new ReplayFileError(`Record ${record.number} of the replay file has no valid _row (found "${row ?? ''}"): a replay must keep each record's original number`);
      }
      const replayed: CsvRecord = { number, fields: fields.slice(0, -WIDTH), ...(code === SEND_CODES.AMBIGUOUS ? { checkFirst: true } : {}) };
      if (code === VALIDATION_CODES.DUPLICATE_IN_FILE) replayedDuplicates.set(replayed, message ?? '');
      yield replayed;
    }
  }
  return { header: file.header.slice(0, -WIDTH), records: records() };
}

export interface ReplaySelection {
  /** Records kept for the replay, and those left out (rejected by another stage). */
  kept: number;
  left: number;
  /** DUPLICATE_IN_FILE records left out whatever the stages: their first occurrence is the one sent or to replay. */
  duplicates: number;
  /** Records left out because an earlier replay of the same rejected file took them (see ReplayLedger). */
  replayedBefore: number;
  /** The original numbers (`_row`) of the records kept. */
  rows: number[];
}

/**
 * Which records of one rejected-records file earlier replays took, by their original number. A record a replay took
 * was either issued by that replay or is in that replay's own rejected file: replaying it again from the first file
 * (say with `--stage all` after a replay of `api`) could issue it twice, so a later replay leaves it out.
 */
export interface ReplayLedger {
  /** The original numbers earlier replays took, and the runs that took them. */
  taken(): Promise<{ rows: Set<number>; runs: string[] }>;
  /** Remembers the rows a replay run takes (before the run starts). */
  record(run: string, rows: readonly number[]): Promise<void>;
}

/** Which rejected records a replay takes, by the stage that rejected them. */
export type ReplayStage = 'api' | 'validate';

/**
 * Picks the records of a rejected-records file to replay, by the stage that rejected them: by default `api` (among
 * them RETRIES_EXHAUSTED and AMBIGUOUS); `validate` for validation rejects, once the operator fixed them in the file.
 * A DUPLICATE_IN_FILE record is never picked, whatever the stages: it repeats a record of the same file that was sent
 * (or was itself rejected, and is replayed under its own number), so sending it would issue the badge twice.
 * Writes the header and the kept records, unchanged, to `write`. Reads and writes with the dataflow's delimiter and
 * quote (a doubled quote is one quote), as finalize wrote the file and as the stage reads the replay.
 */
export async function selectForReplay(
  input: Readable,
  dialect: CsvDialect,
  options: { stages: readonly ReplayStage[]; replayedBefore?: ReadonlySet<number> },
  write: (text: string) => Promise<void> | void,
): Promise<ReplaySelection> {
  const parser = input.pipe(parse({ bom: true, ...dialectOptions(dialect), relax_column_count: true, skip_empty_lines: true }));
  input.on('error', (error) => parser.destroy(error));
  const selection: ReplaySelection = { kept: 0, left: 0, duplicates: 0, replayedBefore: 0, rows: [] };
  let header: string[] | undefined;
  for await (const fields of parser as AsyncIterable<string[]>) {
    if (!header) {
      header = fields;
      if (!isRejectHeader(header)) {
        throw new ReplayFileError(`Not a rejected-records file: its header does not end with ${REJECT_COLUMNS.join(',')}`);
      }
      await write(stringify([header], dialectOptions(dialect)));
      continue;
    }
    const stage = fields[fields.length - 3];
    const row = Number(fields[fields.length - 4]);
    if (fields[fields.length - 2] === VALIDATION_CODES.DUPLICATE_IN_FILE) {
      selection.duplicates += 1;
    } else if (!options.stages.includes(stage as ReplayStage)) {
      selection.left += 1;
    } else if (options.replayedBefore?.has(row)) {
      selection.replayedBefore += 1;
    } else {
      selection.kept += 1;
      selection.rows.push(row);
      await write(stringify([fields], dialectOptions(dialect)));
    }
  }
  if (!header) throw new ReplayFileError('The rejected-records file is empty');
  return selection;
}

/** What a replay selection took and left out, for the operator (one line; `stages` as the operator named them). */
export function describeSelection(selection: ReplaySelection, stages: string): string {
  const parts = [
    selection.kept > 0 ? `replaying ${selection.kept} record(s)` : 'nothing to replay',
    ...(selection.left > 0 ? [`${selection.left} left out: rejected by another stage than ${stages}`] : []),
    ...(selection.duplicates > 0 ? [`${selection.duplicates} DUPLICATE_IN_FILE records left out: their first occurrence is the one to replay`] : []),
    ...(selection.replayedBefore > 0 ? [`${selection.replayedBefore} left out: an earlier replay of this file took them (replay that run's rejected file for what it could not send; --force takes them again)`] : []),
  ];
  return parts.join('; ');
}

/**
 * The delimiter of a rejected-records file, read off its header (it ends with `_row<d>_stage<d>…`); the stream is whole.
 * The quote cannot be read off the header (its columns are seldom quoted): it is the dataflow's, `"` when the caller
 * does not know the dataflow's settings. The dialect returned is the one to read the file with.
 */
export async function peekDelimiter(body: Readable, quote = '"'): Promise<CsvDialect & { stream: Readable }> {
  const iterator = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let text = '';
  while (!text.includes('\n') && text.length < 1024 * 1024) {
    const step = await iterator.next();
    if (step.done) break;
    head.push(step.value);
    text += step.value.toString('utf8');
  }
  const header = (text.split('\n')[0] ?? '').replace(/^\uFEFF/, '').replace(/\r$/, '');
  const match = /_row(.)_stage\1_error_code\1_error_message$/.exec(header);
  if (!match) throw new ReplayFileError(`Not a rejected-records file: its header does not end with ${REJECT_COLUMNS.join(',')}`);
  async function* whole(): AsyncGenerator<Buffer> {
    yield* head;
    for (;;) {
      const step = await iterator.next();
      if (step.done) return;
      yield step.value;
    }
  }
  return { delimiter: match[1]!, quote, stream: Readable.from(whole()) };
}
