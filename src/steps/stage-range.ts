import type { Dataflow } from '../config/schema';
import { KEYS, type StageEvent } from '../contracts';
import { type ObjectWriter, createObjectWriter, openRange, putJson, putText } from '../aws/s3';
import { type CsvFile, type CsvRecord, type GuardedCsvFile, boundariesDisagree, openCsv, rejectLine } from '../core/csv';
import { replayRecords, replayedDuplicate } from '../core/replay';
import { type RecordFilter, compileFilter, filteredLine } from '../core/filter';
import { type ApiItem, type MapResult, type RecordMapper, compileMapper, fieldCountRejection } from '../core/mapping';
import { VALIDATION_CODES } from '../codes';
import { KEY_BYTES, packKey } from '../core/duplicates';
import { KeyPartitions } from '../core/partitions';
import type { PlannedRange } from '../core/ranges';
import { encodeStagedRecord } from '../core/staged-record';
import { ChunkWriter, type RangeChunk } from './chunk-writer';
import type { StepDeps } from './deps';
import { type StagePlan, readPlan } from './stage-plan';

const PROGRESS_EVERY = 50_000;

/** What a range worker leaves for the settle and finish phases (KEYS.rangeResult). */
export interface RangeResult {
  index: number;
  /** Data records read in the range. */
  records: number;
  rejected: number;
  rejectionsByCode: Record<string, number>;
  filtered: number;
  /** Staging keys of its validation rejects and filtered records (CSV lines without a header), when there are any. */
  rejectsKey?: string;
  filteredKey?: string;
  chunks: RangeChunk[];
  /** Its staged records' packed keys and numbers, one segment per partition (KeyPartitions). */
  keysKey: string;
  keyOffsets: number[];
  keyBytes: number;
}

/** A range worker's state while it reads its range (as csv-parse keeps its parser's, in one object). */
interface RangeState {
  readonly deps: StepDeps;
  readonly flow: Dataflow;
  readonly event: StageEvent;
  readonly index: number;
  readonly opened: GuardedCsvFile;
  readonly csv: CsvFile;
  readonly map: RecordMapper;
  readonly filter: RecordFilter | undefined;
  readonly chunks: ChunkWriter;
  readonly keys: KeyPartitions;
  /** A buffer for the packed key of the record being staged. */
  readonly key: Buffer;
  readonly rejects: PartWriter;
  readonly filtered: PartWriter;
  readonly rejectionsByCode: Record<string, number>;
  records: number;
}

/**
 * The range phase: reads planned range `index` of the text (one ranged GET), and judges, filters, maps and stages
 * every record of it, as one pass over the whole file did: valid records to chunks (their keys to the partitions),
 * rejected and filtered ones to parts. Nothing is sent here; a malformed record fails the worker, so the file.
 */
export async function stageRange(event: StageEvent, deps: StepDeps, flow: Dataflow): Promise<RangeResult> {
  const plan = await readPlan(deps, event.runId);
  const index = event.index ?? 0;
  const range = plan.ranges?.[index];
  if (!range || !plan.header) throw new Error(`The staging plan of ${event.runId} has no range ${index}`);
  const state = await openRangeRecords(event, deps, flow, plan, range);
  try {
    await routeEveryRecord(state);
    // Every record the text guard delimited was read here, no more and no fewer: else nothing may be sent.
    if (state.opened.recordsSeen() !== state.records) throw boundariesDisagree(state.opened.recordsSeen(), state.records);
    await state.chunks.flush();
    await state.chunks.drain();
    await state.rejects.end();
    await state.filtered.end();
  } catch (error) {
    await state.chunks.abandon();
    await state.rejects.abort();
    await state.filtered.abort();
    throw error;
  }
  return writeRangeResult(state);
}

/** Opens the range's records: the plan's header, numbers and offsets, the mapper and filter compiled for the header. */
async function openRangeRecords(event: StageEvent, deps: StepDeps, flow: Dataflow, plan: StagePlan, range: PlannedRange): Promise<RangeState> {
  const { text } = plan;
  const header = plan.header!;
  const body = await openRange(deps.s3, text.bucket, text.key, range.start, range.end, text.versionId, text.etag);
  const opened = await openCsv(body, { ...flow.csv, encoding: text.encoding }, { header, firstRecord: range.firstRecord, firstLine: range.firstLine, offset: range.start, atFileStart: range.start === 0 });
  const csv = event.input.replay ? replayRecords(opened) : opened;
  const index = event.index ?? 0;
  const { runId } = event;
  const staging = (key: string) => new PartWriter(deps, key);
  return {
    deps,
    flow,
    event,
    index,
    opened,
    csv,
    map: compileMapper(flow, csv.header, deps.now),
    filter: compileFilter(flow.filter, csv.header),
    chunks: new ChunkWriter(deps.s3, deps.buckets.staging, (j) => KEYS.rangeChunk(runId, index, j), flow.destination.recordsPerWorker),
    keys: new KeyPartitions(plan.partitions ?? 1),
    key: Buffer.alloc(KEY_BYTES),
    rejects: staging(KEYS.rangeRejects(runId, index)),
    filtered: staging(KEYS.rangeFiltered(runId, index)),
    rejectionsByCode: {},
    records: 0,
  };
}

/** Reads every record once and routes it: to a chunk, to the rejects, or to the filtered records. */
async function routeEveryRecord(state: RangeState): Promise<void> {
  const { csv, rejects } = state;
  for await (const record of csv.records) {
    state.records += 1;
    const result = judge(state, record);
    if (result === FILTERED_OUT) {
      await state.filtered.write(filteredLine(record, state.flow.filter?.expression ?? '', state.flow.csv));
    } else if (result.ok) {
      await stageValid(state, record, result.item);
    } else {
      const shown = record.tooLong ? { number: record.number, fields: csv.header.map(() => '') } : record;
      const { code, message } = result.rejection;
      state.rejectionsByCode[code] = (state.rejectionsByCode[code] ?? 0) + 1;
      await rejects.write(rejectLine(shown, 'validate', code, message, state.flow.csv));
    }
    if (state.records % PROGRESS_EVERY === 0) progress(state, false);
  }
}

function progress(state: RangeState, done: boolean): void {
  state.deps.progress?.({ step: 'stage', range: state.index, records: state.records, rejected: state.rejects.count, filtered: state.filtered.count, done });
}

/** What judge says of a record the dataflow's filter left out. */
const FILTERED_OUT = Symbol('filtered');

/**
 * The record's API item, why it is rejected, or FILTERED_OUT. The filter sees every record whose fields were read
 * and number the header's (one too long, or with the wrong number of fields, is rejected, never filtered: the filter
 * would read the wrong columns), before mapping: a record left out is not judged on data that was never to be sent,
 * nor counted as a repeat (DUPLICATE_IN_FILE).
 */
function judge(state: RangeState, record: CsvRecord): MapResult | typeof FILTERED_OUT {
  const { flow, event } = state;
  // A record over csv.maxRecordBytes was not read: it is rejected with empty fields, under its number.
  if (record.tooLong) {
    return { ok: false, rejection: { code: VALIDATION_CODES.RECORD_TOO_LONG, message: `The record is longer than csv.maxRecordBytes (${flow.csv.maxRecordBytes} bytes); its fields were not read` } };
  }
  // A replayed DUPLICATE_IN_FILE record (put back by hand: selectForReplay never picks one) is never sent.
  const repeated = event.input.replay ? replayedDuplicate(record) : undefined;
  if (repeated) return { ok: false, rejection: { code: VALIDATION_CODES.DUPLICATE_IN_FILE, message: repeated } };
  if (state.filter) {
    const miscounted = fieldCountRejection(record.fields, state.csv.header.length);
    if (miscounted) return miscounted;
    const verdict = state.filter(record.fields);
    if (!verdict.keep) return verdict.rejection ? { ok: false, rejection: verdict.rejection } : FILTERED_OUT;
  }
  return state.map(record.fields);
}

/** A valid record goes to a chunk, and its key to its partition (settled exactly once every range is staged). */
async function stageValid(state: RangeState, record: CsvRecord, item: ApiItem): Promise<void> {
  // A replayed AMBIGUOUS record may have been issued: the send step looks it up before sending it (`c`).
  const line = encodeStagedRecord(record.number, record.fields, item, record.checkFirst);
  packKey(item, state.key);
  state.keys.add(state.key, 0, record.number);
  await state.chunks.add(line, record.number);
}

/** Writes the range's keys object and its result. */
async function writeRangeResult(state: RangeState): Promise<RangeResult> {
  const { deps, event, index } = state;
  const { s3, buckets } = deps;
  const keysKey = KEYS.rangeKeys(event.runId, index);
  const { body, offsets } = state.keys.toObject();
  await putText(s3, buckets.staging, keysKey, body, 'application/octet-stream');
  const result: RangeResult = {
    index,
    records: state.records,
    rejected: state.rejects.count,
    rejectionsByCode: state.rejectionsByCode,
    filtered: state.filtered.count,
    ...(state.rejects.key ? { rejectsKey: state.rejects.key } : {}),
    ...(state.filtered.key ? { filteredKey: state.filtered.key } : {}),
    chunks: state.chunks.chunks,
    keysKey,
    keyOffsets: offsets,
    keyBytes: body.length,
  };
  await putJson(s3, buckets.staging, KEYS.rangeResult(event.runId, index), result);
  progress(state, false);
  deps.log.info('Range staged', { runId: event.runId, range: index, records: state.records, rejected: result.rejected, filtered: result.filtered, chunks: result.chunks.length });
  return result;
}

/** CSV lines of one part (a range's rejects or filtered records) written to staging as they come, once there are any. */
export class PartWriter {
  count = 0;
  private writer: ObjectWriter | undefined;

  constructor(
    private readonly deps: StepDeps,
    private readonly partKey: string,
  ) {}

  /** The part's staging key, once it holds a line. */
  get key(): string | undefined {
    return this.writer ? this.partKey : undefined;
  }

  async write(line: string): Promise<void> {
    this.count += 1;
    this.writer ??= createObjectWriter(this.deps.s3, this.deps.buckets.staging, this.partKey);
    await this.writer.write(line);
  }

  async end(): Promise<void> {
    await this.writer?.end();
  }

  async abort(): Promise<void> {
    await this.writer?.abort();
  }
}
