import type { IncomingMessage, ServerResponse } from 'node:http';
import { S3Errors, type S3ServiceError } from './errors';
import type { AuthorizationDecision, Authorize, ObjectCreatedEvent } from './hooks';
import type { ObjectStore, ObjectVersion } from './store';
import { xmlDocument, type XmlObject } from './xml';

// One request being answered (Call), what every operation works with (S3Context), and the steps they all take:
// asking the IAM hook, answering XML or an empty body, announcing a created object.

export const GIB5 = 5 * 1024 * 1024 * 1024;
export const OWNER = { ID: '75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a', DisplayName: 'local' };

/** What every operation works with: the store, the host's hooks and the copy limit. */
export interface S3Context {
  readonly store: ObjectStore;
  readonly options: { readonly authorize?: Authorize; readonly onObjectCreated?: (event: ObjectCreatedEvent) => void | Promise<void> };
  readonly copySourceMaxBytes: number;
}

/** One request being answered: its parsed address, caller and the S3 resource it names. */
export interface Call {
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

export const bucketArn = (bucket: string) => `arn:aws:s3:::${bucket}`;
export const objectArn = (bucket: string, key: string) => `arn:aws:s3:::${bucket}/${key}`;
export const quote = (etag: string) => `"${etag}"`;
export const httpDate = (iso: string) => new Date(iso).toUTCString();
export const header = (req: IncomingMessage, name: string): string | undefined => {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
};

/** The caller's access key and the global condition keys AWS would put in the request context. */
export function caller(req: IncomingMessage, query: URLSearchParams): { accessKeyId: string; context: Record<string, string> } {
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

export function maxKeysOf(query: URLSearchParams, name = 'max-keys', cap = 1000): number {
  const value = query.get(name);
  if (value === null) return cap;
  if (!/^\d+$/.test(value)) throw S3Errors.invalidArgument('Provided max-keys not an integer or within integer range', name, value);
  return Math.min(Number(value), cap);
}

/** Answers an S3 XML document (with S3's namespace). */
export function sendXml(call: Call, root: string, body: XmlObject | string, headers: Record<string, string> = {}, status = 200): void {
  const text = xmlDocument(root, body);
  call.res.writeHead(status, { ...headers, 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(text) });
  call.res.end(text);
}

/** Answers a status and headers without a body. */
export function sendEmpty(call: Call, status: number, headers: Record<string, string> = {}): void {
  call.res.writeHead(status, { ...headers, 'Content-Length': 0 });
  call.res.end();
}

/** Asks the hook; a denial is S3's 403 AccessDenied with the hook's message. */
export async function authorize(s3: S3Context, call: Call, action: string, resource: string, context: Record<string, string> = {}): Promise<void> {
  const decision = await decide(s3, call, action, resource, context);
  if (!decision.allowed) throw S3Errors.accessDenied(decision.message);
}

/** The hook's decision (allowed without a hook), the request's global condition keys merged under `context`. */
export async function decide(s3: S3Context, call: Call, action: string, resource: string, context: Record<string, string> = {}): Promise<AuthorizationDecision> {
  if (!s3.options.authorize) return { allowed: true };
  return s3.options.authorize({ accessKeyId: call.accessKeyId, action, resource, context: { ...call.baseContext, ...context } });
}

/**
 * A missing object (or version): AWS answers 404 only to a caller allowed to list the bucket, 403 to others, so
 * that a caller cannot learn which keys exist.
 */
export async function missing(s3: S3Context, call: Call, bucket: string, key: string, notFound: S3ServiceError): Promise<S3ServiceError> {
  const decision = await decide(s3, call, 's3:ListBucket', bucketArn(bucket), { 's3:prefix': key });
  return decision.allowed ? notFound : S3Errors.accessDenied(decision.message);
}

/** `x-amz-version-id`, answered only by a bucket that is or was versioned. */
export function versionHeader(s3: S3Context, bucket: string, versionId: string): Record<string, string> {
  return s3.store.versioning(bucket) ? { 'x-amz-version-id': versionId } : {};
}

/** Tells the host an object was written (the S3 "Object Created" event), after the write is stored. */
export async function created(s3: S3Context, call: Call, bucket: string, version: ObjectVersion, reason: ObjectCreatedEvent['reason']): Promise<void> {
  if (!s3.options.onObjectCreated) return;
  const event: ObjectCreatedEvent = {
    bucket,
    key: version.key,
    size: version.size,
    etag: version.etag,
    ...(version.versionId !== 'null' || s3.store.versioning(bucket) ? { versionId: version.versionId } : {}),
    sequencer: version.seq.toString(16).toUpperCase().padStart(18, '0'),
    reason,
    requester: call.accessKeyId,
    requestId: call.requestId,
    sourceIpAddress: call.baseContext['aws:SourceIp']!,
    time: version.lastModified,
  };
  try {
    await s3.options.onObjectCreated(event);
  } catch (error) {
    // The write stands whatever the listener does, as in S3; its failure must still be seen.
    process.emitWarning(`onObjectCreated failed for s3://${bucket}/${version.key}: ${(error as Error)?.message ?? String(error)}`);
  }
}
