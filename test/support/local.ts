import { type Sandbox, type SandboxSettings, startSandbox } from '../../src/api/sandbox';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from '../../src/local/s3';

/** The local stand-ins most workflow tests share: an embedded S3 and the API sandbox. */
export interface LocalServices {
  s3: LocalS3;
  sandbox: Sandbox;
}

export async function startLocalServices(settings: SandboxSettings): Promise<LocalServices> {
  return { s3: await startLocalS3(), sandbox: await startSandbox(settings) };
}

export async function stopLocalServices({ s3, sandbox }: LocalServices): Promise<void> {
  await sandbox.close();
  await s3.close();
}

/** Puts bytes under a key of the local inbox, as a vendor's upload would; returns the version S3 gave them. */
export async function deliverToInbox(s3: LocalS3, key: string, body: string | Buffer): Promise<string | undefined> {
  return (await s3.client.send(new PutObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: body }))).VersionId;
}
