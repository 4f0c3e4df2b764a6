import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, fstatSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { receiveToBuffer, receiveToFile } from './body';
import { S3Errors, S3ServiceError } from './errors';
import { type ObjectAttributes, ObjectStore, type ObjectVersion, compareKeys, lowerBound } from './store';
import { elements, render, textOf, xmlDocument, type XmlObject } from './xml';

/** What the local S3 asks its `authorize` hook: one IAM action on one resource, as AWS evaluates it. */
export interface AuthorizationRequest {
  /** From the SigV4 `Credential` (header or presigned query); '' for an unsigned request. */
  readonly accessKeyId: string;
  /** e.g. `s3:GetObject`. */
  readonly action: string;
  /** `arn:aws:s3:::bucket/key`, `arn:aws:s3:::bucket`, or `*` (ListAllMyBuckets). */
  readonly resource: string;
  /** Condition keys: `aws:SecureTransport`, `aws:SourceIp`, `s3:prefix`… (see the README). */
  readonly context: Record<string, string | string[]>;
}

export type AuthorizationDecision = { allowed: true } | { allowed: false; message: string };

/** Decides each request; its denial message is answered as the 403's message. */
export type Authorize = (request: AuthorizationRequest) => AuthorizationDecision | Promise<AuthorizationDecision>;

/** What an S3 "Object Created" event carries (EventBridge's `detail`), after the write is stored. */
export interface ObjectCreatedEvent {
  readonly bucket: string;
  readonly key: string;
  readonly size: number;
  /** Without quotes, as the event has it. */
  readonly etag: string;
  /** Absent in a bucket that was never versioned. */
  readonly versionId?: string;
  /** Hexadecimal, increasing with each write (compare after left-padding, as for S3's). */
  readonly sequencer: string;
  readonly reason: 'PutObject' | 'CompleteMultipartUpload' | 'CopyObject';
  /** The access key id of the writer (AWS puts the account or service principal here). */
  readonly requester: string;
  readonly requestId: string;
  readonly sourceIpAddress: string;
  /** ISO time of the write. */
  readonly time: string;
}

export interface S3ServerOptions {
  readonly directory: string;
  readonly authorize?: Authorize;
  readonly onObjectCreated?: (event: ObjectCreatedEvent) => void | Promise<void>;
  /**
   * The largest object CopyObject copies (and UploadPartCopy copies without a range).
   * @default 5368709120 (5 GiB, S3's limit)
   */
  readonly copySourceMaxBytes?: number;
}

const GIB5 = 5 * 1024 * 1024 * 1024;
const MIN_PART_BYTES = 5 * 1024 * 1024;
const OWNER = { ID: '75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a', DisplayName: 'local' };

/** One request being answered: its parsed address, caller and the S3 resource it names. */
interface Call {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  readonly bucket: string;
  readonly key: string;
  readonly query: URLSearchParams;
  readonly requestId: string;
  readonly accessKeyId: string;
  readonly baseContext: Record<string, string>;
}

const bucketArn = (bucket: string) => `arn:aws:s3:::${bucket}`;
const objectArn = (bucket: string, key: string) => `arn:aws:s3:::${bucket}/${key}`;
const quote = (etag: string) => `"${etag}"`;
const httpDate = (iso: string) => new Date(iso).toUTCString();
const header = (req: IncomingMessage, name: string): string | undefined => {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
};

/** The caller's access key and the global condition keys AWS would put in the request context. */
function caller(req: IncomingMessage, query: URLSearchParams): { accessKeyId: string; context: Record<string, string> } {
  const now = new Date();
  const context: Record<string, string> = {
    // The SDKs in Lambda always speak HTTPS; the twin's plain HTTP stands for it, so the buckets' TLS-only policy (a
    // Deny when false) is evaluated as it is for them. A client that really used plain HTTP would be refused in AWS.
    'aws:SecureTransport': 'true',
    'aws:SourceIp': (req.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, ''),
    'aws:CurrentTime': now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    'aws:EpochTime': String(Math.floor(now.getTime() / 1000)),
  };
  const userAgent = header(req, 'user-agent');
  if (userAgent) context['aws:UserAgent'] = userAgent;
  const sha = header(req, 'x-amz-content-sha256');
  if (sha) context['s3:x-amz-content-sha256'] = sha;
  const authorization = header(req, 'authorization') ?? '';
  let accessKeyId = '';
  let scope: string | undefined;
  if (authorization.startsWith('AWS4-HMAC-SHA256')) {
    scope = /Credential=([^,\s]+)/.exec(authorization)?.[1];
    context['s3:authType'] = 'REST-HEADER';
    context['s3:signatureversion'] = 'AWS4-HMAC-SHA256';
  } else if (authorization.startsWith('AWS ')) {
    accessKeyId = authorization.slice(4).split(':')[0] ?? '';
    context['s3:authType'] = 'REST-HEADER';
    context['s3:signatureversion'] = 'AWS';
  } else if (query.has('X-Amz-Credential')) {
    scope = query.get('X-Amz-Credential') ?? undefined;
    context['s3:authType'] = 'REST-QUERY-STRING';
    context['s3:signatureversion'] = 'AWS4-HMAC-SHA256';
    const signed = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(query.get('X-Amz-Date') ?? '');
    if (signed) {
      const at = Date.UTC(+signed[1]!, +signed[2]! - 1, +signed[3]!, +signed[4]!, +signed[5]!, +signed[6]!);
      context['s3:signatureAge'] = String(now.getTime() - at);
      const expires = Number(query.get('X-Amz-Expires') ?? '604800');
      if (now.getTime() > at + expires * 1000) throw S3Errors.accessDenied('Request has expired');
    }
  }
  if (scope) {
    const [key, , region] = scope.split('/');
    accessKeyId = key ?? '';
    if (region) context['aws:RequestedRegion'] = region;
  }
  return { accessKeyId, context };
}

/** The request headers S3 turns into condition keys of object writes. */
function writeContext(req: IncomingMessage): Record<string, string> {
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

function attributesFrom(req: IncomingMessage): ObjectAttributes {
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
function storedAttributes(version: ObjectVersion): ObjectAttributes {
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
function etagListMatches(list: string, etag: string): boolean {
  return list.split(',').some((item) => {
    const tag = item.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
    return tag === '*' || tag === etag;
  });
}

/** S3's (and RFC 7232's) order for GET/HEAD conditions. */
function readCondition(req: IncomingMessage, version: ObjectVersion, prefix = ''): S3ServiceError | 'not-modified' | undefined {
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
function writePrecondition(req: IncomingMessage, key: string): ((current: ObjectVersion | undefined) => S3ServiceError | undefined) | undefined {
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

function parseRange(value: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
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

function parseCopySource(value: string): { bucket: string; key: string; versionId?: string } {
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

function maxKeysOf(query: URLSearchParams, name = 'max-keys', cap = 1000): number {
  const value = query.get(name);
  if (value === null) return cap;
  if (!/^\d+$/.test(value)) throw S3Errors.invalidArgument('Provided max-keys not an integer or within integer range', name, value);
  return Math.min(Number(value), cap);
}

/**
 * The local S3 server: the operations the product and its local tools use, with S3's versioning, conditional
 * writes, errors and IAM decisions (through `authorize`). Path-style addressing only.
 */
export class LocalS3Server {
  private readonly store: ObjectStore;
  private readonly server: Server;
  private readonly copySourceMaxBytes: number;

  constructor(private readonly options: S3ServerOptions) {
    this.store = new ObjectStore(options.directory);
    this.copySourceMaxBytes = options.copySourceMaxBytes ?? GIB5;
    this.server = createServer((req, res) => void this.handle(req, res));
    // Large bodies stream for as long as they need; the SDK's keep-alive sockets come and go.
    this.server.requestTimeout = 0;
  }

  async listen(port: number, host: string): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** Creates a bucket (if missing) and sets its versioning, without a request: what the stack deploys. */
  ensureBucket(name: string, versioned: boolean): void {
    if (!this.store.hasBucket(name)) this.store.createBucket(name);
    if (versioned && this.store.versioning(name) !== 'Enabled') this.store.setVersioning(name, 'Enabled');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    res.setHeader('x-amz-request-id', requestId);
    res.setHeader('x-amz-id-2', randomBytes(24).toString('base64'));
    res.setHeader('Server', 'AmazonS3');
    let bucket = '';
    let key = '';
    try {
      const url = new URL(req.url ?? '/', 'http://local');
      const rawPath = (req.url ?? '/').split('?')[0]!;
      const slash = rawPath.indexOf('/', 1);
      bucket = decodeURIComponent(slash < 0 ? rawPath.slice(1) : rawPath.slice(1, slash));
      key = slash < 0 ? '' : decodeURIComponent(rawPath.slice(slash + 1));
      const { accessKeyId, context } = caller(req, url.searchParams);
      const call: Call = { req, res, method: req.method ?? 'GET', bucket, key, query: url.searchParams, requestId, accessKeyId, baseContext: context };
      await this.route(call);
    } catch (error) {
      this.fail(req, res, error, { bucket, key, requestId });
    }
  }

  private fail(req: IncomingMessage, res: ServerResponse, error: unknown, where: { bucket: string; key: string; requestId: string }): void {
    const s3Error =
      error instanceof S3ServiceError ? error : new S3ServiceError('InternalError', 500, `We encountered an internal error. Please try again. (${(error as Error)?.message ?? String(error)})`);
    if (res.headersSent) {
      res.destroy(s3Error);
      return;
    }
    for (const [name, value] of Object.entries(s3Error.details.headers ?? {})) res.setHeader(name, value);
    res.statusCode = s3Error.status;
    // The rest of a refused body is not read; the connection cannot carry another request after it.
    if (!req.complete) res.setHeader('Connection', 'close');
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const resource = where.key ? `/${where.bucket}/${where.key}` : where.bucket ? `/${where.bucket}` : '/';
    const body = xmlDocument(
      'Error',
      { Code: s3Error.code, Message: s3Error.message, ...s3Error.details.fields, Resource: resource, RequestId: where.requestId, HostId: String(res.getHeader('x-amz-id-2')) },
      false,
    );
    res.setHeader('Content-Type', 'application/xml');
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.end(body);
  }

  private sendXml(call: Call, root: string, body: XmlObject | string, headers: Record<string, string> = {}, status = 200): void {
    const text = xmlDocument(root, body);
    call.res.writeHead(status, { ...headers, 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(text) });
    call.res.end(text);
  }

  private sendEmpty(call: Call, status: number, headers: Record<string, string> = {}): void {
    call.res.writeHead(status, { ...headers, 'Content-Length': 0 });
    call.res.end();
  }

  /** Asks the hook; a denial is S3's 403 AccessDenied with the hook's message. */
  private async authorize(call: Call, action: string, resource: string, context: Record<string, string> = {}): Promise<void> {
    const decision = await this.decide(call, action, resource, context);
    if (!decision.allowed) throw S3Errors.accessDenied(decision.message);
  }

  private async decide(call: Call, action: string, resource: string, context: Record<string, string> = {}): Promise<AuthorizationDecision> {
    if (!this.options.authorize) return { allowed: true };
    return this.options.authorize({ accessKeyId: call.accessKeyId, action, resource, context: { ...call.baseContext, ...context } });
  }

  /**
   * A missing object (or version): AWS answers 404 only to a caller allowed to list the bucket, 403 to others, so
   * that a caller cannot learn which keys exist.
   */
  private async missing(call: Call, bucket: string, key: string, notFound: S3ServiceError): Promise<S3ServiceError> {
    const decision = await this.decide(call, 's3:ListBucket', bucketArn(bucket), { 's3:prefix': key });
    return decision.allowed ? notFound : S3Errors.accessDenied(decision.message);
  }

  private versionHeader(bucket: string, versionId: string): Record<string, string> {
    return this.store.versioning(bucket) ? { 'x-amz-version-id': versionId } : {};
  }

  private async created(call: Call, bucket: string, version: ObjectVersion, reason: ObjectCreatedEvent['reason']): Promise<void> {
    if (!this.options.onObjectCreated) return;
    const event: ObjectCreatedEvent = {
      bucket,
      key: version.key,
      size: version.size,
      etag: version.etag,
      ...(version.versionId !== 'null' || this.store.versioning(bucket) ? { versionId: version.versionId } : {}),
      sequencer: version.seq.toString(16).toUpperCase().padStart(18, '0'),
      reason,
      requester: call.accessKeyId,
      requestId: call.requestId,
      sourceIpAddress: call.baseContext['aws:SourceIp']!,
      time: version.lastModified,
    };
    try {
      await this.options.onObjectCreated(event);
    } catch (error) {
      // The write stands whatever the listener does, as in S3; its failure must still be seen.
      process.emitWarning(`onObjectCreated failed for s3://${bucket}/${version.key}: ${(error as Error)?.message ?? String(error)}`);
    }
  }

  private async route(call: Call): Promise<void> {
    const { method, bucket, key, query } = call;
    if (!bucket) {
      if (method === 'GET') return this.listBuckets(call);
      throw S3Errors.methodNotAllowed(method, 'SERVICE');
    }
    if (!key) {
      switch (method) {
        case 'PUT':
          if (query.has('versioning')) return this.putBucketVersioning(call);
          if ([...query.keys()].length === 0) return this.createBucket(call);
          break;
        case 'GET':
          if (query.has('versioning')) return this.getBucketVersioning(call);
          if (query.has('versions')) return this.listObjectVersions(call);
          if (query.has('location')) return this.getBucketLocation(call);
          if (query.has('uploads')) return this.listMultipartUploads(call);
          if (query.get('list-type') === '2') return this.listObjects(call, 2);
          if ([...query.keys()].every((name) => ['prefix', 'delimiter', 'marker', 'max-keys', 'encoding-type'].includes(name))) return this.listObjects(call, 1);
          break;
        case 'HEAD':
          await this.authorize(call, 's3:ListBucket', bucketArn(bucket));
          if (!this.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
          return this.sendEmpty(call, 200, { 'x-amz-bucket-region': 'us-east-1' });
        case 'DELETE':
          if ([...query.keys()].length === 0) {
            await this.authorize(call, 's3:DeleteBucket', bucketArn(bucket));
            this.store.deleteBucket(bucket);
            return this.sendEmpty(call, 204);
          }
          break;
        case 'POST':
          if (query.has('delete')) return this.deleteObjects(call);
          break;
      }
      throw S3Errors.notImplemented(`The local S3 does not implement this bucket request (${method} ${[...query.keys()].join('&')}).`);
    }
    if (Buffer.byteLength(key) > 1024) throw S3Errors.keyTooLong();
    switch (method) {
      case 'PUT':
        if (query.has('uploadId') || query.has('partNumber')) return header(call.req, 'x-amz-copy-source') ? this.uploadPartCopy(call) : this.uploadPart(call);
        if (header(call.req, 'x-amz-copy-source')) return this.copyObject(call);
        if ([...query.keys()].some((name) => name !== 'x-id' && !name.startsWith('X-Amz-'))) break;
        return this.putObject(call);
      case 'GET':
      case 'HEAD':
        if (query.has('uploadId') && method === 'GET') return this.listParts(call);
        if (query.has('tagging') && method === 'GET') return this.getObjectTagging(call);
        if ([...query.keys()].some((name) => !['versionId', 'partNumber', 'x-id'].includes(name) && !name.startsWith('response-') && !name.startsWith('X-Amz-'))) break;
        return this.getObject(call, method === 'HEAD');
      case 'DELETE':
        if (query.has('uploadId')) return this.abortUpload(call);
        return this.deleteObject(call);
      case 'POST':
        if (query.has('uploads')) return this.createUpload(call);
        if (query.has('uploadId')) return this.completeUpload(call);
        break;
    }
    throw S3Errors.notImplemented(`The local S3 does not implement this object request (${method} ${[...query.keys()].join('&')}).`);
  }

  // Buckets

  private async listBuckets(call: Call): Promise<void> {
    await this.authorize(call, 's3:ListAllMyBuckets', '*');
    this.sendXml(call, 'ListAllMyBucketsResult', {
      Owner: OWNER,
      Buckets: { Bucket: this.store.bucketNames().map(({ name, created }) => ({ Name: name, CreationDate: created })) },
    });
  }

  private async createBucket(call: Call): Promise<void> {
    await this.authorize(call, 's3:CreateBucket', bucketArn(call.bucket));
    await receiveToBuffer(call.req);
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(call.bucket) || call.bucket.includes('..')) throw S3Errors.invalidBucketName(call.bucket);
    this.store.createBucket(call.bucket);
    this.sendEmpty(call, 200, { Location: `/${call.bucket}` });
  }

  private async putBucketVersioning(call: Call): Promise<void> {
    await this.authorize(call, 's3:PutBucketVersioning', bucketArn(call.bucket));
    const xml = (await receiveToBuffer(call.req)).toString('utf8');
    const status = textOf(xml, 'Status');
    if (status !== 'Enabled' && status !== 'Suspended') throw S3Errors.malformedXml();
    if (!this.store.hasBucket(call.bucket)) throw S3Errors.noSuchBucket(call.bucket);
    this.store.setVersioning(call.bucket, status);
    this.sendEmpty(call, 200);
  }

  private async getBucketVersioning(call: Call): Promise<void> {
    await this.authorize(call, 's3:GetBucketVersioning', bucketArn(call.bucket));
    const status = this.store.versioning(call.bucket);
    this.sendXml(call, 'VersioningConfiguration', { Status: status });
  }

  private async getBucketLocation(call: Call): Promise<void> {
    await this.authorize(call, 's3:GetBucketLocation', bucketArn(call.bucket));
    if (!this.store.hasBucket(call.bucket)) throw S3Errors.noSuchBucket(call.bucket);
    this.sendXml(call, 'LocationConstraint', '');
  }

  // Listings

  private async listObjects(call: Call, listType: 1 | 2): Promise<void> {
    const { query, bucket } = call;
    const prefix = query.get('prefix') ?? '';
    const delimiter = query.get('delimiter') ?? '';
    const maxKeys = maxKeysOf(query);
    const encodingType = query.get('encoding-type');
    if (encodingType !== null && encodingType !== 'url') throw S3Errors.invalidArgument('Invalid Encoding Method specified in Request', 'encoding-type', encodingType);
    const context: Record<string, string> = {};
    if (query.has('prefix')) context['s3:prefix'] = prefix;
    if (query.has('delimiter')) context['s3:delimiter'] = delimiter;
    if (query.has('max-keys')) context['s3:max-keys'] = query.get('max-keys')!;
    await this.authorize(call, 's3:ListBucket', bucketArn(bucket), context);
    let after = '';
    const token = query.get('continuation-token');
    if (listType === 2 && token !== null) {
      try {
        after = (JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { after: string }).after;
        if (typeof after !== 'string') throw new Error('no marker');
      } catch {
        throw S3Errors.invalidArgument('The continuation token provided is incorrect', 'continuation-token', token);
      }
    } else if (listType === 2) after = query.get('start-after') ?? '';
    else after = query.get('marker') ?? '';
    const keys = this.store.sortedKeys(bucket);
    const contents: ObjectVersion[] = [];
    const prefixes: string[] = [];
    let truncated = false;
    let last: string | undefined;
    for (let i = lowerBound(keys, compareKeys(after, prefix) > 0 ? after : prefix); i < keys.length && maxKeys > 0; i++) {
      const key = keys[i]!;
      if (!key.startsWith(prefix)) {
        if (compareKeys(key, prefix) > 0) break;
        continue;
      }
      if (compareKeys(key, after) <= 0) continue;
      const current = this.store.current(bucket, key);
      if (!current) continue;
      const cut = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
      const entry = cut >= 0 ? key.slice(0, cut + delimiter.length) : key;
      if (cut >= 0 && (entry === prefixes[prefixes.length - 1] || compareKeys(entry, after) <= 0)) continue;
      if (contents.length + prefixes.length === maxKeys) {
        truncated = true;
        break;
      }
      if (cut >= 0) prefixes.push(entry);
      else contents.push(current);
      last = entry;
    }
    const encode = (text: string) => (encodingType === 'url' ? encodeURIComponent(text).replace(/%2F/g, '/') : text);
    const body: XmlObject = {
      Name: bucket,
      Prefix: encode(prefix),
      ...(listType === 1 ? { Marker: encode(after), ...(truncated && delimiter ? { NextMarker: encode(last!) } : {}) } : {}),
      ...(listType === 2 ? { KeyCount: contents.length + prefixes.length } : {}),
      MaxKeys: maxKeys,
      Delimiter: delimiter ? encode(delimiter) : undefined,
      IsTruncated: truncated,
      ...(listType === 2 && token !== null ? { ContinuationToken: token } : {}),
      ...(listType === 2 && truncated ? { NextContinuationToken: Buffer.from(JSON.stringify({ after: last })).toString('base64url') } : {}),
      ...(listType === 2 && query.has('start-after') ? { StartAfter: encode(query.get('start-after')!) } : {}),
      EncodingType: encodingType ?? undefined,
    };
    const items =
      contents
        .map((version) =>
          render('Contents', {
            Key: encode(version.key),
            LastModified: version.lastModified,
            ETag: quote(version.etag),
            ...(version.checksum ? { ChecksumAlgorithm: version.checksum.algorithm } : {}),
            Size: version.size,
            ...(listType === 1 || query.get('fetch-owner') === 'true' ? { Owner: OWNER } : {}),
            StorageClass: 'STANDARD',
          }),
        )
        .join('') + prefixes.map((entry) => render('CommonPrefixes', { Prefix: encode(entry) })).join('');
    const head = Object.entries(body)
      .map(([name, value]) => render(name, value))
      .join('');
    this.sendXml(call, 'ListBucketResult', head + items);
  }

  private async listObjectVersions(call: Call): Promise<void> {
    const { query, bucket } = call;
    const prefix = query.get('prefix') ?? '';
    const delimiter = query.get('delimiter') ?? '';
    const maxKeys = maxKeysOf(query);
    const keyMarker = query.get('key-marker') ?? '';
    const versionIdMarker = query.get('version-id-marker') ?? '';
    const encodingType = query.get('encoding-type');
    const context: Record<string, string> = {};
    if (query.has('prefix')) context['s3:prefix'] = prefix;
    if (query.has('delimiter')) context['s3:delimiter'] = delimiter;
    if (query.has('max-keys')) context['s3:max-keys'] = query.get('max-keys')!;
    await this.authorize(call, 's3:ListBucketVersions', bucketArn(bucket), context);
    if (versionIdMarker && !keyMarker) throw S3Errors.invalidArgument('A version-id marker cannot be specified without a key marker.', 'version-id-marker', versionIdMarker);
    const encode = (text: string) => (encodingType === 'url' ? encodeURIComponent(text).replace(/%2F/g, '/') : text);
    const keys = this.store.sortedKeys(bucket);
    const items: string[] = [];
    const prefixes: string[] = [];
    let count = 0;
    let truncated = false;
    let next: { key: string; versionId?: string } | undefined;
    const start = keyMarker && compareKeys(keyMarker, prefix) > 0 ? keyMarker : prefix;
    outer: for (let i = lowerBound(keys, start); i < keys.length && maxKeys > 0; i++) {
      const key = keys[i]!;
      if (!key.startsWith(prefix)) {
        if (compareKeys(key, prefix) > 0) break;
        continue;
      }
      const cut = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
      if (cut >= 0) {
        const entry = key.slice(0, cut + delimiter.length);
        if (entry === prefixes[prefixes.length - 1] || (keyMarker && compareKeys(entry, keyMarker) <= 0)) continue;
        if (count === maxKeys) {
          truncated = true;
          break;
        }
        prefixes.push(entry);
        count++;
        next = { key: entry };
        continue;
      }
      let versions = this.store.versionsOf(bucket, key);
      if (keyMarker && key === keyMarker) {
        if (!versionIdMarker) continue;
        const at = versions.findIndex((version) => version.versionId === versionIdMarker);
        versions = at >= 0 ? versions.slice(at + 1) : [];
      } else if (keyMarker && compareKeys(key, keyMarker) < 0) continue;
      for (const [index, version] of versions.entries()) {
        if (count === maxKeys) {
          truncated = true;
          break outer;
        }
        const isLatest = index === 0 && !(keyMarker === key && versionIdMarker);
        items.push(
          version.deleteMarker
            ? render('DeleteMarker', { Owner: OWNER, Key: encode(key), VersionId: version.versionId, IsLatest: isLatest, LastModified: version.lastModified })
            : render('Version', {
                ETag: quote(version.etag),
                Size: version.size,
                Owner: OWNER,
                StorageClass: 'STANDARD',
                Key: encode(key),
                VersionId: version.versionId,
                IsLatest: isLatest,
                LastModified: version.lastModified,
              }),
        );
        count++;
        next = { key, versionId: version.versionId };
      }
    }
    const head: XmlObject = {
      Name: bucket,
      Prefix: encode(prefix),
      KeyMarker: encode(keyMarker),
      VersionIdMarker: versionIdMarker,
      ...(truncated && next ? { NextKeyMarker: encode(next.key), ...(next.versionId ? { NextVersionIdMarker: next.versionId } : {}) } : {}),
      MaxKeys: maxKeys,
      Delimiter: delimiter ? encode(delimiter) : undefined,
      IsTruncated: truncated,
      EncodingType: encodingType ?? undefined,
    };
    this.sendXml(
      call,
      'ListVersionsResult',
      Object.entries(head)
        .map(([name, value]) => render(name, value))
        .join('') +
        items.join('') +
        prefixes.map((entry) => render('CommonPrefixes', { Prefix: encode(entry) })).join(''),
    );
  }

  private async listMultipartUploads(call: Call): Promise<void> {
    await this.authorize(call, 's3:ListBucketMultipartUploads', bucketArn(call.bucket));
    if (!this.store.hasBucket(call.bucket)) throw S3Errors.noSuchBucket(call.bucket);
    const prefix = call.query.get('prefix') ?? '';
    const uploads = this.store
      .uploadsOf(call.bucket)
      .filter((upload) => upload.key.startsWith(prefix))
      .sort((a, b) => compareKeys(a.key, b.key) || a.initiated.localeCompare(b.initiated));
    this.sendXml(call, 'ListMultipartUploadsResult', {
      Bucket: call.bucket,
      KeyMarker: '',
      UploadIdMarker: '',
      Prefix: prefix,
      MaxUploads: 1000,
      IsTruncated: false,
      Upload: uploads.map((upload) => ({ Key: upload.key, UploadId: upload.uploadId, Initiator: OWNER, Owner: OWNER, StorageClass: 'STANDARD', Initiated: upload.initiated })),
    });
  }

  // Objects

  private async putObject(call: Call): Promise<void> {
    const { req, bucket, key } = call;
    await this.authorize(call, 's3:PutObject', objectArn(bucket, key), writeContext(req));
    const precondition = writePrecondition(req, key);
    if (!this.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
    // Refuse before reading the body when the answer cannot change (AWS checks again when the body is in).
    const early = precondition?.(this.store.current(bucket, key));
    if (early) throw early;
    const path = this.store.tmpPath();
    const body = await receiveToFile(req, path, GIB5);
    const version = this.store.commitObject(bucket, key, { path, size: body.size, etag: body.md5, checksum: body.checksum }, attributesFrom(req), precondition);
    await this.created(call, bucket, version, 'PutObject');
    const headers: Record<string, string> = { ETag: quote(version.etag) };
    if (version.versionId !== 'null') headers['x-amz-version-id'] = version.versionId;
    if (body.checksum) headers[`x-amz-checksum-${body.checksum.algorithm.toLowerCase()}`] = body.checksum.value;
    this.sendEmpty(call, 200, headers);
  }

  /** Finds the version a GET/HEAD/copy names, answering as S3 for missing keys, versions and delete markers. */
  private async lookup(call: Call, bucket: string, key: string, versionId: string | undefined, forCopy = false): Promise<ObjectVersion> {
    if (!this.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
    if (versionId !== undefined) {
      if (versionId === '') throw S3Errors.invalidArgument('Version id cannot be the empty string', 'versionId', '');
      const version = this.store.version(bucket, key, versionId);
      if (!version) throw await this.missing(call, bucket, key, S3Errors.noSuchVersion(key, versionId));
      if (version.deleteMarker) {
        if (forCopy) throw S3Errors.invalidRequest('The source of a copy request may not specifically refer to a delete marker by version id.');
        throw S3Errors.methodNotAllowed(call.method, 'DeleteMarker', { 'x-amz-delete-marker': 'true', 'x-amz-version-id': version.versionId, 'Last-Modified': httpDate(version.lastModified) });
      }
      return version;
    }
    const latest = this.store.latest(bucket, key);
    if (!latest || latest.deleteMarker) {
      const headers: Record<string, string> = latest && !forCopy ? { 'x-amz-delete-marker': 'true', 'x-amz-version-id': latest.versionId } : {};
      throw await this.missing(call, bucket, key, S3Errors.noSuchKey(key, headers));
    }
    return latest;
  }

  private async getObject(call: Call, head: boolean): Promise<void> {
    const { req, res, bucket, key, query } = call;
    const versionId = query.get('versionId') ?? undefined;
    const context: Record<string, string> = versionId !== undefined ? { 's3:VersionId': versionId } : {};
    await this.authorize(call, versionId !== undefined ? 's3:GetObjectVersion' : 's3:GetObject', objectArn(bucket, key), context);
    const version = await this.lookup(call, bucket, key, versionId);
    const headers: Record<string, string | number> = {
      'Last-Modified': httpDate(version.lastModified),
      ETag: quote(version.etag),
      'Accept-Ranges': 'bytes',
      ...this.versionHeader(bucket, version.versionId),
    };
    const condition = readCondition(req, version);
    if (condition === 'not-modified') {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    if (condition) throw condition;
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
    const fd = this.store.openData(bucket, version);
    res.writeHead(status, headers);
    await pipeline(createReadStream('', { fd, start, end, autoClose: true }), res).catch(() => undefined);
  }

  private async deleteObject(call: Call): Promise<void> {
    const { bucket, key, query } = call;
    const versionId = query.get('versionId') ?? undefined;
    await this.authorize(call, versionId !== undefined ? 's3:DeleteObjectVersion' : 's3:DeleteObject', objectArn(bucket, key), versionId !== undefined ? { 's3:VersionId': versionId } : {});
    if (!this.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
    const headers: Record<string, string> = {};
    if (versionId !== undefined) {
      const removed = this.store.deleteVersion(bucket, key, versionId);
      headers['x-amz-version-id'] = versionId;
      if (removed?.deleteMarker) headers['x-amz-delete-marker'] = 'true';
    } else {
      const marker = this.store.deleteCurrent(bucket, key);
      if (marker) {
        headers['x-amz-delete-marker'] = 'true';
        headers['x-amz-version-id'] = marker.versionId;
      }
    }
    this.sendEmpty(call, 204, headers);
  }

  private async deleteObjects(call: Call): Promise<void> {
    const { req, bucket } = call;
    if (header(req, 'content-md5') === undefined && !Object.keys(req.headers).some((name) => name.startsWith('x-amz-checksum-')) && !header(req, 'x-amz-trailer')) {
      throw S3Errors.invalidRequest('Missing required header for this request: Content-Md5.');
    }
    const xml = (await receiveToBuffer(req)).toString('utf8');
    if (!this.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
    const objects = elements(xml, 'Object').map((object) => ({ key: textOf(object, 'Key'), versionId: textOf(object, 'VersionId') }));
    if (!xml.includes('<Delete') || objects.length === 0 || objects.length > 1000 || objects.some((object) => object.key === undefined)) throw S3Errors.malformedXml();
    const quiet = textOf(xml, 'Quiet') === 'true';
    const results: string[] = [];
    for (const { key, versionId } of objects) {
      const k = key!;
      const decision = await this.decide(call, versionId !== undefined ? 's3:DeleteObjectVersion' : 's3:DeleteObject', objectArn(bucket, k), versionId !== undefined ? { 's3:VersionId': versionId } : {});
      if (!decision.allowed) {
        results.push(render('Error', { Key: k, ...(versionId !== undefined ? { VersionId: versionId } : {}), Code: 'AccessDenied', Message: decision.message }));
        continue;
      }
      if (quiet) {
        if (versionId !== undefined) this.store.deleteVersion(bucket, k, versionId);
        else this.store.deleteCurrent(bucket, k);
        continue;
      }
      if (versionId !== undefined) {
        const removed = this.store.deleteVersion(bucket, k, versionId);
        results.push(render('Deleted', { Key: k, VersionId: versionId, ...(removed?.deleteMarker ? { DeleteMarker: true, DeleteMarkerVersionId: versionId } : {}) }));
      } else {
        const marker = this.store.deleteCurrent(bucket, k);
        results.push(render('Deleted', { Key: k, ...(marker ? { DeleteMarker: true, DeleteMarkerVersionId: marker.versionId } : {}) }));
      }
    }
    this.sendXml(call, 'DeleteResult', results.join(''));
  }

  /** Reads the copy source header, asks for the source read right, and finds the version within the size limit. */
  private async copySource(call: Call, limit: number | undefined): Promise<{ bucket: string; key: string; version: ObjectVersion; explicitVersion: boolean }> {
    const source = parseCopySource(header(call.req, 'x-amz-copy-source')!);
    await this.authorize(
      call,
      source.versionId !== undefined ? 's3:GetObjectVersion' : 's3:GetObject',
      objectArn(source.bucket, source.key),
      source.versionId !== undefined ? { 's3:VersionId': source.versionId } : {},
    );
    const version = await this.lookup(call, source.bucket, source.key, source.versionId, true);
    const condition = readCondition(call.req, version, 'x-amz-copy-source-');
    if (condition === 'not-modified') throw S3Errors.preconditionFailed('x-amz-copy-source-If-None-Match');
    if (condition) throw condition;
    if (limit !== undefined && version.size > limit) {
      throw S3Errors.invalidRequest(`The specified copy source is larger than the maximum allowable size for a copy source: ${limit}`);
    }
    return { bucket: source.bucket, key: source.key, version, explicitVersion: source.versionId !== undefined };
  }

  /** Copies bytes of a stored version into a fresh scratch file, hashing them. */
  private async copyBytes(bucket: string, version: ObjectVersion, start: number, end: number): Promise<{ path: string; size: number; md5: string }> {
    const path = this.store.tmpPath();
    const md5 = createHash('md5');
    if (end < start) {
      await pipeline(async function* () {}, createWriteStream(path));
      return { path, size: 0, md5: md5.digest('hex') };
    }
    const fd = this.store.openData(bucket, version);
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

  private async copyObject(call: Call): Promise<void> {
    const { req, bucket, key } = call;
    await this.authorize(call, 's3:PutObject', objectArn(bucket, key), writeContext(req));
    const source = await this.copySource(call, this.copySourceMaxBytes);
    if (!this.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
    const directive = header(req, 'x-amz-metadata-directive') ?? 'COPY';
    if (directive !== 'COPY' && directive !== 'REPLACE') throw S3Errors.invalidArgument('Unknown metadata directive.', 'x-amz-metadata-directive', directive);
    if (source.bucket === bucket && source.key === key && directive === 'COPY' && !source.explicitVersion && !header(req, 'x-amz-storage-class')) {
      throw S3Errors.invalidRequest(
        "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
      );
    }
    const precondition = writePrecondition(req, key);
    const copied = await this.copyBytes(source.bucket, source.version, 0, source.version.size - 1);
    const { checksum } = source.version;
    const attributes = directive === 'COPY' ? storedAttributes(source.version) : attributesFrom(req);
    const tagging = header(req, 'x-amz-tagging-directive') ?? 'COPY';
    if (tagging !== 'COPY' && tagging !== 'REPLACE') throw S3Errors.invalidArgument('Unknown tagging directive.', 'x-amz-tagging-directive', tagging);
    const { tags: requestTags } = attributesFrom(req);
    const tags = tagging === 'COPY' ? source.version.tags : requestTags;
    delete attributes.tags;
    if (tags) attributes.tags = tags;
    const version = this.store.commitObject(bucket, key, { path: copied.path, size: copied.size, etag: copied.md5, ...(checksum ? { checksum } : {}) }, attributes, precondition);
    await this.created(call, bucket, version, 'CopyObject');
    const headers: Record<string, string> = {};
    if (version.versionId !== 'null') headers['x-amz-version-id'] = version.versionId;
    if (this.store.versioning(source.bucket)) headers['x-amz-copy-source-version-id'] = source.version.versionId;
    this.sendXml(call, 'CopyObjectResult', { ETag: quote(version.etag), LastModified: version.lastModified }, headers);
  }

  private async getObjectTagging(call: Call): Promise<void> {
    const { bucket, key, query } = call;
    const versionId = query.get('versionId') ?? undefined;
    await this.authorize(call, versionId !== undefined ? 's3:GetObjectVersionTagging' : 's3:GetObjectTagging', objectArn(bucket, key), versionId !== undefined ? { 's3:VersionId': versionId } : {});
    const version = await this.lookup(call, bucket, key, versionId);
    this.sendXml(
      call,
      'Tagging',
      { TagSet: { Tag: Object.entries(version.tags ?? {}).map(([Key, Value]) => ({ Key, Value })) } },
      this.versionHeader(bucket, version.versionId),
    );
  }

  // Multipart uploads

  private partNumberOf(call: Call): number {
    const value = call.query.get('partNumber') ?? '';
    if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 10000) {
      throw S3Errors.invalidArgument('Part number must be an integer between 1 and 10000, inclusive', 'partNumber', value);
    }
    return Number(value);
  }

  private async createUpload(call: Call): Promise<void> {
    const { req, bucket, key } = call;
    await this.authorize(call, 's3:PutObject', objectArn(bucket, key), writeContext(req));
    const upload = this.store.createUpload(bucket, key, attributesFrom(req));
    this.sendXml(call, 'InitiateMultipartUploadResult', { Bucket: bucket, Key: key, UploadId: upload.uploadId });
  }

  private async uploadPart(call: Call): Promise<void> {
    const { req, bucket, key } = call;
    await this.authorize(call, 's3:PutObject', objectArn(bucket, key), writeContext(req));
    const partNumber = this.partNumberOf(call);
    if (!this.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
    const upload = this.store.upload(bucket, key, call.query.get('uploadId') ?? '');
    const path = this.store.tmpPath();
    const body = await receiveToFile(req, path, GIB5);
    const part = this.store.commitPart(upload, partNumber, { path, size: body.size, etag: body.md5 });
    const headers: Record<string, string> = { ETag: quote(part.etag) };
    if (body.checksum) headers[`x-amz-checksum-${body.checksum.algorithm.toLowerCase()}`] = body.checksum.value;
    this.sendEmpty(call, 200, headers);
  }

  private async uploadPartCopy(call: Call): Promise<void> {
    const { req, bucket, key } = call;
    await this.authorize(call, 's3:PutObject', objectArn(bucket, key), writeContext(req));
    const partNumber = this.partNumberOf(call);
    if (!this.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
    const upload = this.store.upload(bucket, key, call.query.get('uploadId') ?? '');
    const rangeHeader = header(req, 'x-amz-copy-source-range');
    const source = await this.copySource(call, rangeHeader === undefined ? this.copySourceMaxBytes : undefined);
    let start = 0;
    let end = source.version.size - 1;
    if (rangeHeader !== undefined) {
      const match = /^bytes=(\d+)-(\d+)$/.exec(rangeHeader);
      if (!match || Number(match[2]) < Number(match[1])) throw S3Errors.invalidArgument('The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy', 'x-amz-copy-source-range', rangeHeader);
      start = Number(match[1]);
      end = Number(match[2]);
      if (end >= source.version.size) throw S3Errors.invalidArgument(`Range specified is not valid for source object of size: ${source.version.size}`, 'x-amz-copy-source-range', rangeHeader);
      if (end - start + 1 > this.copySourceMaxBytes) {
        throw S3Errors.invalidRequest(`The specified copy range is larger than the maximum allowable size for a copy source: ${this.copySourceMaxBytes}`);
      }
    }
    const copied = await this.copyBytes(source.bucket, source.version, start, end);
    const part = this.store.commitPart(upload, partNumber, { path: copied.path, size: copied.size, etag: copied.md5 });
    const headers: Record<string, string> = {};
    if (this.store.versioning(source.bucket)) headers['x-amz-copy-source-version-id'] = source.version.versionId;
    this.sendXml(call, 'CopyPartResult', { ETag: quote(part.etag), LastModified: part.lastModified }, headers);
  }

  private async abortUpload(call: Call): Promise<void> {
    const { bucket, key } = call;
    await this.authorize(call, 's3:AbortMultipartUpload', objectArn(bucket, key));
    if (!this.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
    const upload = this.store.upload(bucket, key, call.query.get('uploadId') ?? '');
    this.store.removeUpload(upload.uploadId);
    this.sendEmpty(call, 204);
  }

  private async listParts(call: Call): Promise<void> {
    const { bucket, key, query } = call;
    await this.authorize(call, 's3:ListMultipartUploadParts', objectArn(bucket, key));
    if (!this.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
    const upload = this.store.upload(bucket, key, query.get('uploadId') ?? '');
    const marker = Number(query.get('part-number-marker') ?? '0') || 0;
    const maxParts = maxKeysOf(query, 'max-parts');
    const all = [...upload.parts.values()].filter((part) => part.partNumber > marker).sort((a, b) => a.partNumber - b.partNumber);
    const parts = all.slice(0, maxParts);
    const truncated = all.length > parts.length;
    this.sendXml(call, 'ListPartsResult', {
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

  private async completeUpload(call: Call): Promise<void> {
    const { req, bucket, key } = call;
    await this.authorize(call, 's3:PutObject', objectArn(bucket, key), writeContext(req));
    const precondition = writePrecondition(req, key);
    if (!this.store.hasBucket(bucket)) throw S3Errors.noSuchBucket(bucket);
    const upload = this.store.upload(bucket, key, call.query.get('uploadId') ?? '');
    const xml = (await receiveToBuffer(req)).toString('utf8');
    const listed = elements(xml, 'Part').map((part) => ({ partNumber: Number(textOf(part, 'PartNumber')), etag: (textOf(part, 'ETag') ?? '').replace(/"/g, '') }));
    if (listed.length === 0 || listed.some((part) => !Number.isInteger(part.partNumber))) throw S3Errors.malformedXml();
    const parts = listed.map((entry, index) => {
      if (index > 0 && entry.partNumber <= listed[index - 1]!.partNumber) throw S3Errors.invalidPartOrder();
      const part = upload.parts.get(entry.partNumber);
      if (!part || part.etag !== entry.etag) throw S3Errors.invalidPart();
      return part;
    });
    if (parts.slice(0, -1).some((part) => part.size < MIN_PART_BYTES)) throw S3Errors.entityTooSmall();
    const early = precondition?.(this.store.current(bucket, key));
    if (early) throw early;
    if (upload.completing) throw S3Errors.noSuchUpload(upload.uploadId);
    upload.completing = true;
    try {
      const path = this.store.tmpPath();
      const out = createWriteStream(path);
      for (const part of parts) await pipeline(createReadStream(this.store.partPath(upload.uploadId, part.partNumber)), out, { end: false });
      out.end();
      await new Promise<void>((resolve, reject) => out.once('close', resolve).once('error', reject));
      const digest = createHash('md5');
      for (const part of parts) digest.update(Buffer.from(part.etag, 'hex'));
      const etag = `${digest.digest('hex')}-${parts.length}`;
      const size = parts.reduce((sum, part) => sum + part.size, 0);
      const version = this.store.commitObject(bucket, key, { path, size, etag }, upload.attributes, precondition);
      this.store.removeUpload(upload.uploadId);
      await this.created(call, bucket, version, 'CompleteMultipartUpload');
      const headers: Record<string, string> = {};
      if (version.versionId !== 'null') headers['x-amz-version-id'] = version.versionId;
      this.sendXml(
        call,
        'CompleteMultipartUploadResult',
        { Location: `http://${header(req, 'host') ?? 'localhost'}/${bucket}/${encodeURIComponent(key)}`, Bucket: bucket, Key: key, ETag: quote(etag) },
        headers,
      );
    } finally {
      upload.completing = false;
    }
  }
}

