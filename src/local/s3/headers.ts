import type { IncomingMessage } from 'node:http';
import { header } from './call';
import { S3Errors, type S3ServiceError } from './errors';
import type { ObjectAttributes, ObjectVersion } from './store';

// What request headers mean to S3: IAM condition keys, stored attributes, conditions, ranges and copy sources.

/** The request headers S3 turns into condition keys of object writes. */
export function writeContext(req: IncomingMessage): Record<string, string> {
  const context: Record<string, string> = {};
  for (const name of [
    'x-amz-acl',
    'x-amz-server-side-encryption',
    'x-amz-server-side-encryption-aws-kms-key-id',
    'x-amz-storage-class',
    'x-amz-metadata-directive',
    'x-amz-copy-source',
    'if-none-match',
    'if-match',
  ]) {
    const value = header(req, name);
    if (value !== undefined) context[name.startsWith('x-amz-server-side-encryption-aws-kms') ? 's3:x-amz-server-side-encryption-aws-kms-key-id' : `s3:${name}`] = value;
  }
  return context;
}

export function attributesFrom(req: IncomingMessage): ObjectAttributes {
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith('x-amz-meta-') && value !== undefined) metadata[name.slice('x-amz-meta-'.length)] = Array.isArray(value) ? value.join(',') : value;
  }
  const contentEncoding = (header(req, 'content-encoding') ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e && e !== 'aws-chunked')
    .join(',');
  const optional = (name: string) => header(req, name) || undefined;
  const tagging = header(req, 'x-amz-tagging');
  return {
    ...(tagging ? { tags: Object.fromEntries(new URLSearchParams(tagging)) } : {}),
    contentType: header(req, 'content-type') || 'binary/octet-stream',
    ...(contentEncoding ? { contentEncoding } : {}),
    ...(optional('content-disposition') ? { contentDisposition: optional('content-disposition') } : {}),
    ...(optional('content-language') ? { contentLanguage: optional('content-language') } : {}),
    ...(optional('cache-control') ? { cacheControl: optional('cache-control') } : {}),
    ...(optional('expires') ? { expires: optional('expires') } : {}),
    metadata,
  };
}

/** The headers a version was stored with, which a COPY directive carries over. */
export function storedAttributes(version: ObjectVersion): ObjectAttributes {
  const { contentType, contentEncoding, contentDisposition, contentLanguage, cacheControl, expires, metadata, tags } = version;
  return {
    contentType,
    ...(tags !== undefined ? { tags } : {}),
    metadata,
    ...(contentEncoding !== undefined ? { contentEncoding } : {}),
    ...(contentDisposition !== undefined ? { contentDisposition } : {}),
    ...(contentLanguage !== undefined ? { contentLanguage } : {}),
    ...(cacheControl !== undefined ? { cacheControl } : {}),
    ...(expires !== undefined ? { expires } : {}),
  };
}

/** Whether an `If-Match`/`If-None-Match` list names the ETag (or is `*`). */
export function etagListMatches(list: string, etag: string): boolean {
  return list.split(',').some((item) => {
    const tag = item.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
    return tag === '*' || tag === etag;
  });
}

/** S3's (and RFC 7232's) order for GET/HEAD conditions. */
export function readCondition(req: IncomingMessage, version: ObjectVersion, prefix = ''): S3ServiceError | 'not-modified' | undefined {
  const ifMatch = header(req, `${prefix}if-match`);
  const ifNoneMatch = header(req, `${prefix}if-none-match`);
  const ifModifiedSince = header(req, `${prefix}if-modified-since`);
  const ifUnmodifiedSince = header(req, `${prefix}if-unmodified-since`);
  const modified = Math.floor(Date.parse(version.lastModified) / 1000) * 1000;
  if (ifMatch !== undefined) {
    if (!etagListMatches(ifMatch, version.etag)) return S3Errors.preconditionFailed('If-Match');
  } else if (ifUnmodifiedSince !== undefined && !Number.isNaN(Date.parse(ifUnmodifiedSince)) && modified > Date.parse(ifUnmodifiedSince)) {
    return S3Errors.preconditionFailed('If-Unmodified-Since');
  }
  if (ifNoneMatch !== undefined) {
    if (etagListMatches(ifNoneMatch, version.etag)) return prefix ? S3Errors.preconditionFailed('x-amz-copy-source-If-None-Match') : 'not-modified';
  } else if (ifModifiedSince !== undefined && !Number.isNaN(Date.parse(ifModifiedSince)) && modified <= Date.parse(ifModifiedSince)) {
    return prefix ? S3Errors.preconditionFailed('x-amz-copy-source-If-Modified-Since') : 'not-modified';
  }
  return undefined;
}

/** The conditional-write headers of PutObject and CompleteMultipartUpload, checked against the current object. */
export function writePrecondition(req: IncomingMessage, key: string): ((current: ObjectVersion | undefined) => S3ServiceError | undefined) | undefined {
  const ifNoneMatch = header(req, 'if-none-match');
  const ifMatch = header(req, 'if-match');
  if (ifNoneMatch === undefined && ifMatch === undefined) return undefined;
  if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') throw S3Errors.notImplemented();
  return (current) => {
    if (ifNoneMatch !== undefined && current) return S3Errors.preconditionFailed('If-None-Match');
    if (ifMatch !== undefined) {
      if (!current) return S3Errors.noSuchKey(key);
      if (!etagListMatches(ifMatch, current.etag)) return S3Errors.preconditionFailed('If-Match');
    }
    return undefined;
  };
}

export function parseRange(value: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const match = value ? /^bytes=(\d*)-(\d*)$/.exec(value.trim()) : null;
  // S3 ignores a Range it cannot parse (several ranges included) and answers the whole object.
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size) return 'unsatisfiable';
  if (end < start) return undefined;
  return { start, end };
}

export function parseCopySource(value: string): { bucket: string; key: string; versionId?: string } {
  let path = value;
  let versionId: string | undefined;
  const question = path.indexOf('?');
  if (question >= 0) {
    versionId = new URLSearchParams(path.slice(question + 1)).get('versionId') ?? undefined;
    path = path.slice(0, question);
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(path).replace(/^\//, '');
  } catch {
    throw S3Errors.invalidArgument('Invalid copy source encoding', 'x-amz-copy-source', value);
  }
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) {
    throw S3Errors.invalidArgument('Copy Source must mention the source bucket and key: sourcebucket/sourcekey', 'x-amz-copy-source', value);
  }
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1), ...(versionId !== undefined ? { versionId } : {}) };
}
