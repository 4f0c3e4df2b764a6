import { authorize, bucketArn, type Call, maxKeysOf, OWNER, quote, type S3Context, sendXml } from './call';
import { S3Errors } from './errors';
import { compareKeys, lowerBound, type ObjectVersion } from './store';
import { render, type XmlObject } from './xml';

// Listings: ListObjects (v1 and v2) and ListObjectVersions walk the keys the same way (one page from a marker, keys
// under a prefix, rolled up to common prefixes at a delimiter, at most max-keys entries); they differ in what a key
// contributes (its current object, or its versions) and in how the page is answered.

/** Which part of the key space one page covers. */
export interface ListingWindow {
  readonly prefix: string;
  /** '' for none. */
  readonly delimiter: string;
  readonly maxKeys: number;
  /** The previous page's last key or common prefix ('' for the first page): the page starts after it. */
  readonly marker: string;
}

/** One page: the entries (each with its key) and common prefixes in S3's order, counted together against max-keys. */
export interface ListingPage<T> {
  readonly entries: { readonly key: string; readonly entry: T }[];
  readonly commonPrefixes: string[];
  readonly truncated: boolean;
  /** The last key (with its entry) or common prefix on the page: what the next page's marker is made of. */
  readonly last?: { readonly key: string; readonly entry?: T };
}

/** What a listing makes of one key in the window. */
export interface ListingSource<T> {
  /** The entries a key contributes, in order; `undefined` hides the key entirely (it is not even rolled up). */
  entriesOf(key: string): readonly T[] | undefined;
}

/**
 * Walks `keys` (sorted by {@link compareKeys}) from the window's marker, rolling each key up to its common prefix at
 * the delimiter, and fills one page: every entry and every distinct common prefix counts one against max-keys, and
 * the page is truncated only when one more would have been listed.
 */
export function walkListing<T>(keys: readonly string[], window: ListingWindow, source: ListingSource<T>): ListingPage<T> {
  const { prefix, delimiter, maxKeys, marker } = window;
  const page: { entries: { key: string; entry: T }[]; commonPrefixes: string[]; truncated: boolean; last?: { key: string; entry?: T } } = {
    entries: [],
    commonPrefixes: [],
    truncated: false,
  };
  const { entries, commonPrefixes } = page;
  // One more entry or common prefix to list on a full page: the page is truncated there.
  const fullBeforeNext = () => {
    page.truncated = entries.length + commonPrefixes.length === maxKeys;
    return page.truncated;
  };
  outer: for (let i = lowerBound(keys, compareKeys(marker, prefix) > 0 ? marker : prefix); i < keys.length && maxKeys > 0; i++) {
    const key = keys[i]!;
    if (!key.startsWith(prefix)) {
      if (compareKeys(key, prefix) > 0) break;
      continue;
    }
    const contributed = source.entriesOf(key);
    if (!contributed) continue;
    const cut = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
    if (cut >= 0) {
      const common = key.slice(0, cut + delimiter.length);
      if (common === commonPrefixes[commonPrefixes.length - 1] || compareKeys(common, marker) <= 0) continue;
      if (fullBeforeNext()) break;
      commonPrefixes.push(common);
      page.last = { key: common };
      continue;
    }
    for (const entry of contributed) {
      if (fullBeforeNext()) break outer;
      entries.push({ key, entry });
      page.last = { key, entry };
    }
  }
  return page;
}

/** The request parameters every listing shares, and the condition keys IAM sees for them. */
interface ListingQuery {
  readonly prefix: string;
  readonly delimiter: string;
  readonly maxKeys: number;
  readonly encodingType: string | null;
  readonly context: Record<string, string>;
  /** A key, prefix or delimiter as answered: URL-encoded (slashes kept) when `encoding-type=url`. */
  readonly encode: (text: string) => string;
}

function readListingQuery(query: URLSearchParams): ListingQuery {
  const prefix = query.get('prefix') ?? '';
  const delimiter = query.get('delimiter') ?? '';
  const maxKeys = maxKeysOf(query);
  const encodingType = query.get('encoding-type');
  const context: Record<string, string> = {};
  if (query.has('prefix')) context['s3:prefix'] = prefix;
  if (query.has('delimiter')) context['s3:delimiter'] = delimiter;
  if (query.has('max-keys')) context['s3:max-keys'] = query.get('max-keys')!;
  const encode = (text: string) => (encodingType === 'url' ? encodeURIComponent(text).replace(/%2F/g, '/') : text);
  return { prefix, delimiter, maxKeys, encodingType, context, encode };
}

/** The answer's fields in order, then the entries, then the common prefixes (S3's order of elements). */
function listingDocument(fields: XmlObject, entries: string[], commonPrefixes: string[], encode: (text: string) => string): string {
  return (
    Object.entries(fields)
      .map(([name, value]) => render(name, value))
      .join('') +
    entries.join('') +
    commonPrefixes.map((common) => render('CommonPrefixes', { Prefix: encode(common) })).join('')
  );
}

/** Where a ListObjects page starts: v2's continuation token (ours: the last key, base64url JSON) or start-after, v1's marker. */
function listObjectsMarker(query: URLSearchParams, listType: 1 | 2): string {
  if (listType === 1) return query.get('marker') ?? '';
  const token = query.get('continuation-token');
  if (token === null) return query.get('start-after') ?? '';
  try {
    const after = (JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { after: string }).after;
    if (typeof after !== 'string') throw new Error('no marker');
    return after;
  } catch {
    throw S3Errors.invalidArgument('The continuation token provided is incorrect', 'continuation-token', token);
  }
}

/** ListObjects (`list-type=2` for v2): the current object of each key, delete markers hiding their keys. */
export async function listObjects(s3: S3Context, call: Call, listType: 1 | 2): Promise<void> {
  const { query, bucket } = call;
  const listing = readListingQuery(query);
  const { prefix, delimiter, maxKeys, encodingType, encode } = listing;
  if (encodingType !== null && encodingType !== 'url') throw S3Errors.invalidArgument('Invalid Encoding Method specified in Request', 'encoding-type', encodingType);
  await authorize(s3, call, 's3:ListBucket', bucketArn(bucket), listing.context);
  const after = listObjectsMarker(query, listType);
  const token = query.get('continuation-token');
  const page = walkListing(s3.store.sortedKeys(bucket), { prefix, delimiter, maxKeys, marker: after }, {
    entriesOf: (key) => {
      const current = s3.store.current(bucket, key);
      if (!current) return undefined;
      return compareKeys(key, after) <= 0 ? [] : [current];
    },
  });
  const { truncated, last } = page;
  const fields: XmlObject = {
    Name: bucket,
    Prefix: encode(prefix),
    ...(listType === 1 ? { Marker: encode(after), ...(truncated && delimiter ? { NextMarker: encode(last!.key) } : {}) } : {}),
    ...(listType === 2 ? { KeyCount: page.entries.length + page.commonPrefixes.length } : {}),
    MaxKeys: maxKeys,
    Delimiter: delimiter ? encode(delimiter) : undefined,
    IsTruncated: truncated,
    ...(listType === 2 && token !== null ? { ContinuationToken: token } : {}),
    ...(listType === 2 && truncated ? { NextContinuationToken: Buffer.from(JSON.stringify({ after: last?.key })).toString('base64url') } : {}),
    ...(listType === 2 && query.has('start-after') ? { StartAfter: encode(query.get('start-after')!) } : {}),
    EncodingType: encodingType ?? undefined,
  };
  const contents = page.entries.map(({ entry: version }) =>
    render('Contents', {
      Key: encode(version.key),
      LastModified: version.lastModified,
      ETag: quote(version.etag),
      ...(version.checksum ? { ChecksumAlgorithm: version.checksum.algorithm } : {}),
      Size: version.size,
      ...(listType === 1 || query.get('fetch-owner') === 'true' ? { Owner: OWNER } : {}),
      StorageClass: 'STANDARD',
    }),
  );
  sendXml(call, 'ListBucketResult', listingDocument(fields, contents, page.commonPrefixes, encode));
}

/** One version or delete marker as a version listing shows it. */
interface ListedVersion {
  readonly version: ObjectVersion;
  readonly isLatest: boolean;
}

/** ListObjectVersions: every version and delete marker of each key, newest first, resuming after key and version markers. */
export async function listObjectVersions(s3: S3Context, call: Call): Promise<void> {
  const { query, bucket } = call;
  const listing = readListingQuery(query);
  const { prefix, delimiter, maxKeys, encodingType, encode } = listing;
  const keyMarker = query.get('key-marker') ?? '';
  const versionIdMarker = query.get('version-id-marker') ?? '';
  await authorize(s3, call, 's3:ListBucketVersions', bucketArn(bucket), listing.context);
  if (versionIdMarker && !keyMarker) throw S3Errors.invalidArgument('A version-id marker cannot be specified without a key marker.', 'version-id-marker', versionIdMarker);
  const page = walkListing<ListedVersion>(s3.store.sortedKeys(bucket), { prefix, delimiter, maxKeys, marker: keyMarker }, {
    entriesOf: (key) => {
      const versions = s3.store.versionsOf(bucket, key);
      if (keyMarker && compareKeys(key, keyMarker) < 0) return [];
      if (!keyMarker || key !== keyMarker) return versions.map((version, index) => ({ version, isLatest: index === 0 }));
      // The marker's key: only its versions after the version marker (none without one), none of them the latest.
      const at = versionIdMarker ? versions.findIndex((version) => version.versionId === versionIdMarker) : -1;
      return at >= 0 ? versions.slice(at + 1).map((version) => ({ version, isLatest: false })) : [];
    },
  });
  const { truncated, last } = page;
  const fields: XmlObject = {
    Name: bucket,
    Prefix: encode(prefix),
    KeyMarker: encode(keyMarker),
    VersionIdMarker: versionIdMarker,
    ...(truncated && last ? { NextKeyMarker: encode(last.key), ...(last.entry ? { NextVersionIdMarker: last.entry.version.versionId } : {}) } : {}),
    MaxKeys: maxKeys,
    Delimiter: delimiter ? encode(delimiter) : undefined,
    IsTruncated: truncated,
    EncodingType: encodingType ?? undefined,
  };
  const versions = page.entries.map(({ key, entry: { version, isLatest } }) =>
    version.deleteMarker
      ? render('DeleteMarker', { Owner: OWNER, Key: encode(key), VersionId: version.versionId, IsLatest: isLatest, LastModified: version.lastModified })
      : render('Version', {
          ETag: quote(version.etag),
          Size: version.size,
          Owner: OWNER,
          StorageClass: 'STANDARD',
          Key: encode(key),
          VersionId: version.versionId,
          IsLatest: isLatest,
          LastModified: version.lastModified,
        }),
  );
  sendXml(call, 'ListVersionsResult', listingDocument(fields, versions, page.commonPrefixes, encode));
}
