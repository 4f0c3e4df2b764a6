import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StoredChecksum } from './body';
import { S3Errors, type S3ServiceError } from './errors';

/** The headers S3 stores with an object and answers on GET/HEAD. */
export interface ObjectAttributes {
  contentType: string;
  contentEncoding?: string;
  contentDisposition?: string;
  contentLanguage?: string;
  cacheControl?: string;
  expires?: string;
  /** User metadata, `x-amz-meta-` names without the prefix, lower case. */
  metadata: Record<string, string>;
  /** Object tags (`x-amz-tagging`), answered by GetObjectTagging. */
  tags?: Record<string, string>;
}

/** One version of a key: an object or a delete marker. Unversioned writes have version id `null`. */
export interface ObjectVersion extends ObjectAttributes {
  readonly key: string;
  readonly versionId: string;
  readonly deleteMarker: boolean;
  /** Monotonic across the store and restarts: orders versions, names their files, and is the event sequencer. */
  readonly seq: number;
  readonly lastModified: string;
  readonly size: number;
  /** Without quotes. */
  readonly etag: string;
  readonly checksum?: StoredChecksum;
}

export type VersioningStatus = 'Enabled' | 'Suspended';

interface BucketState {
  readonly name: string;
  readonly created: string;
  versioning?: VersioningStatus;
  /** Versions of each key, oldest first. */
  readonly keys: Map<string, ObjectVersion[]>;
  /** Keys in S3's order (UTF-8 bytes), built at the first listing and kept in order after. */
  sorted?: string[];
}

export interface PartRecord {
  readonly partNumber: number;
  readonly etag: string;
  readonly size: number;
  readonly lastModified: string;
}

export interface UploadState {
  readonly uploadId: string;
  readonly bucket: string;
  readonly key: string;
  readonly initiated: string;
  readonly attributes: ObjectAttributes;
  readonly parts: Map<number, PartRecord>;
  completing?: boolean;
}

/** S3 orders keys by their UTF-8 bytes, which differs from JavaScript's UTF-16 order above U+FFFF. */
export function compareKeys(a: string, b: string): number {
  // UTF-16 and UTF-8 orders differ only between surrogates and U+E000–U+FFFF: compare bytes only then.
  if (HIGH.test(a) || HIGH.test(b)) return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  return a < b ? -1 : a > b ? 1 : 0;
}
const HIGH = /[\uD800-\uFFFF]/;

/** Where `key` is, or would go, in keys sorted by {@link compareKeys}. */
export function lowerBound(keys: readonly string[], key: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (compareKeys(keys[middle]!, key) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * The local S3's storage: one file of bytes and one JSON record per version, under `directory`, with an index in
 * memory rebuilt at start. Every change of the index happens in one synchronous section (check the precondition,
 * move the body in place, write the record), so two concurrent conditional writes cannot both pass.
 */
export class ObjectStore {
  private readonly buckets = new Map<string, BucketState>();
  private readonly uploads = new Map<string, UploadState>();
  private lastSeq = 0;
  private tmpCount = 0;

  constructor(readonly root: string) {
    mkdirSync(join(root, 'buckets'), { recursive: true });
    mkdirSync(join(root, 'uploads'), { recursive: true });
    rmSync(join(root, 'tmp'), { recursive: true, force: true });
    mkdirSync(join(root, 'tmp'), { recursive: true });
    this.load();
  }

  private load(): void {
    for (const name of readdirSync(join(this.root, 'buckets'))) {
      const dir = join(this.root, 'buckets', name);
      let config: { created: string; versioning?: VersioningStatus };
      try {
        config = JSON.parse(readFileSync(join(dir, 'bucket.json'), 'utf8'));
      } catch {
        continue;
      }
      const bucket: BucketState = { name, created: config.created, versioning: config.versioning, keys: new Map() };
      const files = new Set(readdirSync(join(dir, 'versions')));
      for (const file of files) {
        if (!file.endsWith('.json')) continue;
        const base = file.slice(0, -5);
        try {
          const version = JSON.parse(readFileSync(join(dir, 'versions', file), 'utf8')) as ObjectVersion;
          if (!version.deleteMarker && !files.has(`${base}.data`)) throw new Error('body missing');
          const list = bucket.keys.get(version.key) ?? [];
          list.push(version);
          bucket.keys.set(version.key, list);
          this.lastSeq = Math.max(this.lastSeq, version.seq);
        } catch {
          // A record cut short by a crash: the write it belonged to never answered, so it never happened.
          rmSync(join(dir, 'versions', file), { force: true });
          rmSync(join(dir, 'versions', `${base}.data`), { force: true });
        }
      }
      for (const list of bucket.keys.values()) list.sort((a, b) => a.seq - b.seq);
      this.buckets.set(name, bucket);
    }
    for (const uploadId of readdirSync(join(this.root, 'uploads'))) {
      const dir = join(this.root, 'uploads', uploadId);
      try {
        const upload = JSON.parse(readFileSync(join(dir, 'upload.json'), 'utf8')) as Omit<UploadState, 'parts'>;
        const parts = new Map<number, PartRecord>();
        for (const file of readdirSync(dir)) {
          if (!/^part-\d+\.json$/.test(file)) continue;
          const part = JSON.parse(readFileSync(join(dir, file), 'utf8')) as PartRecord;
          parts.set(part.partNumber, part);
        }
        this.uploads.set(uploadId, { ...upload, parts });
      } catch {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }

  private nextSeq(): number {
    // Microseconds since the epoch, never repeating: monotonic across restarts as long as the clock is.
    this.lastSeq = Math.max(this.lastSeq + 1, Date.now() * 1000);
    return this.lastSeq;
  }

  /** A fresh path under the store's scratch directory, for a body being received. */
  tmpPath(): string {
    return join(this.root, 'tmp', `${process.pid}-${++this.tmpCount}-${randomBytes(4).toString('hex')}`);
  }

  // Buckets

  bucketNames(): Array<{ name: string; created: string }> {
    return [...this.buckets.values()].map(({ name, created }) => ({ name, created })).sort((a, b) => compareKeys(a.name, b.name));
  }

  hasBucket(name: string): boolean {
    return this.buckets.has(name);
  }

  private bucket(name: string): BucketState {
    const bucket = this.buckets.get(name);
    if (!bucket) throw S3Errors.noSuchBucket(name);
    return bucket;
  }

  private bucketDir(name: string): string {
    return join(this.root, 'buckets', name);
  }

  private saveBucket(bucket: BucketState): void {
    writeFileSync(join(this.bucketDir(bucket.name), 'bucket.json'), JSON.stringify({ created: bucket.created, versioning: bucket.versioning }));
  }

  createBucket(name: string): void {
    if (this.buckets.has(name)) throw S3Errors.bucketAlreadyOwnedByYou(name);
    mkdirSync(join(this.bucketDir(name), 'versions'), { recursive: true });
    const bucket: BucketState = { name, created: new Date().toISOString(), keys: new Map() };
    this.saveBucket(bucket);
    this.buckets.set(name, bucket);
  }

  deleteBucket(name: string): void {
    const bucket = this.bucket(name);
    if (bucket.keys.size > 0 || [...this.uploads.values()].some((upload) => upload.bucket === name)) throw S3Errors.bucketNotEmpty(name);
    rmSync(this.bucketDir(name), { recursive: true, force: true });
    this.buckets.delete(name);
  }

  versioning(name: string): VersioningStatus | undefined {
    return this.bucket(name).versioning;
  }

  setVersioning(name: string, status: VersioningStatus): void {
    const bucket = this.bucket(name);
    bucket.versioning = status;
    this.saveBucket(bucket);
  }

  // Objects

  /** The latest version of a key (possibly a delete marker), or undefined. */
  latest(bucket: string, key: string): ObjectVersion | undefined {
    const list = this.bucket(bucket).keys.get(key);
    return list?.[list.length - 1];
  }

  /** The current object: the latest version unless that is a delete marker. */
  current(bucket: string, key: string): ObjectVersion | undefined {
    const latest = this.latest(bucket, key);
    return latest && !latest.deleteMarker ? latest : undefined;
  }

  version(bucket: string, key: string, versionId: string): ObjectVersion | undefined {
    return this.bucket(bucket).keys.get(key)?.find((version) => version.versionId === versionId);
  }

  /** Versions of a key, newest first. */
  versionsOf(bucket: string, key: string): ObjectVersion[] {
    return [...(this.bucket(bucket).keys.get(key) ?? [])].reverse();
  }

  sortedKeys(name: string): string[] {
    const bucket = this.bucket(name);
    bucket.sorted ??= [...bucket.keys.keys()].sort(compareKeys);
    return bucket.sorted;
  }

  private unsort(bucket: BucketState, key: string): void {
    if (!bucket.sorted) return;
    const at = lowerBound(bucket.sorted, key);
    if (bucket.sorted[at] === key) bucket.sorted.splice(at, 1);
  }

  private dataPath(bucket: string, version: ObjectVersion): string {
    return join(this.bucketDir(bucket), 'versions', `${version.seq}.data`);
  }

  /** Opens a version's bytes now, so that a later overwrite cannot pull them away from a reader (POSIX keeps them). */
  openData(bucket: string, version: ObjectVersion): number {
    return openSync(this.dataPath(bucket, version), 'r');
  }

  private newVersionId(bucket: BucketState): string {
    if (bucket.versioning !== 'Enabled') return 'null';
    // S3's version ids are 32 URL-safe characters.
    return randomBytes(24).toString('base64url');
  }

  /** Appends a version; in an unversioned or suspended bucket it replaces the key's `null` version. */
  private append(bucket: BucketState, version: ObjectVersion): void {
    const list = bucket.keys.get(version.key) ?? [];
    if (list.length === 0) {
      bucket.keys.set(version.key, list);
      bucket.sorted?.splice(lowerBound(bucket.sorted, version.key), 0, version.key);
    }
    const replaced = version.versionId === 'null' ? list.findIndex((old) => old.versionId === 'null') : -1;
    list.push(version);
    if (replaced >= 0) this.removeFiles(bucket.name, list.splice(replaced, 1)[0]!);
  }

  private removeFiles(bucket: string, version: ObjectVersion): void {
    const base = join(this.bucketDir(bucket), 'versions', String(version.seq));
    rmSync(`${base}.json`, { force: true });
    rmSync(`${base}.data`, { force: true });
  }

  /**
   * Makes a received body (a file from {@link tmpPath}) the new version of a key, if `precondition` (given the
   * current object) does not throw. Synchronous from the check to the index, so it is atomic among requests.
   */
  commitObject(
    name: string,
    key: string,
    body: { path: string; size: number; etag: string; checksum?: StoredChecksum },
    attributes: ObjectAttributes,
    precondition?: (current: ObjectVersion | undefined) => S3ServiceError | undefined,
  ): ObjectVersion {
    const bucket = this.bucket(name);
    const refused = precondition?.(this.current(name, key));
    if (refused) {
      rmSync(body.path, { force: true });
      throw refused;
    }
    const seq = this.nextSeq();
    const version: ObjectVersion = {
      ...attributes,
      key,
      versionId: this.newVersionId(bucket),
      deleteMarker: false,
      seq,
      lastModified: new Date(Math.floor(seq / 1000)).toISOString(),
      size: body.size,
      etag: body.etag,
      ...(body.checksum ? { checksum: body.checksum } : {}),
    };
    renameSync(body.path, this.dataPath(name, version));
    writeFileSync(join(this.bucketDir(name), 'versions', `${seq}.json`), JSON.stringify(version));
    this.append(bucket, version);
    return version;
  }

  /** DeleteObject without a version id: a delete marker when versioning is on or suspended, else the object goes. */
  deleteCurrent(name: string, key: string): ObjectVersion | undefined {
    const bucket = this.bucket(name);
    if (!bucket.versioning) {
      const list = bucket.keys.get(key);
      if (list) for (const version of list) this.removeFiles(name, version);
      if (bucket.keys.delete(key)) this.unsort(bucket, key);
      return undefined;
    }
    const seq = this.nextSeq();
    const marker: ObjectVersion = {
      key,
      versionId: this.newVersionId(bucket),
      deleteMarker: true,
      seq,
      lastModified: new Date(Math.floor(seq / 1000)).toISOString(),
      size: 0,
      etag: '',
      contentType: '',
      metadata: {},
    };
    writeFileSync(join(this.bucketDir(name), 'versions', `${seq}.json`), JSON.stringify(marker));
    this.append(bucket, marker);
    return marker;
  }

  /** DeleteObject with a version id: that version goes for good. Returns it, or undefined when there was none. */
  deleteVersion(name: string, key: string, versionId: string): ObjectVersion | undefined {
    const bucket = this.bucket(name);
    const list = bucket.keys.get(key);
    const index = list?.findIndex((version) => version.versionId === versionId) ?? -1;
    if (!list || index < 0) return undefined;
    const [removed] = list.splice(index, 1);
    this.removeFiles(name, removed!);
    if (list.length === 0) {
      bucket.keys.delete(key);
      this.unsort(bucket, key);
    }
    return removed;
  }

  // Multipart uploads

  private uploadDir(uploadId: string): string {
    return join(this.root, 'uploads', uploadId);
  }

  createUpload(bucket: string, key: string, attributes: ObjectAttributes): UploadState {
    this.bucket(bucket);
    const uploadId = randomBytes(32).toString('base64url');
    const upload: UploadState = { uploadId, bucket, key, initiated: new Date().toISOString(), attributes, parts: new Map() };
    mkdirSync(this.uploadDir(uploadId), { recursive: true });
    writeFileSync(join(this.uploadDir(uploadId), 'upload.json'), JSON.stringify({ ...upload, parts: undefined }));
    this.uploads.set(uploadId, upload);
    return upload;
  }

  /** The upload, if it exists for that bucket and key (S3 answers NoSuchUpload otherwise). */
  upload(bucket: string, key: string, uploadId: string): UploadState {
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.bucket !== bucket || upload.key !== key || !existsSync(this.uploadDir(uploadId))) throw S3Errors.noSuchUpload(uploadId);
    return upload;
  }

  uploadsOf(bucket: string): UploadState[] {
    return [...this.uploads.values()].filter((upload) => upload.bucket === bucket);
  }

  partPath(uploadId: string, partNumber: number): string {
    return join(this.uploadDir(uploadId), `part-${partNumber}.data`);
  }

  commitPart(upload: UploadState, partNumber: number, body: { path: string; size: number; etag: string }): PartRecord {
    if (!this.uploads.has(upload.uploadId)) {
      rmSync(body.path, { force: true });
      throw S3Errors.noSuchUpload(upload.uploadId);
    }
    const part: PartRecord = { partNumber, etag: body.etag, size: body.size, lastModified: new Date().toISOString() };
    renameSync(body.path, this.partPath(upload.uploadId, partNumber));
    writeFileSync(join(this.uploadDir(upload.uploadId), `part-${partNumber}.json`), JSON.stringify(part));
    upload.parts.set(partNumber, part);
    return part;
  }

  removeUpload(uploadId: string): void {
    this.uploads.delete(uploadId);
    rmSync(this.uploadDir(uploadId), { recursive: true, force: true });
  }
}
