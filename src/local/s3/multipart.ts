import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { receiveToBuffer, receiveToFile } from './body';
import { authorize, bucketArn, type Call, created, GIB5, header, maxKeysOf, objectArn, OWNER, quote, type S3Context, sendEmpty, sendXml } from './call';
import { S3Errors } from './errors';
import { attributesFrom, writeContext, writePrecondition } from './headers';
import { copyBytes, copySource } from './objects';
import { compareKeys, type PartRecord, type UploadState } from './store';
import { elements, textOf } from './xml';

// Multipart uploads: create, upload (or copy) parts, list, abort, complete.

const MIN_PART_BYTES = 5 * 1024 * 1024;

export async function listMultipartUploads(s3: S3Context, call: Call): Promise<void> {
  await authorize(s3, call, 's3:ListBucketMultipartUploads', bucketArn(call.bucket));
  if (!s3.store.hasBucket(call.bucket)) throw S3Errors.noSuchBucket(call.bucket);
  const prefix = call.query.get('prefix') ?? '';
  const uploads = s3.store
    .uploadsOf(call.bucket)
    .filter((upload) => upload.key.startsWith(prefix))
    .sort((a, b) => compareKeys(a.key, b.key) || a.initiated.localeCompare(b.initiated));
  sendXml(call, 'ListMultipartUploadsResult', {
    Bucket: call.bucket,
    KeyMarker: '',
    UploadIdMarker: '',
    Prefix: prefix,
    MaxUploads: 1000,
    IsTruncated: false,
    Upload: uploads.map((upload) => ({ Key: upload.key, UploadId: upload.uploadId, Initiator: OWNER, Owner: OWNER, StorageClass: 'STANDARD', Initiated: upload.initiated })),
  });
}

function partNumberOf(call: Call): number {
  const value = call.query.get('partNumber') ?? '';
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 10000) {
    throw S3Errors.invalidArgument('Part number must be an integer between 1 and 10000, inclusive', 'partNumber', value);
  }
  return Number(value);
}

/** What UploadPart and UploadPartCopy check first: the write right on the key, the part number, the bucket and the upload. */
async function openPart(s3: S3Context, call: Call): Promise<{ upload: UploadState; partNumber: number }> {
  const { req, bucket, key } = call;
  await authorize(s3, call, 's3:PutObject', objectArn(bucket, key), writeContext(req));
  const partNumber = partNumberOf(call);
  if (!s3.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
  return { upload: s3.store.upload(bucket, key, call.query.get('uploadId') ?? ''), partNumber };
}

export async function createUpload(s3: S3Context, call: Call): Promise<void> {
  const { req, bucket, key } = call;
  await authorize(s3, call, 's3:PutObject', objectArn(bucket, key), writeContext(req));
  const upload = s3.store.createUpload(bucket, key, attributesFrom(req));
  sendXml(call, 'InitiateMultipartUploadResult', { Bucket: bucket, Key: key, UploadId: upload.uploadId });
}

export async function uploadPart(s3: S3Context, call: Call): Promise<void> {
  const { upload, partNumber } = await openPart(s3, call);
  const path = s3.store.tmpPath();
  const body = await receiveToFile(call.req, path, GIB5);
  const part = s3.store.commitPart(upload, partNumber, { path, size: body.size, etag: body.md5 });
  const headers: Record<string, string> = { ETag: quote(part.etag) };
  if (body.checksum) headers[`x-amz-checksum-${body.checksum.algorithm.toLowerCase()}`] = body.checksum.value;
  sendEmpty(call, 200, headers);
}

export async function uploadPartCopy(s3: S3Context, call: Call): Promise<void> {
  const { upload, partNumber } = await openPart(s3, call);
  const rangeHeader = header(call.req, 'x-amz-copy-source-range');
  const source = await copySource(s3, call, rangeHeader === undefined ? s3.copySourceMaxBytes : undefined);
  let start = 0;
  let end = source.version.size - 1;
  if (rangeHeader !== undefined) {
    const match = /^bytes=(\d+)-(\d+)$/.exec(rangeHeader);
    if (!match || Number(match[2]) < Number(match[1])) throw S3Errors.invalidArgument('The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy', 'x-amz-copy-source-range', rangeHeader);
    start = Number(match[1]);
    end = Number(match[2]);
    if (end >= source.version.size) throw S3Errors.invalidArgument(`Range specified is not valid for source object of size: ${source.version.size}`, 'x-amz-copy-source-range', rangeHeader);
    if (end - start + 1 > s3.copySourceMaxBytes) {
      throw S3Errors.invalidRequest(`The specified copy range is larger than the maximum allowable size for a copy source: ${s3.copySourceMaxBytes}`);
    }
  }
  const copied = await copyBytes(s3, source.bucket, source.version, start, end);
  const part = s3.store.commitPart(upload, partNumber, { path: copied.path, size: copied.size, etag: copied.md5 });
  const headers: Record<string, string> = {};
  if (s3.store.versioning(source.bucket)) headers['x-amz-copy-source-version-id'] = source.version.versionId;
  sendXml(call, 'CopyPartResult', { ETag: quote(part.etag), LastModified: part.lastModified }, headers);
}

export async function abortUpload(s3: S3Context, call: Call): Promise<void> {
  const { bucket, key } = call;
  await authorize(s3, call, 's3:AbortMultipartUpload', objectArn(bucket, key));
  if (!s3.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
  const upload = s3.store.upload(bucket, key, call.query.get('uploadId') ?? '');
  s3.store.removeUpload(upload.uploadId);
  sendEmpty(call, 204);
}

export async function listParts(s3: S3Context, call: Call): Promise<void> {
  const { bucket, key, query } = call;
  await authorize(s3, call, 's3:ListMultipartUploadParts', objectArn(bucket, key));
  if (!s3.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
  const upload = s3.store.upload(bucket, key, query.get('uploadId') ?? '');
  const marker = Number(query.get('part-number-marker') ?? '0') || 0;
  const maxParts = maxKeysOf(query, 'max-parts');
  const all = [...upload.parts.values()].filter((part) => part.partNumber > marker).sort((a, b) => a.partNumber - b.partNumber);
  const parts = all.slice(0, maxParts);
  const truncated = all.length > parts.length;
  sendXml(call, 'ListPartsResult', {
    Bucket: bucket,
    Key: key,
    UploadId: upload.uploadId,
    Initiator: OWNER,
    Owner: OWNER,
    StorageClass: 'STANDARD',
    PartNumberMarker: marker,
    NextPartNumberMarker: parts.length ? parts[parts.length - 1]!.partNumber : undefined,
    MaxParts: maxParts,
    IsTruncated: truncated,
    Part: parts.map((part) => ({ PartNumber: part.partNumber, LastModified: part.lastModified, ETag: quote(part.etag), Size: part.size })),
  });
}

/** The parts a CompleteMultipartUpload document lists, checked against the upload as S3 checks them. */
function listedParts(xml: string, upload: UploadState): PartRecord[] {
  const listed = elements(xml, 'Part').map((part) => ({ partNumber: Number(textOf(part, 'PartNumber')), etag: (textOf(part, 'ETag') ?? '').replace(/"/g, '') }));
  if (listed.length === 0 || listed.some((part) => !Number.isInteger(part.partNumber))) throw S3Errors.malformedXml();
  const parts = listed.map((entry, index) => {
    if (index > 0 && entry.partNumber <= listed[index - 1]!.partNumber) throw S3Errors.invalidPartOrder();
    const part = upload.parts.get(entry.partNumber);
    if (!part || part.etag !== entry.etag) throw S3Errors.invalidPart();
    return part;
  });
  if (parts.slice(0, -1).some((part) => part.size < MIN_PART_BYTES)) throw S3Errors.entityTooSmall();
  return parts;
}

/**
 * The parts' bytes, in order, in one fresh scratch file. One pipeline from a generator over the part files: a
 * pipeline per part into the same file stream (`end: false`) left its listeners on that stream, a
 * MaxListenersExceededWarning from the eleventh part on.
 */
async function joinParts(s3: S3Context, upload: UploadState, parts: readonly PartRecord[]): Promise<string> {
  const path = s3.store.tmpPath();
  const partPaths = parts.map((part) => s3.store.partPath(upload.uploadId, part.partNumber));
  await pipeline(async function* () {
    for (const partPath of partPaths) yield* createReadStream(partPath);
  }, createWriteStream(path));
  return path;
}

export async function completeUpload(s3: S3Context, call: Call): Promise<void> {
  const { req, bucket, key } = call;
  await authorize(s3, call, 's3:PutObject', objectArn(bucket, key), writeContext(req));
  const precondition = writePrecondition(req, key);
  if (!s3.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
  const upload = s3.store.upload(bucket, key, call.query.get('uploadId') ?? '');
  const parts = listedParts((await receiveToBuffer(req)).toString('utf8'), upload);
  const early = precondition?.(s3.store.current(bucket, key));
  if (early) throw early;
  if (upload.completing) throw S3Errors.noSuchUpload(upload.uploadId);
  upload.completing = true;
  try {
    const path = await joinParts(s3, upload, parts);
    const digest = createHash('md5');
    for (const part of parts) digest.update(Buffer.from(part.etag, 'hex'));
    const etag = `${digest.digest('hex')}-${parts.length}`;
    const size = parts.reduce((sum, part) => sum + part.size, 0);
    const version = s3.store.commitObject(bucket, key, { path, size, etag }, upload.attributes, precondition);
    s3.store.removeUpload(upload.uploadId);
    await created(s3, call, bucket, version, 'CompleteMultipartUpload');
    const headers: Record<string, string> = {};
    if (version.versionId !== 'null') headers['x-amz-version-id'] = version.versionId;
    sendXml(
      call,
      'CompleteMultipartUploadResult',
      { Location: `http://${header(req, 'host') ?? 'localhost'}/${bucket}/${encodeURIComponent(key)}`, Bucket: bucket, Key: key, ETag: quote(etag) },
      headers,
    );
  } finally {
    upload.completing = false;
  }
}
