import { ParseError, parse as parseCel } from '@marcbachmann/cel-js';
import { IANAZone } from 'luxon';
import { z } from 'zod';

/** A brand's largest export (10 GB, some 50M rows) fits a file by default: `csv.maxRecords`. */
export const DEFAULT_MAX_FILE_RECORDS = 50_000_000;
/** The most `csv.maxRecords` may say: a billion records is 20 times the largest export this was built for. */
export const MAX_FILE_RECORDS = 1_000_000_000;
/** Connect+'s "Grouping limit" range: 1–1000 records per request. */
export const MAX_BATCH_SIZE = 1000;
/** `destination.batchSize` by default: the API's most, the cheapest (docs/deploy.md, "What sending costs"). */
export const DEFAULT_BATCH_SIZE = MAX_BATCH_SIZE;
/** `destination.recordsPerWorker` by default: 10 requests of the default batch size a worker. */
export const DEFAULT_RECORDS_PER_WORKER = 10 * DEFAULT_BATCH_SIZE;
/** The API fields that every dataflow must map (the Connect+ template makes these four mandatory). */
export const MAPPED_FIELDS = ['customerId', 'badgeMetaId', 'earnEventDate', 'earnExpiresOn'] as const;
export type MappedField = (typeof MAPPED_FIELDS)[number];
export const DATE_FIELDS = ['earnEventDate', 'earnExpiresOn'] as const;
export type DateField = (typeof DATE_FIELDS)[number];

const ianaZone = z
  .string()
  .refine((zone) => IANAZone.isValidZone(zone), { message: 'is not an IANA time zone (e.g. "Asia/Kolkata", "UTC")' });

const regex = z.string().refine(
  (pattern) => {
    try {
      new RegExp(pattern);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'is not a valid regular expression' },
);

/** The longest CEL expression a configuration may hold: an expression is a line of logic, not a program. */
export const MAX_EXPRESSION_LENGTH = 4096;

/**
 * One line from a CEL error (cel-js's messages span lines: the message, a source excerpt and a caret): its summary,
 * and where in the expression it points when it says so. Never the excerpt: a record's values stay out of it.
 */
export function celErrorMessage(error: unknown): string {
  if (!(error instanceof Error)) return String(error).replace(/\s+/g, ' ').trim();
  const { summary, range } = error as Error & { summary?: unknown; range?: { start?: unknown } };
  const text = (typeof summary === 'string' && summary !== '' ? summary : (error.message.split('\n')[0] ?? error.message)).replace(/\s+/g, ' ').trim();
  const at = error instanceof ParseError && typeof range?.start === 'number' ? ` (at character ${range.start + 1})` : '';
  return `${text.length > 300 ? `${text.slice(0, 299)}…` : text}${at}`;
}

/**
 * A CEL expression (https://cel.dev), parsed when the configuration is loaded: a syntax error is a configuration
 * error naming its JSON path, so `cdk synth` and every CLI command refuse it before any file is read. Variables are
 * resolved per file, against its header (src/core/expressions.ts).
 */
export const celExpression = z
  .string()
  .max(MAX_EXPRESSION_LENGTH)
  .superRefine((source, ctx) => {
    if (source.trim() === '') {
      ctx.addIssue({ code: 'custom', message: 'is empty: write a CEL expression, e.g. "badge_code" or "row[\\"Badge Code\\"]"' });
      return;
    }
    let depth: number;
    try {
      depth = astDepth(parseCel(source).ast);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `is not a valid CEL expression: ${celErrorMessage(error)}` });
      return;
    }
    if (depth > MAX_EXPRESSION_DEPTH) {
      ctx.addIssue({ code: 'custom', message: `nests ${depth} levels deep, more than ${MAX_EXPRESSION_DEPTH}: evaluating it could overflow the stack on every record (write a long chain of == as x in ["a", "b", …])` });
    }
  });

/**
 * The deepest an expression's syntax tree may nest. cel-js limits brackets and calls to 250 levels at parse time, but
 * not chains of operators: `!!!…!true` or `a+a+…+a` 2,000 terms long parse within 4,096 characters, and evaluating
 * them (it recurses once a level) overflows the stack on every record.
 */
export const MAX_EXPRESSION_DEPTH = 500;

/** How deep a syntax tree nests, walked without recursion (the tree may be deeper than the stack allows). */
function astDepth(root: ParsedAst): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (Array.isArray(item)) {
      for (const child of item) stack.push([child, depth]);
    } else if (typeof item === 'object' && item !== null && 'op' in item) {
      deepest = Math.max(deepest, depth);
      // A literal's args are its value (a string, bytes…), never a subtree.
      if ((item as ParsedAst).op !== 'value') stack.push([(item as ParsedAst).args, depth + 1]);
    }
  }
  return deepest;
}
type ParsedAst = ReturnType<typeof parseCel>['ast'];

const ONE_SOURCE = 'needs exactly one of "column", "value" or "expression"';
const oneSource = (m: { column?: string; value?: string | number; expression?: string }) =>
  [m.column, m.value, m.expression].filter((v) => v !== undefined).length === 1;

/**
 * `{ "column": "member_id" }` reads a column; `{ "value": "…" }` is a constant for every record;
 * `{ "expression": "<CEL>" }` computes the field's text from the record (`row["Header"]`, or a column by its name).
 */
const plainMapping = z
  .strictObject({
    column: z.string().min(1).optional(),
    value: z.union([z.string(), z.number()]).optional(),
    expression: celExpression.optional(),
  })
  .refine(oneSource, { message: ONE_SOURCE });

/**
 * A date mapping adds the format (Luxon tokens, `epoch-s`, `epoch-ms` or `iso`) and the zone the value is in; both
 * apply to an expression's result as to a column's text.
 */
const dateMapping = z
  .strictObject({
    column: z.string().min(1).optional(),
    value: z.union([z.string(), z.number()]).optional(),
    expression: celExpression.optional(),
    /** @default "iso" */
    format: z.string().min(1).default('iso'),
    /** @default "UTC" */
    timeZone: ianaZone.default('UTC'),
  })
  .refine(oneSource, { message: ONE_SOURCE });

/** Key prefix in the inbox bucket: ends with "/", not under processed/ or failed/ (the stack's own). */
const inboxPrefix = z
  .string()
  .min(1)
  .refine((p) => p.endsWith('/') && !p.startsWith('/'), { message: 'must end with "/" and not start with "/"' })
  .refine((p) => !/^(processed|failed)\//.test(p), { message: 'must not sit under processed/ or failed/' });

/** Key prefix in a vendor's own bucket: ends with "/", does not start with "/". */
const bucketPrefix = z
  .string()
  .min(1)
  .refine((p) => p.endsWith('/') && !p.startsWith('/'), { message: 'must end with "/" and not start with "/"' });

/** `prefix` sits at or under `parent` (both end with "/"). */
const isUnder = (prefix: string, parent: string) => prefix.startsWith(parent);

/** An account id, an account's root ARN, or an IAM role or user ARN (with its path), in any AWS partition. */
const AWS_PRINCIPAL = /^(\d{12}|arn:aws(-cn|-us-gov)?:iam::\d{12}:(root|(role|user)\/([\w+=,.@-]+\/)*[\w+=,.@-]{1,64}))$/;

/**
 * An AWS principal a bucket policy may name. A wildcard is refused: `*` would open the inbox to every AWS account (and
 * Block Public Access would refuse the policy at deploy time anyway), and `*` inside an ARN does not match in a
 * policy's Principal at all.
 */
const awsPrincipal = z.string().superRefine((principal, ctx) => {
  if (principal.includes('*')) {
    ctx.addIssue({ code: 'custom', message: `"${principal}": a wildcard is refused, it would let any AWS account or principal write into the inbox; name the vendor's account id, its root ARN or the IAM role or user it uploads with` });
  } else if (!AWS_PRINCIPAL.test(principal)) {
    ctx.addIssue({ code: 'custom', message: `"${principal}" must be a 12-digit AWS account id, an account root ARN ("arn:aws:iam::111122223333:root"), or an IAM role or user ARN ("arn:aws:iam::111122223333:role/badges-upload")` });
  }
});

/** Who may upload into a dataflow's prefix of the inbox, through the inbox bucket's policy. */
const vendorAccess = z.strictObject({
  /**
   * AWS principals of the vendor: 12-digit account ids, account root ARNs (the vendor's account then decides which of
   * its users and roles may upload), or IAM role or user ARNs (which must exist when the stack deploys).
   */
  principals: z
    .array(awsPrincipal)
    .min(1, { message: 'must name at least one AWS principal' })
    .refine((list) => new Set(list).size === list.length, { message: 'lists a principal twice' }),
});

/**
 * An S3 source. Without `bucket`, the vendor drops files into our inbox bucket under `prefix`. With `bucket`, the
 * files are in the vendor's own bucket under `prefix` (in THEIR bucket): the schedule polls it, copies each settled
 * file into the inbox under `s3/<dataflow>/` and moves it to `processedPrefix` there. After validation `prefix` is
 * always the inbox prefix (as for SFTP) and the vendor's own prefix is `vendorPrefix`.
 */
const s3Source = z
  .strictObject({
    type: z.literal('s3'),
    /**
     * Without `bucket`: key prefix in the inbox bucket that this dataflow watches, e.g. `inbox/weekly-events/`.
     * With `bucket`: key prefix in the vendor's bucket where the vendor delivers, e.g. `outgoing/badges/`.
     */
    prefix: z.string(),
    /** Regular expression the object's file name (the part after the last "/") must match. @default ".*" */
    filePattern: regex.default('.*'),
    /**
     * Where each file's rejected records (CSV) and report summary are written back, as to SFTP's errorDirectory:
     * in the inbox bucket without `bucket`, in the vendor's bucket with it. Not written when absent.
     */
    errorPrefix: bucketPrefix.optional(),
    /** The vendor's own bucket, polled on the schedule (not the inbox). Absent: the vendor writes into the inbox. */
    bucket: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { message: 'must be an S3 bucket name (3–63 lowercase letters, digits, "." or "-")' })
      .optional(),
    /** Region of the vendor's bucket. @default the stack's region */
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, { message: 'must be an AWS region, e.g. "eu-west-1"' }).optional(),
    /** A role in the vendor's account to assume for their bucket. Absent: the Lambdas' own roles (the bucket policy grants them). */
    roleArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/, { message: 'must be an IAM role ARN, e.g. "arn:aws:iam::111122223333:role/badges-reader"' }).optional(),
    /** The external id the vendor's trust policy requires (only with roleArn). */
    externalId: z.string().regex(/^[\w+=,.@:/-]{2,1224}$/, { message: 'must be 2–1224 characters of letters, digits and +=,.@:/-' }).optional(),
    /** Where a taken file is moved in the vendor's bucket, keeping its path relative to `prefix`. Required with `bucket`. */
    processedPrefix: bucketPrefix.optional(),
    /** With `bucket`: an object modified less than this long ago may still be being written: left for the next poll. @default 60 */
    minFileAgeSeconds: z.int().min(0).max(86400).optional(),
    /**
     * The validated form of a vendor bucket's `prefix` (in their bucket), `prefix` then being the inbox prefix (by
     * default `s3/<dataflow>/`): what a parsed configuration holds, so that it reads back the same when written out.
     */
    vendorPrefix: bucketPrefix.optional(),
    /**
     * Lets the vendor's AWS principals put files under `prefix` (and abort their multipart uploads), and read and list
     * `errorPrefix` when there is one, through the inbox bucket's policy. Nothing else of the stack's buckets. Only
     * without `bucket` (the vendor's own bucket is theirs to grant).
     */
    vendorAccess: vendorAccess.optional(),
  })
  .superRefine((s, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    const shape = bucketPrefix.safeParse(s.prefix);
    if (s.bucket === undefined) {
      const inbox = inboxPrefix.safeParse(s.prefix);
      if (!inbox.success) issue('prefix', inbox.error.issues[0]?.message ?? 'is not a valid prefix');
      for (const key of ['region', 'roleArn', 'externalId', 'processedPrefix', 'minFileAgeSeconds', 'vendorPrefix'] as const) {
        if (s[key] !== undefined) issue(key, 'is only used with "bucket" (the vendor\'s own bucket)');
      }
      if (s.errorPrefix !== undefined && /^(processed|failed)\//.test(s.errorPrefix)) issue('errorPrefix', 'must not sit under processed/ or failed/ (the stack\'s own)');
      return;
    }
    if (s.vendorAccess !== undefined) issue('vendorAccess', 'is only used without "bucket": it opens our inbox to the vendor; their own bucket is theirs to grant');
    const theirs = s.vendorPrefix ?? s.prefix;
    if (s.vendorPrefix !== undefined && !inboxPrefix.safeParse(s.prefix).success) issue('prefix', 'must be an inbox prefix when "vendorPrefix" is given');
    if (s.vendorPrefix === undefined && !shape.success) issue('prefix', shape.error.issues[0]?.message ?? 'is not a valid prefix');
    if (s.externalId !== undefined && s.roleArn === undefined) issue('externalId', 'is only used with "roleArn"');
    if (s.processedPrefix === undefined) issue('processedPrefix', 'is required with "bucket": a taken file is moved there (else it would be taken again)');
    for (const key of ['processedPrefix', 'errorPrefix'] as const) {
      const other = s[key];
      if (other !== undefined && bucketPrefix.safeParse(theirs).success && (isUnder(other, theirs) || isUnder(theirs, other))) {
        issue(key, `must not equal, sit under or contain "prefix" ("${theirs}"): files there would be taken again`);
      }
    }
  });

/** A host key fingerprint as `ssh-keygen -lf` prints it. */
const hostKeyFingerprint = z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, {
  message: 'must be a SHA-256 fingerprint as `ssh-keygen -lf` prints it, e.g. "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"',
});

const remoteDirectory = z.string().min(1).refine((d) => !d.includes('\0'), { message: 'must not contain NUL' });

/**
 * A vendor's SFTP server, polled on the dataflow's schedule. Files are copied into the inbox bucket under `prefix`
 * (by default `sftp/<dataflow>/`) and from there imported like an S3 drop.
 */
const sftpSource = z
  .strictObject({
    type: z.literal('sftp'),
    host: z.string().min(1),
    /** @default 22 */
    port: z.int().min(1).max(65535).default(22),
    username: z.string().min(1),
    /** Name of the secret holding the password. Exactly one of passwordSecret and privateKeySecret. */
    passwordSecret: z.string().min(1).optional(),
    /** Name of the secret holding the private key (OpenSSH or PEM; or Base64 of it). */
    privateKeySecret: z.string().min(1).optional(),
    /** Name of the secret holding the private key's passphrase, when it has one. */
    privateKeyPassphraseSecret: z.string().min(1).optional(),
    /**
     * The server's host key fingerprint(s), as `ssh-keygen -lf` prints them (`SHA256:…`); a server presenting any
     * other key is refused. `false` turns pinning off (any key is accepted: only for a server you reach over a
     * network you trust).
     */
    hostKeySha256: z.union([hostKeyFingerprint, z.array(hostKeyFingerprint).min(1), z.literal(false)]),
    /** Directory the vendor delivers into. */
    directory: remoteDirectory,
    /** Regular expression the file name (without directories) must match. @default ".*" */
    filePattern: regex.default('.*'),
    /** Also look in the directory's subdirectories (not in the processed or error directories). @default false */
    recursive: z.boolean().default(false),
    /** Where a file is moved once it has been taken (copied into the inbox bucket), keeping its relative path. */
    processedDirectory: remoteDirectory,
    /** Where each file's rejected records (CSV) and report summary are written back. Not written when absent. */
    errorDirectory: remoteDirectory.optional(),
    /** Take a file only once its marker `<name>.ok` (or `<name without extension>.ok`) exists. @default false */
    requireOkFile: z.boolean().default(false),
    /** A file modified less than this long ago may still be growing: it is left for the next poll. @default 60 */
    minFileAgeSeconds: z.int().min(0).max(86400).default(60),
    /** Key prefix in the inbox bucket that pulled files are copied under. @default "sftp/<dataflow name>/" */
    prefix: inboxPrefix.optional(),
    /** Seconds to wait for the connection and the SSH handshake. @default 20 */
    connectTimeoutSeconds: z.int().min(1).max(300).default(20),
  })
  .superRefine((s, ctx) => {
    if ((s.passwordSecret === undefined) === (s.privateKeySecret === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['passwordSecret'], message: 'needs exactly one of "passwordSecret" or "privateKeySecret" (Connect+ takes a password or a key, never both)' });
    }
    if (s.privateKeyPassphraseSecret !== undefined && s.privateKeySecret === undefined) {
      ctx.addIssue({ code: 'custom', path: ['privateKeyPassphraseSecret'], message: 'is only used with "privateKeySecret"' });
    }
    const norm = (d: string) => d.replace(/\/+$/, '') || '/';
    for (const key of ['processedDirectory', 'errorDirectory'] as const) {
      const other = s[key];
      if (other !== undefined && norm(other) === norm(s.directory)) {
        ctx.addIssue({ code: 'custom', path: [key], message: `must differ from "directory" (files moved there would be taken again)` });
      }
    }
  });

/**
 * The text guard finds record boundaries byte by byte: the delimiter and the quote must be single ASCII characters,
 * neither a line end nor a NUL, and not the same character.
 */
const structuralCharacter = (fallback: string) =>
  z
    .string()
    .length(1, { message: 'must be a single character' })
    .regex(/^[\x01-\x09\x0b\x0c\x0e-\x7f]$/, { message: 'must be one ASCII character other than a line end (\\r, \\n)' })
    .default(fallback);

const csvSettings = z
  .strictObject({
    /** @default "," */
    delimiter: structuralCharacter(','),
    /** @default "utf-8" */
    encoding: z.enum(['utf-8', 'utf8', 'latin1', 'utf-16le']).default('utf-8'),
    /** @default '"' */
    quote: structuralCharacter('"'),
    /** A record longer than this (bytes, quoted newlines included) is rejected as RECORD_TOO_LONG. @default 1048576 */
    maxRecordBytes: z.int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
    /**
     * Most data records one file may hold; a larger file is refused (FILE_TOO_LARGE) before anything is sent. The
     * state machine's timeout is sized so that a file of this many records is staged and sent at the configured rate
     * (src/config/limits.ts): raise it for larger files, lower it to let a stuck run time out sooner. Connect+ takes 2M
     * by default. @default 50000000
     */
    maxRecords: z.int().min(1).max(MAX_FILE_RECORDS).default(DEFAULT_MAX_FILE_RECORDS),
  })
  .refine((csv) => csv.delimiter !== csv.quote, { message: 'delimiter and quote must be different characters', path: ['quote'] })
  .prefault({});

const basicAuth = z.strictObject({
  type: z.literal('basic'),
  /** Name of the secret holding the API user name. */
  usernameSecret: z.string().min(1),
  /** Name of the secret holding the API password (sent MD5-hashed, as Capillary requires). */
  passwordSecret: z.string().min(1),
});

const oauth = z.strictObject({
  type: z.literal('oauth'),
  /** Name of the secret holding the OAuth key. */
  keySecret: z.string().min(1),
  /** Name of the secret holding the OAuth secret. */
  secretSecret: z.string().min(1),
  /** Token endpoint. @default "{baseUrl}/v3/oauth/token/generate" */
  tokenUrl: z.url({ protocol: /^https?$/ }).optional(),
});

const destination = z.strictObject({
  /** Cluster host, e.g. `https://eu.api.capillarytech.com`. */
  baseUrl: z.url({ protocol: /^https?$/ }).transform((u) => u.replace(/\/+$/, '')),
  /** @default "/api_gateway/v1/badges/import/customerBadges" */
  endpoint: z.string().startsWith('/').default('/api_gateway/v1/badges/import/customerBadges'),
  /** The docs disagree (table: PUT, OpenAPI: POST). @default "PUT" */
  method: z.enum(['PUT', 'POST']).default('PUT'),
  auth: z.discriminatedUnion('type', [basicAuth, oauth]),
  /**
   * Items per request: the API's most (Connect+'s grouping limit). A request costs the same whatever it carries, so
   * the largest batch sends a file in the fewest requests, i.e. the least time at the API's rate and the least Send
   * Lambda time spent waiting on the pacer (docs/deploy.md, "What sending costs"). @default 1000
   */
  batchSize: z.int().min(1).max(MAX_BATCH_SIZE).default(DEFAULT_BATCH_SIZE),
  /** Distributed Map workers sending at once. @default 8 */
  maxConcurrency: z.int().min(1).max(1000).default(8),
  /** Requests per minute for the whole dataflow, shared by its workers. @default 1000 */
  maxRequestsPerMinute: z.int().min(1).max(100000).default(1000),
  /** Unit of `earnEventDate` / `earnExpiresOn` in the request. @default "ms" */
  epochUnit: z.enum(['ms', 's']).default('ms'),
  /**
   * Records one Distributed Map worker takes (a chunk). Each chunk costs state transitions, a Lambda invocation and
   * S3 requests, so larger chunks cost less; but a worker that dies leaves every record of its chunk AMBIGUOUS (up to
   * this many to look up on replay), and it must finish within its Lambda's time at its share of the rate. The default
   * is 10 requests of the default batchSize, as many requests a worker as before issue 13 (docs/deploy.md, "What
   * sending costs"). @default 10000
   */
  recordsPerWorker: z.int().min(1).max(100000).default(DEFAULT_RECORDS_PER_WORKER),
  /** Retries of a request on 429, 5xx, timeouts and resets before its records are RETRIES_EXHAUSTED. @default 5 */
  maxRetries: z.int().min(0).max(50).default(5),
  /** @default 30000 */
  requestTimeoutMs: z.int().min(100).max(600000).default(30000),
  /** Check each distinct badge id once through `badgeMeta/{id}` before sending; unknown ids are rejected (1054). @default false */
  validateBadgeIds: z.boolean().default(false),
  /** Additional request headers (non-secret values only). */
  headers: z.record(z.string(), z.string()).default({}),
});

/** AWS cron: minutes hours day-of-month month day-of-week year, with "?" in one of the two day fields. */
const awsCron = z.string().refine(
  (cron) => {
    const fields = cron.trim().split(/\s+/);
    return fields.length === 6 && (fields[2] === '?') !== (fields[4] === '?');
  },
  { message: 'must be an AWS cron expression of 6 fields with "?" in day-of-month or day-of-week, e.g. "0 2 ? * MON *"' },
);

const schedule = z.strictObject({
  cron: awsCron,
  /** @default "UTC" */
  timeZone: ianaZone.default('UTC'),
});

/** PGP decryption: a file is decrypted when this block is present and the file is PGP data (armored or binary). */
const decrypt = z.strictObject({
  /** Name of the secret holding the private key: armored, or Base64 of the armored key (as Connect+ takes it). */
  privateKeySecret: z.string().min(1),
  /** Name of the secret holding the key's passphrase, when it has one. */
  passphraseSecret: z.string().min(1).optional(),
  /** Name of the secret holding the vendor's public key: files must then be signed by it. */
  verifySignatureWithSecret: z.string().min(1).optional(),
});

/** Limits on compressed files (gzip), against decompression bombs. */
const unpack = z
  .strictObject({
    /** Most uncompressed bytes per compressed byte (judged past the first 16 MiB). @default 200 */
    maxCompressionRatio: z.number().min(1).default(200),
    /** Most uncompressed bytes in all. @default 10737418240 (10 GiB) */
    maxUncompressedBytes: z.number().int().min(1).default(10 * 1024 ** 3),
  })
  .prefault({});

/** When an operator is alerted about a dataflow (alarms on its metrics, to the stack's alerts topic). */
const alerts = z
  .strictObject({
    /** Alarm when a file's rejected records reach this share of its records, in percent (Connect+ alerts at 1%). @default 1 */
    rejectedSharePercent: z.number().min(0).max(100).default(1),
    /**
     * Alarm when a file's records that were not issued after every retry (RETRIES_EXHAUSTED) reach this share of its
     * records, in percent (Connect+ alerts at 10%). @default 10
     */
    retriesExhaustedPercent: z.number().min(0).max(100).default(10),
    /**
     * Alarm when no file arrived within this many minutes of a scheduled time (Connect+'s "no file picked"): a check
     * runs this long after each scheduled time and counts runs started since as long before it. Needs a schedule.
     */
    noFileWithinMinutes: z.int().min(1).max(720).optional(),
  })
  .prefault({});

/**
 * Which records of a file the dataflow imports: a record for which `expression` (CEL, true or false) is false is
 * filtered (neither sent nor rejected: counted in `rows.filtered` and listed in the filtered-records file).
 */
const filter = z.strictObject({
  /** A CEL expression of the record (`row["Header"]`, or a column's header as a name) that is true for records to import. */
  expression: celExpression,
});

const dataflow = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,39}$/, { message: 'must be 1–40 lowercase letters, digits or "-", starting with a letter or digit' }),
    source: z.discriminatedUnion('type', [s3Source, sftpSource]),
    decrypt: decrypt.optional(),
    unpack,
    csv: csvSettings,
    filter: filter.optional(),
    mapping: z.strictObject({
      customerId: plainMapping,
      badgeMetaId: plainMapping,
      earnEventDate: dateMapping,
      earnExpiresOn: dateMapping,
    }),
    destination,
    schedule: schedule.optional(),
    alerts,
  })
  // The rest of the code reads `source.prefix` as the inbox prefix. An SFTP dataflow's files land under its own prefix
  // of the inbox unless the configuration names one; a vendor bucket's files land under `s3/<name>/`, and the prefix
  // in the vendor's bucket moves to `vendorPrefix`.
  .transform((flow) => ({ ...flow, source: inboxSource(flow.name, flow.source) }));

type ParsedSource = z.output<typeof s3Source> | z.output<typeof sftpSource>;
/** An inbox S3 source, a vendor bucket (`vendorPrefix` in their bucket, `prefix` in the inbox), or SFTP. */
type InboxSource =
  | (Extract<ParsedSource, { type: 's3' }> & { bucket?: undefined; vendorPrefix?: undefined })
  | (Extract<ParsedSource, { type: 's3' }> & { bucket: string; vendorPrefix: string; processedPrefix: string; minFileAgeSeconds: number })
  | (Extract<ParsedSource, { type: 'sftp' }> & { prefix: string });

function inboxSource(name: string, source: ParsedSource): InboxSource {
  if (source.type === 'sftp') return { ...source, prefix: source.prefix ?? `sftp/${name}/` };
  if (source.bucket === undefined) return { ...source, bucket: undefined, vendorPrefix: undefined };
  const vendorPrefix = source.vendorPrefix ?? source.prefix;
  const prefix = source.vendorPrefix !== undefined ? source.prefix : `s3/${name}/`;
  return { ...source, bucket: source.bucket, vendorPrefix, prefix, processedPrefix: source.processedPrefix ?? '', minFileAgeSeconds: source.minFileAgeSeconds ?? 60 };
}

/**
 * A dataflow's name as it appears in the stack's logical IDs (its outputs, its vendor's bucket policy statements):
 * `weekly-events` → `WeeklyEvents`. Logical IDs take letters and digits only; the name alone decides it, so an output
 * keeps its key when dataflows are added, removed or reordered. Two names that read alike are refused.
 */
export function dataflowIdOf(name: string): string {
  return name
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}

/**
 * A worker must finish its chunk well inside the send Lambda's 5 minutes: its requests, paced at its share of the
 * dataflow's rate (`maxRequestsPerMinute / maxConcurrency`), may take at most this long, leaving two minutes for the
 * requests themselves and their retries. A worker that runs out of time dies with its chunk unsettled: every record
 * of it is AMBIGUOUS. The defaults (10 requests a worker) take 4.8 s at 1000 requests a minute and 96 s at 50, the
 * slowest API limit Capillary documents.
 */
export const MAX_SECONDS_PER_WORKER = 180;

export const configSchema = z
  .strictObject({
    $schema: z.string().optional(),
    dataflows: z.array(dataflow).min(1, { message: 'must list at least one dataflow' }),
    /** Who hears of alarms and of each finished file (the stack's SNS topic). */
    notifications: z
      .strictObject({
        /** E-mail addresses subscribed to the alerts topic (each confirms by the e-mail AWS sends). @default [] */
        email: z.array(z.email()).default([]),
      })
      .prefault({}),
  })
  .superRefine((config, ctx) => {
    const seen = new Map<string, number>();
    config.dataflows.forEach((flow, i) => {
      const first = seen.get(dataflowIdOf(flow.name));
      if (first !== undefined) {
        const same = config.dataflows[first]!.name === flow.name;
        ctx.addIssue({
          code: 'custom',
          path: ['dataflows', i, 'name'],
          message: same
            ? `duplicates dataflows[${first}].name "${flow.name}"`
            : `reads as dataflows[${first}].name "${config.dataflows[first]!.name}" in the stack's output IDs (both ${dataflowIdOf(flow.name)}): rename one`,
        });
      } else {
        seen.set(dataflowIdOf(flow.name), i);
      }
      if (flow.alerts.noFileWithinMinutes !== undefined) {
        if (!flow.schedule) {
          ctx.addIssue({ code: 'custom', path: ['dataflows', i, 'alerts', 'noFileWithinMinutes'], message: 'needs a schedule: the window starts at each scheduled time' });
        } else if (shiftCron(flow.schedule.cron, flow.alerts.noFileWithinMinutes) === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['dataflows', i, 'alerts', 'noFileWithinMinutes'],
            message: `the arrival check runs at the schedule's time plus this window; for cron "${flow.schedule.cron}" that time cannot be computed: it needs a fixed minute and hour, and the window must end on the same day`,
          });
        }
      }
      if (flow.source.type === 'sftp' && !flow.schedule) {
        ctx.addIssue({ code: 'custom', path: ['dataflows', i, 'schedule'], message: 'is required for an SFTP source: the schedule is what polls the server' });
      }
      if (flow.source.type === 's3' && flow.source.bucket !== undefined && !flow.schedule) {
        ctx.addIssue({ code: 'custom', path: ['dataflows', i, 'schedule'], message: "is required for a vendor's bucket (source.bucket): the schedule is what polls it" });
      }
      const d = flow.destination;
      const requests = Math.ceil(d.recordsPerWorker / d.batchSize);
      // Dataflows of one destination (base URL and secret names) share its send budget: with files of each running
      // at once, a worker's share is the slowest of their rates over all their workers.
      const sharing = config.dataflows.filter((other) => destinationIdOf(other.destination) === destinationIdOf(d));
      const workers = sharing.reduce((sum, other) => sum + other.destination.maxConcurrency, 0);
      const rate = Math.min(...sharing.map((other) => other.destination.maxRequestsPerMinute));
      const seconds = (requests * 60 * workers) / rate;
      if (seconds > MAX_SECONDS_PER_WORKER) {
        const others = sharing.filter((other) => other !== flow).map((other) => other.name);
        ctx.addIssue({
          code: 'custom',
          path: ['dataflows', i, 'destination', 'recordsPerWorker'],
          message: `a worker would need ${Math.round(seconds)} s for its ${requests} requests at its share of the rate (${rate}/${workers} per minute${others.length > 0 ? `, its destination's budget shared with ${others.join(', ')}` : ''}); at most ${MAX_SECONDS_PER_WORKER} s fit: lower recordsPerWorker or maxConcurrency, or raise batchSize`,
        });
      }
      config.dataflows.forEach((other, j) => {
        if (j > i && (other.source.prefix.startsWith(flow.source.prefix) || flow.source.prefix.startsWith(other.source.prefix))) {
          ctx.addIssue({
            code: 'custom',
            path: ['dataflows', j, 'source', 'prefix'],
            message: `overlaps dataflows[${i}].source.prefix "${flow.source.prefix}": a file would belong to two dataflows`,
          });
        }
      });
    });
    checkErrorPrefixes(config.dataflows, ctx);
    checkVendorBuckets(config.dataflows, ctx);
  });

const overlaps = (a: string, b: string) => a.startsWith(b) || b.startsWith(a);

/**
 * An S3 source's `errorPrefix` is where outcomes are written back and, with `vendorAccess`, what the vendor may read
 * and list: it must hold nothing else. Under a dataflow's prefix a written outcome would be taken as a file to import;
 * shared with another dataflow, one vendor could read the other's outcomes; under `replays/`, the records an operator
 * replays.
 */
function checkErrorPrefixes(flows: ReadonlyArray<{ source: { type: string; prefix: string; errorPrefix?: string; bucket?: string } }>, ctx: z.RefinementCtx): void {
  // Only an errorPrefix in the inbox: a source that names the vendor's own bucket writes its outcomes there.
  const inInbox = (source: { type: string; errorPrefix?: string; bucket?: string }) => (source.type === 's3' && source.bucket === undefined ? source.errorPrefix : undefined);
  flows.forEach((flow, i) => {
    const errorPrefix = inInbox(flow.source);
    if (errorPrefix === undefined) return;
    const path = ['dataflows', i, 'source', 'errorPrefix'];
    if (errorPrefix.startsWith('replays/')) ctx.addIssue({ code: 'custom', path, message: 'must not sit under replays/ (operator replays are kept there)' });
    flows.forEach((other, j) => {
      if (overlaps(errorPrefix, other.source.prefix)) {
        const whose = j === i ? 'its own source.prefix' : `dataflows[${j}].source.prefix`;
        ctx.addIssue({ code: 'custom', path, message: `overlaps ${whose} "${other.source.prefix}": an outcome written there would be taken as a file to import` });
      }
      const theirs = inInbox(other.source);
      if (j > i && theirs !== undefined && overlaps(errorPrefix, theirs)) {
        ctx.addIssue({ code: 'custom', path: ['dataflows', j, 'source', 'errorPrefix'], message: `overlaps dataflows[${i}].source.errorPrefix "${errorPrefix}": each dataflow's outcomes need a prefix of their own (its vendor may read it)` });
      }
    });
  });
}

/**
 * Two dataflows polling the same vendor bucket: the poll lists `vendorPrefix` with every folder under it, so one
 * dataflow's prefix must not overlap the other's prefix (a file would be taken by both, or by the wrong one), nor its
 * processedPrefix or errorPrefix (the files it moved or wrote back would be taken again as new deliveries).
 */
function checkVendorBuckets(flows: ReadonlyArray<{ name: string; source: { type: string; bucket?: string; vendorPrefix?: string; processedPrefix?: string; errorPrefix?: string } }>, ctx: z.RefinementCtx): void {
  const polled = flows.flatMap((flow, i) => (flow.source.type === 's3' && flow.source.bucket !== undefined && flow.source.vendorPrefix !== undefined ? [{ i, name: flow.name, source: flow.source, theirs: flow.source.vendorPrefix }] : []));
  for (const a of polled) {
    for (const b of polled) {
      if (a.i === b.i || a.source.bucket !== b.source.bucket) continue;
      if (a.i < b.i && overlaps(a.theirs, b.theirs)) {
        ctx.addIssue({ code: 'custom', path: ['dataflows', b.i, 'source', 'prefix'], message: `overlaps dataflows[${a.i}].source.prefix "${a.theirs}" in bucket "${a.source.bucket}": a file would be taken by both dataflows` });
      }
      for (const key of ['processedPrefix', 'errorPrefix'] as const) {
        const other = b.source[key];
        if (other !== undefined && overlaps(other, a.theirs)) {
          ctx.addIssue({
            code: 'custom',
            path: ['dataflows', b.i, 'source', key],
            message: `overlaps dataflows[${a.i}].source.prefix "${a.theirs}" in bucket "${a.source.bucket}": the files dataflow "${b.name}" puts there would be taken again by dataflow "${a.name}"; use a prefix outside it`,
          });
        }
      }
    }
  }
}

/** The validated configuration, defaults applied. */
export type Config = z.output<typeof configSchema>;
export type Dataflow = Config['dataflows'][number];
export type DateMapping = Dataflow['mapping']['earnEventDate'];
export type PlainMapping = Dataflow['mapping']['customerId'];
export type Destination = Dataflow['destination'];
export type SftpSource = Extract<Dataflow['source'], { type: 'sftp' }>;
export type S3Source = Extract<Dataflow['source'], { type: 's3' }>;
/** An S3 source polled in the vendor's own bucket (`bucket` set): `vendorPrefix` there, `prefix` in the inbox. */
export type VendorBucketSource = Extract<Dataflow['source'], { type: 's3'; bucket: string }>;

/** The vendor-bucket source of a dataflow, or undefined for an inbox drop or SFTP. */
export function vendorBucketOf(flow: Dataflow): VendorBucketSource | undefined {
  return flow.source.type === 's3' && flow.source.bucket !== undefined ? flow.source : undefined;
}

/**
 * The identity of a destination's API and credentials: its base URL as the API sees it (the host's case and a default
 * port do not make another API) and the names of its credentials' secrets (never their values). Dataflows with the
 * same identity share one send budget, and the state machine's timeout and the per-worker check count them together.
 */
export function destinationIdOf(destination: Pick<Destination, 'baseUrl' | 'auth'>): string {
  const url = new URL(destination.baseUrl);
  return [`${url.origin}${url.pathname.replace(/\/+$/, '')}${url.search}`, ...secretNamesOf(destination.auth)].join('\n');
}

/** The names of the secrets an auth setting needs. */
export function secretNamesOf(auth: Destination['auth']): string[] {
  return auth.type === 'basic' ? [auth.usernameSecret, auth.passwordSecret] : [auth.keySecret, auth.secretSecret];
}

/** The names of the secrets a decrypt block needs. */
export function decryptSecretNamesOf(decrypt: Dataflow['decrypt']): string[] {
  if (!decrypt) return [];
  return [decrypt.privateKeySecret, decrypt.passphraseSecret, decrypt.verifySignatureWithSecret].filter((n): n is string => n !== undefined);
}

/** The names of the secrets an SFTP source needs. */
export function sourceSecretNamesOf(source: Dataflow['source']): string[] {
  if (source.type !== 'sftp') return [];
  return [source.passwordSecret, source.privateKeySecret, source.privateKeyPassphraseSecret].filter((n): n is string => n !== undefined);
}

/**
 * The AWS cron expression `minutes` later than `cron`, for crons with a fixed minute and hour whose shifted time stays
 * on the same day (so the day fields carry over unchanged); undefined otherwise.
 */
export function shiftCron(cron: string, minutes: number): string | undefined {
  const [minute, hour, ...rest] = cron.trim().split(/\s+/);
  if (!minute || !hour || !/^\d{1,2}$/.test(minute) || !/^\d{1,2}$/.test(hour)) return undefined;
  const total = Number(hour) * 60 + Number(minute) + minutes;
  if (total >= 24 * 60) return undefined;
  return [String(total % 60), String(Math.floor(total / 60)), ...rest].join(' ');
}
