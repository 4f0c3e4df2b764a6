import { createHash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, fstatSync } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { receiveToBuffer, receiveToFile } from './body';
import { authorize, type Call, created, decide, GIB5, header, httpDate, missing, objectArn, quote, type S3Context, sendEmpty, sendXml, versionHeader } from './call';
import { S3Errors } from './errors';
import { attributesFrom, etagListMatches, parseCopySource, parseRange, readCondition, storedAttributes, writeContext, writePrecondition } from './headers';
import type { ObjectVersion } from './store';
import { elements, render, textOf } from './xml';

// Objects: PutObject, GetObject/HeadObject, DeleteObject(s), CopyObject, GetObjectTagging.

export async function putObject(s3: S3Context, call: Call): Promise<void> {
  const { req, bucket, key } = call;
  await authorize(s3, call, 's3:PutObject', objectArn(bucket, key), writeContext(req));
  const precondition = writePrecondition(req, key);
  if (!s3.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
  // Refuse before reading the body when the answer cannot change (AWS checks again when the body is in).
  const early = precondition?.(s3.store.current(bucket, key));
  if (early) throw early;
  const path = s3.store.tmpPath();
  const body = await receiveToFile(req, path, GIB5);
  const version = s3.store.commitObject(bucket, key, { path, size: body.size, etag: body.md5, checksum: body.checksum }, attributesFrom(req), precondition);
  await created(s3, call, bucket, version, 'PutObject');
  const headers: Record<string, string> = { ETag: quote(version.etag) };
  if (version.versionId !== 'null') headers['x-amz-version-id'] = version.versionId;
  if (body.checksum) headers[`x-amz-checksum-${body.checksum.algorithm.toLowerCase()}`] = body.checksum.value;
  sendEmpty(call, 200, headers);
}

/** Finds the version a GET/HEAD/copy names, answering as S3 for missing keys, versions and delete markers. */
export async function lookup(s3: S3Context, call: Call, bucket: string, key: string, versionId: string | undefined, forCopy = false): Promise<ObjectVersion> {
  if (!s3.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
  if (versionId !== undefined) {
    if (versionId === '') throw S3Errors.invalidArgument('Version id cannot be the empty string', 'versionId', '');
    const version = s3.store.version(bucket, key, versionId);
    if (!version) throw await missing(s3, call, bucket, key, S3Errors.noSuchVersion(key, versionId));
    if (version.deleteMarker) {
      if (forCopy) throw S3Errors.invalidRequest('The source of a copy request may not specifically refer to a delete marker by version id.');
      throw S3Errors.methodNotAllowed(call.method, 'DeleteMarker', { 'x-amz-delete-marker': 'true', 'x-amz-version-id': version.versionId, 'Last-Modified': httpDate(version.lastModified) });
    }
    return version;
  }
  const latest = s3.store.latest(bucket, key);
  if (!latest || latest.deleteMarker) {
    const headers: Record<string, string> = latest && !forCopy ? { 'x-amz-delete-marker': 'true', 'x-amz-version-id': latest.versionId } : {};
    throw await missing(s3, call, bucket, key, S3Errors.noSuchKey(key, headers));
  }
  return latest;
}

/** The headers a GET/HEAD answers from the stored version, `response-*` query parameters overriding them. */
function representationHeaders(version: ObjectVersion, query: URLSearchParams): Record<string, string | number> {
  const headers: Record<string, string | number> = {};
  headers['Content-Type'] = query.get('response-content-type') ?? version.contentType;
  const optional: Array<[string, string | undefined, string]> = [
    ['Content-Encoding', version.contentEncoding, 'response-content-encoding'],
    ['Content-Disposition', version.contentDisposition, 'response-content-disposition'],
    ['Content-Language', version.contentLanguage, 'response-content-language'],
    ['Cache-Control', version.cacheControl, 'response-cache-control'],
    ['Expires', version.expires, 'response-expires'],
  ];
  for (const [name, stored, override] of optional) {
    const value = query.get(override) ?? stored;
    if (value !== undefined) headers[name] = value;
  }
  for (const [name, value] of Object.entries(version.metadata)) headers[`x-amz-meta-${name}`] = value;
  if (version.tags && Object.keys(version.tags).length) headers['x-amz-tagging-count'] = Object.keys(version.tags).length;
  return headers;
}

export async function getObject(s3: S3Context, call: Call, head: boolean): Promise<void> {
  const { req, res, bucket, key, query } = call;
  const versionId = query.get('versionId') ?? undefined;
  const context: Record<string, string> = versionId !== undefined ? { 's3:VersionId': versionId } : {};
  await authorize(s3, call, versionId !== undefined ? 's3:GetObjectVersion' : 's3:GetObject', objectArn(bucket, key), context);
  const version = await lookup(s3, call, bucket, key, versionId);
  const headers: Record<string, string | number> = {
    'Last-Modified': httpDate(version.lastModified),
    ETag: quote(version.etag),
    'Accept-Ranges': 'bytes',
    ...versionHeader(s3, bucket, version.versionId),
  };
  const condition = readCondition(req, version);
  if (condition === 'not-modified') {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  if (condition) throw condition;
  Object.assign(headers, representationHeaders(version, query));
  const range = parseRange(header(req, 'range'), version.size);
  if (range === 'unsatisfiable') throw S3Errors.invalidRange(version.size);
  if (!range && version.checksum && header(req, 'x-amz-checksum-mode') === 'ENABLED') {
    headers[`x-amz-checksum-${version.checksum.algorithm.toLowerCase()}`] = version.checksum.value;
    headers['x-amz-checksum-type'] = 'FULL_OBJECT';
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? version.size - 1;
  headers['Content-Length'] = end - start + 1;
  if (range) headers['Content-Range'] = `bytes ${start}-${end}/${version.size}`;
  const status = range ? 206 : 200;
  if (head || version.size === 0) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  const fd = s3.store.openData(bucket, version);
  res.writeHead(status, headers);
  await pipeline(createReadStream('', { fd, start, end, autoClose: true }), res).catch(() => undefined);
}

export async function deleteObject(s3: S3Context, call: Call): Promise<void> {
  const { bucket, key, query } = call;
  const versionId = query.get('versionId') ?? undefined;
  await authorize(s3, call, versionId !== undefined ? 's3:DeleteObjectVersion' : 's3:DeleteObject', objectArn(bucket, key), versionId !== undefined ? { 's3:VersionId': versionId } : {});
  if (!s3.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
  const headers: Record<string, string> = {};
  if (versionId !== undefined) {
    const removed = s3.store.deleteVersion(bucket, key, versionId);
    headers['x-amz-version-id'] = versionId;
    if (removed?.deleteMarker) headers['x-amz-delete-marker'] = 'true';
  } else {
    // A conditional delete (If-Match, as S3 takes it on general purpose buckets): only the version the caller saw.
    const ifMatch = header(call.req, 'if-match');
    if (ifMatch !== undefined) {
      const current = s3.store.current(bucket, key);
      if (!current) throw S3Errors.noSuchKey(key);
      if (!etagListMatches(ifMatch, current.etag)) throw S3Errors.preconditionFailed('If-Match');
    }
    const marker = s3.store.deleteCurrent(bucket, key);
    if (marker) {
      headers['x-amz-delete-marker'] = 'true';
      headers['x-amz-version-id'] = marker.versionId;
    }
  }
  sendEmpty(call, 204, headers);
}

export async function deleteObjects(s3: S3Context, call: Call): Promise<void> {
  const { req, bucket } = call;
  if (header(req, 'content-md5') === undefined && !Object.keys(req.headers).some((name) => name.startsWith('x-amz-checksum-')) && !header(req, 'x-amz-trailer')) {
    throw S3Errors.invalidRequest('Missing required header for this request: Content-Md5.');
  }
  const xml = (await receiveToBuffer(req)).toString('utf8');
  if (!s3.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
  const objects = elements(xml, 'Object').map((object) => ({ key: textOf(object, 'Key'), versionId: textOf(object, 'VersionId') }));
  if (!xml.includes('<Delete') || objects.length === 0 || objects.length > 1000 || objects.some((object) => object.key === undefined)) throw S3Errors.malformedXml();
  const quiet = textOf(xml, 'Quiet') === 'true';
  const results: string[] = [];
  for (const { key, versionId } of objects) {
    const k = key!;
    const decision = await decide(s3, call, versionId !== undefined ? 's3:DeleteObjectVersion' : 's3:DeleteObject', objectArn(bucket, k), versionId !== undefined ? { 's3:VersionId': versionId } : {});
    if (!decision.allowed) {
      results.push(render('Error', { Key: k, ...(versionId !== undefined ? { VersionId: versionId } : {}), Code: 'AccessDenied', Message: decision.message }));
      continue;
    }
    if (quiet) {
      if (versionId !== undefined) s3.store.deleteVersion(bucket, k, versionId);
      else s3.store.deleteCurrent(bucket, k);
      continue;
    }
    if (versionId !== undefined) {
      const removed = s3.store.deleteVersion(bucket, k, versionId);
      results.push(render('Deleted', { Key: k, VersionId: versionId, ...(removed?.deleteMarker ? { DeleteMarker: true, DeleteMarkerVersionId: versionId } : {}) }));
    } else {
      const marker = s3.store.deleteCurrent(bucket, k);
      results.push(render('Deleted', { Key: k, ...(marker ? { DeleteMarker: true, DeleteMarkerVersionId: marker.versionId } : {}) }));
    }
  }
  sendXml(call, 'DeleteResult', results.join(''));
}

/** Reads the copy source header, asks for the source read right, and finds the version within the size limit. */
export async function copySource(s3: S3Context, call: Call, limit: number | undefined): Promise<{ bucket: string; key: string; version: ObjectVersion; explicitVersion: boolean }> {
  const source = parseCopySource(header(call.req, 'x-amz-copy-source')!);
  await authorize(s3, 
    call,
    source.versionId !== undefined ? 's3:GetObjectVersion' : 's3:GetObject',
    objectArn(source.bucket, source.key),
    source.versionId !== undefined ? { 's3:VersionId': source.versionId } : {},
  );
  const version = await lookup(s3, call, source.bucket, source.key, source.versionId, true);
  const condition = readCondition(call.req, version, 'x-amz-copy-source-');
  if (condition === 'not-modified') throw S3Errors.preconditionFailed('x-amz-copy-source-If-None-Match');
  if (condition) throw condition;
  if (limit !== undefined && version.size > limit) {
    throw S3Errors.invalidRequest(`The specified copy source is larger than the maximum allowable size for a copy source: ${limit}`);
  }
  return { bucket: source.bucket, key: source.key, version, explicitVersion: source.versionId !== undefined };
}

/** Copies bytes of a stored version into a fresh scratch file, hashing them. */
export async function copyBytes(s3: S3Context, bucket: string, version: ObjectVersion, start: number, end: number): Promise<{ path: string; size: number; md5: string }> {
  const path = s3.store.tmpPath();
  const md5 = createHash('md5');
  if (end < start) {
    await pipeline(async function* () {}, createWriteStream(path));
    return { path, size: 0, md5: md5.digest('hex') };
  }
  const fd = s3.store.openData(bucket, version);
  if (fstatSync(fd).size < end + 1) {
    closeSync(fd);
    throw new Error(`Stored body of ${version.key} is shorter than its record`);
  }
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      md5.update(chunk);
      callback(null, chunk);
    },
  });
  await pipeline(createReadStream('', { fd, start, end, autoClose: true }), tap, createWriteStream(path));
  return { path, size: end - start + 1, md5: md5.digest('hex') };
}

export async function copyObject(s3: S3Context, call: Call): Promise<void> {
  const { req, bucket, key } = call;
  await authorize(s3, call, 's3:PutObject', objectArn(bucket, key), writeContext(req));
  const source = await copySource(s3, call, s3.copySourceMaxBytes);
  if (!s3.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
  const directive = header(req, 'x-amz-metadata-directive') ?? 'COPY';
  if (directive !== 'COPY' && directive !== 'REPLACE') throw S3Errors.invalidArgument('Unknown metadata directive.', 'x-amz-metadata-directive', directive);
  if (source.bucket === bucket && source.key === key && directive === 'COPY' && !source.explicitVersion && !header(req, 'x-amz-storage-class')) {
    throw S3Errors.invalidRequest(
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    );
  }
  const precondition = writePrecondition(req, key);
  const copied = await copyBytes(s3, source.bucket, source.version, 0, source.version.size - 1);
  const { checksum } = source.version;
  const attributes = directive === 'COPY' ? storedAttributes(source.version) : attributesFrom(req);
  const tagging = header(req, 'x-amz-tagging-directive') ?? 'COPY';
  if (tagging !== 'COPY' && tagging !== 'REPLACE') throw S3Errors.invalidArgument('Unknown tagging directive.', 'x-amz-tagging-directive', tagging);
  const { tags: requestTags } = attributesFrom(req);
  const tags = tagging === 'COPY' ? source.version.tags : requestTags;
  delete attributes.tags;
  if (tags) attributes.tags = tags;
  const version = s3.store.commitObject(bucket, key, { path: copied.path, size: copied.size, etag: copied.md5, ...(checksum ? { checksum } : {}) }, attributes, precondition);
  await created(s3, call, bucket, version, 'CopyObject');
  const headers: Record<string, string> = {};
  if (version.versionId !== 'null') headers['x-amz-version-id'] = version.versionId;
  if (s3.store.versioning(source.bucket)) headers['x-amz-copy-source-version-id'] = source.version.versionId;
  sendXml(call, 'CopyObjectResult', { ETag: quote(version.etag), LastModified: version.lastModified }, headers);
}

export async function getObjectTagging(s3: S3Context, call: Call): Promise<void> {
  const { bucket, key, query } = call;
  const versionId = query.get('versionId') ?? undefined;
  await authorize(s3, call, versionId !== undefined ? 's3:GetObjectVersionTagging' : 's3:GetObjectTagging', objectArn(bucket, key), versionId !== undefined ? { 's3:VersionId': versionId } : {});
  const version = await lookup(s3, call, bucket, key, versionId);
  sendXml(
    call,
    'Tagging',
    { TagSet: { Tag: Object.entries(version.tags ?? {}).map(([Key, Value]) => ({ Key, Value })) } },
    versionHeader(s3, bucket, version.versionId),
  );
}
