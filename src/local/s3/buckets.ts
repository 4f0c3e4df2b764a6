import { receiveToBuffer } from './body';
import { authorize, bucketArn, type Call, OWNER, type S3Context, sendEmpty, sendXml } from './call';
import { S3Errors } from './errors';
import { textOf } from './xml';

// Buckets: the service listing, create, head, delete, versioning and location.

export async function listBuckets(s3: S3Context, call: Call): Promise<void> {
  await authorize(s3, call, 's3:ListAllMyBuckets', '*');
  sendXml(call, 'ListAllMyBucketsResult', {
    Owner: OWNER,
    Buckets: { Bucket: s3.store.bucketNames().map(({ name, created }) => ({ Name: name, CreationDate: created })) },
  });
}

export async function createBucket(s3: S3Context, call: Call): Promise<void> {
  await authorize(s3, call, 's3:CreateBucket', bucketArn(call.bucket));
  await receiveToBuffer(call.req);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(call.bucket) || call.bucket.includes('..')) throw S3Errors.invalidBucketName(call.bucket);
  s3.store.createBucket(call.bucket);
  sendEmpty(call, 200, { Location: `/${call.bucket}` });
}

export async function putBucketVersioning(s3: S3Context, call: Call): Promise<void> {
  await authorize(s3, call, 's3:PutBucketVersioning', bucketArn(call.bucket));
  const xml = (await receiveToBuffer(call.req)).toString('utf8');
  const status = textOf(xml, 'Status');
  if (status !== 'Enabled' && status !== 'Suspended') throw S3Errors.malformedXml();
  if (!s3.store.hasBucket(call.bucket)) throw S3Errors.noSuchBucket(call.bucket);
  s3.store.setVersioning(call.bucket, status);
  sendEmpty(call, 200);
}

export async function getBucketVersioning(s3: S3Context, call: Call): Promise<void> {
  await authorize(s3, call, 's3:GetBucketVersioning', bucketArn(call.bucket));
  const status = s3.store.versioning(call.bucket);
  sendXml(call, 'VersioningConfiguration', { Status: status });
}

export async function getBucketLocation(s3: S3Context, call: Call): Promise<void> {
  await authorize(s3, call, 's3:GetBucketLocation', bucketArn(call.bucket));
  if (!s3.store.hasBucket(call.bucket)) throw S3Errors.noSuchBucket(call.bucket);
  sendXml(call, 'LocationConstraint', '');
}

export async function headBucket(s3: S3Context, call: Call): Promise<void> {
  await authorize(s3, call, 's3:ListBucket', bucketArn(call.bucket));
  if (!s3.store.hasBucket(call.bucket)) throw S3Errors.noSuchBucket(call.bucket);
  sendEmpty(call, 200, { 'x-amz-bucket-region': 'us-east-1' });
}

export async function deleteBucket(s3: S3Context, call: Call): Promise<void> {
  await authorize(s3, call, 's3:DeleteBucket', bucketArn(call.bucket));
  s3.store.deleteBucket(call.bucket);
  sendEmpty(call, 204);
}
