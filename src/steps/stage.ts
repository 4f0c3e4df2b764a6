import { type Hash, createHash } from 'node:crypto';
import { type Readable, Transform } from 'node:stream';
import pLimit from 'p-limit';
import { selectDataflow } from '../config/load';
import { type ChunkRef, type ImportedMarker, KEYS, type StageEvent, type StageOutput, type StageSummary, fileNameOf } from '../contracts';
import { Upload } from '@aws-sdk/lib-storage';
import { type ObjectWriter, createObjectWriter, headObject, openObject, openRange, putJson, putJsonIfAbsent, putText, readHead, readJson } from '../aws/s3';
import { expandZip, isZip } from '../core/zip';
import type { Dataflow } from '../config/schema';
import { decryptStream, isPgpData, loadDecryptionKeys, streamFailure } from '../core/pgp';
import { gunzipIfCompressed } from '../core/unpack';
import { boundariesDisagree, openCsv, rejectLine } from '../core/csv';
import { replayRecords, replayedDuplicate } from '../core/replay';
import { type MapResult, compileMapper } from '../core/mapping';
import { VALIDATION_CODES } from '../codes';
import { type CsvRecord } from '../core/csv';
import { HeldKeys, type HeldSettlement, KEY_BYTES, SeenFilter, itemOfStagedLine, packKey } from '../core/duplicates';
import { createInterface } from 'node:readline';
import { DecryptionError, SourceReadError, TooManyDuplicatesError, UnsafeArchiveError } from '../errors';
import { METRICS, type StepDeps } from './deps';

/** Object metadata naming the run that expanded a zip entry into the inbox (`x-amz-meta-badges-expanded-by`). */
const EXPANDED_BY = 'badges-expanded-by';
/** Chunk uploads in flight while parsing goes on: enough to hide S3 latency, few enough to keep memory flat. */
const UPLOADS_IN_FLIGHT = 4;
/**
 * Records held back as possible duplicates, at most. Their keys are kept outside the heap (32 bytes each) until they
 * are settled; settling needs about 40 bytes more each, in typed arrays. Measured with the stack's node flags
 * (bench/duplicates.ts): see the README, "Duplicate detection and file size".
 */
export const MAX_HELD_RECORDS = 2_000_000;
/** Fewest bytes a record takes, to size the duplicate filter from the file's size. */
const MIN_RECORD_BYTES = 30;
const PROGRESS_EVERY = 50_000;

/**
 * Streams the source object once: hashes it, parses it, validates every record, writes the valid ones as chunk
 * objects for the Distributed Map and the rejected ones as CSV lines, and lists the chunks. Nothing is sent here, so
 * a file that fails late (a quote left open near the end) has sent nothing.
 */
export async function stage(event: StageEvent, deps: StepDeps): Promise<StageOutput> {
  const { input, runId, startedAt } = event;
  const flow = selectDataflow(deps.config, input.dataflow);
  const { s3, buckets, log } = deps;
  const base = { ...input, dryRun: input.dryRun ?? false, runId, startedAt, chunksKey: KEYS.chunks(runId), summaryKey: KEYS.summary(runId) };

  const name = fileNameOf(input.key);
  // A replay is an operator's explicit request: its name (derived from the rejected file's) is not the vendor's.
  if (!input.replay && !new RegExp(flow.source.filePattern).test(name)) {
    log.info('Object does not match the dataflow pattern; left alone', { key: input.key, pattern: flow.source.filePattern });
    return { ...base, skipped: `"${name}" does not match ${flow.source.filePattern}`, chunkCount: 0, maxConcurrency: 1, records: 0, valid: 0, rejected: 0 };
  }

  // Exactly the version the trigger saw: an overwrite while this run is in flight is another version, with a run of its own.
  const source = `s3://${input.bucket}/${input.key}${input.versionId ? ` (version ${input.versionId})` : ''}`;
  const first = await readHead(s3, input.bucket, input.key, 64, input.versionId);
  const body = first && (await openObject(s3, input.bucket, input.key, input.versionId));
  if (!body) throw new SourceReadError(`${source} does not exist (moved or deleted before the run started)`);
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = hashingTap(hash, (n) => (bytes += n));
  body.on('error', (error) => tap.destroy(error));
  const delivered = body.pipe(tap);
  let plaintext: Readable | undefined = delivered;
  const head = first.head;
  let content: StagedContent = { bucket: input.bucket, key: input.key, versionId: input.versionId, head, size: first.size };
  if (isPgpData(head)) {
    if (!flow.decrypt) throw new DecryptionError('The file is PGP-encrypted, and the dataflow has no "decrypt" block');
    const stagedKey = await decryptToStaging(delivered, head, flow.decrypt, runId, deps);
    const staged = await readHead(s3, buckets.staging, stagedKey, 64);
    content = { bucket: buckets.staging, key: stagedKey, head: staged?.head ?? Buffer.alloc(0), size: staged?.size ?? 0 };
    plaintext = undefined;
  }
  // After decryption: vendors zip or gzip, then encrypt (events.zip.gpg, events.csv.gz.gpg).
  if (isZip(content.head)) {
    body.destroy();
    const expanded = await expandToInbox(content, flow, deps, Boolean(input.dryRun), runId);
    // The list goes to staging: thousands of entry keys would not fit in a 256 KiB state.
    const expandedKey = KEYS.expanded(runId);
    await putJson(s3, buckets.staging, expandedKey, expanded);
    return { ...base, expanded: expanded.length, expandedKey, chunkCount: 0, maxConcurrency: 1, records: 0, valid: 0, rejected: 0 };
  }
  plaintext ??= await openObject(s3, content.bucket, content.key);
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
  const csv = input.replay ? replayRecords(opened) : opened;
  const map = compileMapper(flow, csv.header, deps.now);

  const recordsPerChunk = flow.destination.recordsPerWorker;
  const uploads = pLimit(UPLOADS_IN_FLIGHT);
  const pending = new Set<Promise<void>>();
  // The first failed chunk upload: an upload leaves `pending` when it settles, so its failure is kept here.
  let uploadFailure: Error | undefined;
  const throwUploadFailure = () => {
    if (uploadFailure) throw uploadFailure;
  };
  const chunks: ChunkRef[] = [];
  let lines: string[] = [];
  /** Fingerprint and number of each line of the chunk being filled, while the file is read (not for held records). */
  let indexed: number[] = [];
  /** The key index goes to staging in parts of about 1 MiB (small puts: no multipart buffers held while reading). */
  let indexPart: Buffer[] = [];
  let indexPartBytes = 0;
  let indexParts = 0;
  const putIndexPart = () => {
    if (indexPartBytes === 0) return;
    const key = KEYS.keyIndex(runId, indexParts++);
    const body = Buffer.concat(indexPart);
    indexPart = [];
    indexPartBytes = 0;
    track(uploads(() => putText(s3, buckets.staging, key, body, 'application/octet-stream')), key);
  };
  let firstRecord = 1;
  const track = (upload: Promise<void>, key: string) => {
    const settled = upload.catch((error: unknown) => {
      uploadFailure ??= error instanceof Error ? error : new Error(`Staging upload of ${key} failed`);
    });
    pending.add(settled);
    void settled.finally(() => pending.delete(settled));
  };
  const flush = async () => {
    if (lines.length === 0) return;
    if (indexed.length > 0) {
      const part = Buffer.from(Uint32Array.from(indexed).buffer);
      indexed = [];
      indexPart.push(part);
      indexPartBytes += part.length;
      if (indexPartBytes >= 1024 * 1024) putIndexPart();
    }
    const ref: ChunkRef = { index: chunks.length, key: KEYS.chunk(runId, chunks.length), records: lines.length, firstRecord };
    chunks.push(ref);
    // Encoded once here: a string body would be encoded for its checksum and again on the socket.
    const body = Buffer.from(lines.join('\n'));
    lines = [];
    track(
      uploads(() => putText(s3, buckets.staging, ref.key, body, 'application/x-ndjson')),
      ref.key,
    );
    if (pending.size >= UPLOADS_IN_FLIGHT) await Promise.race(pending);
    if (uploadFailure) throw uploadFailure;
  };

  let rejects: ObjectWriter | undefined;
  const rejectionsByCode: Record<string, number> = {};
  const reject = async (record: CsvRecord, code: string, message: string) => {
    rejected += 1;
    rejectionsByCode[code] = (rejectionsByCode[code] ?? 0) + 1;
    rejects ??= createObjectWriter(s3, buckets.staging, KEYS.validationRejects(runId));
    await rejects.write(rejectLine(record, 'validate', code, message, flow.csv));
  };
  /** Records the filter may have seen before: held back (lines in staging, packed keys off the heap) until settled. */
  const held = new HeldKeys();
  const key = Buffer.alloc(KEY_BYTES);
  let heldWriter: ObjectWriter | undefined;
  let records = 0;
  let rejected = 0;
  try {
    for await (const record of csv.records) {
      records += 1;
      // A record over csv.maxRecordBytes was not read: it is rejected with empty fields, under its number.
      // A replayed DUPLICATE_IN_FILE record (put back by hand: selectForReplay never picks one) is never sent.
      const repeated = input.replay ? replayedDuplicate(record) : undefined;
      const result: MapResult = record.tooLong
        ? { ok: false, rejection: { code: VALIDATION_CODES.RECORD_TOO_LONG, message: `The record is longer than csv.maxRecordBytes (${flow.csv.maxRecordBytes} bytes); its fields were not read` } }
        : repeated ? { ok: false, rejection: { code: VALIDATION_CODES.DUPLICATE_IN_FILE, message: repeated } } : map(record.fields);
      if (result.ok) {
        // A replayed AMBIGUOUS record may have been issued: the send step looks it up before sending it (`c`).
        const line = JSON.stringify(record.checkFirst ? { n: record.number, f: record.fields, i: result.item, c: 1 } : { n: record.number, f: record.fields, i: result.item });
        packKey(result.item, key);
        if (seen.addAndCheck(key)) {
          if (held.count >= MAX_HELD_RECORDS) {
            throw new TooManyDuplicatesError(`More than ${MAX_HELD_RECORDS} records may repeat earlier ones (same customerId, badgeMetaId and earnEventDate): remove the repeats or split the file; nothing was sent`);
          }
          held.add(key, record.number);
          heldWriter ??= createObjectWriter(s3, buckets.staging, KEYS.held(runId), 'application/x-ndjson');
          await heldWriter.write(`${line}\n`);
        } else {
          if (lines.length === 0) firstRecord = record.number;
          lines.push(line);
          indexed.push(seen.lastFingerprint, record.number);
          if (lines.length >= recordsPerChunk) await flush();
        }
      } else {
        const shown = record.tooLong ? { number: record.number, fields: csv.header.map(() => '') } : record;
        await reject(shown, result.rejection.code, result.rejection.message);
      }
      if (records % PROGRESS_EVERY === 0) deps.progress?.({ step: 'stage', records, rejected, done: false });
    }
    // Every record the text guard delimited was read here, no more and no fewer: else nothing may be sent.
    if (opened.recordsSeen() !== records) throw boundariesDisagree(opened.recordsSeen(), records);
    await flush();
    // The key index serves only to settle held records.
    if (heldWriter) putIndexPart();
    await Promise.all(pending);
    throwUploadFailure();
    if (heldWriter) {
      // Settle the held records: a key the filter was unsure about repeats a record only if one with the same key was
      // sent as new (in a chunk) or held before it.
      await heldWriter.end();
      const settlement = held.settle();
      await markFirstSent(deps, runId, chunks, settlement, indexParts);
      const heldBody = await openObject(s3, buckets.staging, KEYS.held(runId));
      if (!heldBody) throw new SourceReadError(`Held records s3://${buckets.staging}/${KEYS.held(runId)} are missing`);
      // The held lines come back in the order they were held: the entry number is their place in that order.
      let entry = 0;
      for await (const line of createInterface({ input: heldBody, crlfDelay: Infinity })) {
        if (line === '') continue;
        const first = settlement.duplicateOf(entry++);
        if (first !== 0) {
          const staged = JSON.parse(line) as { n: number; f: string[] };
          await reject({ number: staged.n, fields: staged.f }, VALIDATION_CODES.DUPLICATE_IN_FILE, `The same customerId, badgeMetaId and earnEventDate as record ${first}: not sent twice`);
        } else {
          if (lines.length === 0) firstRecord = Number(line.slice(5, line.indexOf(',')));
          lines.push(line);
          if (lines.length >= recordsPerChunk) await flush();
        }
      }
      await flush();
      await Promise.all(pending);
      throwUploadFailure();
    }
    await rejects?.end();
  } catch (error) {
    await Promise.allSettled(pending);
    await heldWriter?.abort();
    await rejects?.abort();
    throw error;
  }

  const sha256 = hash.digest('hex');
  const contentSha256 = contentHash.digest('hex');
  const summary: StageSummary = {
    header: csv.header,
    delimiter: flow.csv.delimiter,
    sha256,
    contentSha256,
    bytes,
    rejectionsByCode,
    ...(rejects ? { rejectedPartKey: KEYS.validationRejects(runId) } : {}),
  };
  await putJson(s3, buckets.staging, base.summaryKey, summary);
  await putJson(s3, buckets.staging, base.chunksKey, chunks);
  // The whole file has been read, hashed and staged, and nothing has been sent: claim the content now, atomically, so
  // that of two deliveries of it (two names, two folders, a zip holding it twice) exactly one sends.
  const claim = input.dryRun ? undefined : await claimContent(deps, flow.name, contentSha256, { runId, key: input.key, force: Boolean(input.force) });
  const duplicateOf = claim && !claim.claimed ? claim.holder : undefined;
  deps.progress?.({ step: 'stage', records, rejected, done: true });
  deps.metrics?.(METRICS.recordsRead, 'Count', records, flow.name);
  log.info('Staged', { key: input.key, records, valid: records - rejected, rejected, chunks: chunks.length, bytes, held: held.count, duplicateOf: duplicateOf?.runId });
  return {
    ...base,
    ...(duplicateOf ? { duplicateOf } : {}),
    ...(claim?.claimed ? { claimed: true } : {}),
    chunkCount: chunks.length,
    maxConcurrency: Math.min(flow.destination.maxConcurrency, Math.max(1, chunks.length)),
    records,
    valid: records - rejected,
    rejected,
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

/**
 * Tells the settlement which held keys went out as new, and as which record. The key index (fingerprint and number of
 * every record sent as new, 8 bytes each) says which records may have a held key; only the chunks holding those are
 * read back, to compare whole keys. Candidates are kept in a sorted Uint32Array (4 bytes each, off the heap).
 */
async function markFirstSent(deps: StepDeps, runId: string, chunks: readonly ChunkRef[], settlement: HeldSettlement, indexParts: number): Promise<void> {
  const { s3, buckets } = deps;
  let candidates = new Uint32Array(1024);
  let count = 0;
  for (let part = 0; part < indexParts; part++) {
    const body = await openObject(s3, buckets.staging, KEYS.keyIndex(runId, part));
    if (!body) throw new SourceReadError(`The key index s3://${buckets.staging}/${KEYS.keyIndex(runId, part)} is missing`);
    let rest = Buffer.alloc(0);
    for await (const piece of body) {
      const data = rest.length > 0 ? Buffer.concat([rest, piece as Buffer]) : (piece as Buffer);
      const whole = data.length - (data.length % 8);
      for (let at = 0; at < whole; at += 8) {
        if (!settlement.mayHold(data.readUInt32LE(at))) continue;
        if (count === candidates.length) {
          const grown = new Uint32Array(candidates.length * 2);
          grown.set(candidates);
          candidates = grown;
        }
        candidates[count++] = data.readUInt32LE(at + 4);
      }
      rest = Buffer.from(data.subarray(whole));
    }
  }
  const sorted = candidates.subarray(0, count).sort();
  const isCandidate = (n: number) => {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]! < n) lo = mid + 1;
      else hi = mid;
    }
    return lo < sorted.length && sorted[lo] === n;
  };
  // Chunks are in record order: the chunk of a number is the last one starting at or before it.
  const starts = chunks.map((c) => c.firstRecord);
  const chunkOf = (n: number) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= n) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const toRead = new Set<number>();
  for (const n of sorted) toRead.add(chunkOf(n));
  const key = Buffer.alloc(KEY_BYTES);
  const limit = pLimit(UPLOADS_IN_FLIGHT * 2);
  await Promise.all(
    [...toRead].map((index) =>
      limit(async () => {
        const chunk = chunks[index]!;
        const chunkBody = await openObject(s3, buckets.staging, chunk.key);
        if (!chunkBody) throw new SourceReadError(`Staged chunk s3://${buckets.staging}/${chunk.key} is missing`);
        for await (const line of createInterface({ input: chunkBody, crlfDelay: Infinity })) {
          if (line === '') continue;
          const n = Number(line.slice(5, line.indexOf(',')));
          if (!isCandidate(n)) continue;
          // Packed and marked in one synchronous step: the chunks read concurrently share the key buffer.
          packKey(itemOfStagedLine(line), key);
          settlement.markSent(key, n);
        }
      }),
    ),
  );
}
