// What the embedded S3 counts: each request by operation, and by the tier S3 bills it in, so that a local run can be
// compared with the cost model (src/ops/estimate.ts) without a bill.

/**
 * S3 Standard's request tiers (https://aws.amazon.com/s3/pricing/, "Requests & data retrievals"): PUT, COPY, POST and
 * LIST requests at one price; GET, SELECT "and all other requests" (HEAD among them) at a tenth of it; DELETE and
 * CANCEL (AbortMultipartUpload) requests are free.
 */
export type S3RequestTier = 'putCopyPostList' | 'getAndOther' | 'free';

/** Requests counted since the server started: by operation name (as S3's API reference names it) and by tier. */
export interface S3RequestCounts {
  byOperation: Record<string, number>;
  byTier: Record<S3RequestTier, number>;
}

/** The tier S3 bills an operation in. */
export function tierOf(operation: string): S3RequestTier {
  if (operation === 'DeleteObject' || operation === 'DeleteObjects' || operation === 'AbortMultipartUpload' || operation === 'DeleteBucket') return 'free';
  if (/^(Put|Copy|Create|Complete|Upload|List)/.test(operation)) return 'putCopyPostList';
  return 'getAndOther';
}

/** The operation a request names (the same reading as the server's routing; an unknown one is counted as itself). */
export function operationOf(method: string, bucket: string, key: string, query: URLSearchParams, copies: boolean): string {
  if (!bucket) return method === 'GET' ? 'ListBuckets' : `${method} service`;
  if (!key) return bucketOperationOf(method, query);
  switch (method) {
    case 'PUT':
      if (query.has('uploadId') || query.has('partNumber')) return copies ? 'UploadPartCopy' : 'UploadPart';
      return copies ? 'CopyObject' : 'PutObject';
    case 'GET':
      if (query.has('uploadId')) return 'ListParts';
      if (query.has('tagging')) return 'GetObjectTagging';
      return 'GetObject';
    case 'HEAD':
      return 'HeadObject';
    case 'DELETE':
      return query.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
    case 'POST':
      return query.has('uploads') ? 'CreateMultipartUpload' : 'CompleteMultipartUpload';
    default:
      return `${method} object`;
  }
}

function bucketOperationOf(method: string, query: URLSearchParams): string {
  switch (method) {
    case 'PUT':
      return query.has('versioning') ? 'PutBucketVersioning' : 'CreateBucket';
    case 'GET':
      if (query.has('versioning')) return 'GetBucketVersioning';
      if (query.has('versions')) return 'ListObjectVersions';
      if (query.has('location')) return 'GetBucketLocation';
      if (query.has('uploads')) return 'ListMultipartUploads';
      return query.get('list-type') === '2' ? 'ListObjectsV2' : 'ListObjects';
    case 'HEAD':
      return 'HeadBucket';
    case 'DELETE':
      return 'DeleteBucket';
    case 'POST':
      return 'DeleteObjects';
    default:
      return `${method} bucket`;
  }
}

/** A running count of requests; `snapshot()` copies it, `since(before)` is what happened after `before`. */
export class S3RequestCounter {
  private readonly counts = new Map<string, number>();

  count(operation: string): void {
    this.counts.set(operation, (this.counts.get(operation) ?? 0) + 1);
  }

  snapshot(): S3RequestCounts {
    return countsOf(new Map(this.counts));
  }

  /** The requests made since `before` (a snapshot of this counter). */
  since(before: S3RequestCounts): S3RequestCounts {
    const after = new Map<string, number>();
    for (const [operation, n] of this.counts) {
      const delta = n - (before.byOperation[operation] ?? 0);
      if (delta > 0) after.set(operation, delta);
    }
    return countsOf(after);
  }
}

function countsOf(counts: Map<string, number>): S3RequestCounts {
  const byTier: Record<S3RequestTier, number> = { putCopyPostList: 0, getAndOther: 0, free: 0 };
  const byOperation: Record<string, number> = {};
  for (const [operation, n] of [...counts].sort(([a], [b]) => a.localeCompare(b))) {
    byOperation[operation] = n;
    byTier[tierOf(operation)] += n;
  }
  return { byOperation, byTier };
}
