import type { S3Client } from '@aws-sdk/client-s3';
import type { SecretsProvider } from '../aws/secrets';
import type { Config } from '../config/schema';
import type { Buckets, MetricName } from '../contracts';
import type { AuthProvider } from '../api/auth';
import type { BadgeChecks, Pacer } from '../api/client';

/** The logging surface the steps use; Powertools' Logger has it, and so does a local file logger. */
export interface Log {
  debug(message: string, ...extra: Array<Record<string, unknown>>): void;
  info(message: string, ...extra: Array<Record<string, unknown>>): void;
  warn(message: string, ...extra: Array<Record<string, unknown>>): void;
  error(message: string, ...extra: Array<Record<string, unknown>>): void;
}

/** Progress events for whoever watches a run (the local CLI prints them). */
export type ProgressEvent =
  | { step: 'stage'; records: number; rejected: number; done: boolean }
  | { step: 'send'; chunk: number; records: number; accepted: number; rejected: number };

/** CloudWatch metric units the steps use. */
export type MetricUnit = 'Count' | 'Milliseconds' | 'Percent';

/**
 * Where the steps put their metrics. Each call is one value of one metric for one dataflow; `dimensions` adds
 * dimensions beyond the dataflow (e.g. the rejection code). In Lambda these become CloudWatch metrics through
 * Powertools Metrics (EMF); locally they can be collected.
 */
export type MetricsSink = (name: MetricName, unit: MetricUnit, value: number, dataflow: string, dimensions?: Record<string, string>) => void;

// The metric names are a contract with the stack's alarms and dashboard: they live in src/contracts.ts, which lib/
// may import without loading the steps. Re-exported for the steps that import them from here.
export { METRICS, type MetricName } from '../contracts';

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
  /** Caps the stage's duplicate filter (bits); tests set it low to exercise records held back by mistake. */
  duplicateFilterMaxBits?: number;
  /** Publishes a per-file notification (an SNS topic in AWS). */
  notify?: (subject: string, message: string) => Promise<void>;
  /**
   * State that lives as long as a Lambda container: one container runs one invocation at a time, so what it learns
   * (a worker's pace, the API's real limit) carries over to its next chunk. The local runner keeps one per emulated
   * container.
   */
  container?: ContainerState;
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

export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {} };
