import { PassThrough, type Readable } from 'node:stream';
import { once } from 'node:events';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  type S3Client,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

/** Opens an object (or one version of it) as a byte stream; undefined when it does not exist. */
export async function openObject(s3: S3Client, bucket: string, key: string, versionId?: string): Promise<Readable | undefined> {
  try {
    const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
    return response.Body as Readable;
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (error instanceof NoSuchKey || name === 'NoSuchKey' || name === 'NoSuchVersion') return undefined;
    throw error;
  }
}

/** The first `bytes` bytes of an object (fewer when it is shorter; none when it is empty), and its size. */
export async function readHead(s3: S3Client, bucket: string, key: string, bytes: number, versionId?: string): Promise<{ head: Buffer; size: number; versionId?: string; etag?: string } | undefined> {
  // A ranged read of an empty object is answered 416 by S3 (an empty object has no byte 0): ask for the size first.
  const found = await headObject(s3, bucket, key, versionId);
  if (found === undefined) return undefined;
  const { size } = found;
  // The object the head saw: its version (a versioned bucket), else its ETag (an unversioned one), for every later read.
  const pin = { ...(found.versionId ? { versionId: found.versionId } : {}), ...(found.etag ? { etag: found.etag } : {}) };
  if (size === 0) return { head: Buffer.alloc(0), size, ...pin };
  try {
    const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId ?? found.versionId, Range: `bytes=0-${bytes - 1}`, ...ifMatch(found.versionId ? undefined : found.etag) }));
    const parts: Buffer[] = [];
    for await (const part of response.Body as Readable) parts.push(part as Buffer);
    return { head: Buffer.concat(parts).subarray(0, bytes), size, ...pin };
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (name === 'InvalidRange') return { head: Buffer.alloc(0), size };
    if (error instanceof NoSuchKey || name === 'NoSuchKey' || name === 'NoSuchVersion') return undefined;
    throw error;
  }
}

export async function readText(s3: S3Client, bucket: string, key: string): Promise<string | undefined> {
  const body = await openObject(s3, bucket, key);
  if (!body) return undefined;
  const parts: Buffer[] = [];
  for await (const part of body) parts.push(part as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

export async function readJson<T>(s3: S3Client, bucket: string, key: string): Promise<T | undefined> {
  const text = await readText(s3, bucket, key);
  return text === undefined ? undefined : (JSON.parse(text) as T);
}

export async function putText(s3: S3Client, bucket: string, key: string, body: string | Uint8Array, contentType = 'text/plain; charset=utf-8'): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }));
}

export async function putJson(s3: S3Client, bucket: string, key: string, value: unknown): Promise<void> {
  await putText(s3, bucket, key, JSON.stringify(value), 'application/json');
}

/**
 * Writes a JSON object only if no object exists under the key (S3's conditional write, `If-None-Match: *`): of
 * several writers at once exactly one wins. Returns false when another object was there first.
 */
export async function putJsonIfAbsent(s3: S3Client, bucket: string, key: string, value: unknown): Promise<boolean> {
  try {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: JSON.stringify(value), ContentType: 'application/json', IfNoneMatch: '*' }));
    return true;
  } catch (error) {
    const { name, $metadata } = error as { name?: string; $metadata?: { httpStatusCode?: number } };
    // 409 ConditionalRequestConflict: a concurrent write to the same key is in progress; it, not this one, wins.
    if (name === 'PreconditionFailed' || name === 'ConditionalRequestConflict' || $metadata?.httpStatusCode === 412 || $metadata?.httpStatusCode === 409) return false;
    throw error;
  }
}

/** A text object written as a stream (multipart under the hood), so its size never has to fit in memory. */
export interface ObjectWriter {
  /** Resolves once the chunk is buffered; waits while the upload drains (back-pressure). */
  write(data: string | Uint8Array): Promise<void>;
  /** Completes the upload. */
  end(): Promise<void>;
  /** Gives the upload up: nothing is left under the key. */
  abort(): Promise<void>;
}

export function createObjectWriter(s3: S3Client, bucket: string, key: string, contentType = 'text/csv; charset=utf-8'): ObjectWriter {
  const body = new PassThrough();
  const upload = new Upload({ client: s3, params: { Bucket: bucket, Key: key, Body: body, ContentType: contentType }, queueSize: 2 });
  const done = upload.done();
  // Surface an upload failure to whoever writes next, rather than as an unhandled rejection.
  let failure: Error | undefined;
  done.catch((error: unknown) => {
    failure = error instanceof Error ? error : new Error(`Upload of s3://${bucket}/${key} failed`);
    body.destroy();
  });
  return {
    async write(data) {
      if (failure) throw failure;
      if (!body.write(data)) await Promise.race([once(body, 'drain'), done]);
    },
    async end() {
      body.end();
      await done;
    },
    async abort() {
      await upload.abort().catch(() => undefined);
      body.destroy();
      await done.catch(() => undefined);
    },
  };
}

/** An object's (or one version's) size, user metadata and version, or undefined when it does not exist. */
export async function headObject(
  s3: S3Client,
  bucket: string,
  key: string,
  versionId?: string,
): Promise<{ size: number; metadata: Record<string, string>; versionId?: string; etag?: string } | undefined> {
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
    return { size: head.ContentLength ?? 0, metadata: head.Metadata ?? {}, ...(head.VersionId ? { versionId: head.VersionId } : {}), ...(head.ETag ? { etag: head.ETag } : {}) };
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (name === 'NotFound' || name === 'NoSuchKey' || name === 'NoSuchVersion') return undefined;
    throw error;
  }
}

/** An object's size, or undefined when it does not exist. */
export async function objectSize(s3: S3Client, bucket: string, key: string): Promise<number | undefined> {
  return (await headObject(s3, bucket, key))?.size;
}

/** Opens a byte range of an object: `start` inclusive, `end` exclusive. */
/** `IfMatch` for an ETag (quoted as S3 answers it), so that a read of an object overwritten since fails (412) instead of reading the new one. */
function ifMatch(etag: string | undefined): { IfMatch?: string } {
  return etag ? { IfMatch: etag.startsWith('"') ? etag : `"${etag}"` } : {};
}

/**
 * Opens bytes [start, end) of an object: exactly `versionId`, or, given only `etag` (an unversioned bucket), the object
 * only while it still has that ETag (a range of an overwritten object would be cut on the old object's plan).
 */
export async function openRange(s3: S3Client, bucket: string, key: string, start: number, end: number, versionId?: string, etag?: string): Promise<Readable> {
  const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId, Range: `bytes=${start}-${end - 1}`, ...ifMatch(versionId ? undefined : etag) }));
  return response.Body as Readable;
}

/**
 * Moves an object within a bucket (copy, then delete). Given a version, exactly that version moves: it is copied and
 * then deleted for good (a newer version written meanwhile under the same key stays where it is, for its own run).
 * Any size: past CopyObject's 5 GiB the copy is multipart ({@link copyObject}).
 */
export async function moveObject(s3: S3Client, bucket: string, from: string, to: string, versionId?: string, options: CopyOptions = {}): Promise<void> {
  await copyObject(s3, { bucket, key: from, ...(versionId ? { versionId } : {}) }, { bucket, key: to }, options);
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: from, VersionId: versionId }));
}

/** The largest source CopyObject (and one UploadPartCopy) takes: 5 GiB. */
export const COPY_OBJECT_MAX_BYTES = 5 * 1024 ** 3;
/** S3's smallest part of a multipart upload (all but the last). */
export const MIN_PART_BYTES = 5 * 1024 ** 2;
/** S3's most parts in one multipart upload. */
export const MAX_PARTS = 10_000;

/** How {@link copyObject} copies. */
export interface CopyOptions {
  /** A source over this many bytes is copied in parts (tests lower it, with the embedded S3's copy limit). @default COPY_OBJECT_MAX_BYTES */
  multipartAboveBytes?: number;
  /** Bytes per part, raised when the object would need more than 10,000 parts. @default 268435456 (256 MiB) */
  partBytes?: number;
  /** Parts copied at once. @default 8 */
  concurrency?: number;
}

/** The object a copy reads: exactly `versionId` when given, else the object whose ETag is `etag` when given. */
export interface CopySource {
  bucket: string;
  key: string;
  versionId?: string;
  /** The ETag the source must still have (If-Match), without quotes. */
  etag?: string;
  /** Its size, when the caller knows it: a copy under the threshold then needs no HeadObject first. */
  size?: number;
}

/**
 * The byte ranges (`end` inclusive) of a multipart copy of `size` bytes: parts of `partBytes` (within S3's 5 MiB to
 * 5 GiB), made larger if more than 10,000 would be needed.
 */
export function copyParts(size: number, partBytes = 256 * 1024 ** 2): Array<{ start: number; end: number }> {
  const part = Math.max(Math.min(Math.max(partBytes, MIN_PART_BYTES), COPY_OBJECT_MAX_BYTES), Math.ceil(size / MAX_PARTS));
  const parts: Array<{ start: number; end: number }> = [];
  for (let start = 0; start < size; start += part) parts.push({ start, end: Math.min(start + part, size) - 1 });
  return parts;
}

/**
 * Copies an object within S3, as CopyObject with the COPY directive does (its content type, encoding, disposition,
 * language, cache control, expiry and user metadata; tags are not copied, and this project writes none). CopyObject
 * stops at 5 GiB: a larger source is copied with a multipart upload whose parts are UploadPartCopy ranges, in
 * parallel, all of exactly the version (or ETag) read first, so a source overwritten meanwhile never mixes into it; on
 * any failure the upload is aborted and nothing is left under the target key.
 */
export async function copyObject(s3: S3Client, source: CopySource, target: { bucket: string; key: string }, options: CopyOptions = {}): Promise<{ multipart: boolean }> {
  const threshold = options.multipartAboveBytes ?? COPY_OBJECT_MAX_BYTES;
  const copySource = `${source.bucket}/${source.key.split('/').map(encodeURIComponent).join('/')}${source.versionId ? `?versionId=${encodeURIComponent(source.versionId)}` : ''}`;
  const ifMatch = (etag: string | undefined) => (etag && !source.versionId ? { CopySourceIfMatch: etag.startsWith('"') ? etag : `"${etag}"` } : {});
  const copyWhole = async (etag: string | undefined) => {
    await s3.send(new CopyObjectCommand({ Bucket: target.bucket, Key: target.key, CopySource: copySource, MetadataDirective: 'COPY', ...ifMatch(etag) }));
    return { multipart: false };
  };
  if (source.size !== undefined && source.size <= threshold) return copyWhole(source.etag);
  const head = await s3.send(new HeadObjectCommand({ Bucket: source.bucket, Key: source.key, VersionId: source.versionId, ...(source.etag ? { IfMatch: `"${source.etag}"` } : {}) }));
  if ((head.ContentLength ?? 0) <= threshold) return copyWhole(head.ETag ?? source.etag);
  await copyInParts(s3, { copySource, size: head.ContentLength ?? 0, pin: ifMatch(head.ETag ?? source.etag), head }, target, options);
  return { multipart: true };
}

/** The multipart copy: create (with the source's attributes), the parts in parallel, complete; abort on any failure. */
async function copyInParts(
  s3: S3Client,
  source: { copySource: string; size: number; pin: { CopySourceIfMatch?: string }; head: HeadObjectCommandOutput },
  target: { bucket: string; key: string },
  options: CopyOptions,
): Promise<void> {
  const { head } = source;
  const { UploadId } = await s3.send(
    new CreateMultipartUploadCommand({
      Bucket: target.bucket,
      Key: target.key,
      ContentType: head.ContentType,
      ContentEncoding: head.ContentEncoding,
      ContentDisposition: head.ContentDisposition,
      ContentLanguage: head.ContentLanguage,
      CacheControl: head.CacheControl,
      Expires: head.Expires,
      Metadata: head.Metadata,
    }),
  );
  const where = { Bucket: target.bucket, Key: target.key, UploadId };
  try {
    const ranges = copyParts(source.size, options.partBytes);
    const etags = await inParallel(ranges, options.concurrency ?? 8, async ({ start, end }, i) => {
      const part = await s3.send(new UploadPartCopyCommand({ ...where, PartNumber: i + 1, CopySource: source.copySource, CopySourceRange: `bytes=${start}-${end}`, ...source.pin }));
      return part.CopyPartResult?.ETag ?? '';
    });
    await s3.send(new CompleteMultipartUploadCommand({ ...where, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }));
  } catch (error) {
    await s3.send(new AbortMultipartUploadCommand(where)).catch(() => undefined);
    throw error;
  }
}

/** Runs `work` over `items`, `limit` at a time, results in order; the first failure stops the start of new ones. */
async function inParallel<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await work(items[index]!, index);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  const rejection = settled.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (rejection) throw rejection.reason;
  return results;
}

/** Deletes an object (a delete marker in a versioned bucket). */
export async function deleteObject(s3: S3Client, bucket: string, key: string): Promise<void> {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}

/**
 * The current version of every object under a prefix, with its VersionId (delete markers and older versions left
 * out), page by page: what a sweep starts, so that each run reads exactly the version it was started for.
 */
export async function* listLatestVersions(s3: S3Client, bucket: string, prefix: string): AsyncGenerator<{ key: string; size: number; etag: string; versionId?: string }> {
  let keyMarker: string | undefined;
  let versionMarker: string | undefined;
  do {
    const page = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix, KeyMarker: keyMarker, VersionIdMarker: versionMarker }));
    for (const version of page.Versions ?? []) {
      if (!version.Key || version.IsLatest === false) continue;
      const versionId = version.VersionId && version.VersionId !== 'null' ? version.VersionId : undefined;
      yield { key: version.Key, size: version.Size ?? 0, etag: (version.ETag ?? '').replace(/"/g, ''), ...(versionId ? { versionId } : {}) };
    }
    keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
    versionMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
  } while (keyMarker);
}

/** Every object under a prefix, page by page. */
export async function* listObjects(s3: S3Client, bucket: string, prefix: string): AsyncGenerator<{ key: string; size: number; etag: string }> {
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const object of page.Contents ?? []) {
      if (object.Key) yield { key: object.Key, size: object.Size ?? 0, etag: (object.ETag ?? '').replace(/"/g, '') };
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}
