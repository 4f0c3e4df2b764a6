import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import type { STSClient } from '@aws-sdk/client-sts';
import type { SecretsProvider } from '../aws/secrets';
import type { Config } from '../config/schema';
import type { Buckets } from '../contracts';
import type { Log, MetricsSink } from '../ports';
import type { AuthProvider } from '../api/auth';
import type { BadgeChecks, Pacer } from '../api/client';

/** Progress events for whoever watches a run (the local CLI prints them). */
export type ProgressEvent =
  /** Records staged so far: of the whole file (`done`), or of one range (`range`: a watcher sums the ranges). */
  | { step: 'stage'; range?: number; records: number; rejected: number; filtered?: number; done: boolean }
  | { step: 'send'; chunk: number; records: number; accepted: number; rejected: number };

// The metric names are a contract with the stack's alarms and dashboard: they live in src/contracts.ts, which lib/
// may import without loading the steps. Re-exported for the steps that import them from here.
export { METRICS, type MetricName } from '../contracts';
// The ports below the steps (the SFTP source and the metrics adapter use them too); re-exported for the steps' users.
export { type Log, type MetricUnit, type MetricsSink, silentLog } from '../ports';

/** Everything a step needs from the outside world: the Lambdas build it from their environment, the CLI locally. */
export interface StepDeps {
  config: Config;
  s3: S3Client;
  buckets: Buckets;
  secrets: SecretsProvider;
  log: Log;
  fetch?: typeof fetch;
  now?: () => number;
  progress?: (event: ProgressEvent) => void;
  metrics?: MetricsSink;
  /**
   * Test and bench knob: overrides the stage's range and partition sizes, so a small file is staged over several
   * ranges and partitions. The Lambdas read it from `BADGES_STAGE_PLAN` (JSON), which the stack never sets.
   */
  stagePlan?: StagePlanSizes;
  /** Publishes a per-file notification (an SNS topic in AWS). */
  notify?: (subject: string, message: string) => Promise<void>;
  /**
   * State that lives as long as a Lambda container: one container runs one invocation at a time, so what it learns
   * (a worker's pace, the API's real limit) carries over to its next chunk. The local runner keeps one per emulated
   * container.
   */
  container?: ContainerState;
  /** Settings laid over every client of a vendor's own bucket (source.bucket): the twin's endpoint. */
  vendorS3Config?: Partial<S3ClientConfig>;
  /** Assumes a vendor bucket's roleArn. @default an STS client in the bucket's region */
  sts?: STSClient;
}

/** Sizes of the staging plan a test may set (see src/steps/stage-plan.ts for the rules they override). */
export interface StagePlanSizes {
  /** Nominal bytes of a range (a file over one hash block rounds it up to a multiple of 8 MiB). */
  rangeBytes?: number;
  /** Records per key partition (a settle worker's share). */
  partitionRecords?: number;
}

/** What a warm container keeps between invocations. */
export interface ContainerState {
  /** Per dataflow and rate share: a worker's pace and the rate it learned. */
  pacers: Map<string, Pacer>;
  /** Per dataflow: credentials (an OAuth token lives across chunks) and the badge ids already checked. */
  sessions: Map<string, { auth: AuthProvider; badgeChecks: BadgeChecks }>;
}

export function newContainerState(): ContainerState {
  return { pacers: new Map(), sessions: new Map() };
}

