import { PassThrough, type Readable } from 'node:stream';
import { once } from 'node:events';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  type S3Client,
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
export async function readHead(s3: S3Client, bucket: string, key: string, bytes: number, versionId?: string): Promise<{ head: Buffer; size: number } | undefined> {
  // A ranged read of an empty object is answered 416 by S3 (an empty object has no byte 0): ask for the size first.
  const size = (await headObject(s3, bucket, key, versionId))?.size;
  if (size === undefined) return undefined;
  if (size === 0) return { head: Buffer.alloc(0), size };
  try {
    const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId, Range: `bytes=0-${bytes - 1}` }));
    const parts: Buffer[] = [];
    for await (const part of response.Body as Readable) parts.push(part as Buffer);
    return { head: Buffer.concat(parts).subarray(0, bytes), size };
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
): Promise<{ size: number; metadata: Record<string, string>; versionId?: string } | undefined> {
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
    return { size: head.ContentLength ?? 0, metadata: head.Metadata ?? {}, ...(head.VersionId ? { versionId: head.VersionId } : {}) };
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
export async function openRange(s3: S3Client, bucket: string, key: string, start: number, end: number, versionId?: string): Promise<Readable> {
  const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId, Range: `bytes=${start}-${end - 1}` }));
  return response.Body as Readable;
}

/**
 * Moves an object within a bucket (copy, then delete). Given a version, exactly that version moves: it is copied and
 * then deleted for good (a newer version written meanwhile under the same key stays where it is, for its own run).
 * CopyObject takes objects up to 5 GB.
 */
export async function moveObject(s3: S3Client, bucket: string, from: string, to: string, versionId?: string): Promise<void> {
  const source = `${bucket}/${from.split('/').map(encodeURIComponent).join('/')}${versionId ? `?versionId=${encodeURIComponent(versionId)}` : ''}`;
  await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: to, CopySource: source }));
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: from, VersionId: versionId }));
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
