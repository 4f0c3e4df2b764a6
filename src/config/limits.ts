import { FileTooLargeError } from '../errors';
import { type Config, type Dataflow, destinationIdOf } from './schema';

/**
 * How long one execution of the per-file workflow may run, derived from the configuration: the largest file a
 * dataflow takes (`csv.maxRecords`) divided by the rate it sends at, plus an allowance for staging. The stack gives
 * the state machine this timeout; `badges-import estimate` warns when a file would not fit in it.
 *
 * A Standard workflow may run a year, but a run cannot outlive its staged chunks: the staging bucket's lifecycle
 * expires them `stagingRetentionDays` after they were written, so that is the ceiling.
 */

/** A Standard workflow's longest run (Step Functions' limit): one year. */
export const STANDARD_WORKFLOW_MAX_SECONDS = 365 * 24 * 3600;

/** Days the staging bucket keeps a run's chunks and results (the stack's `stagingRetentionDays`). */
export const DEFAULT_STAGING_RETENTION_DAYS = 7;

/**
 * Time allowed for everything but sending: the stage's phases and finalize each run in a Lambda of at most 15 minutes
 * (prepare, scan, plan, range, settle, finish, finalize, and a retry): eight such timeouts in a row. Staging a 50M-row
 * file takes minutes (bench:stage); only a run that hangs gets near this.
 */
export const STAGING_ALLOWANCE_SECONDS = 8 * 15 * 60;

/**
 * Sending may take this many times what the configured rate allows: 429s lower the shared rate for a while, retries
 * and the lookups of unknown outcomes take requests of their own, and another file of the same destination may share
 * its budget.
 */
export const SEND_TIME_MARGIN = 2;

/** The sending time of one file of `records` records at a destination's configured rate, in seconds (no margin). */
export function sendSeconds(destination: Pick<Dataflow['destination'], 'batchSize' | 'maxRequestsPerMinute'>, records: number): number {
  return (Math.ceil(records / destination.batchSize) * 60) / destination.maxRequestsPerMinute;
}

/**
 * What one run of a file of `records` records of this dataflow needs, in seconds: staging allowance, then sending
 * with its margin. Compare it with {@link workflowTimeout}'s `seconds` to know whether a file fits.
 */
export function runSeconds(flow: Pick<Dataflow, 'destination'>, records: number): number {
  return Math.ceil(STAGING_ALLOWANCE_SECONDS + SEND_TIME_MARGIN * sendSeconds(flow.destination, records));
}

/** What {@link workflowTimeout} found: the timeout, and what decided it. */
export interface WorkflowTimeout {
  /** The state machine's timeout: `neededSeconds`, or `ceilingSeconds` when that is lower. */
  readonly seconds: number;
  /** What the largest files need (the destination whose dataflows need the longest). */
  readonly neededSeconds: number;
  /** The most a run may last: the staging retention (a run must not outlive its staged chunks), at most a year. */
  readonly ceilingSeconds: number;
  /** The largest files would not fit: `neededSeconds` is over the ceiling. */
  readonly capped: boolean;
  /** The dataflows of the destination that need the longest, each with its csv.maxRecords. */
  readonly decidedBy: ReadonlyArray<{ dataflow: string; maxRecords: number }>;
}

/**
 * The state machine's timeout for this configuration. Dataflows that send to the same API (base URL and credential
 * names) share one rate budget, so their largest files are counted as arriving together: per destination, the sum
 * of their sending times at the slowest of their rates; the longest destination decides.
 */
export function workflowTimeout(config: Pick<Config, 'dataflows'>, options: { stagingRetentionDays?: number } = {}): WorkflowTimeout {
  const byDestination = new Map<string, Dataflow[]>();
  for (const flow of config.dataflows) {
    const key = destinationIdOf(flow.destination);
    byDestination.set(key, [...(byDestination.get(key) ?? []), flow]);
  }
  let neededSeconds = 0;
  let decidedBy: Dataflow[] = [];
  for (const flows of byDestination.values()) {
    const rate = Math.min(...flows.map((flow) => flow.destination.maxRequestsPerMinute));
    const sending = flows.reduce((sum, flow) => sum + sendSeconds({ batchSize: flow.destination.batchSize, maxRequestsPerMinute: rate }, flow.csv.maxRecords), 0);
    const needed = Math.ceil(STAGING_ALLOWANCE_SECONDS + SEND_TIME_MARGIN * sending);
    if (needed > neededSeconds) [neededSeconds, decidedBy] = [needed, flows];
  }
  const ceilingSeconds = Math.min(STANDARD_WORKFLOW_MAX_SECONDS, (options.stagingRetentionDays ?? DEFAULT_STAGING_RETENTION_DAYS) * 24 * 3600);
  return {
    seconds: Math.min(neededSeconds, ceilingSeconds),
    neededSeconds,
    ceilingSeconds,
    capped: neededSeconds > ceilingSeconds,
    decidedBy: decidedBy.map((flow) => ({ dataflow: flow.name, maxRecords: flow.csv.maxRecords })),
  };
}

/**
 * Refuses a file with more records than its dataflow's `csv.maxRecords` (the stage calls it once it knows the count,
 * or as the count grows, before anything is sent): the workflow's timeout was sized for files up to that many.
 */
export function checkFileRecords(flow: Pick<Dataflow, 'name' | 'csv'>, records: number): void {
  if (records <= flow.csv.maxRecords) return;
  throw new FileTooLargeError(
    `The file holds more than ${flow.csv.maxRecords} records (csv.maxRecords of dataflow ${flow.name}); nothing was sent. Split it, or raise csv.maxRecords (the workflow's timeout grows with it: see badges-import estimate)`,
  );
}
