import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { type AuthorizationRequest, type LocalS3, type ObjectCreatedEvent, startLocalS3 } from '../src/local/s3';
import { walkListing } from '../src/local/s3/listing';
import { failure } from './support/s3-errors';

const MIB = 1024 * 1024;


async function text(client: S3Client, bucket: string, key: string, versionId?: string): Promise<string> {
  const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
  return response.Body!.transformToString();
}

/** A multipart upload of `parts` (each but the last at least 5 MiB, as S3 requires), not yet completed. */
async function uploadParts(client: S3Client, bucket: string, key: string, parts: Buffer[]): Promise<{ uploadId: string; etags: string[] }> {
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  const etags: string[] = [];
  for (const [index, body] of parts.entries()) {
    const { ETag } = await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: index + 1, Body: body }));
    etags.push(ETag!);
  }
  return { uploadId: UploadId!, etags };
}

const completion = (etags: string[]) => ({ Parts: etags.map((ETag, index) => ({ ETag, PartNumber: index + 1 })) });

describe('Function: startLocalS3', () => {
  let s3: LocalS3;
  beforeAll(async () => {
    s3 = await startLocalS3();
  });
  afterAll(async () => {
    await s3.close();
  });

  describe('request counts', () => {
    it('counts each request by operation and by the tier S3 bills it in', async () => {
      // Prepare
      const before = s3.requests.snapshot();
      const { client } = s3;

      // Act: a put, a copy, a list (PUT/COPY/POST/LIST tier), a get and a head (GET and other), a delete (free).
      await client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'counted/a', Body: 'a' }));
      await client.send(new CopyObjectCommand({ Bucket: 'staging', Key: 'counted/b', CopySource: 'staging/counted/a' }));
      await client.send(new ListObjectsV2Command({ Bucket: 'staging', Prefix: 'counted/' }));
      await (await client.send(new GetObjectCommand({ Bucket: 'staging', Key: 'counted/a' }))).Body?.transformToString();
      await client.send(new HeadObjectCommand({ Bucket: 'staging', Key: 'counted/b' }));
      await client.send(new DeleteObjectCommand({ Bucket: 'staging', Key: 'counted/b' }));
      const counted = s3.requests.since(before);

      // Assess
      expect(counted.byOperation).toEqual({ CopyObject: 1, DeleteObject: 1, GetObject: 1, HeadObject: 1, ListObjectsV2: 1, PutObject: 1 });
      expect(counted.byTier).toEqual({ putCopyPostList: 3, getAndOther: 2, free: 1 });
    });
  });

  describe('versioning', () => {
    it('creates the inbox, dead-letter and reports buckets versioned and the others unversioned', async () => {
      // Prepare
      const ask = (Bucket: string) => s3.client.send(new GetBucketVersioningCommand({ Bucket }));

      // Act
      const statuses = await Promise.all(['inbox', 'dead-letter', 'reports', 'staging'].map(async (bucket) => (await ask(bucket)).Status));

      // Assess
      expect(statuses).toEqual(['Enabled', 'Enabled', 'Enabled', undefined]);
    });

    it('gives each write a VersionId and reads every version back by it', async () => {
      // Prepare
      const first = await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'v/one.csv', Body: 'first' }));

      // Act
      const second = await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'v/one.csv', Body: 'second' }));

      // Assess
      expect(first.VersionId).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(second.VersionId).not.toBe(first.VersionId);
      expect(await text(s3.client, 'inbox', 'v/one.csv', first.VersionId)).toBe('first');
      expect(await text(s3.client, 'inbox', 'v/one.csv')).toBe('second');
      const head = await s3.client.send(new HeadObjectCommand({ Bucket: 'inbox', Key: 'v/one.csv', VersionId: first.VersionId }));
      expect(head.ContentLength).toBe(5);
      expect(head.VersionId).toBe(first.VersionId);
    });

    it('answers no VersionId in a bucket that was never versioned, and turns versioning on when asked', async () => {
      // Prepare
      await s3.client.send(new CreateBucketCommand({ Bucket: 'plain' }));
      const before = await s3.client.send(new PutObjectCommand({ Bucket: 'plain', Key: 'k', Body: 'a' }));

      // Act
      await s3.client.send(new PutBucketVersioningCommand({ Bucket: 'plain', VersioningConfiguration: { Status: 'Enabled' } }));
      const after = await s3.client.send(new PutObjectCommand({ Bucket: 'plain', Key: 'k', Body: 'b' }));

      // Assess
      expect(before.VersionId).toBeUndefined();
      expect(after.VersionId).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(await text(s3.client, 'plain', 'k', 'null')).toBe('a');
    });

    it('adds a delete marker for a DeleteObject without versionId, and removes a version for good with one', async () => {
      // Prepare
      const put = await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'v/del.csv', Body: 'x' }));

      // Act
      const marker = await s3.client.send(new DeleteObjectCommand({ Bucket: 'inbox', Key: 'v/del.csv' }));
      const missing = await failure(s3.client.send(new GetObjectCommand({ Bucket: 'inbox', Key: 'v/del.csv' })));
      const kept = await text(s3.client, 'inbox', 'v/del.csv', put.VersionId);
      const removal = await s3.client.send(new DeleteObjectCommand({ Bucket: 'inbox', Key: 'v/del.csv', VersionId: put.VersionId }));
      const gone = await failure(s3.client.send(new GetObjectCommand({ Bucket: 'inbox', Key: 'v/del.csv', VersionId: put.VersionId })));

      // Assess
      expect(marker.DeleteMarker).toBe(true);
      expect(marker.VersionId).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(missing).toMatchObject({ name: 'NoSuchKey', status: 404 });
      expect(kept).toBe('x');
      expect(removal.VersionId).toBe(put.VersionId);
      expect(gone).toMatchObject({ name: 'NoSuchVersion', status: 404 });
    });

    it('lists versions and delete markers, newest first, with IsLatest, page by page', async () => {
      // Prepare
      const a1 = await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'list/a', Body: '1' }));
      const a2 = await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'list/a', Body: '22' }));
      const marker = await s3.client.send(new DeleteObjectCommand({ Bucket: 'inbox', Key: 'list/b' }));

      // Act
      const page1 = await s3.client.send(new ListObjectVersionsCommand({ Bucket: 'inbox', Prefix: 'list/', MaxKeys: 1 }));
      const page2 = await s3.client.send(
        new ListObjectVersionsCommand({ Bucket: 'inbox', Prefix: 'list/', KeyMarker: page1.NextKeyMarker, VersionIdMarker: page1.NextVersionIdMarker }),
      );

      // Assess
      expect(page1.IsTruncated).toBe(true);
      expect(page1.Versions?.map((v) => [v.Key, v.VersionId, v.IsLatest, v.Size])).toEqual([['list/a', a2.VersionId, true, 2]]);
      expect(page2.Versions?.map((v) => [v.Key, v.VersionId, v.IsLatest])).toEqual([['list/a', a1.VersionId, false]]);
      expect(page2.DeleteMarkers?.map((m) => [m.Key, m.VersionId, m.IsLatest])).toEqual([['list/b', marker.VersionId, true]]);
      expect(page2.IsTruncated).toBe(false);
    });

    it('returns the VersionId of a completed multipart upload and of a copy, and copies a given source version', async () => {
      // Prepare
      const old = await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'v/src', Body: 'old' }));
      await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'v/src', Body: 'new' }));
      const { uploadId, etags } = await uploadParts(s3.client, 'reports', 'v/multi', [Buffer.alloc(5 * MIB, 1), Buffer.from('tail')]);

      // Act
      const completed = await s3.client.send(new CompleteMultipartUploadCommand({ Bucket: 'reports', Key: 'v/multi', UploadId: uploadId, MultipartUpload: completion(etags) }));
      const copy = await s3.client.send(new CopyObjectCommand({ Bucket: 'dead-letter', Key: 'v/copy', CopySource: `inbox/v/src?versionId=${old.VersionId}` }));

      // Assess
      expect(completed.VersionId).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(completed.ETag).toMatch(/^"[0-9a-f]{32}-2"$/);
      expect(copy.VersionId).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(copy.CopySourceVersionId).toBe(old.VersionId);
      expect(await text(s3.client, 'dead-letter', 'v/copy')).toBe('old');
    });
  });

  describe('conditional writes', () => {
    it('refuses a PutObject with If-None-Match * over an existing object (412), and allows it after a delete marker', async () => {
      // Prepare
      await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'c/claim', Body: 'mine' }));

      // Act
      const refused = await failure(s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'c/claim', Body: 'yours', IfNoneMatch: '*' })));
      await s3.client.send(new DeleteObjectCommand({ Bucket: 'inbox', Key: 'c/claim' }));
      const allowed = await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'c/claim', Body: 'again', IfNoneMatch: '*' }));

      // Assess
      expect(refused).toMatchObject({ name: 'PreconditionFailed', status: 412 });
      expect(allowed.VersionId).toBeDefined();
      expect(await text(s3.client, 'inbox', 'c/claim')).toBe('again');
    });

    it('lets exactly one of twenty concurrent If-None-Match puts of a key win', async () => {
      // Prepare
      const attempts = Array.from({ length: 20 }, (_, i) => s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'c/race', Body: `writer ${i}`, IfNoneMatch: '*' })));

      // Act
      const outcomes = await Promise.allSettled(attempts);

      // Assess
      const winners = outcomes.flatMap((outcome, i) => (outcome.status === 'fulfilled' ? [i] : []));
      expect(winners).toHaveLength(1);
      expect(outcomes.filter((outcome) => outcome.status === 'rejected').map((outcome) => (outcome.reason as Error).name)).toEqual(Array(19).fill('PreconditionFailed'));
      expect(await text(s3.client, 'staging', 'c/race')).toBe(`writer ${winners[0]}`);
    });

    it('checks If-Match against the current ETag, and answers NoSuchKey when there is no object', async () => {
      // Prepare
      const put = await s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'c/match', Body: 'v1' }));

      // Act
      const stale = await failure(s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'c/match', Body: 'v2', IfMatch: '"00000000000000000000000000000000"' })));
      const fresh = await s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'c/match', Body: 'v2', IfMatch: put.ETag }));
      const none = await failure(s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'c/none', Body: 'v', IfMatch: put.ETag })));

      // Assess
      expect(stale).toMatchObject({ name: 'PreconditionFailed', status: 412 });
      expect(fresh.ETag).not.toBe(put.ETag);
      expect(none).toMatchObject({ name: 'NoSuchKey', status: 404 });
    });

    it('refuses a CompleteMultipartUpload with If-None-Match * over an existing object', async () => {
      // Prepare
      await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'c/multi', Body: 'there' }));
      const { uploadId, etags } = await uploadParts(s3.client, 'inbox', 'c/multi', [Buffer.from('only part')]);

      // Act
      const refused = await failure(
        s3.client.send(new CompleteMultipartUploadCommand({ Bucket: 'inbox', Key: 'c/multi', UploadId: uploadId, MultipartUpload: completion(etags), IfNoneMatch: '*' })),
      );

      // Assess
      expect(refused).toMatchObject({ name: 'PreconditionFailed', status: 412 });
      expect(await text(s3.client, 'inbox', 'c/multi')).toBe('there');
    });

    it('answers GetObject If-None-Match with 304 and If-Match with 412', async () => {
      // Prepare
      const put = await s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'c/get', Body: 'body' }));

      // Act
      const notModified = await failure(s3.client.send(new GetObjectCommand({ Bucket: 'staging', Key: 'c/get', IfNoneMatch: put.ETag })));
      const failed = await failure(s3.client.send(new HeadObjectCommand({ Bucket: 'staging', Key: 'c/get', IfMatch: '"ffffffffffffffffffffffffffffffff"' })));
      const matched = await text(s3.client, 'staging', 'c/get');

      // Assess
      expect(notModified.status).toBe(304);
      expect(failed.status).toBe(412);
      expect(matched).toBe('body');
    });
  });

  describe('requests S3 refuses', () => {
    it('refuses a copy source over copySourceMaxBytes with InvalidRequest, as S3 does over 5 GB', async () => {
      // Prepare
      const small = await startLocalS3({ copySourceMaxBytes: 10 });
      await small.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'big', Body: 'eleven byte' }));
      await small.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'fits', Body: 'ten bytes!' }));

      // Act
      const refused = await failure(small.client.send(new CopyObjectCommand({ Bucket: 'staging', Key: 'copy', CopySource: 'staging/big' })));
      const copied = await small.client.send(new CopyObjectCommand({ Bucket: 'staging', Key: 'copy', CopySource: 'staging/fits' }));
      await small.close();

      // Assess
      expect(refused).toEqual({
        name: 'InvalidRequest',
        status: 400,
        message: 'The specified copy source is larger than the maximum allowable size for a copy source: 10',
      });
      expect(copied.CopyObjectResult?.ETag).toBeDefined();
    });

    it('copies a range of a larger source into a part (UploadPartCopy), the way past the copy limit', async () => {
      // Prepare
      const small = await startLocalS3({ copySourceMaxBytes: 6 * MIB });
      const source = Buffer.alloc(7 * MIB, 7);
      source.write('end', 7 * MIB - 3);
      await small.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'src', Body: source }));
      const { UploadId } = await small.client.send(new CreateMultipartUploadCommand({ Bucket: 'staging', Key: 'dst' }));

      // Act
      const whole = await failure(small.client.send(new UploadPartCopyCommand({ Bucket: 'staging', Key: 'dst', UploadId, PartNumber: 1, CopySource: 'staging/src' })));
      const first = await small.client.send(
        new UploadPartCopyCommand({ Bucket: 'staging', Key: 'dst', UploadId, PartNumber: 1, CopySource: 'staging/src', CopySourceRange: `bytes=0-${5 * MIB - 1}` }),
      );
      const second = await small.client.send(
        new UploadPartCopyCommand({ Bucket: 'staging', Key: 'dst', UploadId, PartNumber: 2, CopySource: 'staging/src', CopySourceRange: `bytes=${5 * MIB}-${7 * MIB - 1}` }),
      );
      const parts = await small.client.send(new ListPartsCommand({ Bucket: 'staging', Key: 'dst', UploadId }));
      await small.client.send(
        new CompleteMultipartUploadCommand({ Bucket: 'staging', Key: 'dst', UploadId, MultipartUpload: completion([first.CopyPartResult!.ETag!, second.CopyPartResult!.ETag!]) }),
      );
      const copy = await small.client.send(new GetObjectCommand({ Bucket: 'staging', Key: 'dst' }));
      const bytes = Buffer.from(await copy.Body!.transformToByteArray());
      await small.close();

      // Assess
      expect(whole).toMatchObject({ name: 'InvalidRequest', status: 400 });
      expect(parts.Parts?.map((part) => part.Size)).toEqual([5 * MIB, 2 * MIB]);
      expect(bytes.equals(source)).toBe(true);
    });

    it('completes an upload of more than ten parts without a listener leak warning, the parts joined in order', async () => {
      // Prepare: joining each part into one file stream used to add listeners to that stream per part.
      const root = join(__dirname, '..');

      // Act
      const { stdout } = await promisify(execFile)(join(root, 'node_modules', '.bin', 'tsx'), [join(__dirname, 'support', 'multipart-listeners-probe.ts')], { cwd: root, encoding: 'utf8' });
      const probe = JSON.parse(stdout.trim().split('\n').pop()!) as { warnings: string[]; joinedInOrder: boolean };

      // Assess
      expect(probe.warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
      expect(probe.joinedInOrder).toBe(true);
    });

    it('refuses to complete an upload whose parts (but the last) are under 5 MiB', async () => {
      // Prepare
      const { uploadId, etags } = await uploadParts(s3.client, 'staging', 'r/tiny', [Buffer.from('a'), Buffer.from('b')]);

      // Act
      const refused = await failure(s3.client.send(new CompleteMultipartUploadCommand({ Bucket: 'staging', Key: 'r/tiny', UploadId: uploadId, MultipartUpload: completion(etags) })));

      // Assess
      expect(refused).toMatchObject({ name: 'EntityTooSmall', status: 400 });
    });

    it('answers 416 InvalidRange for a range of an empty object, and 206 for a range of a full one', async () => {
      // Prepare
      await s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'r/empty', Body: '' }));
      await s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'r/full', Body: '0123456789' }));

      // Act
      const empty = await failure(s3.client.send(new GetObjectCommand({ Bucket: 'staging', Key: 'r/empty', Range: 'bytes=0-99' })));
      const part = await s3.client.send(new GetObjectCommand({ Bucket: 'staging', Key: 'r/full', Range: 'bytes=2-4' }));

      // Assess
      expect(empty).toMatchObject({ name: 'InvalidRange', status: 416 });
      expect(part.ContentRange).toBe('bytes 2-4/10');
      expect(await part.Body!.transformToString()).toBe('234');
    });

    it('refuses a body whose flexible checksum does not match (BadDigest)', async () => {
      // Prepare
      const command = new PutObjectCommand({ Bucket: 'staging', Key: 'r/crc', Body: 'payload', ChecksumCRC32: 'AAAAAA==' });

      // Act
      const refused = await failure(s3.client.send(command));

      // Assess
      expect(refused).toMatchObject({ name: 'BadDigest', status: 400 });
      expect(await failure(s3.client.send(new HeadObjectCommand({ Bucket: 'staging', Key: 'r/crc' })))).toMatchObject({ name: 'NotFound' });
    });
  });

  describe('listing and streamed bodies', () => {
    it('lists with prefix, delimiter, start-after and continuation as S3 does', async () => {
      // Prepare
      for (const key of ['l/a/1', 'l/a/2', 'l/b', 'l/c/1', 'l/d']) await s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: key, Body: key }));
      const page = (token?: string) => s3.client.send(new ListObjectsV2Command({ Bucket: 'staging', Prefix: 'l/', Delimiter: '/', MaxKeys: 2, ContinuationToken: token }));

      // Act
      const pages = [await page()];
      while (pages[pages.length - 1]!.IsTruncated) pages.push(await page(pages[pages.length - 1]!.NextContinuationToken));
      const after = await s3.client.send(new ListObjectsV2Command({ Bucket: 'staging', Prefix: 'l/', StartAfter: 'l/b' }));

      // Assess
      expect(pages.map((p) => [...(p.CommonPrefixes ?? []).map((c) => c.Prefix), ...(p.Contents ?? []).map((c) => c.Key)])).toEqual([
        ['l/a/', 'l/b'],
        ['l/c/', 'l/d'],
      ]);
      expect(after.Contents?.map((c) => c.Key)).toEqual(['l/c/1', 'l/d']);
    });

    it('orders keys by their UTF-8 bytes, as S3 does, not by JavaScript string order', async () => {
      // Prepare: U+1F600 sorts before U+E000 in UTF-16, after it in UTF-8.
      const keys = ['u/\u{1F600}', 'u/\uE000', 'u/z'];
      for (const key of keys) await s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: key, Body: 'x' }));

      // Act
      const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: 'staging', Prefix: 'u/' }));

      // Assess
      expect(listed.Contents?.map((c) => c.Key)).toEqual(['u/z', 'u/\uE000', 'u/\u{1F600}']);
    });

    it('takes a streamed body of unknown length through lib-storage (aws-chunked with trailing checksums)', async () => {
      // Prepare
      const body = new PassThrough();
      const upload = new Upload({ client: s3.client, params: { Bucket: 'staging', Key: 's/streamed', Body: body } });
      const done = upload.done();

      // Act
      for (let i = 0; i < 11; i++) body.write(Buffer.alloc(MIB, i));
      body.end();
      await done;
      const head = await s3.client.send(new HeadObjectCommand({ Bucket: 'staging', Key: 's/streamed' }));

      // Assess
      expect(head.ContentLength).toBe(11 * MIB);
      expect(head.ETag).toMatch(/-3"$/);
    });

    it('deletes several keys at once (DeleteObjects), adding delete markers in a versioned bucket', async () => {
      // Prepare
      await s3.client.send(new PutObjectCommand({ Bucket: 'reports', Key: 'd/1', Body: '1' }));
      await s3.client.send(new PutObjectCommand({ Bucket: 'reports', Key: 'd/2', Body: '2' }));

      // Act
      const result = await s3.client.send(new DeleteObjectsCommand({ Bucket: 'reports', Delete: { Objects: [{ Key: 'd/1' }, { Key: 'd/2' }] } }));
      const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: 'reports', Prefix: 'd/' }));

      // Assess
      expect(result.Deleted?.map((d) => [d.Key, d.DeleteMarker])).toEqual([
        ['d/1', true],
        ['d/2', true],
      ]);
      expect(listed.KeyCount).toBe(0);
    });
  });
});

describe('Function: startLocalS3 with authorize', () => {
  const requests: AuthorizationRequest[] = [];
  let s3: LocalS3;
  let allowList = true;
  beforeAll(async () => {
    s3 = await startLocalS3({
      authorize: (request) => {
        requests.push(request);
        if (request.accessKeyId === 'S3RVER') return { allowed: true };
        if (request.action === 's3:ListBucket' && allowList) return { allowed: true };
        if (request.action === 's3:GetObject' || request.action === 's3:GetObjectVersion') return { allowed: true };
        return {
          allowed: false,
          message: `User: arn:aws:sts::000000000000:assumed-role/reader/fn is not authorized to perform: ${request.action} on resource: "${request.resource}" because no identity-based policy allows the ${request.action} action`,
        };
      },
    });
  });
  afterAll(async () => {
    await s3.close();
  });
  beforeEach(() => {
    requests.length = 0;
    allowList = true;
  });
  const reader = () => {
    const client = s3.newClient();
    client.config.credentials = () => Promise.resolve({ accessKeyId: 'READER', secretAccessKey: 'x' });
    return client;
  };

  it('asks for the IAM action, resource and context of each request, with the caller’s access key', async () => {
    // Prepare
    const put = await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'a/k', Body: 'x' }));

    // Act
    await reader().send(new GetObjectCommand({ Bucket: 'inbox', Key: 'a/k', VersionId: put.VersionId }));
    await reader().send(new ListObjectsV2Command({ Bucket: 'inbox', Prefix: 'a/' }));

    // Assess
    expect(requests.map(({ accessKeyId, action, resource }) => [accessKeyId, action, resource])).toEqual([
      ['S3RVER', 's3:PutObject', 'arn:aws:s3:::inbox/a/k'],
      ['READER', 's3:GetObjectVersion', 'arn:aws:s3:::inbox/a/k'],
      ['READER', 's3:ListBucket', 'arn:aws:s3:::inbox'],
    ]);
    expect(requests[1]!.context).toMatchObject({ 'aws:SecureTransport': 'true', 'aws:SourceIp': '127.0.0.1', 'aws:RequestedRegion': 'us-east-1', 's3:VersionId': put.VersionId });
    expect(requests[2]!.context).toMatchObject({ 's3:prefix': 'a/' });
  });

  it('answers a denial with 403 AccessDenied and the hook’s message', async () => {
    // Prepare
    const client = reader();

    // Act
    const denied = await failure(client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'a/denied', Body: 'x' })));

    // Assess
    expect(denied).toEqual({
      name: 'AccessDenied',
      status: 403,
      message:
        'User: arn:aws:sts::000000000000:assumed-role/reader/fn is not authorized to perform: s3:PutObject on resource: "arn:aws:s3:::inbox/a/denied" because no identity-based policy allows the s3:PutObject action',
    });
  });

  it('asks for PutObject on the copy target and GetObject on its source', async () => {
    // Prepare
    await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'a/src', Body: 'x' }));
    requests.length = 0;

    // Act
    await s3.client.send(new CopyObjectCommand({ Bucket: 'staging', Key: 'a/dst', CopySource: 'inbox/a/src' }));

    // Assess
    expect(requests.map(({ action, resource }) => [action, resource])).toEqual([
      ['s3:PutObject', 'arn:aws:s3:::staging/a/dst'],
      ['s3:GetObject', 'arn:aws:s3:::inbox/a/src'],
    ]);
  });

  it('answers a missing key 404 to a caller allowed s3:ListBucket, and 403 AccessDenied to one that is not', async () => {
    // Prepare
    const client = reader();

    // Act
    const listed = await failure(client.send(new GetObjectCommand({ Bucket: 'inbox', Key: 'a/missing' })));
    const headListed = await failure(client.send(new HeadObjectCommand({ Bucket: 'inbox', Key: 'a/missing' })));
    allowList = false;
    const unlisted = await failure(client.send(new GetObjectCommand({ Bucket: 'inbox', Key: 'a/missing' })));
    const headUnlisted = await failure(client.send(new HeadObjectCommand({ Bucket: 'inbox', Key: 'a/missing' })));

    // Assess
    expect(listed).toMatchObject({ name: 'NoSuchKey', status: 404 });
    expect(headListed).toMatchObject({ name: 'NotFound', status: 404 });
    expect(unlisted).toMatchObject({ name: 'AccessDenied', status: 403 });
    expect(headUnlisted.status).toBe(403);
    expect(requests.find((request) => request.action === 's3:ListBucket')).toMatchObject({ resource: 'arn:aws:s3:::inbox', context: { 's3:prefix': 'a/missing' } });
  });
});

describe('Function: startLocalS3 onObjectCreated', () => {
  it('reports each PutObject, CompleteMultipartUpload and CopyObject with what the Object Created event carries', async () => {
    // Prepare
    const events: ObjectCreatedEvent[] = [];
    const s3 = await startLocalS3({ onObjectCreated: (event) => void events.push(event) });

    // Act
    const put = await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'e/put', Body: 'hello' }));
    const { uploadId, etags } = await uploadParts(s3.client, 'staging', 'e/multi', [Buffer.from('part')]);
    await s3.client.send(new CompleteMultipartUploadCommand({ Bucket: 'staging', Key: 'e/multi', UploadId: uploadId, MultipartUpload: completion(etags) }));
    const copy = await s3.client.send(new CopyObjectCommand({ Bucket: 'reports', Key: 'e/copy', CopySource: 'inbox/e/put' }));
    await failure(s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'e/put', Body: 'again', IfNoneMatch: '*' })));
    await s3.close();

    // Assess
    expect(events.map(({ bucket, key, size, etag, versionId, reason, requester }) => ({ bucket, key, size, etag, versionId, reason, requester }))).toEqual([
      { bucket: 'inbox', key: 'e/put', size: 5, etag: '5d41402abc4b2a76b9719d911017c592', versionId: put.VersionId, reason: 'PutObject', requester: 'S3RVER' },
      { bucket: 'staging', key: 'e/multi', size: 4, etag: expect.stringMatching(/-1$/), versionId: undefined, reason: 'CompleteMultipartUpload', requester: 'S3RVER' },
      { bucket: 'reports', key: 'e/copy', size: 5, etag: '5d41402abc4b2a76b9719d911017c592', versionId: copy.VersionId, reason: 'CopyObject', requester: 'S3RVER' },
    ]);
    const sequencers = events.map((event) => event.sequencer);
    expect([...sequencers].sort()).toEqual(sequencers);
  });
});

describe('Function: startLocalS3 with a directory', () => {
  it('keeps objects, versions and metadata across a restart', async () => {
    // Prepare
    const directory = mkdtempSync(join(tmpdir(), 'local-s3-test-'));
    const first = await startLocalS3({ directory });
    const v1 = await first.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'p/k', Body: 'one', Metadata: { origin: 'vendor' }, ContentType: 'text/csv' }));
    await first.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'p/k', Body: 'two' }));
    await first.close();

    // Act
    const second = await startLocalS3({ directory });
    const old = await second.client.send(new GetObjectCommand({ Bucket: 'inbox', Key: 'p/k', VersionId: v1.VersionId }));
    const oldBody = await old.Body!.transformToString();
    const latest = await text(second.client, 'inbox', 'p/k');
    const versions = await second.client.send(new ListObjectVersionsCommand({ Bucket: 'inbox', Prefix: 'p/' }));
    await second.close();
    rmSync(directory, { recursive: true, force: true });

    // Assess
    expect([oldBody, old.Metadata, old.ContentType]).toEqual(['one', { origin: 'vendor' }, 'text/csv']);
    expect(latest).toBe('two');
    expect(versions.Versions).toHaveLength(2);
  });
});

describe('Function: walkListing', () => {
  const keys = ['a/1', 'a/2', 'b', 'c/1', 'c/2', 'd'];
  const everyKey = { entriesOf: (key: string) => [key] };
  const listed = (page: ReturnType<typeof walkListing<string>>) => [...page.commonPrefixes, ...page.entries.map((e) => e.entry)];

  it('counts each common prefix once against max-keys, with the entries, and marks the page truncated only when more follow', () => {
    // Act
    const first = walkListing(keys, { prefix: '', delimiter: '/', maxKeys: 3, marker: '' }, everyKey);
    const last = walkListing(keys, { prefix: '', delimiter: '/', maxKeys: 3, marker: first.last!.key }, everyKey);

    // Assess
    expect([listed(first), first.truncated, first.last?.key]).toEqual([['a/', 'c/', 'b'], true, 'c/']);
    expect([listed(last), last.truncated]).toEqual([['d'], false]);
  });

  it('gives each entry a key contributes, and leaves out a hidden key even from its common prefix', () => {
    // Prepare: 'c/1' and 'c/2' hidden (as delete markers hide keys from ListObjects); 'b' contributes two entries.
    const source = { entriesOf: (key: string) => (key.startsWith('c/') ? undefined : key === 'b' ? ['b#2', 'b#1'] : [key]) };

    // Act
    const page = walkListing(keys, { prefix: '', delimiter: '/', maxKeys: 10, marker: '' }, source);

    // Assess
    expect([listed(page), page.truncated]).toEqual([['a/', 'b#2', 'b#1', 'd'], false]);
  });

  it('stops within a key whose entries fill the page, naming the last entry listed', () => {
    // Act
    const page = walkListing(['k'], { prefix: '', delimiter: '', maxKeys: 2, marker: '' }, { entriesOf: () => ['v3', 'v2', 'v1'] });

    // Assess
    expect([listed(page), page.truncated, page.last]).toEqual([['v3', 'v2'], true, { key: 'k', entry: 'v2' }]);
  });
});
