import { type Hash, createHash } from 'node:crypto';
import { type Readable, Transform } from 'node:stream';
import pLimit from 'p-limit';
import { selectDataflow } from '../config/load';
import { type ImportedMarker, KEYS, type StageEvent, type StageOutput, type StageSummary, fileNameOf } from '../contracts';
import { Upload } from '@aws-sdk/lib-storage';
import { type ObjectWriter, createObjectWriter, headObject, openObject, openRange, putJson, putJsonIfAbsent, readHead, readJson } from '../aws/s3';
import { expandZip, isZip } from '../core/zip';
import type { Dataflow } from '../config/schema';
import { decryptStream, isPgpData, loadDecryptionKeys, streamFailure } from '../core/pgp';
import { gunzipIfCompressed } from '../core/unpack';
import { type CsvFile, type CsvRecord, type GuardedCsvFile, boundariesDisagree, openCsv, rejectLine } from '../core/csv';
import { replayRecords, replayedDuplicate } from '../core/replay';
import { type RecordFilter, compileFilter, filteredLine } from '../core/filter';
import { type ApiItem, type MapResult, type RecordMapper, compileMapper, fieldCountRejection } from '../core/mapping';
import { VALIDATION_CODES } from '../codes';
import { KEY_BYTES, SeenFilter, packKey } from '../core/duplicates';
import { decodeStagedRecord, encodeStagedRecord } from '../core/staged-record';
import { DecryptionError, SourceReadError, UnsafeArchiveError } from '../errors';
import { ChunkWriter, UPLOADS_IN_FLIGHT } from './chunk-writer';
import { HeldRecords } from './held-records';
import { METRICS, type StepDeps } from './deps';

export { MAX_HELD_RECORDS } from './held-records';

/** Object metadata naming the run that expanded a zip entry into the inbox (`x-amz-meta-badges-expanded-by`). */
const EXPANDED_BY = 'badges-expanded-by';
/** Fewest bytes a record takes, to size the duplicate filter from the file's size. */
const MIN_RECORD_BYTES = 30;
const PROGRESS_EVERY = 50_000;

/**
 * Streams the source object once: hashes it, parses it, validates every record, writes the valid ones as chunk
 * objects for the Distributed Map and the rejected ones as CSV lines, and lists the chunks. Nothing is sent here, so
 * a file that fails late (a quote left open near the end) has sent nothing.
 */
export async function stage(event: StageEvent, deps: StepDeps): Promise<StageOutput> {
  const run = startRun(event, deps);
  const name = fileNameOf(run.input.key);
  // A replay is an operator's explicit request: its name (derived from the rejected file's) is not the vendor's.
  if (!run.input.replay && !new RegExp(run.flow.source.filePattern).test(name)) {
    deps.log.info('Object does not match the dataflow pattern; left alone', { key: run.input.key, pattern: run.flow.source.filePattern });
    return { ...run.base, skipped: `"${name}" does not match ${run.flow.source.filePattern}`, chunkCount: 0, maxConcurrency: 1, records: 0, valid: 0, rejected: 0 };
  }
  const delivery = await openDelivery(run);
  // After decryption: vendors zip or gzip, then encrypt (events.zip.gpg, events.csv.gz.gpg).
  if (isZip(delivery.content.head)) return expandDelivery(run, delivery);
  const state = await openRecords(run, delivery);
  await stageWholeFile(state);
  return finishStage(state, delivery);
}

/** What the stage knows of its run before it reads the file. */
interface StageRun {
  readonly input: StageEvent['input'];
  readonly runId: string;
  readonly flow: Dataflow;
  readonly deps: StepDeps;
  /** What every stage output starts with. */
  readonly base: Omit<StageOutput, 'chunkCount' | 'maxConcurrency' | 'records' | 'valid' | 'rejected'>;
}

function startRun(event: StageEvent, deps: StepDeps): StageRun {
  const { input, runId, startedAt } = event;
  const flow = selectDataflow(deps.config, input.dataflow);
  const base = { ...input, dryRun: input.dryRun ?? false, runId, startedAt, chunksKey: KEYS.chunks(runId), summaryKey: KEYS.summary(runId) };
  return { input, runId, flow, deps, base };
}

/** The delivered object, opened: its bytes hashed and counted as they are read, and where its plaintext is. */
interface Delivery {
  /** The delivered object's body. */
  readonly body: Readable;
  /** SHA-256 of the delivered bytes, and their count, for the report. */
  readonly hash: Hash;
  bytes: number;
  /** The bytes the stage parses: the delivered object, or its decrypted copy in staging. */
  readonly content: StagedContent;
  /** The delivered bytes as they stream (undefined once decrypted: the plaintext is read from staging). */
  readonly plaintext: Readable | undefined;
}

/** Opens the delivered object, exactly its version, and decrypts it to staging when it is PGP-encrypted. */
async function openDelivery(run: StageRun): Promise<Delivery> {
  const { input, flow, runId, deps } = run;
  const { s3, buckets } = deps;
  // Exactly the version the trigger saw: an overwrite while this run is in flight is another version, with a run of its own.
  const source = `s3://${input.bucket}/${input.key}${input.versionId ? ` (version ${input.versionId})` : ''}`;
  const first = await readHead(s3, input.bucket, input.key, 64, input.versionId);
  const body = first && (await openObject(s3, input.bucket, input.key, input.versionId));
  if (!body) throw new SourceReadError(`${source} does not exist (moved or deleted before the run started)`);
  const hash = createHash('sha256');
  const counted = { bytes: 0 };
  const tap = hashingTap(hash, (n) => (counted.bytes += n));
  body.on('error', (error) => tap.destroy(error));
  const delivered = body.pipe(tap);
  const { head } = first;
  const delivery = (content: StagedContent, plaintext: Readable | undefined): Delivery => ({
    body,
    hash,
    get bytes() {
      return counted.bytes;
    },
    content,
    plaintext,
  });
  if (!isPgpData(head)) return delivery({ bucket: input.bucket, key: input.key, versionId: input.versionId, head, size: first.size }, delivered);
  if (!flow.decrypt) throw new DecryptionError('The file is PGP-encrypted, and the dataflow has no "decrypt" block');
  const stagedKey = await decryptToStaging(delivered, head, flow.decrypt, runId, deps);
  const staged = await readHead(s3, buckets.staging, stagedKey, 64);
  return delivery({ bucket: buckets.staging, key: stagedKey, head: staged?.head ?? Buffer.alloc(0), size: staged?.size ?? 0 }, undefined);
}

/** A zip archive: its entries go to the inbox, each imported by a run of its own. */
async function expandDelivery(run: StageRun, delivery: Delivery): Promise<StageOutput> {
  const { s3, buckets } = run.deps;
  delivery.body.destroy();
  const expanded = await expandToInbox(delivery.content, run.flow, run.deps, Boolean(run.input.dryRun), run.runId);
  // The list goes to staging: thousands of entry keys would not fit in a 256 KiB state.
  const expandedKey = KEYS.expanded(run.runId);
  await putJson(s3, buckets.staging, expandedKey, expanded);
  return { ...run.base, expanded: expanded.length, expandedKey, chunkCount: 0, maxConcurrency: 1, records: 0, valid: 0, rejected: 0 };
}

/**
 * The stage's whole state while it reads a file, moved by the phases below (as csv-parse keeps its parser's): the
 * records read, where each went (a chunk, the held records, the rejects), and the content's hash.
 */
interface StageState {
  readonly run: StageRun;
  /** The file as the text guard delimits it, and as the stage reads it (a replay's records carry their earlier outcome). */
  readonly opened: GuardedCsvFile;
  readonly csv: CsvFile;
  readonly map: RecordMapper;
  /** SHA-256 of the text the parser reads: the content claim's key. */
  readonly contentHash: Hash;
  /** The duplicate filter, and a buffer for the packed key of the record being routed. */
  readonly seen: SeenFilter;
  readonly key: Buffer;
  readonly chunks: ChunkWriter;
  readonly rejects: ValidationRejects;
  /** The dataflow's filter, compiled for this file's header (undefined: every record is considered), and the records it left out. */
  readonly filter: RecordFilter | undefined;
  readonly filtered: FilteredRecords;
  readonly held: HeldRecords;
  records: number;
}

/** Opens the plaintext as CSV records: gunzipped, its text hashed for the content claim, and the mapper compiled. */
async function openRecords(run: StageRun, delivery: Delivery): Promise<StageState> {
  const { flow, deps, runId } = run;
  const { content } = delivery;
  const plaintext = delivery.plaintext ?? (await openObject(deps.s3, content.bucket, content.key));
  if (!plaintext) throw new SourceReadError(`The decrypted file s3://${content.bucket}/${content.key} is missing`);
  // Sized for the most records the file can hold (a gzip file may hold several times its size).
  const expected = content.size / MIN_RECORD_BYTES;
  const seen = new SeenFilter(expected * (content.head[0] === 0x1f && content.head[1] === 0x8b ? 8 : 1), deps.duplicateFilterMaxBits);
  // The claim is on the records, not the delivered bytes: the text the parser reads is hashed (after decryption and
  // gunzip), so the same CSV encrypted again (PGP never gives the same bytes twice) or compressed otherwise is the same content.
  const contentHash = createHash('sha256');
  const contentTap = hashingTap(contentHash);
  const unpacked = gunzipIfCompressed(plaintext, flow.unpack);
  unpacked.on('error', (error) => contentTap.destroy(error));
  const opened = await openCsv(unpacked.pipe(contentTap), flow.csv);
  const csv = run.input.replay ? replayRecords(opened) : opened;
  const map = compileMapper(flow, csv.header, deps.now);
  return {
    run,
    opened,
    csv,
    map,
    contentHash,
    seen,
    key: Buffer.alloc(KEY_BYTES),
    chunks: new ChunkWriter(deps.s3, deps.buckets.staging, runId, flow.destination.recordsPerWorker),
    rejects: new ValidationRejects(run),
    filter: compileFilter(flow.filter, csv.header),
    filtered: new FilteredRecords(run),
    held: new HeldRecords(deps, runId),
    records: 0,
  };
}

/**
 * Nothing is sent before the whole file is staged: every record is read and routed, the text guard agrees on their
 * number, every chunk is uploaded and every held record settled; else the stage fails and leaves nothing to send.
 */
async function stageWholeFile(state: StageState): Promise<void> {
  const { opened, chunks, held, rejects, filtered } = state;
  try {
    await routeEveryRecord(state);
    // Every record the text guard delimited was read here, no more and no fewer: else nothing may be sent.
    if (opened.recordsSeen() !== state.records) throw boundariesDisagree(opened.recordsSeen(), state.records);
    await chunks.flush();
    // The key index serves only to settle held records.
    if (held.any) chunks.putIndexPart();
    await chunks.drain();
    if (held.any) await settleHeldRecords(state);
    await rejects.end();
    await filtered.end();
  } catch (error) {
    await chunks.abandon();
    await held.abort();
    await rejects.abort();
    await filtered.abort();
    throw error;
  }
}

/**
 * Reads every record once and routes it: to a chunk (new), to the held records (maybe a repeat), to the rejects, or
 * to the filtered records (the dataflow's filter left it out).
 */
async function routeEveryRecord(state: StageState): Promise<void> {
  const { run, csv, rejects } = state;
  for await (const record of csv.records) {
    state.records += 1;
    const result = judge(state, record);
    if (result === FILTERED_OUT) {
      await state.filtered.add(record);
    } else if (result.ok) {
      // A promise only when a chunk is full or a record is held: no promise to wait on for most records.
      const staging = stageValid(state, record, result.item);
      if (staging) await staging;
    } else {
      const shown = record.tooLong ? { number: record.number, fields: csv.header.map(() => '') } : record;
      await rejects.reject(shown, result.rejection.code, result.rejection.message);
    }
    if (state.records % PROGRESS_EVERY === 0) run.deps.progress?.({ step: 'stage', records: state.records, rejected: rejects.count, filtered: state.filtered.count, done: false });
  }
}

/** What judge says of a record the dataflow's filter left out. */
const FILTERED_OUT = Symbol('filtered');

/**
 * The record's API item, why it is rejected, or FILTERED_OUT. The filter sees every record whose fields were read
 * and number the header's (one too long, or with the wrong number of fields, is rejected, never filtered: the filter
 * would read the wrong columns), before mapping: a record left out is not judged on data that was never to be sent,
 * nor counted as a repeat (DUPLICATE_IN_FILE).
 */
function judge(state: StageState, record: CsvRecord): MapResult | typeof FILTERED_OUT {
  const { flow, input } = state.run;
  // A record over csv.maxRecordBytes was not read: it is rejected with empty fields, under its number.
  if (record.tooLong) {
    return { ok: false, rejection: { code: VALIDATION_CODES.RECORD_TOO_LONG, message: `The record is longer than csv.maxRecordBytes (${flow.csv.maxRecordBytes} bytes); its fields were not read` } };
  }
  // A replayed DUPLICATE_IN_FILE record (put back by hand: selectForReplay never picks one) is never sent.
  const repeated = input.replay ? replayedDuplicate(record) : undefined;
  if (repeated) return { ok: false, rejection: { code: VALIDATION_CODES.DUPLICATE_IN_FILE, message: repeated } };
  if (state.filter) {
    const miscounted = fieldCountRejection(record.fields, state.csv.header.length);
    if (miscounted) return miscounted;
    const verdict = state.filter(record.fields);
    if (!verdict.keep) return verdict.rejection ? { ok: false, rejection: verdict.rejection } : FILTERED_OUT;
  }
  return state.map(record.fields);
}

/**
 * A valid record goes to a chunk, unless the duplicate filter may have seen its key: then it is held. Returns a
 * promise only when there is something to wait for (a full chunk's upload, a held record's write).
 */
function stageValid(state: StageState, record: CsvRecord, item: ApiItem): Promise<void> | undefined {
  const { seen, key } = state;
  // A replayed AMBIGUOUS record may have been issued: the send step looks it up before sending it (`c`).
  const line = encodeStagedRecord(record.number, record.fields, item, record.checkFirst);
  packKey(item, key);
  if (seen.addAndCheck(key)) return state.held.hold(key, record.number, line);
  return state.chunks.add(line, record.number, seen.lastFingerprint);
}

/**
 * Settles the held records, in the order they were held: each repeats an earlier record (rejected DUPLICATE_IN_FILE,
 * never sent twice) or goes to a chunk.
 */
async function settleHeldRecords(state: StageState): Promise<void> {
  const { chunks, rejects } = state;
  for await (const { line, duplicateOf } of state.held.settle(chunks)) {
    if (duplicateOf === 0) {
      await chunks.addSettled(line);
    } else {
      const staged = decodeStagedRecord(line);
      await rejects.reject({ number: staged.n, fields: staged.f }, VALIDATION_CODES.DUPLICATE_IN_FILE, `The same customerId, badgeMetaId and earnEventDate as record ${duplicateOf}: not sent twice`);
    }
  }
  await chunks.flush();
  await chunks.drain();
}

/** The records rejected before anything is sent, as CSV lines in staging (finalize merges them), counted by code. */
class ValidationRejects {
  count = 0;
  readonly byCode: Record<string, number> = {};
  private writer: ObjectWriter | undefined;

  constructor(private readonly run: StageRun) {}

  /** The staging key of the rejects, once there are any. */
  get key(): string | undefined {
    return this.writer ? KEYS.validationRejects(this.run.runId) : undefined;
  }

  async reject(record: CsvRecord, code: string, message: string): Promise<void> {
    this.count += 1;
    this.byCode[code] = (this.byCode[code] ?? 0) + 1;
    this.writer ??= createObjectWriter(this.run.deps.s3, this.run.deps.buckets.staging, KEYS.validationRejects(this.run.runId));
    await this.writer.write(rejectLine(record, 'validate', code, message, this.run.flow.csv));
  }

  async end(): Promise<void> {
    await this.writer?.end();
  }

  async abort(): Promise<void> {
    await this.writer?.abort();
  }
}

/**
 * The records the dataflow's filter left out, as CSV lines in staging (finalize writes them, under a header, beside
 * the rejected file): their fields as read, their number, and the filter's expression.
 */
class FilteredRecords {
  count = 0;
  private writer: ObjectWriter | undefined;

  constructor(private readonly run: StageRun) {}

  /** The staging key of the filtered records, once there are any. */
  get key(): string | undefined {
    return this.writer ? KEYS.filteredRecords(this.run.runId) : undefined;
  }

  async add(record: CsvRecord): Promise<void> {
    const { flow, deps, runId } = this.run;
    this.count += 1;
    this.writer ??= createObjectWriter(deps.s3, deps.buckets.staging, KEYS.filteredRecords(runId));
    await this.writer.write(filteredLine(record, flow.filter?.expression ?? '', flow.csv));
  }

  async end(): Promise<void> {
    await this.writer?.end();
  }

  async abort(): Promise<void> {
    await this.writer?.abort();
  }
}

/**
 * Writes the summary and the chunk list, then claims the content: the whole file has been read, hashed and staged,
 * and nothing has been sent.
 */
async function finishStage(state: StageState, delivery: Delivery): Promise<StageOutput> {
  const { run, chunks, rejects, filtered, held, records } = state;
  const { input, flow, deps, base } = run;
  const { s3, buckets } = deps;
  const summary: StageSummary = {
    header: state.csv.header,
    delimiter: flow.csv.delimiter,
    sha256: delivery.hash.digest('hex'),
    contentSha256: state.contentHash.digest('hex'),
    bytes: delivery.bytes,
    rejectionsByCode: rejects.byCode,
    ...(rejects.key ? { rejectedPartKey: rejects.key } : {}),
    ...(flow.filter ? { filtered: { count: filtered.count, expression: flow.filter.expression, ...(filtered.key ? { partKey: filtered.key } : {}) } } : {}),
  };
  await putJson(s3, buckets.staging, base.summaryKey, summary);
  await putJson(s3, buckets.staging, base.chunksKey, chunks.chunks);
  // Claimed now, atomically, so that of two deliveries of the content (two names, two folders, a zip holding it
  // twice) exactly one sends.
  const claim = input.dryRun ? undefined : await claimContent(deps, flow.name, summary.contentSha256, { runId: run.runId, key: input.key, force: Boolean(input.force) });
  const duplicateOf = claim && !claim.claimed ? claim.holder : undefined;
  const rejected = rejects.count;
  deps.progress?.({ step: 'stage', records, rejected, filtered: filtered.count, done: true });
  deps.metrics?.(METRICS.recordsRead, 'Count', records, flow.name);
  const valid = records - rejected - filtered.count;
  deps.log.info('Staged', { key: input.key, records, valid, rejected, filtered: filtered.count, chunks: chunks.chunks.length, bytes: delivery.bytes, held: held.count, duplicateOf: duplicateOf?.runId });
  return {
    ...base,
    ...(duplicateOf ? { duplicateOf } : {}),
    ...(claim?.claimed ? { claimed: true } : {}),
    chunkCount: chunks.chunks.length,
    maxConcurrency: Math.min(flow.destination.maxConcurrency, Math.max(1, chunks.chunks.length)),
    records,
    valid,
    rejected,
    ...(filtered.count > 0 ? { filtered: filtered.count } : {}),
  };
}

/** Passes bytes through unchanged, feeding them to `hash` (and their count to `counted`) on the way. */
function hashingTap(hash: Hash, counted?: (bytes: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      counted?.(chunk.length);
      callback(null, chunk);
    },
  });
}

/** The bytes the stage parses: the delivered object (exactly its version), or its decrypted copy in staging. */
interface StagedContent {
  bucket: string;
  key: string;
  versionId?: string;
  head: Buffer;
  size: number;
}

/**
 * Claims a content (its SHA-256) for this run with a conditional write: true when this run may send it. When another
 * run holds the claim (in flight, finished, or failed after sending), returns that run's marker. A retried stage of
 * the same run finds its own claim and keeps it, but only while it is `claimed`: a settled claim under the same run id
 * is a finished run's (Step Functions lets an execution name be used again after 90 days). `force` takes the claim
 * whatever holds it (an operator's choice), keeping the holder it replaced in `supersedes` for a release to restore.
 */
export async function claimContent(
  deps: Pick<StepDeps, 's3' | 'buckets' | 'log' | 'now'>,
  dataflow: string,
  sha256: string,
  run: { runId: string; key: string; force: boolean },
): Promise<{ claimed: true } | { claimed: false; holder: ImportedMarker }> {
  const { s3, buckets } = deps;
  const key = KEYS.imported(dataflow, sha256);
  const marker: ImportedMarker = { runId: run.runId, key: run.key, state: 'claimed', claimedAt: new Date((deps.now ?? Date.now)()).toISOString() };
  const ours = (holder: ImportedMarker) => holder.runId === run.runId && holder.state === 'claimed';
  if (run.force) {
    const holder = await readJson<ImportedMarker>(s3, buckets.reports, key);
    // A retried forced stage finds its own claim: what it replaced is still what that claim replaced.
    const supersedes = holder && ours(holder) ? holder.supersedes : holder;
    await putJson(s3, buckets.reports, key, { ...marker, ...(supersedes ? { supersedes } : {}) });
    return { claimed: true };
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await putJsonIfAbsent(s3, buckets.reports, key, marker)) return { claimed: true };
    const holder = await readJson<ImportedMarker>(s3, buckets.reports, key);
    // Released between the two calls (a failed run that sent nothing): try again.
    if (!holder) continue;
    if (ours(holder)) return { claimed: true };
    deps.log.info('Content already claimed', { sha256, heldBy: holder.runId, state: holder.state ?? 'imported' });
    return { claimed: false, holder };
  }
  throw new SourceReadError(`The content claim ${key} kept changing while it was read; the run stops before sending anything`);
}

/**
 * Decrypts the file into a staging object and returns that object's plaintext, but only once the whole message has
 * been decrypted, its integrity check (MDC or AEAD) has passed at the end of the stream, and its signature has
 * verified when one is required. openpgp streams plaintext before it can know the file is intact, so nothing read
 * from the decrypted stream is parsed until then: a tampered, truncated or wrongly signed file stages nothing and
 * sends nothing. The plaintext never sits in memory whole; it waits in the staging bucket (encrypted at rest,
 * expiring with the run's other staged objects).
 */
async function decryptToStaging(delivered: Readable, head: Buffer, decrypt: NonNullable<Dataflow['decrypt']>, runId: string, deps: StepDeps): Promise<string> {
  const { secrets, s3, buckets } = deps;
  const keys = await loadDecryptionKeys(
    await secrets.get(decrypt.privateKeySecret),
    decrypt.passphraseSecret ? await secrets.get(decrypt.passphraseSecret) : undefined,
    decrypt.verifySignatureWithSecret ? await secrets.get(decrypt.verifySignatureWithSecret) : undefined,
  );
  const armored = head.toString('latin1').replace(/^\uFEFF/, '').trimStart().startsWith('-----BEGIN PGP MESSAGE-----');
  const { plaintext, verified } = await decryptStream(delivered, keys, armored);
  const key = KEYS.plaintext(runId);
  const writer = createObjectWriter(s3, buckets.staging, key, 'application/octet-stream');
  try {
    try {
      for await (const part of plaintext) await writer.write(part as Buffer);
    } catch (error) {
      throw streamFailure(error);
    }
    await verified;
    await writer.end();
  } catch (error) {
    await writer.abort();
    throw error;
  }
  deps.log.info('Decrypted', { key, signed: Boolean(keys.verificationKeys) });
  return key;
}

/**
 * A zip archive is a delivery of several files (in a dry run, only checked and listed): each entry whose name matches the dataflow's pattern is written to
 * the inbox under the dataflow's prefix, where it is imported by a run of its own (its upload starts it in AWS; the
 * local runner and `serve` follow it too). Every entry is checked first, so an unsafe archive writes nothing, and an
 * entry never replaces a file already waiting under that name, unless this very run wrote it (a retried stage: each
 * entry carries the metadata `badges-expanded-by: <runId>`, and the retry leaves its own entries as they are).
 */
async function expandToInbox(content: StagedContent, flow: Dataflow, deps: StepDeps, dryRun: boolean, runId: string): Promise<string[]> {
  const { s3, buckets } = deps;
  const { size } = content;
  const pattern = new RegExp(flow.source.filePattern);
  const keys: string[] = [];
  /** Entries an earlier attempt of this run already wrote: not written again (a new version would start another run). */
  const ownEntries = new Set<string>();
  await expandZip(
    (start, end) => openRange(s3, content.bucket, content.key, start, end, content.versionId),
    size,
    (name) => pattern.test(name),
    async (name, data) => {
      const key = `${flow.source.prefix}${name}`;
      if (dryRun || ownEntries.has(name)) {
        // A dry run reads every entry through (so sizes are checked) but writes nothing: an entry in the inbox would
        // start a real import. An entry this run already wrote is read through the same way.
        for await (const part of data) void part;
      } else {
        await new Upload({ client: s3, params: { Bucket: buckets.inbox, Key: key, Body: data, Metadata: { [EXPANDED_BY]: runId } } }).done();
      }
      keys.push(key);
    },
    flow.unpack,
    async (names) => {
      // Asked several at a time: an archive may hold thousands of entries.
      const limit = pLimit(UPLOADS_IN_FLIGHT * 4);
      const waiting = await Promise.all(names.map((name) => limit(async () => ({ name, head: await headObject(s3, buckets.inbox, `${flow.source.prefix}${name}`) }))));
      for (const { name, head } of waiting) if (head?.metadata[EXPANDED_BY] === runId) ownEntries.add(name);
      const first = waiting.find(({ name, head }) => head !== undefined && !ownEntries.has(name))?.name;
      if (first !== undefined) throw new UnsafeArchiveError(`The zip entry "${first}" would replace a file already waiting under that name; nothing was extracted`);
    },
  );
  deps.log.info('Expanded zip', { key: content.key, entries: keys });
  return keys;
}
