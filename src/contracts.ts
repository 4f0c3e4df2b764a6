/**
 * The contracts between the state machine's steps: each state's input and output, the environment the Lambdas
 * read, and the S3 key layout. Infrastructure code imports these; they import nothing from it.
 */

/** Environment variables the Lambdas read. */
export const ENV = {
  step: 'BADGES_STEP',
  inboxBucket: 'INBOX_BUCKET',
  stagingBucket: 'STAGING_BUCKET',
  deadLetterBucket: 'DEAD_LETTER_BUCKET',
  reportsBucket: 'REPORTS_BUCKET',
  stateMachineArn: 'STATE_MACHINE_ARN',
  configFile: 'BADGES_CONFIG_FILE',
  alertsTopicArn: 'ALERTS_TOPIC_ARN',
  /**
   * Test and bench knob only (never set by the stack): JSON `{"rangeBytes":…,"partitionRecords":…}` overriding the
   * stage's range and partition sizes, so a small file is staged over several ranges and partitions (see StagePlanSizes).
   */
  stagePlan: 'BADGES_STAGE_PLAN',
  /** The shared send budget's DynamoDB table (the Send function only); absent, each worker paces itself. */
  budgetTable: 'BUDGET_TABLE',
} as const;

/** The Lambda-backed steps. */
export const STEPS = ['stage', 'send', 'finalize', 'sweep'] as const;
export type StepName = (typeof STEPS)[number];

/**
 * Each step Lambda's memory (MB) and timeout (seconds): the stack sets them (lib/step-lambdas.ts) and the cost model
 * (src/ops/estimate.ts) prices them, so the two cannot drift apart. The stage has one full vCPU (1769 MB); a sweep that
 * polls an SFTP server or a vendor's bucket gets `pollingMemoryMb` and `pollingTimeoutSeconds`.
 */
export const STEP_LAMBDA_SETTINGS = {
  stage: { memoryMb: 1769, timeoutSeconds: 900 },
  send: { memoryMb: 512, timeoutSeconds: 300 },
  finalize: { memoryMb: 1024, timeoutSeconds: 900 },
  sweep: { memoryMb: 256, timeoutSeconds: 300, pollingMemoryMb: 1024, pollingTimeoutSeconds: 900 },
} as const;

/** File name of the configuration bundled next to each Lambda's code. */
export const BUNDLED_CONFIG_FILE = 'badges-config.json';

/** The service name Powertools adds to every metric as the `service` dimension (and the alarms match on). */
export const SERVICE_NAME = 'badges-import';

/** The metrics of namespace BadgesImport (dimension `dataflow`, and `service` as Powertools adds it). */
export const METRICS = {
  namespace: 'BadgesImport',
  /** Records read from a file (stage). */
  recordsRead: 'RecordsRead',
  /** Records accepted by the API (finalize, per file). */
  recordsAccepted: 'RecordsAccepted',
  /** Records rejected (finalize, per file); also per `stage` and `code` dimensions. */
  recordsRejected: 'RecordsRejected',
  /** Records the dataflow's filter left out (finalize, per file): neither sent nor rejected. */
  recordsFiltered: 'RecordsFiltered',
  /** Share of a file's records rejected, in percent of those its filter kept (finalize, per file that had any). */
  rejectedPercent: 'RejectedPercent',
  /** Share of a file's records not issued after every retry (RETRIES_EXHAUSTED), in percent of those its filter kept (finalize, per file that had any). */
  retriesExhaustedPercent: 'RetriesExhaustedPercent',
  /** Files finished (finalize), and those FAILED. */
  filesProcessed: 'FilesProcessed',
  filesFailed: 'FilesFailed',
  /** Runs started by the sweep (upload events, schedules, SFTP polls). */
  filesStarted: 'FilesStarted',
  /** 1 when the arrival check after the schedule found no file, else 0. */
  noFileArrived: 'NoFileArrived',
  /** API requests, 429s, retries, records reconciled, and the mean latency per chunk (send). */
  apiRequests: 'ApiRequests',
  apiThrottles: 'ApiThrottles',
  apiRetries: 'ApiRetries',
  apiReconciled: 'ApiReconciled',
  apiLatency: 'ApiLatency',
  /** Records a finished run cannot place: read ≠ accepted + rejected + filtered (finalize; the run is FAILED RECORDS_UNACCOUNTED). */
  recordsUnaccounted: 'RecordsUnaccounted',
  /** Duration of a run, start to report (finalize). */
  runDuration: 'RunDuration',
} as const;
export type MetricName = (typeof METRICS)[Exclude<keyof typeof METRICS, 'namespace'>];

/**
 * Metrics also written with the `service` dimension alone (one more EMF line), for alarms over the whole stack:
 * CloudWatch takes at most 10 metrics in an alarm's math, so summing one metric per dataflow stops at nine dataflows.
 */
export const STACK_WIDE_METRICS: readonly MetricName[] = [METRICS.filesFailed];

/** The buckets, by role. */
export interface Buckets {
  inbox: string;
  staging: string;
  deadLetter: string;
  reports: string;
}

/** Input of one execution of the per-file workflow: which object of which dataflow. */
export interface ExecutionInput {
  dataflow: string;
  bucket: string;
  key: string;
  /**
   * The object version the trigger saw (the inbox is versioned): the run reads, and finalize moves, exactly this
   * version, so an object overwritten while its run is in flight is neither skipped nor sent twice. Absent for an
   * unversioned bucket: the current object.
   */
  versionId?: string;
  /** Validate and report without calling the API. */
  dryRun?: boolean;
  /** Import even if the same content was imported before for this dataflow. */
  force?: boolean;
  /** The object is a replay file (rejected records selected for another try): records keep their original numbers. */
  replay?: boolean;
}

/** What the state machine hands every step besides its state: the execution's identity. */
export interface RunContext {
  runId: string;
  startedAt: string;
}

/** The stage's phases, all run by the one Stage Lambda (see docs/how-it-works.md, "Staging"). */
export const STAGE_PHASES = ['prepare', 'scan', 'plan', 'range', 'settle', 'finish'] as const;
export type StagePhase = (typeof STAGE_PHASES)[number];

/**
 * What the state carries of the staging plan between the stage's phases: index lists only (a 40-worker inline Map
 * over `[0,1,…]`); everything else is in the staging object `key` (KEYS.plan).
 */
export interface StagePlanRef {
  key: string;
  /** Planned byte ranges of the plaintext, by index (range workers). */
  ranges: number[];
  /** Key partitions, by index (settle workers). */
  partitions: number[];
  /** Nominal byte ranges of a plain source still to scan for record boundaries (scan workers); absent once planned. */
  scan?: number[];
}

/**
 * The stage's event: `phase` absent or `'prepare'` for the execution's input; the later phases get the state the
 * earlier ones left (the execution input, the run's fields and `plan`), and a Map worker its `index`.
 */
export interface StageEvent extends RunContext {
  input: ExecutionInput & { plan?: StagePlanRef };
  phase?: StagePhase;
  /** The scan, range or partition this worker of an inline Map takes. */
  index?: number;
}

/** A slice of the valid records, sent by one Distributed Map worker. */
export interface ChunkRef {
  index: number;
  key: string;
  /** Records to send: the chunk's lines less those in `skipKey`. */
  records: number;
  firstRecord: number;
  /**
   * Staging key of a JSON array of record numbers (sorted) of this chunk that are not sent: exact repeats of an
   * earlier record, already rejected DUPLICATE_IN_FILE by the stage. Send and finalize skip them silently.
   */
  skipKey?: string;
}

/** A file's records by outcome: every record read is accepted, rejected or filtered, exactly one of them. */
export interface RowCounts {
  total: number;
  accepted: number;
  rejected: number;
  /** Left out by the dataflow's filter: neither sent nor rejected (absent from reports written before filters existed). */
  filtered?: number;
}

export interface StageOutput extends ExecutionInput, RunContext {
  /** Set when the object does not belong to the dataflow (name outside its pattern): nothing else happens. */
  skipped?: string;
  /** Set when the same content (sha256) was claimed by another run of this dataflow: nothing is sent. */
  duplicateOf?: ImportedMarker;
  /**
   * Set for a zip archive: how many matching entries were written to the inbox, each to be imported on its own. Their
   * keys are in the staging object `expandedKey` (a list of thousands would not fit in a 256 KiB state).
   */
  expanded?: number;
  expandedKey?: string;
  /** This run holds the content claim (`imported/<dataflow>/<sha256>.json`): finalize completes or releases it. */
  claimed?: boolean;
  /** Staging key of the JSON array of ChunkRef that the Distributed Map reads. */
  chunksKey: string;
  chunkCount: number;
  /** Workers sending at once (read by the Distributed Map's MaxConcurrencyPath). */
  maxConcurrency: number;
  records: number;
  valid: number;
  rejected: number;
  /** Records the dataflow's filter left out (absent when none were, or the stage did not read the file). */
  filtered?: number;
  /** Staging key of a JSON document with the header, hash and rejection counts. */
  summaryKey: string;
  /** Set by prepare when records are to be staged (the later phases read it); absent after a zip or a skip. */
  plan?: StagePlanRef;
}

/**
 * The content claim, `imported/<dataflow>/<sha256>.json` in the reports bucket. The stage writes it with S3's
 * conditional write (`If-None-Match: *`) once the whole file is staged and before anything is sent, so of two runs
 * of the same content (two names, two folders, a zip holding a file twice) exactly one sends. Finalize marks it
 * `imported` (or `sent-then-failed` when a FAILED run had sent records), or deletes it when a FAILED run sent nothing.
 */
export interface ImportedMarker {
  runId: string;
  key: string;
  /** `claimed`: its run is in flight. Markers written before claims existed have no state and mean `imported`. */
  state?: 'claimed' | 'imported' | 'sent-then-failed';
  claimedAt?: string;
  finishedAt?: string;
  /** Records that run had accepted, when it finished. */
  accepted?: number;
  /** Records that run's filter left out, when it finished (absent when none were). */
  filtered?: number;
  /**
   * The claim a forced run took over (`force`), kept while it is `claimed`: if it fails having sent nothing, it puts
   * this marker back instead of deleting the claim, so the import it was forced over still holds the content.
   */
  supersedes?: ImportedMarker;
}

/** The per-file details written by the stage step (too large or too local for the state). */
export interface StageSummary {
  header: string[];
  delimiter: string;
  /**
   * SHA-256 of the delivered bytes (exactly the object's version), for the report. For a plain file over one hash
   * block (8 MiB), read in parallel ranges, the block-tree digest instead (`sha256Tree`: SHA-256 of the blocks' digests).
   */
  sha256: string;
  /** `sha256` is the block-tree digest (see contentDigest), not the SHA-256 of the bytes in one pass. */
  sha256Tree?: boolean;
  /**
   * Digest of the plaintext the parser read (after decryption, gunzip, transcoding): the content claim's key. The same
   * records encrypted again or compressed otherwise are other bytes but the same content. The SHA-256 of the text when
   * it is one hash block (8 MiB) or less; over that, the block-tree digest (contentDigest).
   */
  contentSha256: string;
  /**
   * `contentSha256` is the block-tree digest (a text over one hash block, however delivered). The claim keeps such a
   * digest apart from a one-block text's SHA-256 (see contentClaimId): the tree digest is itself the SHA-256 of a
   * 64-byte (or longer) text, the block digests laid end to end.
   */
  contentTree?: boolean;
  bytes: number;
  rejectionsByCode: Record<string, number>;
  /**
   * Staging keys of the validation rejects (CSV lines without a header), in record order: each range's, then the
   * duplicates' (DUPLICATE_IN_FILE). Absent or empty when there are none.
   */
  rejectedPartKeys?: string[];
  /** Records the dataflow's filter left out, the expression, and the staging keys of their CSV lines (without a header), range by range. */
  filtered?: { count: number; expression: string; partKeys?: string[] };
}

/** Item the Distributed Map hands each worker (its ItemSelector). */
export interface SendEvent extends RunContext {
  dataflow: string;
  chunk: ChunkRef;
  /** Workers sending at once for this file (the Map's MaxConcurrency): each takes this share of the rate. */
  concurrency?: number;
}

export interface SendOutput {
  index: number;
  records: number;
  accepted: number;
  rejected: number;
  rejectionsByCode: Record<string, number>;
  /** Staging key of this chunk's API rejects (CSV lines without a header), when there are any. */
  rejectedPartKey?: string;
  /** Set when the chunk stopped on an error that dooms the whole file (e.g. refused credentials). */
  fatal?: { code: string; message: string };
  /** What the client did: requests made, 429s met, retries, items reconciled after an unknown outcome. */
  stats?: { requests: number; throttled: number; retried: number; reconciled: number; answered?: number; latencyMs?: number };
}

/** What a Catch adds to the state. */
export interface CaughtError {
  Error?: string;
  Cause?: string;
}

/** The finalize step sees whatever state the run reached: the execution input at least. */
export interface FinalizeEvent extends RunContext {
  state: ExecutionInput & Partial<StageOutput> & { error?: CaughtError };
}

export const RUN_STATUS = ['SUCCEEDED', 'COMPLETED_WITH_REJECTIONS', 'FAILED', 'SKIPPED_DUPLICATE', 'EXPANDED'] as const;
export type RunStatus = (typeof RUN_STATUS)[number];

export interface FileReport {
  name: string;
  /** SHA-256 of the delivered bytes. */
  sha256?: string;
  /** SHA-256 of the plaintext parsed (after decryption and gunzip): the key of the content claim. */
  contentSha256?: string;
  bytes?: number;
  status: RunStatus;
  rows: RowCounts;
  /** Where the rejected records are: `s3://…` in AWS, a path relative to the report locally. */
  rejectedFile?: string;
  /** Where the records the dataflow's filter left out are (`….filtered.csv` beside the rejected file), when there are any. */
  filteredFile?: string;
  /** For a zip archive (EXPANDED): the inbox keys of the entries, each imported by a run of its own. */
  expandedTo?: string[];
  source: {
    bucket: string;
    key: string;
    /** The object version this run read and moved. */
    versionId?: string;
    movedTo?: string;
    /** For a file pulled from SFTP: where it was (`sftp://host:port/path`) and where it was moved on the server. */
    origin?: string;
    remoteMovedTo?: string;
    /** The summary and rejected records written back to the SFTP error directory, or why that failed. */
    writtenBack?: string[];
    writeBackError?: string;
  };
}

/** The run report (`report.json`). */
export interface Report {
  runId: string;
  dataflow: string;
  status: RunStatus;
  dryRun: boolean;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  rows: RowCounts & { valid: number };
  rejectionsByCode: Record<string, number>;
  /** Rejected records by the stage that rejected them. */
  rejectedByStage?: { validate: number; api: number };
  files: FileReport[];
  /** Set for a replay: records are numbered as in the original file. */
  replay?: boolean;
  /** For SKIPPED_DUPLICATE: the run that holds this content's claim (in flight, imported, or failed after sending). */
  duplicateOf?: ImportedMarker;
  error?: { code: string; message: string };
  /**
   * For a FAILED run that had already issued records (or may have: AMBIGUOUS): the file must not be delivered again
   * (its content stays claimed); its rejected records are replayed instead.
   */
  sentBeforeFailure?: { accepted: number; ambiguous: number };
}

/**
 * What finalize hands back to the state machine: the outcome, not the report (a report can list thousands of zip
 * entries; a state is capped at 256 KiB). The report is in the reports bucket under `reportKey`.
 */
export interface FinalizeOutput {
  runId: string;
  dataflow: string;
  status: RunStatus;
  rows: RowCounts & { valid: number };
  reportKey: string;
  error?: { code: string; message: string };
}

/** The state machine's view of a report (see FinalizeOutput). */
export function finalizeOutputOf(report: Report): FinalizeOutput {
  return {
    runId: report.runId,
    dataflow: report.dataflow,
    status: report.status,
    rows: report.rows,
    reportKey: KEYS.report(report.dataflow, report.runId),
    ...(report.error ? { error: report.error } : {}),
  };
}

/** S3 key layout. Staging keys live under `runs/<runId>/` and expire by lifecycle. */
export const KEYS = {
  chunks: (runId: string) => `runs/${runId}/chunks.json`,
  /** The inbox keys a zip archive's entries were written to (a JSON array). */
  expanded: (runId: string) => `runs/${runId}/expanded.json`,
  plaintext: (runId: string) => `runs/${runId}/plaintext`,
  /** A decrypted file's text once gunzipped or transcoded (its plaintext stays beside it). */
  unpacked: (runId: string) => `runs/${runId}/plaintext.unpacked`,
  chunk: (runId: string, index: number) => `runs/${runId}/chunks/${String(index).padStart(6, '0')}.jsonl`,
  summary: (runId: string) => `runs/${runId}/stage.json`,
  /** The staging plan (StagePlan): where the plaintext is, its ranges, the header, the partitions. */
  plan: (runId: string) => `runs/${runId}/plan.json`,
  /** A scan worker's RangeScan of nominal range `i` of a plain source. */
  scan: (runId: string, i: number) => `runs/${runId}/scans/${pad(i)}.json`,
  /** A range worker's RangeResult. */
  rangeResult: (runId: string, r: number) => `runs/${runId}/ranges/${pad(r)}/result.json`,
  /** Chunk `j` of range `r` (ChunkRef.key: finish numbers the chunks of every range in record order). */
  rangeChunk: (runId: string, r: number, j: number) => `runs/${runId}/ranges/${pad(r)}/chunks/${pad(j)}.jsonl`,
  rangeRejects: (runId: string, r: number) => `runs/${runId}/ranges/${pad(r)}/rejects.csv`,
  rangeFiltered: (runId: string, r: number) => `runs/${runId}/ranges/${pad(r)}/filtered.csv`,
  /** The packed keys and numbers of a range's staged records, one segment per partition (KeyPartitions). */
  rangeKeys: (runId: string, r: number) => `runs/${runId}/ranges/${pad(r)}/keys.bin`,
  /** A settle worker's `{ duplicates: Array<[number, firstNumber]> }`, sorted by number. */
  partitionDuplicates: (runId: string, p: number) => `runs/${runId}/partitions/${pad(p)}.bin`,
  /** The DUPLICATE_IN_FILE rejects (CSV lines without a header), in record order. */
  duplicateRejects: (runId: string) => `runs/${runId}/rejects/duplicates.csv`,
  /** The record numbers of chunk `i` that are not sent (JSON array, sorted): ChunkRef.skipKey. */
  chunkSkip: (runId: string, i: number) => `runs/${runId}/skip/${pad(i)}.json`,
  apiRejects: (runId: string, index: number) => `runs/${runId}/rejects/api-${String(index).padStart(6, '0')}.csv`,
  result: (runId: string, index: number) => `runs/${runId}/results/${String(index).padStart(6, '0')}.json`,
  resultsPrefix: (runId: string) => `runs/${runId}/results/`,
  mapResults: 'map-results/',
  rejected: (dataflow: string, runId: string, fileName: string) => `rejected/${dataflow}/${runId}/${fileName.replace(/\.[^.]*$/, '')}.rejected.csv`,
  /** Beside the rejected file: the records the filter left out (never a replay's input: its header is not a rejected file's). */
  filtered: (dataflow: string, runId: string, fileName: string) => `rejected/${dataflow}/${runId}/${fileName.replace(/\.[^.]*$/, '')}.filtered.csv`,
  report: (dataflow: string, runId: string) => `reports/${dataflow}/${runId}/report.json`,
  imported: (dataflow: string, sha256: string) => `imported/${dataflow}/${sha256}.json`,
  /** When the sweep last started a run for the dataflow (read by the arrival check). */
  arrival: (dataflow: string) => `arrivals/${dataflow}.json`,
  processed: (dataflow: string, runId: string, fileName: string) => `processed/${dataflow}/${runId}/${fileName}`,
  failed: (dataflow: string, runId: string, fileName: string) => `failed/${dataflow}/${runId}/${fileName}`,
} as const;

/** What a poll of a dataflow's SFTP server took and left (the sweep's `pulled`, the CLI's and `serve`'s pull lines). */
export interface PullResult {
  dataflow: string;
  /** Files copied into the inbox bucket (and moved to the processed directory). */
  taken: Array<{ path: string; key: string; movedTo: string; bytes: number }>;
  /** Files left for a later poll, with the reason. */
  waiting: Array<{ path: string; reason: string }>;
  /** Files that could not be taken (each is tried again at the next poll). */
  failed: Array<{ path: string; message: string }>;
}

/** A key's index part: six digits, so keys list in order. */
function pad(n: number): string {
  return String(n).padStart(6, '0');
}

/** The last segment of a key. */
export function fileNameOf(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}

/**
 * The content claim's identity (KEYS.imported) of a staged summary: its content digest, with `tree-` before a
 * block-tree digest. Without it, a small file whose bytes are a big file's block digests end to end would have the big
 * file's digest as its SHA-256, and its claim would skip the big file as a duplicate (or the reverse).
 */
export function contentClaimId(summary: Pick<StageSummary, 'contentSha256' | 'contentTree'>): string {
  return summary.contentTree ? `tree-${summary.contentSha256}` : summary.contentSha256;
}
