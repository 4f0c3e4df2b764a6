import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import type { Buckets } from '../contracts';
import { type Authorize, LocalS3Server, type ObjectCreatedEvent } from './s3/server';
import type { S3RequestCounter } from './s3/requests';

export type { AuthorizationDecision, AuthorizationRequest, Authorize, ObjectCreatedEvent } from './s3/server';
export type { S3RequestCounts, S3RequestTier } from './s3/requests';

/** Local bucket names, one per role of the deployed stack. */
export const LOCAL_BUCKETS: Buckets = { inbox: 'inbox', staging: 'staging', deadLetter: 'dead-letter', reports: 'reports' };

/** The buckets the stack versions: the inbox (each run reads the version its trigger saw), dead letters, reports. */
export const VERSIONED_BUCKETS: readonly string[] = [LOCAL_BUCKETS.inbox, LOCAL_BUCKETS.deadLetter, LOCAL_BUCKETS.reports];

export interface LocalS3 {
  readonly endpoint: string;
  readonly client: S3Client;
  /** A new client for the same endpoint (the local runner gives each step its own, as Lambdas have). */
  newClient(): S3Client;
  /** The requests it answered, by operation and billing tier (what a local run's counts are taken from). */
  readonly requests: S3RequestCounter;
  close(): Promise<void>;
}

export interface LocalS3Options {
  /** Where objects live; kept across restarts. @default a temporary directory, removed on close */
  directory?: string;
  /** @default 0 (any free port) */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** Buckets created with versioning enabled. @default {@link VERSIONED_BUCKETS} */
  versionedBuckets?: readonly string[];
  /** Decides each request as IAM would. @default the stack's IAM for the keys the twin issues (authorizeTwinRequest) */
  authorize?: Authorize;
  /** Called after each stored PutObject, CompleteMultipartUpload and CopyObject, before the answer. */
  onObjectCreated?: (event: ObjectCreatedEvent) => void | Promise<void>;
  /** Largest CopyObject source. @default 5368709120 (S3's 5 GiB) */
  copySourceMaxBytes?: number;
}

/**
 * The stack's IAM, loaded on the first request: `./iam` brings in the twin's synthesis (which runs the CDK app in a
 * child process), which code that only needs LOCAL_BUCKETS (a stage bundled for a benchmark) must not load.
 */
const authorizeTwinRequestLazily: Authorize = (request) => {
  // A require, not import(): the CLI runs under tsx, whose import() of an extensionless path fails, and jest under ts-jest.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const iam = require('./iam') as { authorizeTwinRequest: Authorize };
  return iam.authorizeTwinRequest(request);
};

/**
 * An embedded S3 on a loopback port (our own strict server, see src/local/s3/server.ts), its data in a directory of
 * its own (a temporary one unless given), with the stack's buckets created and versioned as the stack has them.
 */
export async function startLocalS3(options: LocalS3Options = {}): Promise<LocalS3> {
  const directory = options.directory ?? mkdtempSync(join(tmpdir(), 'badges-s3-'));
  const host = options.host ?? '127.0.0.1';
  const server = new LocalS3Server({
    directory,
    // Held to the stack's IAM: each function's container signs with a key naming its role (the operator's key is free).
    authorize: options.authorize ?? authorizeTwinRequestLazily,
    ...(options.onObjectCreated ? { onObjectCreated: options.onObjectCreated } : {}),
    ...(options.copySourceMaxBytes !== undefined ? { copySourceMaxBytes: options.copySourceMaxBytes } : {}),
  });
  const versioned = new Set(options.versionedBuckets ?? VERSIONED_BUCKETS);
  for (const name of new Set([...Object.values(LOCAL_BUCKETS), ...versioned])) server.ensureBucket(name, versioned.has(name));
  const address = await server.listen(options.port ?? 0, host);
  const endpoint = `http://${host}:${address.port}`;
  const newClient = () =>
    new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  const client = newClient();
  return {
    endpoint,
    client,
    newClient,
    requests: server.requests,
    async close() {
      client.destroy();
      await server.close();
      if (!options.directory) rmSync(directory, { recursive: true, force: true });
    },
  };
}
