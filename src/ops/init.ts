import { closeSync, createReadStream, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { parseConfig } from '../config/load';
import { VALIDATION_CODES } from '../codes';
import { openCsv } from '../core/csv';
import { type Draft, inferDraft } from '../core/infer';
import { SampleError } from '../core/infer-text';
import { compileMapper } from '../core/mapping';
import { decryptStream, isPgpData, loadDecryptionKeys, streamFailure } from '../core/pgp';
import { gunzipIfCompressed, isGzip } from '../core/unpack';
import { isZip } from '../core/zip';
import { BadgesImportError, DecryptionError } from '../errors';

/** Bytes of (decrypted, gunzipped) text init reads at most: a large file's first part shows its shapes as well. */
export const SAMPLE_BYTES = 8 * 1024 * 1024;

export interface InitOptions {
  /** The sample file: plain, gzip, or PGP (then with `secretsFile`). */
  sample: string;
  /** The dataflow's name. @default from the sample's file name */
  name?: string;
  /** JSON file of secret values `{ "name": "value" }`, for a PGP sample: its private key and passphrase. */
  secretsFile?: string;
  /** The secret holding the private key. @default the one secret whose value is a PGP private key */
  privateKeySecret?: string;
  /** The secret holding the key's passphrase. @default the one secret named like "passphrase", when the key needs one */
  passphraseSecret?: string;
  /** @default SAMPLE_BYTES */
  maxBytes?: number;
  /** @default 10000 */
  maxRecords?: number;
}

/** What the draft makes of the records it was drafted from, read by the product's own reader and mapper. */
export interface SampleCheck {
  records: number;
  valid: number;
  /** Record numbers of the rejected records, by code. */
  rejected: Map<string, number[]>;
}

export interface InitResult {
  draft: Draft;
  check: SampleCheck;
  /** The configuration as it is written (JSON, two-space indented). */
  json: string;
  /** What init prints: one line per decision, the sample check, then what to review. */
  text: string;
}

interface SampleRead {
  bytes: Buffer;
  cut: boolean;
  size: number;
  /** What was undone to read the text: decryption, gzip. */
  layers: Array<{ subject: string; choice: string; why: string }>;
  decrypt?: { privateKeySecret: string; passphraseSecret?: string };
}

/** A dataflow name from a file name: its letters before the first digit or dot, lower case (`Events_2026-11-23.csv` → `events`). */
export function defaultName(file: string): string {
  const stem = basename(file).toLowerCase().split(/[.\d]/)[0] ?? '';
  const name = stem.replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40).replace(/-+$/, '');
  return name === '' ? 'vendor-file' : name;
}

function head(file: string, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(length);
    return buffer.subarray(0, readSync(fd, buffer, 0, length, 0));
  } finally {
    closeSync(fd);
  }
}

const PRIVATE_KEY = '-----BEGIN PGP PRIVATE KEY BLOCK-----';

function isPrivateKey(value: string): boolean {
  const trimmed = value.trim();
  return trimmed.startsWith(PRIVATE_KEY) || Buffer.from(trimmed, 'base64').toString('utf8').trim().startsWith(PRIVATE_KEY);
}

function readSecrets(file: string | undefined): Record<string, string> {
  if (!file) throw new SampleError('The sample is PGP-encrypted: give --secrets FILE, a JSON file { "name": "value" } holding the private key (and its passphrase), as `run` takes it');
  let document: unknown;
  try {
    document = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new SampleError(`--secrets ${file}: cannot be read as JSON (${(error as NodeJS.ErrnoException).code ?? 'invalid JSON'})`);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) throw new SampleError(`--secrets ${file}: must be a JSON object of secret names to string values`);
  return Object.fromEntries(Object.entries(document).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/** Which secrets hold the private key and its passphrase, and the keys they unlock. Never says a value. */
async function pgpKeys(options: InitOptions): Promise<{ keys: Awaited<ReturnType<typeof loadDecryptionKeys>>; decrypt: NonNullable<SampleRead['decrypt']> }> {
  const secrets = readSecrets(options.secretsFile);
  const keyNames = options.privateKeySecret ? [options.privateKeySecret] : Object.keys(secrets).filter((name) => isPrivateKey(secrets[name]!));
  if (keyNames.length !== 1 || secrets[keyNames[0]!] === undefined) {
    throw new SampleError(
      keyNames.length > 1 ? `Several secrets hold a PGP private key (${keyNames.join(', ')}): name the one with --private-key-secret` : `No secret in ${options.secretsFile} ${options.privateKeySecret ? `is named "${options.privateKeySecret}"` : 'holds a PGP private key (armored, or Base64 of it)'}`,
    );
  }
  const privateKeySecret = keyNames[0]!;
  try {
    return { keys: await loadDecryptionKeys(secrets[privateKeySecret]!), decrypt: { privateKeySecret } };
  } catch (error) {
    if (!(error instanceof DecryptionError) || !/passphrase/.test(error.message)) throw error;
  }
  const passNames = options.passphraseSecret ? [options.passphraseSecret] : Object.keys(secrets).filter((name) => /passphrase/i.test(name));
  if (passNames.length !== 1 || secrets[passNames[0]!] === undefined) {
    throw new SampleError(`The private key in secret "${privateKeySecret}" is protected by a passphrase: name the secret holding it with --passphrase-secret${passNames.length > 1 ? ` (several are named like one: ${passNames.join(', ')})` : ''}`);
  }
  const passphraseSecret = passNames[0]!;
  return { keys: await loadDecryptionKeys(secrets[privateKeySecret]!, secrets[passphraseSecret]), decrypt: { privateKeySecret, passphraseSecret } };
}

/** Reads up to `limit` bytes of a stream; `cut` when the stream had more. */
async function take(stream: Readable, limit: number): Promise<{ bytes: Buffer; cut: boolean }> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
    length += (chunk as Buffer).length;
    if (length > limit) break;
  }
  const bytes = Buffer.concat(chunks);
  return { bytes: bytes.subarray(0, limit), cut: bytes.length > limit };
}

/** The stream with its first chunk read (to look at), then given back in front of the rest. */
async function peek(stream: Readable): Promise<{ first: Buffer; stream: Readable }> {
  const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const step = await iterator.next();
  const first = step.done ? Buffer.alloc(0) : step.value;
  async function* rest(): AsyncGenerator<Buffer> {
    yield first;
    for (let s = await iterator.next(); !s.done; s = await iterator.next()) yield s.value;
  }
  return { first, stream: Readable.from(rest()) };
}

/**
 * Reads the leading part of the sample as text bytes: decrypted when it is PGP (with the secrets file), gunzipped
 * when it is gzip, at most `maxBytes` of them.
 */
async function readSample(options: InitOptions): Promise<SampleRead> {
  const size = statSync(options.sample).size;
  const start = head(options.sample, 4096);
  if (size === 0) throw new SampleError(`${options.sample} is empty`);
  if (isZip(start)) throw new SampleError('The sample is a zip archive: the product imports each of its entries as a file of its own; unzip it and run init on one entry');
  const layers: SampleRead['layers'] = [];
  let stream: Readable = createReadStream(options.sample);
  let decrypt: SampleRead['decrypt'];
  let verified: Promise<void> | undefined;
  if (isPgpData(start)) {
    const pgp = await pgpKeys(options);
    decrypt = pgp.decrypt;
    const opened = await decryptStream(stream, pgp.keys, start.toString('latin1').trimStart().startsWith('-----BEGIN PGP MESSAGE-----'));
    stream = opened.plaintext;
    verified = opened.verified;
  }
  const peeked = await peek(stream);
  const gzip = isGzip(peeked.first);
  const limit = options.maxBytes ?? SAMPLE_BYTES;
  let read: { bytes: Buffer; cut: boolean };
  try {
    read = await take(gunzipIfCompressed(peeked.stream, { maxCompressionRatio: 200, maxUncompressedBytes: 10 * 1024 ** 3 }), limit);
    if (!read.cut) await verified;
  } catch (error) {
    throw decrypt && !(error instanceof BadgesImportError) ? streamFailure(error) : error;
  }
  if (decrypt) {
    layers.push({
      subject: 'decryption',
      choice: `PGP, with the key in secret "${decrypt.privateKeySecret}"${decrypt.passphraseSecret ? ` (passphrase in "${decrypt.passphraseSecret}")` : ''}`,
      why: read.cut ? 'the file is PGP data; only its first part was read, so its integrity check (at the end) was not reached: the run checks it' : 'the file is PGP data; it was read whole and passed its integrity check',
    });
  }
  if (gzip) layers.push({ subject: 'compression', choice: 'gzip', why: 'it starts with the gzip magic number; the product gunzips any gzip file, whatever its name: nothing to configure' });
  return { bytes: read.bytes, cut: read.cut, size, layers, ...(decrypt ? { decrypt } : {}) };
}

/** Reads the checked records with the draft, through the product's own reader and mapper: what the run will make of them. */
async function checkDraft(draft: Draft): Promise<SampleCheck> {
  const flow = parseConfig(draft.document).dataflows[0]!;
  const csv = await openCsv(Readable.from([draft.checked]), flow.csv);
  const mapper = compileMapper(flow, csv.header);
  const check: SampleCheck = { records: 0, valid: 0, rejected: new Map() };
  for await (const record of csv.records) {
    check.records++;
    const result = record.tooLong ? { ok: false as const, rejection: { code: VALIDATION_CODES.RECORD_TOO_LONG } } : mapper(record.fields);
    if (result.ok) check.valid++;
    else check.rejected.set(result.rejection.code, [...(check.rejected.get(result.rejection.code) ?? []), record.number]);
  }
  return check;
}

/**
 * Drafts a configuration from a sample of the vendor's file: reads its first part (decrypted, gunzipped), infers the
 * dataflow, checks the draft against those records with the product's own reader and mapper, and says what it did.
 *
 * @throws SampleError when no configuration can be drafted from the sample; DecryptionError and its kin for a PGP
 *   sample the secrets do not open.
 */
export async function draftConfiguration(options: InitOptions): Promise<InitResult> {
  const read = await readSample(options);
  const name = options.name ?? defaultName(options.sample);
  const draft = inferDraft(read.bytes, { name, cut: read.cut, ...(options.maxRecords ? { maxRecords: options.maxRecords } : {}), ...(read.decrypt ? { decrypt: read.decrypt } : {}) });
  draft.decisions.unshift(...read.layers);
  const check = await checkDraft(draft);
  const json = `${JSON.stringify(draft.document, null, 2)}\n`;
  return { draft, check, json, text: render(options.sample, name, read, draft, check) };
}

/** Codes that say a record's data is wrong whatever the mapping: the run rejects them, and they say nothing about the draft. */
const DATA_ONLY: ReadonlySet<string> = new Set([VALIDATION_CODES.EXPIRY_BEFORE_EVENT, VALIDATION_CODES.EVENT_IN_FUTURE, VALIDATION_CODES.RECORD_TOO_LONG]);

function checkLines(check: SampleCheck): string[] {
  const rejected = check.records - check.valid;
  if (rejected === 0) return [`  sample check   all ${check.records} records read are valid with this draft (the product's own reader and mapper)`];
  const byCode = [...check.rejected].map(([code, numbers]) => `${code} ${numbers.length} (record${numbers.length === 1 ? '' : 's'} ${numbers.slice(0, 5).join(', ')}${numbers.length > 5 ? ', …' : ''})`);
  return [
    `  sample check   ${check.valid} of ${check.records} records are valid with this draft; ${rejected} would be rejected: ${byCode.join(', ')}`,
    `                 a value that fits no format of its column is the record's own problem when the rest of the column fits; EXPIRY_BEFORE_EVENT and EVENT_IN_FUTURE are data problems the run rejects whatever the mapping`,
  ];
}

function render(sample: string, name: string, read: SampleRead, draft: Draft, check: SampleCheck): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const extent = draft.limited
    ? `its first ${n(draft.records)} records (init's limit); the records after them were not looked at`
    : read.cut
      ? `its first ${n(read.bytes.length)} bytes of text (${n(draft.records)} whole records); the rest of the file (${n(read.size)} bytes on disk) was not read`
      : `all of it (${n(read.size)} bytes, ${n(draft.records)} records)`;
  const mappingCodes = [...check.rejected].filter(([code]) => !DATA_ONLY.has(code)).reduce((n, [, numbers]) => n + numbers.length, 0);
  const review = [...draft.review];
  if (mappingCodes > check.records / 10) {
    review.unshift({ path: 'mapping', message: `${mappingCodes} of ${check.records} records have a value the draft cannot read: more than a tenth; check the columns and formats above against the file` });
  }
  const lines = [
    `badges-import init: dataflow "${name}" drafted from ${basename(sample)}`,
    `  read           ${extent}`,
    ...draft.decisions.map((d) => `  ${d.subject.padEnd(14)} ${d.choice}: ${d.why}`),
    ...checkLines(check),
    '',
    'Review before use (the draft takes the default said):',
    ...review.map((r) => `  - ${r.path}: ${r.message}`),
  ];
  return `${lines.join('\n')}\n`;
}
