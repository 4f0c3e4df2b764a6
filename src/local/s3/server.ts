import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createBucket, deleteBucket, getBucketLocation, getBucketVersioning, headBucket, listBuckets, putBucketVersioning } from './buckets';
import { type Call, GIB5, type S3Context, caller, header } from './call';
import { S3Errors, S3ServiceError } from './errors';
import type { Authorize, ObjectCreatedEvent } from './hooks';
import { listObjects, listObjectVersions } from './listing';
import { abortUpload, completeUpload, createUpload, listMultipartUploads, listParts, uploadPart, uploadPartCopy } from './multipart';
import { copyObject, deleteObject, deleteObjects, getObject, getObjectTagging, putObject } from './objects';
import { ObjectStore } from './store';
import { S3RequestCounter, operationOf } from './requests';
import { xmlDocument } from './xml';

export type { AuthorizationDecision, AuthorizationRequest, Authorize, ObjectCreatedEvent } from './hooks';

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

/**
 * The local S3 server: the operations the product and its local tools use, with S3's versioning, conditional
 * writes, errors and IAM decisions (through `authorize`). Path-style addressing only.
 */
export class LocalS3Server {
  private readonly s3: S3Context;
  private readonly store: ObjectStore;
  private readonly server: Server;
  /** Every request answered, by operation (a local run reads what it made: see LocalRunResult.counts). */
  readonly requests = new S3RequestCounter();

  constructor(options: S3ServerOptions) {
    this.store = new ObjectStore(options.directory);
    this.s3 = { store: this.store, options, copySourceMaxBytes: options.copySourceMaxBytes ?? GIB5 };
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
      this.requests.count(operationOf(req.method ?? 'GET', bucket, key, url.searchParams, Boolean(header(req, 'x-amz-copy-source'))));
      const { accessKeyId, context } = caller(req, url.searchParams);
      const call: Call = { req, res, method: req.method ?? 'GET', bucket, key, query: url.searchParams, requestId, accessKeyId, baseContext: context };
      await route(this.s3, call);
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
}

/** Which S3 operation a request names: by method, then by whether it names a bucket or a key, then by its query. */
function route(s3: S3Context, call: Call): Promise<void> {
  if (!call.bucket) return routeService(s3, call);
  if (!call.key) return routeBucket(s3, call);
  return routeObject(s3, call);
}

async function routeService(s3: S3Context, call: Call): Promise<void> {
  if (call.method === 'GET') return listBuckets(s3, call);
  throw S3Errors.methodNotAllowed(call.method, 'SERVICE');
}

const LIST_OBJECTS_V1_PARAMETERS = ['prefix', 'delimiter', 'marker', 'max-keys', 'encoding-type'];

async function routeBucket(s3: S3Context, call: Call): Promise<void> {
  const { method, query } = call;
  const names = [...query.keys()];
  switch (method) {
    case 'PUT':
      if (query.has('versioning')) return putBucketVersioning(s3, call);
      if (names.length === 0) return createBucket(s3, call);
      break;
    case 'GET':
      if (query.has('versioning')) return getBucketVersioning(s3, call);
      if (query.has('versions')) return listObjectVersions(s3, call);
      if (query.has('location')) return getBucketLocation(s3, call);
      if (query.has('uploads')) return listMultipartUploads(s3, call);
      if (query.get('list-type') === '2') return listObjects(s3, call, 2);
      if (names.every((name) => LIST_OBJECTS_V1_PARAMETERS.includes(name))) return listObjects(s3, call, 1);
      break;
    case 'HEAD':
      return headBucket(s3, call);
    case 'DELETE':
      if (names.length === 0) return deleteBucket(s3, call);
      break;
    case 'POST':
      if (query.has('delete')) return deleteObjects(s3, call);
      break;
  }
  throw S3Errors.notImplemented(`The local S3 does not implement this bucket request (${method} ${names.join('&')}).`);
}

/** Query parameters a presigned URL or the SDK adds to any request, which name no operation. */
const isSigningParameter = (name: string) => name === 'x-id' || name.startsWith('X-Amz-');

async function routeObject(s3: S3Context, call: Call): Promise<void> {
  const { method, key, query } = call;
  const names = [...query.keys()];
  if (Buffer.byteLength(key) > 1024) throw S3Errors.keyTooLong();
  const copies = Boolean(header(call.req, 'x-amz-copy-source'));
  switch (method) {
    case 'PUT':
      if (query.has('uploadId') || query.has('partNumber')) return copies ? uploadPartCopy(s3, call) : uploadPart(s3, call);
      if (copies) return copyObject(s3, call);
      if (names.some((name) => !isSigningParameter(name))) break;
      return putObject(s3, call);
    case 'GET':
    case 'HEAD':
      if (query.has('uploadId') && method === 'GET') return listParts(s3, call);
      if (query.has('tagging') && method === 'GET') return getObjectTagging(s3, call);
      if (names.some((name) => !['versionId', 'partNumber'].includes(name) && !name.startsWith('response-') && !isSigningParameter(name))) break;
      return getObject(s3, call, method === 'HEAD');
    case 'DELETE':
      if (query.has('uploadId')) return abortUpload(s3, call);
      return deleteObject(s3, call);
    case 'POST':
      if (query.has('uploads')) return createUpload(s3, call);
      if (query.has('uploadId')) return completeUpload(s3, call);
      break;
  }
  throw S3Errors.notImplemented(`The local S3 does not implement this object request (${method} ${names.join('&')}).`);
}
