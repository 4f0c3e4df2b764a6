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
