/**
 * Completes an eleven-part upload on the local S3 and prints, as JSON, the warnings the process emitted and whether
 * the object reads back as the parts in order. test/local-s3.test.ts runs it in a child process: Jest gives each test
 * file its own copy of `process`, so a MaxListenersExceededWarning never reaches a listener set inside a test.
 */
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, GetObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { LOCAL_BUCKETS, startLocalS3 } from '../../src/local/s3';

const MIB = 1024 * 1024;

async function main(): Promise<void> {
  const warnings: string[] = [];
  process.on('warning', (warning) => warnings.push(`${warning.name}: ${warning.message}`));
  const s3 = await startLocalS3();
  try {
    const Bucket = LOCAL_BUCKETS.staging;
    const Key = 'probe/eleven-parts';
    const bodies = [...Array.from({ length: 10 }, (_, i) => Buffer.alloc(5 * MIB, i)), Buffer.from('tail')];
    const { UploadId } = await s3.client.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    const parts = [];
    for (const [index, Body] of bodies.entries()) {
      const { ETag } = await s3.client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: index + 1, Body }));
      parts.push({ ETag, PartNumber: index + 1 });
    }
    await s3.client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
    const stored = Buffer.from(await (await s3.client.send(new GetObjectCommand({ Bucket, Key }))).Body!.transformToByteArray());
    await new Promise((resolve) => setImmediate(resolve));
    console.log(JSON.stringify({ warnings, joinedInOrder: stored.equals(Buffer.concat(bodies)) }));
  } finally {
    await s3.close();
  }
}

void main();
