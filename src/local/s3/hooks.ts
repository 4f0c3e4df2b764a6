// The contract between the local S3 and its host: the IAM question it asks, and the event it announces after a write.

/** What the local S3 asks its `authorize` hook: one IAM action on one resource, as AWS evaluates it. */
export interface AuthorizationRequest {
  /** From the SigV4 `Credential` (header or presigned query); '' for an unsigned request. */
  readonly accessKeyId: string;
  /** e.g. `s3:GetObject`. */
  readonly action: string;
  /** `arn:aws:s3:::bucket/key`, `arn:aws:s3:::bucket`, or `*` (ListAllMyBuckets). */
  readonly resource: string;
  /** Condition keys: `aws:SecureTransport`, `aws:SourceIp`, `s3:prefix`… (see docs/local-twin.md, "The embedded S3"). */
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
