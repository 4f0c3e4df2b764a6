import type { Dataflow } from '../config/schema';
import { STEP_LAMBDA_SETTINGS } from '../contracts';
import { COPY_OBJECT_MAX_BYTES, copyParts } from '../aws/s3';
import { HASH_BLOCK_BYTES } from '../core/ranges';
import type { StagePlanSizes } from '../steps/deps';
import { partitionCount, rangeBytesFor } from '../steps/stage-plan';
import { PRICES, type Prices } from './prices';

// The cost model behind `badges-import estimate`: configuration + rows (+ bytes) → what one file does in AWS (Lambda
// invocations and GB-seconds, state transitions, S3 requests, DynamoDB request units, bytes to the API), how long
// it takes, and what it costs at the list prices of ./prices. Pure: no AWS, no clock. Counts (invocations,
// transitions, requests) follow the code and the state machine, and a test checks them against what the twin
// counted in a local run (test/estimate.test.ts); durations rest on the stated ASSUMPTIONS.

/**
 * What the model assumes where the code cannot tell: measured figures where there are some (design notes, benches),
 * otherwise a stated guess. Each is used in one place below.
 */
export const ASSUMPTIONS = {
  /** Bytes of a typical record when `--bytes` is not given: the bench's generated file (1M rows, 86 MB) rounded up. */
  recordBytes: 90,
  /**
   * Records a range worker (one vCPU at 1769 MB) parses, validates, maps and stages per second: measured, 1M rows
   * staged by two range workers in 12.0 s of their CPU (`npm run bench:stage:pgp`, README "Scale and cost"), not the
   * issue's target (150,000, which the stage does not reach).
   */
  rangeRecordsPerSecond: 80_000,
  /** One Lambda's streaming read from S3 (bytes/s). */
  s3ReadBytesPerSecond: 90 * 1024 ** 2,
  /** openpgp's streaming decryption, measured here (design notes: 87 MB/s, gpg-compressed input). */
  pgpBytesPerSecond: 87 * 1024 ** 2,
  /** Node's gunzip of a CSV (bytes of output per second). */
  gunzipBytesPerSecond: 200 * 1024 ** 2,
  /** Packed keys a settle worker sorts and compares per second. */
  settleEntriesPerSecond: 2_000_000,
  /** Billed time of an invocation besides its work: start, reading the plan, writing its result. */
  invocationOverheadSeconds: 0.2,
  /** The API's answer time for a request of `batchSize` items (a guess: the sandbox answers at once, Capillary documents none). */
  apiLatencySeconds: (batchSize: number) => 0.3 + 0.0002 * batchSize,
  /**
   * DynamoDB requests of the shared send budget per API request, as `npm run bench:send` counted them (docs/deploy.md,
   * "One send budget per destination"): 1.3–1.7 UpdateItem (the slot, the growth write once a second, conditional
   * writes that lost a race) and 0.5–1 GetItem (the check after a wait); the upper ends, so the estimate does not flatter.
   */
  budgetWritesPerRequest: 1.7,
  budgetReadsPerRequest: 1,
  /** CloudWatch Logs bytes per Lambda invocation (START/END/REPORT and a few JSON lines). */
  logBytesPerInvocation: 2048,
  /** Step Functions log bytes per transition (LogLevel.ALL without execution data: an entered and an exited event). */
  logBytesPerTransition: 600,
  /** lib-storage's part size (its default, the smallest S3 takes): a streamed upload over it is multipart. */
  uploadPartBytes: 5 * 1024 ** 2,
  /** A request item as the API takes it (`JSON.stringify` of a mapped record), for the bytes sent. */
  requestItem: { customerId: 123456789, badgeMetaId: '6571a3b9e4b0c1a2b3c4d5e6', earnEventDate: 1764460800000, earnExpiresOn: 1796083200000 },
} as const;

/** Workers of an inline Map at once (AWS's ceiling, lib/workflow.ts). */
const INLINE_MAP_CONCURRENCY = 40;
/** The Distributed Map's ItemReader reads a JSON chunk list of at most this many bytes (AWS's limit). */
const ITEM_READER_MAX_BYTES = 10 * 1024 ** 2;
/** A state's input or output, at most (AWS's limit). */
const STATE_PAYLOAD_MAX_BYTES = 256 * 1024;

export interface EstimateOptions {
  dataflow: Dataflow;
  /** Data records in the file (the header excluded). */
  rows: number;
  /** Bytes of the delivered file. @default rows × ASSUMPTIONS.recordBytes */
  bytes?: number;
  /** The file is gzip-compressed: read once in a sequential pass. @default false */
  gzip?: boolean;
  /** Bytes of the plaintext of a PGP or gzip file, when known. @default rows × ASSUMPTIONS.recordBytes, at least `bytes` */
  plaintextBytes?: number;
  /** The prices to use. @default PRICES */
  prices?: Prices;
  /** The workflow's timeout in seconds (`workflowTimeout(config).seconds`, src/config/limits.ts). */
  workflowTimeoutSeconds: number;
  /** The stage's test knob (`BADGES_STAGE_PLAN`): range and partition sizes that give a small file several of each. */
  planSizes?: StagePlanSizes;
}

/** How the file is staged and sent: the sizes everything else is counted from. */
export interface PlanShape {
  /** A sequential pass (PGP, gzip or UTF-16) decodes the file into a plaintext before the parallel phases. */
  sequentialPass: 'pgp' | 'gzip' | 'utf-16le' | undefined;
  /** Bytes of the text the ranges cut (the plaintext). */
  textBytes: number;
  rangeBytes: number;
  /** Scan workers (a plain file only). */
  scans: number;
  ranges: number;
  partitions: number;
  chunks: number;
  apiRequests: number;
  /** Records and API requests of a full chunk. */
  recordsPerChunk: number;
  requestsPerChunk: number;
}

/** The model's answer for one file. */
export interface Estimate {
  /** The headline: dollars per million records at these settings. */
  usdPerMillionRecords: number;
  dataflow: string;
  rows: number;
  bytes: number;
  usdPerFile: number;
  settings: { batchSize: number; recordsPerWorker: number; maxConcurrency: number; maxRequestsPerMinute: number };
  plan: PlanShape;
  /** Seconds from the execution's start: staging (until the send can start), sending, finalize, total. */
  wallSeconds: { sequentialPass: number; scan: number; plan: number; ranges: number; settle: number; finish: number; staging: number; sending: number; finalize: number; total: number };
  /** Invocations and GB-seconds, by function and stage phase (`stage:range`…). */
  lambda: Record<string, { invocations: number; gbSeconds: number }>;
  /** State transitions as Step Functions Standard bills them. */
  transitions: number;
  /** S3 requests by what they are for, and the billed tiers. */
  s3: { byKind: Record<string, S3Requests>; putCopyPostList: number; getAndOther: number; free: number };
  /** DynamoDB request units of the shared send budget (per API request: ASSUMPTIONS.budgetWritesPerRequest and budgetReadsPerRequest). */
  dynamoDb: { writeRequestUnits: number; readRequestUnits: number };
  /** Bytes of request bodies sent to the API. */
  apiBytes: number;
  /** CloudWatch Logs ingested (Lambda and Step Functions logs). */
  logBytes: number;
  /** Dollars by service. */
  usd: { lambdaRequests: number; lambdaCompute: number; stepFunctions: number; s3: number; dynamoDb: number; logs: number };
  pricesReadOn: string;
  warnings: string[];
}

/** Requests of one kind, by billing tier. */
export interface S3Requests {
  putCopyPostList: number;
  getAndOther: number;
  free: number;
}

const requests = (putCopyPostList: number, getAndOther = 0, free = 0): S3Requests => ({ putCopyPostList, getAndOther, free });

/** The sequential pass a file needs, if any: decryption, decompression, or transcoding to UTF-8. */
function sequentialPassOf(dataflow: Dataflow, gzip: boolean): PlanShape['sequentialPass'] {
  if (dataflow.decrypt) return 'pgp';
  if (gzip) return 'gzip';
  return dataflow.csv.encoding === 'utf-16le' ? 'utf-16le' : undefined;
}

/** API requests to send `records` records in chunks of `perChunk`, `batch` to a request. */
function requestsFor(records: number, perChunk: number, batch: number): number {
  const full = Math.floor(records / perChunk);
  const rest = records - full * perChunk;
  return full * Math.ceil(perChunk / batch) + Math.ceil(rest / batch);
}

/** The plan of a file: ranges, partitions, chunks and API requests, as the stage would cut it. */
export function planShape(dataflow: Dataflow, rows: number, bytes: number, options: Pick<EstimateOptions, 'gzip' | 'plaintextBytes' | 'planSizes'> = {}): PlanShape {
  const sequentialPass = sequentialPassOf(dataflow, options.gzip ?? false);
  const sizes = options.planSizes ?? {};
  // A PGP or gzip file's plaintext is larger than what was delivered; counted from the records unless known.
  const textBytes = sequentialPass === 'pgp' || sequentialPass === 'gzip' ? (options.plaintextBytes ?? Math.max(bytes, rows * ASSUMPTIONS.recordBytes)) : bytes;
  const rangeBytes = rangeBytesFor(textBytes, sizes);
  const ranges = Math.max(1, Math.ceil(textBytes / rangeBytes));
  const { recordsPerWorker, batchSize } = dataflow.destination;
  // Each range stages its own chunks: its records in chunks of recordsPerWorker, the last one partial. Ranges hold
  // records in proportion to their bytes: all of rangeBytes but the last, which holds the rest.
  const full = ranges > 1 ? Math.min(Math.floor(rows / (ranges - 1)), Math.round((rows * rangeBytes) / textBytes)) : rows;
  const last = rows - (ranges - 1) * full;
  const chunksOf = (n: number) => Math.ceil(n / recordsPerWorker);
  const chunks = (ranges - 1) * chunksOf(full) + chunksOf(last);
  const apiRequests = (ranges - 1) * requestsFor(full, recordsPerWorker, batchSize) + requestsFor(last, recordsPerWorker, batchSize);
  return {
    sequentialPass,
    textBytes,
    rangeBytes,
    scans: sequentialPass ? 0 : ranges,
    ranges,
    partitions: partitionCount(rows, sizes),
    chunks,
    apiRequests,
    recordsPerChunk: recordsPerWorker,
    requestsPerChunk: Math.ceil(recordsPerWorker / batchSize),
  };
}

/**
 * Transitions of one execution that sends (Step Functions Standard): the parent's states on the happy path, each
 * inline Map's iteration (one Task each), and per Distributed Map child one for its start and one for its Send.
 */
export function transitionsOf(plan: PlanShape): number {
  const parent = ['Stage', 'ForThisDataflow?', 'Staged?', 'Planned?', ...(plan.sequentialPass ? [] : ['ScanRanges', 'PlanRanges']), 'StageRanges', 'SettleDuplicates', 'FinishStage', 'AnythingToSend?', 'SendChunks', 'Finalize', 'FileFailed?', 'Done'];
  return parent.length + plan.scans + plan.ranges + plan.partitions + 2 * plan.chunks;
}

/** Seconds each phase takes (wall) and each invocation of it is billed. */
function durations(plan: PlanShape, rows: number, dataflow: Dataflow) {
  const a = ASSUMPTIONS;
  const overhead = a.invocationOverheadSeconds;
  const waves = (workers: number) => Math.ceil(workers / INLINE_MAP_CONCURRENCY);
  const decode = plan.sequentialPass === 'pgp' ? a.pgpBytesPerSecond : plan.sequentialPass === 'gzip' ? a.gunzipBytesPerSecond : a.s3ReadBytesPerSecond;
  const sequentialPass = plan.sequentialPass ? plan.textBytes / Math.min(decode, a.s3ReadBytesPerSecond) : 0;
  const scanEach = overhead + Math.min(plan.rangeBytes, plan.textBytes) / a.s3ReadBytesPerSecond;
  const rangeEach = overhead + Math.max(rows / plan.ranges / a.rangeRecordsPerSecond, plan.textBytes / plan.ranges / a.s3ReadBytesPerSecond);
  const settleEach = overhead + rows / plan.partitions / a.settleEntriesPerSecond;
  const finish = overhead + plan.ranges * 0.02 + plan.partitions * 0.02;
  const { maxConcurrency, maxRequestsPerMinute, batchSize } = dataflow.destination;
  // A worker's request takes the API's answer time, or its share of the rate if that is longer (the pacer waits).
  const perRequest = Math.max(a.apiLatencySeconds(batchSize), (maxConcurrency * 60) / maxRequestsPerMinute);
  const sendEach = overhead + plan.requestsPerChunk * perRequest;
  const sending = Math.max((plan.apiRequests * 60) / maxRequestsPerMinute, (plan.apiRequests * a.apiLatencySeconds(batchSize)) / maxConcurrency);
  const finalize = overhead + 1 + plan.chunks * 0.005;
  return {
    billed: { prepare: overhead + sequentialPass, scan: scanEach, plan: plan.scans ? overhead + plan.scans * 0.02 : 0, range: rangeEach, settle: settleEach, finish, send: sendEach, finalize, sweep: overhead },
    wall: {
      sequentialPass: overhead + sequentialPass,
      scan: plan.scans ? waves(plan.scans) * scanEach : 0,
      plan: plan.scans ? overhead + plan.scans * 0.02 : 0,
      ranges: waves(plan.ranges) * rangeEach,
      settle: waves(plan.partitions) * settleEach,
      finish,
      sending,
      finalize,
    },
  };
}

/** Invocations and GB-seconds by function and stage phase. */
function lambdaOf(plan: PlanShape, billed: ReturnType<typeof durations>['billed']): Estimate['lambda'] {
  const gb = (step: keyof typeof STEP_LAMBDA_SETTINGS) => STEP_LAMBDA_SETTINGS[step].memoryMb / 1024;
  const stagePhases: Array<[string, number, number]> = [
    ['prepare', 1, billed.prepare],
    ['scan', plan.scans, billed.scan],
    ['plan', plan.scans ? 1 : 0, billed.plan],
    ['range', plan.ranges, billed.range],
    ['settle', plan.partitions, billed.settle],
    ['finish', 1, billed.finish],
  ];
  const lambda: Estimate['lambda'] = {};
  let stage = { invocations: 0, gbSeconds: 0 };
  for (const [phase, invocations, seconds] of stagePhases) {
    if (invocations === 0) continue;
    lambda[`stage:${phase}`] = { invocations, gbSeconds: invocations * seconds * gb('stage') };
    stage = { invocations: stage.invocations + invocations, gbSeconds: stage.gbSeconds + invocations * seconds * gb('stage') };
  }
  lambda.stage = stage;
  lambda.send = { invocations: plan.chunks, gbSeconds: plan.chunks * billed.send * gb('send') };
  lambda.finalize = { invocations: 1, gbSeconds: billed.finalize * gb('finalize') };
  // The sweep that starts the execution from the upload event: not part of the workflow, but of the file's cost.
  lambda.sweep = { invocations: 1, gbSeconds: billed.sweep * gb('sweep') };
  return lambda;
}

/** A streamed upload of `bytes`: one PutObject, or a multipart upload (create, parts, complete). */
const streamedUpload = (bytes: number): number => (bytes <= ASSUMPTIONS.uploadPartBytes ? 1 : 2 + Math.ceil(bytes / ASSUMPTIONS.uploadPartBytes));

/**
 * S3 requests by what they are for, on the happy path of a file whose records are all accepted (a range or a send
 * worker with rejected records writes a part more; a chunk with repeats, a skip list). Each line follows the code:
 * src/steps/stage*.ts, send.ts, finalize.ts, and the Distributed Map's ItemReader and ResultWriter.
 */
export function s3RequestsOf(plan: PlanShape, bytes: number): Record<string, S3Requests> {
  const { ranges: R, partitions: P, chunks: C, scans: S } = plan;
  const sequential = plan.sequentialPass !== undefined;
  return {
    // Prepare heads the source and sniffs its first bytes; finalize heads it again before the move.
    'source: heads and sniff': requests(0, 3),
    ...(sequential
      ? { 'prepare: sequential read, plaintext upload': requests(streamedUpload(plan.textBytes), 1) }
      : { 'scan: ranged reads, scans written and read': requests(S, 2 * S) }),
    // A plain text of one hash block or less is hashed whole (the scans hash whole blocks only).
    ...(!sequential && plan.textBytes <= HASH_BLOCK_BYTES ? { 'plan: content hash of a one-block text': requests(0, 1) } : {}),
    'plan: header read, plan written and read by every worker': requests(sequential ? 1 : 2, 1 + S + (S ? 1 : 0) + R + P + 1),
    'range: ranged reads': requests(0, R),
    'range: chunks, keys, results': requests(C + 2 * R),
    'settle: range results, key segments, duplicates': requests(P, 2 * R * P),
    'finish: range results, duplicates; summary, chunk list, claim': requests(3, R + P),
    'send: ItemReader, ResultWriter': requests(2, 1),
    'send: chunk reads and results': requests(C, C),
    'finalize: summary, chunk list, results, claim; report, claim': requests(2, 3 + C),
    // Over CopyObject's 5 GiB: a multipart copy (create, the parts, complete), then the delete.
    'finalize: move the source': bytes > COPY_OBJECT_MAX_BYTES ? requests(2 + copyParts(bytes).length, 0, 1) : requests(1, 0, 1),
  };
}

/** The limits a file of this size runs into at these settings. */
function warningsOf(options: EstimateOptions, plan: PlanShape, wall: Estimate['wallSeconds'], billed: ReturnType<typeof durations>['billed']): string[] {
  const warnings: string[] = [];
  const { destination } = options.dataflow;
  const hours = (s: number) => (s < 5400 ? `${(s / 60).toFixed(0)} min` : `${(s / 3600).toFixed(1)} h`);
  if (options.rows > options.dataflow.csv.maxRecords) {
    warnings.push(`${options.rows} records is over csv.maxRecords (${options.dataflow.csv.maxRecords}): the file would be refused (FILE_TOO_LARGE) before anything is sent. Raise csv.maxRecords (the workflow's timeout grows with it).`);
  }
  if (wall.total > options.workflowTimeoutSeconds) {
    warnings.push(`The execution would take ${hours(wall.total)}, over the state machine's timeout (${hours(options.workflowTimeoutSeconds)}): it would be stopped mid-send. Raise maxRequestsPerMinute or split the file.`);
  }
  if (wall.sending > 4 * wall.staging) warnings.push(`Sending takes ${hours(wall.sending)} at ${destination.maxRequestsPerMinute} requests a minute: the API's rate, not staging, sets the file's time.`);
  if (billed.send > STEP_LAMBDA_SETTINGS.send.timeoutSeconds) {
    warnings.push(`A Send worker needs ${billed.send.toFixed(0)} s for its ${plan.requestsPerChunk} requests at its share of the rate, over its ${STEP_LAMBDA_SETTINGS.send.timeoutSeconds} s timeout: lower recordsPerWorker or raise batchSize.`);
  }
  if (billed.prepare > STEP_LAMBDA_SETTINGS.stage.timeoutSeconds) {
    warnings.push(`The sequential pass (${plan.sequentialPass}) of ${(plan.textBytes / 1024 ** 3).toFixed(1)} GiB needs about ${billed.prepare.toFixed(0)} s, over the stage Lambda's ${STEP_LAMBDA_SETTINGS.stage.timeoutSeconds} s: send the file unencrypted and uncompressed, or split it.`);
  }
  if (billed.range > STEP_LAMBDA_SETTINGS.stage.timeoutSeconds) warnings.push(`A range worker needs about ${billed.range.toFixed(0)} s, over the stage Lambda's timeout.`);
  const chunkListBytes = plan.chunks * 160;
  if (chunkListBytes > ITEM_READER_MAX_BYTES) warnings.push(`The chunk list (~${(chunkListBytes / 1024 ** 2).toFixed(1)} MiB for ${plan.chunks} chunks) is over the ItemReader's ${ITEM_READER_MAX_BYTES / 1024 ** 2} MiB: raise recordsPerWorker.`);
  if ((plan.ranges + plan.partitions + plan.scans) * 8 > STATE_PAYLOAD_MAX_BYTES) warnings.push(`The plan's index lists (${plan.ranges} ranges, ${plan.partitions} partitions) approach the state's 256 KiB.`);
  return warnings;
}

const sumTier = (byKind: Record<string, S3Requests>, tier: keyof S3Requests) => Object.values(byKind).reduce((n, r) => n + r[tier], 0);

/** The estimate for one file of `rows` records (and `bytes` bytes) of a dataflow. */
export function estimate(options: EstimateOptions): Estimate {
  const { dataflow, rows } = options;
  const prices = options.prices ?? PRICES;
  const bytes = options.bytes ?? rows * ASSUMPTIONS.recordBytes;
  const plan = planShape(dataflow, rows, bytes, options);
  const { billed, wall: w } = durations(plan, rows, dataflow);
  const staging = w.sequentialPass + w.scan + w.plan + w.ranges + w.settle + w.finish;
  const wallSeconds = { ...w, staging, total: staging + w.sending + w.finalize };
  const lambda = lambdaOf(plan, billed);
  const transitions = transitionsOf(plan);
  const byKind = s3RequestsOf(plan, bytes);
  const s3 = { byKind, putCopyPostList: sumTier(byKind, 'putCopyPostList'), getAndOther: sumTier(byKind, 'getAndOther'), free: sumTier(byKind, 'free') };
  const dynamoDb = { writeRequestUnits: Math.ceil(plan.apiRequests * ASSUMPTIONS.budgetWritesPerRequest), readRequestUnits: Math.ceil(plan.apiRequests * ASSUMPTIONS.budgetReadsPerRequest) };
  const apiBytes = plan.apiRequests * 2 + rows * (Buffer.byteLength(JSON.stringify(ASSUMPTIONS.requestItem)) + 1);
  const functions = [lambda.stage!, lambda.send!, lambda.finalize!, lambda.sweep!];
  const invocations = functions.reduce((n, f) => n + f.invocations, 0);
  const logBytes = invocations * ASSUMPTIONS.logBytesPerInvocation + transitions * ASSUMPTIONS.logBytesPerTransition;
  const usd = {
    lambdaRequests: invocations * prices.lambdaPerRequest,
    lambdaCompute: functions.reduce((n, f) => n + f.gbSeconds, 0) * prices.lambdaArmPerGbSecond,
    stepFunctions: transitions * prices.stepFunctionsStandardPerTransition,
    s3: s3.putCopyPostList * prices.s3PutCopyPostListPerRequest + s3.getAndOther * prices.s3GetAndOtherPerRequest,
    dynamoDb: dynamoDb.writeRequestUnits * prices.dynamoDbPerWriteRequestUnit + dynamoDb.readRequestUnits * prices.dynamoDbPerReadRequestUnit,
    logs: (logBytes / 1024 ** 3) * prices.cloudWatchLogsIngestionPerGb,
  };
  const usdPerFile = Object.values(usd).reduce((n, v) => n + v, 0);
  const { batchSize, recordsPerWorker, maxConcurrency, maxRequestsPerMinute } = dataflow.destination;
  return {
    usdPerMillionRecords: rows > 0 ? (usdPerFile * 1_000_000) / rows : 0,
    dataflow: dataflow.name,
    rows,
    bytes,
    usdPerFile,
    settings: { batchSize, recordsPerWorker, maxConcurrency, maxRequestsPerMinute },
    plan,
    wallSeconds,
    lambda,
    transitions,
    s3,
    dynamoDb,
    apiBytes,
    logBytes,
    usd,
    pricesReadOn: prices.readOn,
    warnings: warningsOf(options, plan, wallSeconds, billed),
  };
}
