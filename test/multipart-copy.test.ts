import { randomBytes } from 'node:crypto';
import { CopyObjectCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { COPY_OBJECT_MAX_BYTES, MAX_PARTS, MIN_PART_BYTES, copyObject, copyParts, moveObject } from '../src/aws/s3';
import { type LocalS3, startLocalS3 } from '../src/local/s3';
import { failure } from './support/s3-errors';

const MIB = 1024 * 1024;


// The embedded S3 with its copy limit lowered from S3's 5 GiB to 6 MiB: CopyObject refuses a larger source as S3
// refuses one over 5 GiB, and one UploadPartCopy copies at most that much. The code's threshold is lowered to match.
let s3: LocalS3;
beforeAll(async () => {
  s3 = await startLocalS3({ copySourceMaxBytes: 6 * MIB, authorize: () => ({ allowed: true }) });
});
afterAll(async () => s3.close());
const LOWERED = { multipartAboveBytes: 6 * MIB, partBytes: 5 * MIB };

async function bytesOf(bucket: string, key: string, versionId?: string): Promise<Buffer> {
  const got = await s3.client.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
  return Buffer.from(await got.Body!.transformToByteArray());
}

describe('Function: copyParts', () => {
  it('cuts an object into parts of the asked size, the last one shorter, covering every byte once', () => {
    // Act
    const parts = copyParts(12 * MIB, 5 * MIB);

    // Assess
    expect(parts).toEqual([
      { start: 0, end: 5 * MIB - 1 },
      { start: 5 * MIB, end: 10 * MIB - 1 },
      { start: 10 * MIB, end: 12 * MIB - 1 },
    ]);
  });

  it('keeps every part within S3\'s 5 MiB to 5 GiB and the parts within 10,000, up to S3\'s 5 TiB object', () => {
    // Act
    const tiny = copyParts(20 * MIB, 1);
    const huge = copyParts(5 * 1024 ** 4);
    const tenGigabytes = copyParts(10 * 1024 ** 3);

    // Assess
    expect(tiny.map((p) => p.end - p.start + 1)).toEqual([MIN_PART_BYTES, MIN_PART_BYTES, MIN_PART_BYTES, MIN_PART_BYTES]);
    expect(huge.length).toBeLessThanOrEqual(MAX_PARTS);
    expect(Math.max(...huge.map((p) => p.end - p.start + 1))).toBeLessThanOrEqual(COPY_OBJECT_MAX_BYTES);
    expect(huge.at(-1)!.end).toBe(5 * 1024 ** 4 - 1);
    expect(tenGigabytes).toHaveLength(40);
  });
});

describe('Function: copyObject, against the embedded S3 with a lowered copy limit', () => {
  it('copies a source over the limit in parts, its bytes exact, with the content type and metadata CopyObject would copy', async () => {
    // Prepare
    const body = randomBytes(13 * MIB);
    await s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'big/source.csv', Body: body, ContentType: 'text/csv', Metadata: { 'badges-origin': 'sftp://vendor/x.csv' } }));

    // Act
    const copied = await copyObject(s3.client, { bucket: 'staging', key: 'big/source.csv' }, { bucket: 'inbox', key: 'big/copy.csv' }, LOWERED);

    // Assess: three parts (5 + 5 + 3 MiB), an S3 multipart ETag saying so.
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: 'inbox', Key: 'big/copy.csv' }));
    expect(copied).toEqual({ multipart: true });
    expect(head).toMatchObject({ ContentLength: 13 * MIB, ContentType: 'text/csv', Metadata: { 'badges-origin': 'sftp://vendor/x.csv' } });
    expect(head.ETag).toMatch(/-3"$/);
    expect((await bytesOf('inbox', 'big/copy.csv')).equals(body)).toBe(true);
  });

  it('copies a source at or under the limit with one CopyObject', async () => {
    // Prepare
    const body = randomBytes(6 * MIB);
    await s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'fits/source', Body: body }));

    // Act
    const copied = await copyObject(s3.client, { bucket: 'staging', key: 'fits/source' }, { bucket: 'staging', key: 'fits/copy' }, LOWERED);

    // Assess
    expect(copied).toEqual({ multipart: false });
    expect((await s3.client.send(new HeadObjectCommand({ Bucket: 'staging', Key: 'fits/copy' }))).ETag).not.toContain('-');
    expect((await bytesOf('staging', 'fits/copy')).equals(body)).toBe(true);
  });

  it('is what a source over the limit needs: CopyObject of it is refused with InvalidRequest, as S3 refuses one over 5 GiB', async () => {
    // Prepare
    await s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'refused/source', Body: Buffer.alloc(6 * MIB + 1) }));

    // Act
    const refused = await failure(s3.client.send(new CopyObjectCommand({ Bucket: 'staging', Key: 'refused/copy', CopySource: 'staging/refused/source' })));
    const withoutParts = await failure(copyObject(s3.client, { bucket: 'staging', key: 'refused/source' }, { bucket: 'staging', key: 'refused/copy' }));

    // Assess
    expect(refused).toMatchObject({ name: 'InvalidRequest', status: 400, message: expect.stringContaining('larger than the maximum allowable size for a copy source') });
    expect(withoutParts).toMatchObject({ name: 'InvalidRequest', status: 400 });
  });

  it('copies exactly the version it is given in parts, not the newer one written since', async () => {
    // Prepare
    const first = randomBytes(11 * MIB);
    const { VersionId } = await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'v/events.csv', Body: first }));
    await s3.client.send(new PutObjectCommand({ Bucket: 'inbox', Key: 'v/events.csv', Body: randomBytes(11 * MIB) }));

    // Act
    await moveObject(s3.client, 'inbox', 'v/events.csv', 'processed/v/events.csv', VersionId, LOWERED);

    // Assess: the old version moved (copied, then deleted for good); the newer one stays for its own run.
    expect((await bytesOf('inbox', 'processed/v/events.csv')).equals(first)).toBe(true);
    expect(await failure(s3.client.send(new HeadObjectCommand({ Bucket: 'inbox', Key: 'v/events.csv', VersionId })))).toMatchObject({ status: 404 });
    expect((await bytesOf('inbox', 'v/events.csv')).equals(first)).toBe(false);
  });

  it('refuses a source whose ETag is no longer the one given (overwritten since it was listed), copying nothing', async () => {
    // Prepare
    const { ETag } = await s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'etag/source', Body: randomBytes(7 * MIB) }));
    await s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'etag/source', Body: randomBytes(7 * MIB) }));

    // Act
    const refused = await failure(copyObject(s3.client, { bucket: 'staging', key: 'etag/source', etag: ETag!.replace(/"/g, '') }, { bucket: 'staging', key: 'etag/copy' }, LOWERED));

    // Assess
    expect(refused.status).toBe(412);
    expect(await failure(s3.client.send(new HeadObjectCommand({ Bucket: 'staging', Key: 'etag/copy' })))).toMatchObject({ status: 404 });
  });

  it('aborts the upload when a part fails: nothing under the target, no upload left open', async () => {
    // Prepare: parts of 7 MiB, over the embedded S3's 6 MiB limit for one UploadPartCopy.
    await s3.client.send(new PutObjectCommand({ Bucket: 'staging', Key: 'abort/source', Body: randomBytes(15 * MIB) }));

    // Act
    const failed = await failure(copyObject(s3.client, { bucket: 'staging', key: 'abort/source' }, { bucket: 'staging', key: 'abort/copy' }, { multipartAboveBytes: 6 * MIB, partBytes: 7 * MIB }));

    // Assess
    const uploads = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: 'staging', Prefix: 'abort/' }));
    expect(failed).toMatchObject({ name: 'InvalidRequest', status: 400 });
    expect(uploads.Uploads ?? []).toEqual([]);
    expect(await failure(s3.client.send(new HeadObjectCommand({ Bucket: 'staging', Key: 'abort/copy' })))).toMatchObject({ status: 404 });
  });
});
