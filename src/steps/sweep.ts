import { createHash } from 'node:crypto';
import { ExecutionAlreadyExists, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { selectDataflow } from '../config/load';
import { type ExecutionInput, KEYS, fileNameOf } from '../contracts';
import { type Dataflow, vendorBucketOf } from '../config/schema';
import type { S3Client } from '@aws-sdk/client-s3';
import { listLatestVersions, putJson, readJson } from '../aws/s3';
import { type PullResult, pullSftp } from '../sources/sftp';
import { pullVendorBucket } from '../sources/vendor-bucket';
import { METRICS, type StepDeps } from './deps';

/**
 * The schedule sends `{ dataflow }` (look at every waiting object); the upload rule sends the one object version it
 * saw (`{ dataflow, key, etag, versionId }`). Both name the execution after the object version, so neither can start
 * a second import of a version the other already started, while a new delivery under the same key (a new version)
 * always gets a run of its own.
 */
export interface SweepEvent {
  dataflow: string;
  key?: string;
  etag?: string;
  /** The S3 version the upload event names (`detail.object.version-id`); the inbox is versioned. */
  versionId?: string;
  /** `arrival`: the check that runs `alerts.noFileWithinMinutes` after a scheduled time; it starts nothing. */
  check?: 'arrival';
}
export interface SweepOutput {
  dataflow: string;
  started: string[];
  /** Object versions a run had already been started for (by the other trigger, or earlier): not started again. */
  alreadyStarted: string[];
  /** For an SFTP source or a vendor's bucket: what this poll took from it, and what it left there. */
  pulled?: PullResult;
  /** For the arrival check: whether no file arrived in its window (the NoFileArrived metric). */
  noFileArrived?: boolean;
}

/** Whether an inbox key is a file of the dataflow: directly under its prefix, its name matching its pattern. */
export function isWaiting(flow: Dataflow, key: string, pattern = new RegExp(flow.source.filePattern)): boolean {
  if (!key.startsWith(flow.source.prefix)) return false;
  const name = key.slice(flow.source.prefix.length);
  return !name.includes('/') && pattern.test(name);
}

/** The objects waiting in the inbox for a dataflow (what the schedule's sweep starts), each with its current version. */
export async function* waitingObjects(s3: S3Client, bucket: string, flow: Dataflow): AsyncGenerator<{ key: string; etag: string; versionId?: string }> {
  const pattern = new RegExp(flow.source.filePattern);
  for await (const object of listLatestVersions(s3, bucket, flow.source.prefix)) if (isWaiting(flow, object.key, pattern)) yield object;
}

/**
 * Execution name for one version of one object: the same version always maps to the same name, and Step Functions
 * refuses a second execution with a name it has seen (for 90 days, even once closed), so a version found both by its
 * upload event and by a sweep is imported once. A redelivery under the same key is a new version, so a new name: it
 * runs, and its duplicate safety comes from the content claim, not from the name. Without a version (an unversioned
 * bucket) the ETag stands in, and a redelivery of the same bytes would be refused.
 */
export function executionName(dataflow: string, key: string, version: { versionId?: string; etag: string }): string {
  const id = version.versionId ? `v:${version.versionId}` : `e:${version.etag}`;
  const digest = createHash('sha256').update(`${dataflow}\n${key}\n${id}`).digest('hex').slice(0, 24);
  const readable = fileNameOf(key).replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 80 - digest.length - 1);
  return `${readable}-${digest}`;
}

/**
 * Starts the per-file workflow for waiting objects: the one an upload event names, or (from the schedule) every
 * object under the dataflow's prefix, directly under it and matching its pattern, not already started.
 */
export async function sweep(event: SweepEvent, deps: StepDeps & { sfn: SFNClient; stateMachineArn: string; remainingMs?: () => number }): Promise<SweepOutput> {
  const flow = selectDataflow(deps.config, event.dataflow);
  if (event.check === 'arrival') return arrivalCheck(flow, deps);
  const pattern = new RegExp(flow.source.filePattern);
  const output: SweepOutput = { dataflow: flow.name, started: [], alreadyStarted: [] };
  // An SFTP source is polled first: what it takes lands under the prefix, and the sweep below starts it (the upload
  // events it raises find the same execution names). A server that cannot be reached does not stop the sweep of what
  // is already waiting; the invocation still fails afterwards, so that the schedule retries and the failure shows.
  let pullError: Error | undefined;
  // The vendor's own bucket is polled the same way.
  const polled = flow.source.type === 'sftp' ? 'SFTP' : vendorBucketOf(flow) ? 'Vendor bucket' : undefined;
  if (polled && event.key === undefined) {
    try {
      output.pulled = polled === 'SFTP' ? await pullSftp(flow, deps) : await pullVendorBucket(flow, deps);
    } catch (error) {
      pullError = error instanceof Error ? error : new Error(String(error));
      deps.log.error(`${polled} poll failed`, { dataflow: flow.name, error: pullError.message });
    }
  }
  const objects =
    event.key !== undefined
      ? [{ key: event.key, etag: (event.etag ?? '').replace(/"/g, ''), ...(event.versionId ? { versionId: event.versionId } : {}) }]
      : waitingObjects(deps.s3, deps.buckets.inbox, flow);
  for await (const object of objects) {
    if (!isWaiting(flow, object.key, pattern)) continue;
    const input: ExecutionInput = { dataflow: flow.name, bucket: deps.buckets.inbox, key: object.key, ...(object.versionId ? { versionId: object.versionId } : {}) };
    const name = executionName(flow.name, object.key, object);
    try {
      await deps.sfn.send(new StartExecutionCommand({ stateMachineArn: deps.stateMachineArn, name, input: JSON.stringify(input) }));
      output.started.push(object.key);
    } catch (error) {
      if (!(error instanceof ExecutionAlreadyExists) && (error as { name?: string }).name !== 'ExecutionAlreadyExists') throw error;
      // This very version was started before (by the other trigger, or a run that has since finished): said, not hidden.
      deps.log.info('A run was already started for this object version', { key: object.key, versionId: object.versionId, execution: name });
      output.alreadyStarted.push(object.key);
    }
  }
  deps.metrics?.(METRICS.filesStarted, 'Count', output.started.length, flow.name);
  if (output.started.length > 0) {
    await putJson(deps.s3, deps.buckets.reports, KEYS.arrival(flow.name), { startedAt: new Date((deps.now ?? Date.now)()).toISOString(), key: output.started[output.started.length - 1] });
  }
  deps.log.info('Sweep done', { dataflow: flow.name, started: output.started.length, alreadyStarted: output.alreadyStarted.length });
  if (pullError) throw pullError;
  return output;
}

/**
 * Runs `alerts.noFileWithinMinutes` (W) after a scheduled time: a file arrived when the sweep started a run for the
 * dataflow within the last 2 W, i.e. from W before the scheduled time (an early delivery counts) until now.
 */
async function arrivalCheck(flow: Dataflow, deps: StepDeps): Promise<SweepOutput> {
  const window = (flow.alerts.noFileWithinMinutes ?? 60) * 60_000;
  const now = (deps.now ?? Date.now)();
  const latest = await readJson<{ startedAt: string; key: string }>(deps.s3, deps.buckets.reports, KEYS.arrival(flow.name));
  const noFileArrived = !latest || Date.parse(latest.startedAt) < now - 2 * window;
  deps.metrics?.(METRICS.noFileArrived, 'Count', noFileArrived ? 1 : 0, flow.name);
  if (noFileArrived) deps.log.warn('No file arrived in the window', { dataflow: flow.name, lastStartedAt: latest?.startedAt });
  else deps.log.info('A file arrived in the window', { dataflow: flow.name, lastStartedAt: latest?.startedAt });
  return { dataflow: flow.name, started: [], alreadyStarted: [], noFileArrived };
}
