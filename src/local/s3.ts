import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import type { Buckets } from '../contracts';

/** Local bucket names, one per role of the deployed stack. */
export const LOCAL_BUCKETS: Buckets = { inbox: 'inbox', staging: 'staging', deadLetter: 'dead-letter', reports: 'reports' };

export interface LocalS3 {
  readonly endpoint: string;
  readonly client: S3Client;
  /** A new client for the same endpoint (the local runner gives each step its own, as Lambdas have). */
  newClient(): S3Client;
  close(): Promise<void>;
}

/**
 * An embedded S3 (s3rver) on a loopback port, its data in a directory of its own (a temporary one unless given),
 * with the stack's buckets created.
 */
export async function startLocalS3(options: { directory?: string; port?: number; host?: string } = {}): Promise<LocalS3> {
  const directory = options.directory ?? mkdtempSync(join(tmpdir(), 'badges-s3-'));
  const server = new S3rver({ address: options.host ?? '127.0.0.1', port: options.port ?? 0, silent: true, directory, allowMismatchedSignatures: true });
  const address = await server.run();
  const endpoint = `http://${options.host ?? '127.0.0.1'}:${address.port}`;
  const newClient = () =>
    new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  const client = newClient();
  for (const name of Object.values(LOCAL_BUCKETS)) await client.send(new CreateBucketCommand({ Bucket: name })).catch(() => undefined);
  return {
    endpoint,
    client,
    newClient,
    async close() {
      client.destroy();
      await server.close();
      if (!options.directory) rmSync(directory, { recursive: true, force: true });
    },
  };
}
