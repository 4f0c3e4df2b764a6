import { createHash, randomUUID } from 'node:crypto';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { type CopyOptions, copyObject, headObject } from '../aws/s3';
import { Upload } from '@aws-sdk/lib-storage';
import SftpClient from 'ssh2-sftp-client';
import type { SecretsProvider } from '../aws/secrets';
import type { Dataflow, SftpSource } from '../config/schema';
import { type Buckets, type PullResult, type Report, fileNameOf } from '../contracts';
import { HostKeyMismatchError, SftpError } from '../errors';
import { vendorSummary, writeBackNames } from '../report/texts';
import type { Log } from '../ports';
import { SPANS, trace } from '../trace';

/** S3 user metadata that a pulled object carries, so that the run knows where the file came from and went. */
export const PULL_METADATA = {
  origin: 'badges-origin',
  path: 'badges-sftp-path',
  movedTo: 'badges-sftp-moved-to',
  size: 'badges-sftp-size',
  mtime: 'badges-sftp-mtime',
} as const;

export interface SftpDeps {
  s3: S3Client;
  buckets: Buckets;
  secrets: SecretsProvider;
  log: Log;
  now?: () => number;
  /** Milliseconds left to work in (a Lambda's remaining time); no new file is started with less than a minute left. */
  remainingMs?: () => number;
  /** Called between a file's copy and the check that it did not change meanwhile (tests change it here). */
  afterCopy?: (file: RemoteFile) => Promise<void>;
  /** How a pulled file is copied into the inbox (tests lower the multipart threshold). @default S3's 5 GiB limit */
  copy?: CopyOptions;
}

/** One remote file in a listing. */
export interface RemoteFile {
  /** Absolute path on the server. */
  path: string;
  /** Path relative to the source directory. */
  relative: string;
  name: string;
  size: number;
  /** Modification time, ms since the epoch (SFTP carries whole seconds). */
  mtime: number;
}

export type { PullResult } from '../contracts';

/** `SHA256:…` of a host key blob, as `ssh-keygen -lf` prints it. */
export function fingerprintOf(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** Accepts an armored/OpenSSH key as is, or Base64 of it (as Connect+ stores keys). */
function decodeKey(value: string): string {
  if (value.includes('-----BEGIN')) return value;
  const decoded = Buffer.from(value.trim(), 'base64').toString('utf8');
  return decoded.includes('-----BEGIN') ? decoded : value;
}

/** The server as a report or an error names it: no user, no secrets. */
export function serverOf(source: SftpSource): string {
  return `${source.host}:${source.port}`;
}

/**
 * Opens an SFTP session with the configured credentials, refusing a server whose host key is not the pinned one.
 * Errors name the server and what to fix; they never carry a secret.
 */
export async function connectSftp(source: SftpSource, secrets: SecretsProvider): Promise<SftpClient> {
  const pinned = source.hostKeySha256 === false ? undefined : [source.hostKeySha256].flat();
  let presented: string | undefined;
  const client = new SftpClient('badges-import');
  const credentials = source.passwordSecret
    ? { password: await secrets.get(source.passwordSecret) }
    : {
        privateKey: decodeKey(await secrets.get(source.privateKeySecret!)),
        ...(source.privateKeyPassphraseSecret ? { passphrase: await secrets.get(source.privateKeyPassphraseSecret) } : {}),
      };
  try {
    await trace(SPANS.sftpConnect, () => client.connect({
      host: source.host,
      port: source.port,
      username: source.username,
      ...credentials,
      readyTimeout: source.connectTimeoutSeconds * 1000,
      hostVerifier: (key: Buffer) => {
        presented = fingerprintOf(key);
        return pinned === undefined || pinned.includes(presented);
      },
      // One attempt per poll: the next poll is the retry.
      retries: 0,
    }));
  } catch (error) {
    await client.end().catch(() => undefined);
    if (pinned && presented && !pinned.includes(presented)) {
      throw new HostKeyMismatchError(
        `SFTP server ${serverOf(source)} presented host key ${presented}, which is not the pinned hostKeySha256 (${pinned.join(', ')}): refusing to connect. If the server's key was changed on purpose, pin the new fingerprint (ssh-keygen -lf on the server's key, or ssh-keyscan -p ${source.port} ${source.host} | ssh-keygen -lf -).`,
      );
    }
    const message = (error as Error).message ?? String(error);
    if (/authentication methods failed/i.test(message)) {
      throw new SftpError(
        `SFTP server ${serverOf(source)} refused user "${source.username}" with the configured ${source.passwordSecret ? `password (secret "${source.passwordSecret}")` : `private key (secret "${source.privateKeySecret}")`}`,
      );
    }
    if (/passphrase|encrypted private key|Cannot parse privateKey/i.test(message)) {
      throw new SftpError(
        `The private key in secret "${source.privateKeySecret}" cannot be used: ${source.privateKeyPassphraseSecret ? `it does not open with the passphrase in secret "${source.privateKeyPassphraseSecret}"` : 'it is encrypted (set privateKeyPassphraseSecret) or not an OpenSSH/PEM key'}`,
      );
    }
    throw new SftpError(`Cannot open an SFTP session with ${serverOf(source)}: ${scrub(message, credentials)}`);
  }
  return client;
}

/** A library message never echoes a credential, but make sure. */
function scrub(message: string, credentials: Record<string, string | undefined>): string {
  let text = message;
  for (const value of Object.values(credentials)) if (value) text = text.split(value).join('***');
  return text;
}

const join = (...parts: string[]) => posix.join(...parts);
const normalize = (dir: string) => posix.normalize(dir).replace(/(.)\/+$/, '$1');

/** Lists the source directory (and its subdirectories when recursive), leaving out the processed and error directories. */
export async function listRemote(client: SftpClient, source: SftpSource): Promise<{ files: RemoteFile[]; names: Map<string, Set<string>> }> {
  const root = normalize(source.directory);
  const skip = new Set([source.processedDirectory, source.errorDirectory].filter((d): d is string => d !== undefined).map(normalize));
  const files: RemoteFile[] = [];
  const names = new Map<string, Set<string>>();
  const visit = async (dir: string): Promise<void> => {
    let entries: SftpClient.FileInfo[];
    try {
      entries = await client.list(dir);
    } catch (error) {
      throw new SftpError(`Cannot list ${dir} on the SFTP server: ${(error as Error).message}`);
    }
    names.set(dir, new Set(entries.filter((e) => e.type === '-').map((e) => e.name)));
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.type === '-') {
        files.push({ path, relative: posix.relative(root, path), name: entry.name, size: entry.size, mtime: entry.modifyTime });
      } else if (entry.type === 'd' && source.recursive && !skip.has(normalize(path)) && entry.name !== '.' && entry.name !== '..') {
        await visit(path);
      }
    }
  };
  await trace(SPANS.sftpList, () => visit(root));
  return { files, names };
}

/** The `.ok` marker names accepted for a file: `events.csv.ok` or `events.ok`. */
export function okMarkersFor(name: string): string[] {
  const stem = name.replace(/\.[^.]*$/, '');
  return stem !== name ? [`${name}.ok`, `${stem}.ok`] : [`${name}.ok`];
}

/**
 * Takes every ready file of an SFTP dataflow: copies it into the inbox bucket under the dataflow's prefix (where it is
 * imported like an S3 drop: the upload event or the next sweep starts its run) and moves it to the processed directory.
 *
 * A file is ready when its name matches the pattern, it is not itself a `.ok` marker, its marker exists (with
 * `requireOkFile`), and it was last modified at least `minFileAgeSeconds` ago. It is first copied to the staging
 * bucket, checked unchanged on the server, and only then copied under the prefix, so a file that grew while it was
 * read is never imported half-written. If anything fails before the move, the file stays where it was and the next
 * poll takes it again; an object already under the prefix for the same file version is not copied a second time.
 */
export async function pullSftp(flow: Dataflow, deps: SftpDeps): Promise<PullResult> {
  const source = flow.source;
  if (source.type !== 'sftp') throw new Error(`Dataflow ${flow.name} does not have an SFTP source`);
  const now = deps.now ?? Date.now;
  const result: PullResult = { dataflow: flow.name, taken: [], waiting: [], failed: [] };
  const pattern = new RegExp(source.filePattern);
  const client = await connectSftp(source, deps.secrets);
  try {
    const { files, names } = await listRemote(client, source);
    for (const file of files) {
      if (file.name.endsWith('.ok') || !pattern.test(file.name)) continue;
      const siblings = names.get(posix.dirname(file.path)) ?? new Set<string>();
      const marker = okMarkersFor(file.name).find((m) => siblings.has(m));
      if (source.requireOkFile && !marker) {
        result.waiting.push({ path: file.path, reason: `no marker yet (${okMarkersFor(file.name).join(' or ')})` });
        continue;
      }
      const age = now() - file.mtime;
      if (!source.requireOkFile && age < source.minFileAgeSeconds * 1000) {
        result.waiting.push({ path: file.path, reason: `modified ${Math.max(0, Math.round(age / 1000))} s ago (under minFileAgeSeconds ${source.minFileAgeSeconds}): it may still be growing` });
        continue;
      }
      if (deps.remainingMs && deps.remainingMs() < 60_000) {
        result.waiting.push({ path: file.path, reason: 'left for the next poll: this one ran out of time' });
        continue;
      }
      try {
        const outcome = await takeFile(client, flow, source, file, marker, deps);
        if ('waiting' in outcome) result.waiting.push({ path: file.path, reason: outcome.waiting });
        else result.taken.push(outcome);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        deps.log.warn('SFTP file not taken', { dataflow: flow.name, path: file.path, error: message });
        result.failed.push({ path: file.path, message });
      }
    }
  } finally {
    await client.end().catch(() => undefined);
  }
  deps.log.info('SFTP poll done', { dataflow: flow.name, server: serverOf(source), taken: result.taken.length, waiting: result.waiting.length, failed: result.failed.length });
  return result;
}

async function takeFile(
  client: SftpClient,
  flow: Dataflow,
  source: SftpSource,
  file: RemoteFile,
  marker: string | undefined,
  deps: SftpDeps,
): Promise<PullResult['taken'][number] | { waiting: string }> {
  const { s3, buckets } = deps;
  const key = `${flow.source.prefix}${file.name}`;
  const origin = `sftp://${serverOf(source)}${file.path}`;
  const existing = (await headObject(s3, buckets.inbox, key))?.metadata;
  let movedTo: string;
  if (existing !== undefined) {
    // Copied by an earlier poll that stopped before the move: move it now. Another file of the same name (from another
    // subdirectory) waits until the one being imported has left the prefix.
    const same = existing[PULL_METADATA.origin] === encodeURI(origin) && existing[PULL_METADATA.size] === String(file.size) && existing[PULL_METADATA.mtime] === String(file.mtime);
    if (!same) return { waiting: `s3://${buckets.inbox}/${key} is still being imported from another file of the same name` };
    movedTo = decodeURI(existing[PULL_METADATA.movedTo] ?? '') || (await processedPathFor(client, source, file));
  } else {
    movedTo = await processedPathFor(client, source, file);
    const metadata = {
      [PULL_METADATA.origin]: encodeURI(origin),
      [PULL_METADATA.path]: encodeURI(file.path),
      [PULL_METADATA.movedTo]: encodeURI(movedTo),
      [PULL_METADATA.size]: String(file.size),
      [PULL_METADATA.mtime]: String(file.mtime),
    };
    // Pulled into staging first and copied into the inbox (which starts the run) only once the file is found unchanged
    // after the download: the inbox never sees a file that was still growing. Past 5 GiB the copy is multipart.
    const pulling = `pulls/${flow.name}/${randomUUID()}/${file.name}`;
    await download(client, file, s3, buckets.staging, pulling, metadata);
    try {
      await deps.afterCopy?.(file);
      const after = await client.stat(file.path);
      if (after.size !== file.size || after.modifyTime !== file.mtime) return { waiting: 'changed while it was being copied: it may still be growing' };
      await copyObject(s3, { bucket: buckets.staging, key: pulling, size: file.size }, { bucket: buckets.inbox, key }, deps.copy);
    } finally {
      await s3.send(new DeleteObjectCommand({ Bucket: buckets.staging, Key: pulling })).catch(() => undefined);
    }
  }
  await trace(SPANS.sftpMove, async () => {
    await client.mkdir(posix.dirname(movedTo), true);
    await client.rename(file.path, movedTo);
    if (marker) {
      const markerPath = join(posix.dirname(file.path), marker);
      const markerTarget = join(posix.dirname(movedTo), marker);
      await ((await client.exists(markerTarget)) ? client.delete(markerPath, true) : client.rename(markerPath, markerTarget)).catch(() => undefined);
    }
  });
  deps.log.info('SFTP file taken', { dataflow: flow.name, path: file.path, key, movedTo, bytes: file.size });
  return { path: file.path, key, movedTo, bytes: file.size };
}

/** The processed directory keeps the file's relative path; a name already there gets the time appended. */
async function processedPathFor(client: SftpClient, source: SftpSource, file: RemoteFile): Promise<string> {
  const target = join(normalize(source.processedDirectory), file.relative);
  if (!(await client.exists(target))) return target;
  return `${target}.${new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
}

async function download(client: SftpClient, file: RemoteFile, s3: S3Client, bucket: string, key: string, metadata: Record<string, string>): Promise<void> {
  const body = client.createReadStream(file.path) as unknown as Readable;
  try {
    await trace(SPANS.sftpDownload, () => new Upload({ client: s3, params: { Bucket: bucket, Key: key, Body: body, Metadata: metadata }, queueSize: 4 }).done(), { bytes: file.size });
  } catch (error) {
    body.destroy();
    throw new SftpError(`Copying ${file.path} into s3://${bucket}/${key} failed: ${(error as Error).message}`);
  }
}

/** Where a pulled object came from, read back from its metadata; undefined for an object not pulled from SFTP. */
export function pullOriginOf(metadata: Record<string, string> | undefined): { origin: string; path: string; movedTo: string } | undefined {
  if (!metadata?.[PULL_METADATA.origin]) return undefined;
  return {
    origin: decodeURI(metadata[PULL_METADATA.origin] ?? ''),
    path: decodeURI(metadata[PULL_METADATA.path] ?? ''),
    movedTo: decodeURI(metadata[PULL_METADATA.movedTo] ?? ''),
  };
}

/**
 * Writes a run's outcome back to the vendor's error directory: `result_<time>_<name>.summary.txt` for every run that
 * did not simply succeed, and `result_<time>_<name>.rejected.csv` with the rejected records when there are any.
 * Returns the remote paths written.
 */
export async function writeBack(
  flow: Dataflow,
  deps: SftpDeps,
  pulled: { path: string },
  report: Report,
  rejected: (() => Promise<Readable | undefined>) | undefined,
): Promise<string[]> {
  const source = flow.source;
  if (source.type !== 'sftp' || !source.errorDirectory) return [];
  const root = normalize(source.directory);
  const relative = pulled.path.startsWith(`${root}/`) ? pulled.path.slice(root.length + 1) : fileNameOf(pulled.path);
  const dir = join(normalize(source.errorDirectory), posix.dirname(relative));
  const names = writeBackNames(report, fileNameOf(pulled.path));
  const written: string[] = [];
  const client = await connectSftp(source, deps.secrets);
  try {
    await trace(SPANS.sftpWriteBack, async () => {
      await client.mkdir(dir, true);
      let rejectedName: string | undefined;
      const body = rejected ? await rejected() : undefined;
      if (body) {
        rejectedName = names.rejected;
        await client.put(body, join(dir, rejectedName));
        written.push(join(dir, rejectedName));
      }
      const summaryPath = join(dir, names.summary);
      await client.put(Buffer.from(vendorSummary(report, fileNameOf(pulled.path), rejectedName)), summaryPath);
      written.push(summaryPath);
    });
  } finally {
    await client.end().catch(() => undefined);
  }
  deps.log.info('Outcome written back to the SFTP error directory', { dataflow: flow.name, files: written });
  return written;
}
