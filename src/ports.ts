import type { MetricName } from './contracts';

/**
 * The ports the steps and the adapters under them share: how they log and where metrics go. The Lambdas put
 * Powertools behind them (lambdas/runtime.ts, src/aws/metrics.ts); the local runner a file logger and a collector.
 * They live below every layer so that an adapter (the SFTP source, the metrics sink) can take them without
 * importing the steps.
 */

/** The logging surface the steps use; Powertools' Logger has it, and so does a local file logger. */
export interface Log {
  debug(message: string, ...extra: Array<Record<string, unknown>>): void;
  info(message: string, ...extra: Array<Record<string, unknown>>): void;
  warn(message: string, ...extra: Array<Record<string, unknown>>): void;
  error(message: string, ...extra: Array<Record<string, unknown>>): void;
}

/** A log that drops everything (tests, benchmarks, and CLI paths that print their own lines). */
export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {} };

/** CloudWatch metric units the steps use. */
export type MetricUnit = 'Count' | 'Milliseconds' | 'Percent';

/**
 * Where the steps put their metrics. Each call is one value of one metric for one dataflow; `dimensions` adds
 * dimensions beyond the dataflow (e.g. the rejection code). In Lambda these become CloudWatch metrics through
 * Powertools Metrics (EMF); locally they can be collected.
 */
export type MetricsSink = (name: MetricName, unit: MetricUnit, value: number, dataflow: string, dimensions?: Record<string, string>) => void;

/** A request slot of a shared send budget: when the request may go, and the budget epoch it was given in. */
export interface BudgetSlot {
  /** The destination's key (see `destinationKey`): a hash, never a secret. */
  readonly destination: string;
  /** Epoch milliseconds the request may be sent at. */
  readonly at: number;
  /** The budget's epoch when the slot was given: a 429 starts a new one, which voids the slots given before. */
  readonly epoch: number;
}

/**
 * The rate budget every worker of every execution shares per destination (src/core/budget.ts is its law). In AWS a
 * DynamoDB table (src/aws/budget.ts); without one, each worker paces itself in-process.
 */
export interface SendBudget {
  /** Takes the destination's next request slot, at most `maxPerMinute` a minute (the configured rate). */
  take(destination: string, maxPerMinute: number): Promise<BudgetSlot>;
  /** Whether a slot is still valid: no 429 has cut the rate since it was given. */
  isCurrent(slot: BudgetSlot): Promise<boolean>;
  /** A request sent in `slot` was answered 429: cut the rate and pause everyone (once per episode). */
  throttled(slot: BudgetSlot, maxPerMinute: number, retryAfterMs?: number): Promise<void>;
}
