import { type Hash, createHash } from 'node:crypto';
import { type Readable, Transform } from 'node:stream';
import pLimit from 'p-limit';
import { selectDataflow } from '../config/load';
import { KEYS, type StageEvent, type StageOutput, type StagePlanRef, fileNameOf } from '../contracts';
import { Upload } from '@aws-sdk/lib-storage';
import { createObjectWriter, headObject, openObject, openRange, putJson, readHead } from '../aws/s3';
import { expandZip, isZip } from '../core/zip';
import type { Dataflow } from '../config/schema';
import { decodeText } from '../core/guard';
import { decryptStream, isPgpData, loadDecryptionKeys, streamFailure } from '../core/pgp';
import { gunzipIfCompressed } from '../core/unpack';
import { HASH_BLOCK_BYTES } from '../core/ranges';
import { DecryptionError, EmptyFileError, SourceReadError, UnsafeArchiveError } from '../errors';
import { UPLOADS_IN_FLIGHT } from './chunk-writer';
import type { StepDeps } from './deps';
import { type StageBase, finishStaging, settleDuplicates } from './stage-finish';
import { ScanningTap, type StagePlan, type StagedText, completePlan, planFromScans, planRefOf, rangeBytesFor, scanDialect, scanRange } from './stage-plan';
import { stageRange } from './stage-range';

export { claimContent } from './stage-finish';

/** Object metadata naming the run that expanded a zip entry into the inbox (`x-amz-meta-badges-expanded-by`). */
const EXPANDED_BY = 'badges-expanded-by';
/** Stage phases run at once by stageFile (in-process; the state machine runs up to 40). */
const WORKERS_IN_PROCESS = 2;

/** What a Map worker of the stage answers (its results are in staging; the Map discards this). */
export interface StageWorkerOutput {
  phase: 'scan' | 'range' | 'settle';
  index: number;
}

/**
 * The stage Lambda: one phase of staging a file, by `event.phase` (see docs/how-it-works.md, "Staging"). Nothing is
 * sent before the finish phase has returned: prepare opens and plans, scan and plan cut a plain file into ranges at
 * record boundaries, range workers parse, validate and stage their ranges in parallel, settle workers find the exact
 * repeats by key partition, and finish lists the chunks, writes the summary and claims the content.
 */
export async function stage(event: StageEvent, deps: StepDeps): Promise<StageOutput | StagePlanRef | StageWorkerOutput> {
  const run = startRun(event, deps);
  const index = event.index ?? 0;
  switch (event.phase ?? 'prepare') {
    case 'prepare':
      return prepare(run);
    case 'scan':
      await scanRange(event, deps, run.flow);
      return { phase: 'scan', index };
    case 'plan':
      return planFromScans(event, deps, run.flow);
    case 'range':
      await stageRange(event, deps, run.flow);
      return { phase: 'range', index };
    case 'settle':
      await settleDuplicates(event, deps);
      return { phase: 'settle', index };
    case 'finish':
      return finishStaging(event, deps, run.flow, run.base);
  }
}

/**
 * Stages a file in this process, every phase in the order the state machine runs them (the Map workers a few at a
 * time): for tests, benches and tools that call the stage without the state machine.
 */
export async function stageFile(event: StageEvent, deps: StepDeps): Promise<StageOutput> {
  const { runId, startedAt } = event;
  let state = (await stage({ ...event, phase: 'prepare' }, deps)) as StageOutput;
  const limit = pLimit(WORKERS_IN_PROCESS);
  const each = (phase: 'scan' | 'range' | 'settle', indexes: number[]) => Promise.all(indexes.map((index) => limit(() => stage({ phase, input: state, runId, startedAt, index }, deps))));
  if (!state.plan) return state;
  if (state.plan.scan) {
    await each('scan', state.plan.scan);
    state = { ...state, plan: (await stage({ phase: 'plan', input: state, runId, startedAt }, deps)) as StagePlanRef };
  }
  await each('range', state.plan!.ranges);
  await each('settle', state.plan!.partitions);
  return (await stage({ phase: 'finish', input: state, runId, startedAt }, deps)) as StageOutput;
}

/** What the stage knows of its run before it reads the file. */
interface StageRun {
  readonly input: StageEvent['input'];
  readonly runId: string;
  readonly flow: Dataflow;
  readonly deps: StepDeps;
  /** What every stage output starts with. */
  readonly base: StageBase;
}

function startRun(event: StageEvent, deps: StepDeps): StageRun {
  const { input, runId, startedAt } = event;
  const flow = selectDataflow(deps.config, input.dataflow);
  const base = { ...input, dryRun: input.dryRun ?? false, runId, startedAt, chunksKey: KEYS.chunks(runId), summaryKey: KEYS.summary(runId) };
  return { input, runId, flow, deps, base };
}

/**
 * The prepare phase: the pattern check, then exactly the delivered version opened. A zip is expanded into the inbox;
 * a file that must be read in one pass (PGP, gzip, UTF-16) is, once, into a staged plaintext whose plan is written at
 * once; a plain file is not read here: its plan says which nominal ranges the scan workers read.
 */
async function prepare(run: StageRun): Promise<StageOutput> {
  const { input, flow, deps, runId } = run;
  const name = fileNameOf(input.key);
  const empty = { chunkCount: 0, maxConcurrency: 1, records: 0, valid: 0, rejected: 0 };
  // A replay is an operator's explicit request: its name (derived from the rejected file's) is not the vendor's.
  if (!input.replay && !new RegExp(flow.source.filePattern).test(name)) {
    deps.log.info('Object does not match the dataflow pattern; left alone', { key: input.key, pattern: flow.source.filePattern });
    return { ...run.base, skipped: `"${name}" does not match ${flow.source.filePattern}`, ...empty };
  }
  // Exactly the version the trigger saw: an overwrite while this run is in flight is another version, with a run of its own.
  const source = `s3://${input.bucket}/${input.key}${input.versionId ? ` (version ${input.versionId})` : ''}`;
  const first = await readHead(deps.s3, input.bucket, input.key, 64, input.versionId);
  if (!first) throw new SourceReadError(`${source} does not exist (moved or deleted before the run started)`);
  // Run without a version id (a sweep of an unversioned bucket, an operator's run): pinned to what the head saw, so
  // that every scan and range worker reads that object, and an overwrite meanwhile fails the run instead of mixing in.
  const versionId = input.versionId ?? first.versionId;
  const delivered: StagedContent = { bucket: input.bucket, key: input.key, versionId, ...(versionId ? {} : { etag: first.etag }), head: first.head, size: first.size };
  const opened: Opened = isPgpData(first.head) ? await decryptDelivery(run, delivered) : { content: delivered };
  // After decryption: vendors zip or gzip, then encrypt (events.zip.gpg, events.csv.gz.gpg).
  if (isZip(opened.content.head)) return expandDelivery(run, opened.content);
  const plan = opened.plan ?? (needsOnePass(flow, opened.content) ? await unpackToStaging(run, opened.content, opened.delivered) : plainPlan(run, delivered));
  await putJson(deps.s3, deps.buckets.staging, KEYS.plan(runId), plan);
  return { ...run.base, plan: planRefOf(runId, plan), ...empty };
}

/** A gzip file, or UTF-16 text, is read in one pass (a gzip stream cannot be entered mid-way; UTF-16 is not byte-rangeable text). */
function needsOnePass(flow: Dataflow, content: StagedContent): boolean {
  return (content.head[0] === 0x1f && content.head[1] === 0x8b) || flow.csv.encoding === 'utf-16le';
}

/** The plan of a plain file: nominal ranges of exactly the delivered version, for the scan workers. */
function plainPlan(run: StageRun, delivered: StagedContent): StagePlan {
  if (delivered.size === 0) throw new EmptyFileError('The file is empty: it has no header row');
  const rangeBytes = rangeBytesFor(delivered.size, run.deps.stagePlan);
  const text: StagedText = { bucket: delivered.bucket, key: delivered.key, ...(delivered.versionId ? { versionId: delivered.versionId } : delivered.etag ? { etag: delivered.etag } : {}), size: delivered.size, encoding: run.flow.csv.encoding };
  return { text, rangeBytes, scans: Math.ceil(delivered.size / rangeBytes), deliveredBytes: delivered.size };
}

/** The delivery opened: the content to read (the delivered object, or its decrypted copy), planned when it was read already. */
interface Opened {
  content: StagedContent;
  plan?: StagePlan;
  /** What was delivered, when it was read (decrypted). */
  delivered?: { deliveredSha256: string; deliveredBytes: number };
}

/** A PGP file decrypted into staging (verified); planned already when its plaintext is plain text. */
async function decryptDelivery(run: StageRun, delivered: StagedContent): Promise<Opened> {
  const { flow, deps, runId } = run;
  if (!flow.decrypt) throw new DecryptionError('The file is PGP-encrypted, and the dataflow has no "decrypt" block');
  const body = await openObject(deps.s3, delivered.bucket, delivered.key, delivered.versionId);
  if (!body) throw new SourceReadError(`s3://${delivered.bucket}/${delivered.key} does not exist (moved or deleted before the run started)`);
  const hash = createHash('sha256');
  const tapped = body.pipe(hashingTap(hash));
  body.on('error', (error) => tapped.destroy(error));
  const scanning = new ScanningTap(scanDialect(flow, flow.csv.encoding), pieceBytes(run));
  const stagedKey = await decryptToStaging(tapped, delivered.head, flow.decrypt, scanning, runId, deps);
  const read = { deliveredSha256: hash.digest('hex'), deliveredBytes: delivered.size };
  const staged = await readHead(deps.s3, deps.buckets.staging, stagedKey, 64);
  const content: StagedContent = { bucket: deps.buckets.staging, key: stagedKey, head: staged?.head ?? Buffer.alloc(0), size: staged?.size ?? 0 };
  if (isZip(content.head) || needsOnePass(flow, content)) return { content, delivered: read };
  const text: StagedText = { bucket: content.bucket, key: content.key, size: content.size, encoding: flow.csv.encoding };
  return { content, delivered: read, plan: await planOfPass(run, text, scanning, read) };
}

/** The scanner's pieces in a sequential pass: a hash block, or a test's smaller range. */
function pieceBytes(run: StageRun): number {
  return Math.min(HASH_BLOCK_BYTES, run.deps.stagePlan?.rangeBytes ?? HASH_BLOCK_BYTES);
}

/** The plan of a text read in one pass: its scans planned at once (no scan phase). */
async function planOfPass(run: StageRun, text: StagedText, scanning: ScanningTap, delivered: { deliveredSha256: string; deliveredBytes: number }): Promise<StagePlan> {
  if (text.size === 0) throw new EmptyFileError('The file is empty: it has no header row');
  const { contentSha256, tree } = scanning.blocks.digest();
  const base: StagePlan = { text, rangeBytes: pieceBytes(run), ...delivered };
  return completePlan(run.deps, run.flow, base, scanning.finish(), contentSha256, tree);
}

/**
 * The one sequential pass of a gzip or UTF-16 file (or of a decrypted one that is): gunzipped (a bomb refused) and
 * transcoded to UTF-8 into a staged plaintext, its record boundaries scanned and its hash blocks hashed on the way.
 */
async function unpackToStaging(run: StageRun, content: StagedContent, delivered?: Opened['delivered']): Promise<StagePlan> {
  const { flow, deps, runId } = run;
  const body = await openObject(deps.s3, content.bucket, content.key, content.versionId);
  if (!body) throw new SourceReadError(`s3://${content.bucket}/${content.key} does not exist (moved or deleted before the run started)`);
  const hash = createHash('sha256');
  const hashed = body.pipe(hashingTap(hash));
  body.on('error', (error) => hashed.destroy(error));
  let text: Readable = gunzipIfCompressed(hashed, flow.unpack);
  hashed.on('error', (error) => text.destroy(error));
  if (flow.csv.encoding === 'utf-16le') {
    const transcoded = text.pipe(decodeText('utf-16le'));
    text.on('error', (error) => transcoded.destroy(error));
    text = transcoded;
  }
  const encoding = flow.csv.encoding === 'utf-16le' ? 'utf-8' : flow.csv.encoding;
  const scanning = new ScanningTap(scanDialect(flow, encoding), pieceBytes(run));
  const tapped = text.pipe(scanning);
  text.on('error', (error) => tapped.destroy(error));
  // A decrypted file's plaintext is staged already: its unpacked text goes beside it.
  const key = content.bucket === deps.buckets.staging ? KEYS.unpacked(runId) : KEYS.plaintext(runId);
  const writer = createObjectWriter(deps.s3, deps.buckets.staging, key, 'application/octet-stream');
  try {
    for await (const part of tapped) await writer.write(part as Buffer);
    await writer.end();
  } catch (error) {
    await writer.abort();
    throw error;
  }
  const staged: StagedText = { bucket: deps.buckets.staging, key, size: scanning.bytes, encoding };
  return planOfPass(run, staged, scanning, delivered ?? { deliveredSha256: hash.digest('hex'), deliveredBytes: content.size });
}

/** A zip archive: its entries go to the inbox, each imported by a run of its own. */
async function expandDelivery(run: StageRun, content: StagedContent): Promise<StageOutput> {
  const { s3, buckets } = run.deps;
  const expanded = await expandToInbox(content, run.flow, run.deps, Boolean(run.input.dryRun), run.runId);
  // The list goes to staging: thousands of entry keys would not fit in a 256 KiB state.
  const expandedKey = KEYS.expanded(run.runId);
  await putJson(s3, buckets.staging, expandedKey, expanded);
  return { ...run.base, expanded: expanded.length, expandedKey, chunkCount: 0, maxConcurrency: 1, records: 0, valid: 0, rejected: 0 };
}

/** The bytes the stage parses: the delivered object (exactly its version), or its decrypted copy in staging. */
interface StagedContent {
  bucket: string;
  key: string;
  versionId?: string;
  /** The object's ETag when it has no version id (an unversioned bucket): later reads are made only while it matches. */
  etag?: string;
  head: Buffer;
  size: number;
}


/** Passes bytes through unchanged, feeding them to `hash` on the way. */
function hashingTap(hash: Hash): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
  });
}


/**
 * Decrypts the file into a staging object and returns that object's plaintext, but only once the whole message has
 * been decrypted, its integrity check (MDC or AEAD) has passed at the end of the stream, and its signature has
 * verified when one is required. openpgp streams plaintext before it can know the file is intact, so nothing read
 * from the decrypted stream is parsed until then: a tampered, truncated or wrongly signed file stages nothing and
 * sends nothing. The plaintext never sits in memory whole; it waits in the staging bucket (encrypted at rest,
 * expiring with the run's other staged objects).
 */
async function decryptToStaging(delivered: Readable, head: Buffer, decrypt: NonNullable<Dataflow['decrypt']>, scanning: ScanningTap, runId: string, deps: StepDeps): Promise<string> {
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
      // The boundary scanner and the block hashes see the plaintext as it streams; their plan is used only once the
      // message has verified (a scan reads bytes for line ends and quotes, it parses nothing).
      for await (const part of plaintext) {
        scanning.observe(part as Buffer);
        await writer.write(part as Buffer);
      }
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
