import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { Upload } from '@aws-sdk/lib-storage';
import type { Dataflow, VendorBucketSource } from '../config/schema';
import { vendorBucketOf } from '../config/schema';
import { type Buckets, type PullResult, type Report, fileNameOf } from '../contracts';
import { type CopyOptions, copyObject, headObject } from '../aws/s3';
import { VendorBucketError } from '../errors';
import type { Log } from '../ports';
import { vendorSummary, writeBackNames } from '../report/texts';
import { PULL_METADATA } from './sftp';

/**
 * The vendor's own bucket (`source.bucket`): polled on the schedule like an SFTP server. Each settled object is copied
 * into the inbox under the dataflow's inbox prefix (`s3/<name>/<file name>`), where the upload rule, the content claim
 * and the run naming apply as to any drop, then moved to `processedPrefix` in the vendor's bucket. Outcomes are
 * written back under `errorPrefix` there.
 *
 * Data crosses accounts by GetObject (the vendor's credentials: the assumed role, or our own role that the vendor's
 * bucket policy names) streamed into a PutObject/multipart Upload to the inbox with our own credentials: one
 * CopyObject would need a single principal that reads their bucket and writes ours, which an assumed vendor role is
 * not (and must not be).
 */

/** The object version a pulled inbox object was copied from (beside PULL_METADATA's origin, path, movedTo, size). */
export const VENDOR_ETAG_METADATA = 'badges-source-etag';

export interface VendorBucketDeps {
  /** Our own S3 client (the inbox). */
  s3: S3Client;
  buckets: Buckets;
  log: Log;
  now?: () => number;
  /** Milliseconds left to work in; no new object is started with less than a minute left. */
  remainingMs?: () => number;
  /** Settings laid over every vendor-bucket client (the twin gives its endpoint and path style). */
  vendorS3Config?: Partial<S3ClientConfig>;
  /** The STS client that assumes `roleArn`. @default a client in the vendor bucket's region */
  sts?: STSClient;
  /** Called between an object's copy into the inbox and its move (tests overwrite it here). */
  afterCopy?: (key: string) => Promise<void>;
  /** How an object is copied to processedPrefix in the vendor's bucket (tests lower the multipart threshold). @default S3's 5 GiB limit */
  copy?: CopyOptions;
}

/** The session name an assumed role carries: the vendor's CloudTrail names our dataflow. */
export function roleSessionName(flowName: string): string {
  return `badges-import-${flowName}`.slice(0, 64);
}

/**
 * A client for the vendor's bucket, in its region: with `roleArn`, credentials of that role assumed through STS with
 * the external id; without, the Lambda's own (the vendor's bucket policy grants our role).
 */
export async function vendorS3Client(flowName: string, source: VendorBucketSource, deps: Pick<VendorBucketDeps, 'vendorS3Config' | 'sts'>): Promise<S3Client> {
  const region = source.region ?? deps.vendorS3Config?.region ?? process.env.AWS_REGION;
  const base: S3ClientConfig = { ...deps.vendorS3Config, ...(region ? { region } : {}) };
  if (!source.roleArn) return new S3Client(base);
  const sts = deps.sts ?? new STSClient(region ? { region } : {});
  let answer;
  try {
    answer = await sts.send(
      new AssumeRoleCommand({ RoleArn: source.roleArn, RoleSessionName: roleSessionName(flowName), ...(source.externalId ? { ExternalId: source.externalId } : {}), DurationSeconds: 3600 }),
    );
  } catch (error) {
    throw new VendorBucketError(`Cannot assume ${source.roleArn} for dataflow ${flowName}: ${(error as Error).message}. The vendor's trust policy must name our role${source.externalId ? ' and the configured externalId' : ''}`);
  }
  const c = answer.Credentials;
  if (!c?.AccessKeyId || !c.SecretAccessKey) throw new VendorBucketError(`STS gave no credentials for ${source.roleArn}`);
  return new S3Client({ ...base, credentials: { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, ...(c.SessionToken ? { sessionToken: c.SessionToken } : {}), ...(c.Expiration ? { expiration: c.Expiration } : {}) } });
}

/** One object in the vendor's bucket, as listed. */
interface VendorObject {
  key: string;
  etag: string;
  size: number;
  lastModified: number;
}

/** Lists the vendor's prefix (every page), leaving out the processed and error prefixes. */
async function listVendorObjects(client: S3Client, source: VendorBucketSource): Promise<VendorObject[]> {
  const skip = [source.processedPrefix, source.errorPrefix].filter((p): p is string => p !== undefined);
  const objects: VendorObject[] = [];
  let token: string | undefined;
  do {
    let page: ListObjectsV2CommandOutput;
    try {
      page = await client.send(new ListObjectsV2Command({ Bucket: source.bucket, Prefix: source.vendorPrefix, ContinuationToken: token }));
    } catch (error) {
      throw new VendorBucketError(`Cannot list s3://${source.bucket}/${source.vendorPrefix}: ${(error as Error).name}: ${(error as Error).message}`);
    }
    for (const o of page.Contents ?? []) {
      if (!o.Key || o.Key.endsWith('/') || skip.some((p) => o.Key!.startsWith(p))) continue;
      objects.push({ key: o.Key, etag: (o.ETag ?? '').replace(/"/g, ''), size: o.Size ?? 0, lastModified: o.LastModified?.getTime() ?? 0 });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return objects;
}

/**
 * Takes every settled object of a vendor-bucket dataflow: copies it into the inbox under the dataflow's prefix and
 * moves it to `processedPrefix` in the vendor's bucket. An object modified less than `minFileAgeSeconds` ago is left
 * for the next poll. If anything fails before the move, the object stays where it was and the next poll takes it
 * again; an inbox object already copied from the same version is not copied a second time.
 */
export async function pullVendorBucket(flow: Dataflow, deps: VendorBucketDeps): Promise<PullResult> {
  const source = vendorBucketOf(flow);
  if (!source) throw new Error(`Dataflow ${flow.name} does not poll a vendor's bucket`);
  const now = deps.now ?? Date.now;
  const result: PullResult = { dataflow: flow.name, taken: [], waiting: [], failed: [] };
  const pattern = new RegExp(source.filePattern);
  const client = await vendorS3Client(flow.name, source, deps);
  try {
    for (const object of await listVendorObjects(client, source)) {
      const path = `s3://${source.bucket}/${object.key}`;
      if (!pattern.test(fileNameOf(object.key))) continue;
      const age = now() - object.lastModified;
      if (age < source.minFileAgeSeconds * 1000) {
        result.waiting.push({ path, reason: `modified ${Math.max(0, Math.round(age / 1000))} s ago (under minFileAgeSeconds ${source.minFileAgeSeconds}): it may still be being delivered` });
      } else if (deps.remainingMs && deps.remainingMs() < 60_000) {
        result.waiting.push({ path, reason: 'left for the next poll: this one ran out of time' });
      } else {
        try {
          const outcome = await takeObject(client, flow, source, object, deps);
          if (outcome === undefined) continue;
          if ('waiting' in outcome) result.waiting.push({ path, reason: outcome.waiting });
          else result.taken.push(outcome);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          deps.log.warn('Vendor bucket object not taken', { dataflow: flow.name, path, error: message });
          result.failed.push({ path, message });
        }
      }
    }
  } finally {
    client.destroy();
  }
  deps.log.info('Vendor bucket poll done', { dataflow: flow.name, bucket: source.bucket, taken: result.taken.length, waiting: result.waiting.length, failed: result.failed.length });
  return result;
}

/**
 * Copies one object into the inbox and moves it. Undefined: another poll running at the same time (the schedule and an
 * operator's) took it, or the vendor removed it: nothing to report. The inbox object is created only if absent
 * (If-None-Match), so two polls never make two versions of it, i.e. two runs.
 */
async function takeObject(client: S3Client, flow: Dataflow, source: VendorBucketSource, object: VendorObject, deps: VendorBucketDeps): Promise<PullResult['taken'][number] | { waiting: string } | undefined> {
  const { s3, buckets } = deps;
  const key = `${flow.source.prefix}${fileNameOf(object.key)}`;
  const origin = `s3://${source.bucket}/${object.key}`;
  let existing = (await headObject(s3, buckets.inbox, key))?.metadata;
  let movedTo: string | undefined;
  if (existing === undefined) {
    const target = await processedKeyFor(client, source, object);
    const metadata = {
      [PULL_METADATA.origin]: encodeURI(origin),
      [PULL_METADATA.path]: encodeURI(object.key),
      [PULL_METADATA.movedTo]: encodeURI(`s3://${source.bucket}/${target}`),
      [PULL_METADATA.size]: String(object.size),
      [PULL_METADATA.mtime]: String(object.lastModified),
      [VENDOR_ETAG_METADATA]: object.etag,
    };
    // Exactly the version listed (If-Match): S3 objects appear whole, so the copy is never of a half-written file.
    const copied = await streamInto(client, source.bucket, object, s3, buckets.inbox, key, metadata);
    if (copied === 'gone') return undefined;
    if (copied === 'copied') movedTo = target;
    // 'exists': another poll copied it a moment ago; it is moved below like a copy an earlier poll left.
    else existing = (await headObject(s3, buckets.inbox, key))?.metadata ?? {};
  }
  if (movedTo === undefined) {
    // Copied by an earlier poll that stopped before the move: move it now. Another object of the same name waits until
    // the one being imported has left the inbox prefix.
    if (existing?.[PULL_METADATA.origin] !== encodeURI(origin) || existing[VENDOR_ETAG_METADATA] !== object.etag) {
      return { waiting: `s3://${buckets.inbox}/${key} is still being imported from another object of the same name` };
    }
    movedTo = decodeURI(existing[PULL_METADATA.movedTo] ?? '').replace(`s3://${source.bucket}/`, '') || (await processedKeyFor(client, source, object));
  }
  await deps.afterCopy?.(object.key);
  const moved = await moveInVendorBucket(client, source, object, movedTo, deps.copy);
  if (moved === 'gone') {
    deps.log.info('Vendor bucket object already moved by another poll (or removed by the vendor)', { dataflow: flow.name, path: origin, key });
    return undefined;
  }
  if (!moved) {
    return { waiting: `overwritten after it was copied: the copied version (ETag ${object.etag}) is imported; the new one stays in place for the next poll` };
  }
  deps.log.info('Vendor bucket object taken', { dataflow: flow.name, path: origin, key, movedTo, bytes: object.size });
  return { path: origin, key, movedTo: `s3://${source.bucket}/${movedTo}`, bytes: object.size };
}

/** The processed key keeps the path relative to the vendor's prefix; a key already there gets the time appended. */
async function processedKeyFor(client: S3Client, source: VendorBucketSource, object: VendorObject): Promise<string> {
  const target = `${source.processedPrefix}${object.key.slice(source.vendorPrefix.length)}`;
  if (!(await headObject(client, source.bucket, target))) return target;
  return `${target}.${new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
}

/**
 * GetObject (If-Match the listed ETag) streamed into an Upload: multipart past one part, so any size. With metadata (a
 * copy into the inbox) only if no object is there yet: `exists` when one is. `gone`: the source no longer exists.
 */
async function streamInto(from: S3Client, bucket: string, object: VendorObject, to: S3Client, toBucket: string, toKey: string, metadata?: Record<string, string>): Promise<'copied' | 'exists' | 'gone'> {
  let body: Readable | undefined;
  try {
    const got = await from.send(new GetObjectCommand({ Bucket: bucket, Key: object.key, IfMatch: `"${object.etag}"` })).catch((error: unknown) => {
      if (notFound(error)) return undefined;
      throw error;
    });
    if (!got) return 'gone';
    body = got.Body as Readable;
    const params = { Bucket: toBucket, Key: toKey, Body: body, ...(metadata ? { Metadata: metadata, IfNoneMatch: '*' } : {}) };
    try {
      await new Upload({ client: to, params, queueSize: 4 }).done();
    } catch (error) {
      if (metadata && preconditionFailed(error)) return 'exists';
      throw error;
    }
    return 'copied';
  } catch (error) {
    body?.destroy();
    throw new VendorBucketError(`Copying s3://${bucket}/${object.key} into s3://${toBucket}/${toKey} failed: ${(error as Error).name}: ${(error as Error).message}`);
  }
}

const notFound = (error: unknown) => {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
};

const preconditionFailed = (error: unknown) => {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'PreconditionFailed' || e.$metadata?.httpStatusCode === 412;
};

/**
 * Moves the copied version to the processed key: a copy conditional on its ETag, then a delete conditional on it, so
 * that an object the vendor overwrote meanwhile is neither moved nor deleted (false: it stays for the next poll).
 */
async function moveInVendorBucket(client: S3Client, source: VendorBucketSource, object: VendorObject, target: string, options?: CopyOptions): Promise<boolean | 'gone'> {
  try {
    // Within their bucket, on their side: a copy (multipart past 5 GiB), never the bytes streamed through us again.
    await copyObject(client, { bucket: source.bucket, key: object.key, etag: object.etag, size: object.size }, { bucket: source.bucket, key: target }, options);
    await client.send(new DeleteObjectCommand({ Bucket: source.bucket, Key: object.key, IfMatch: `"${object.etag}"` }));
    return true;
  } catch (error) {
    // Another poll moved it between our list and our move (or the vendor removed it): nothing left to move.
    if (notFound(error)) return 'gone';
    if (preconditionFailed(error)) return false;
    throw new VendorBucketError(`Moving s3://${source.bucket}/${object.key} to ${target} failed: ${(error as Error).name}: ${(error as Error).message}`);
  }
}

/**
 * Writes a run's outcome under an S3 source's `errorPrefix`: `result_<time>_<name>.summary.txt`, and
 * `….rejected.csv` when there are rejected records; in the vendor's bucket (keeping the path relative to their
 * prefix) or, for an inbox drop, in the inbox. Returns the `s3://` addresses written.
 */
export async function writeBackToS3(
  flow: Dataflow,
  deps: Pick<VendorBucketDeps, 's3' | 'buckets' | 'log' | 'vendorS3Config' | 'sts'>,
  fileKey: string,
  report: Report,
  rejected: (() => Promise<Readable | undefined>) | undefined,
): Promise<string[]> {
  const source = flow.source;
  if (source.type !== 's3' || !source.errorPrefix) return [];
  const vendor = vendorBucketOf(flow);
  const client = vendor ? await vendorS3Client(flow.name, vendor, deps) : deps.s3;
  const bucket = vendor ? vendor.bucket : deps.buckets.inbox;
  const relative = vendor && fileKey.startsWith(vendor.vendorPrefix) ? fileKey.slice(vendor.vendorPrefix.length) : fileNameOf(fileKey);
  const dir = `${source.errorPrefix}${relative.slice(0, relative.length - fileNameOf(relative).length)}`;
  const written: string[] = [];
  try {
    // Names are to the second: another run of a file of the same name may have finished in the same second. Nothing is
    // overwritten (If-None-Match); the second run's names then carry its run id.
    for (const names of [writeBackNames(report, fileNameOf(fileKey)), writeBackNames(report, `${report.runId}_${fileNameOf(fileKey)}`)]) {
      const put = (key: string, body: Readable | string, contentType: string) =>
        new Upload({ client, params: { Bucket: bucket, Key: `${dir}${key}`, Body: body, ContentType: contentType, IfNoneMatch: '*' } }).done().then(
          () => void written.push(`s3://${bucket}/${dir}${key}`),
          (error: unknown) => {
            if (written.length === 0 && preconditionFailed(error)) return 'taken' as const;
            throw error;
          },
        );
      const body = rejected ? await rejected() : undefined;
      if (body && (await put(names.rejected, body, 'text/csv; charset=utf-8')) === 'taken') continue;
      const text = vendorSummary(report, fileNameOf(fileKey), body ? names.rejected : undefined);
      if ((await put(names.summary, text, 'text/plain; charset=utf-8')) === 'taken') continue;
      break;
    }
  } finally {
    if (client !== deps.s3) client.destroy();
  }
  deps.log.info('Outcome written back to the error prefix', { dataflow: flow.name, files: written });
  return written;
}
