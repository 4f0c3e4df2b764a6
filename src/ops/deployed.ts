import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { once } from 'node:events';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { Upload } from '@aws-sdk/lib-storage';
import { listObjects, openObject, putJson, readJson } from '../aws/s3';
import { type ExecutionInput, fileNameOf } from '../contracts';
import { type ReplayLedger, type ReplaySelection, type ReplayStage, peekDelimiter, replayNameOf, selectForReplay } from '../core/replay';
import { ERROR_CODES } from '../codes';
import { BadgesImportError, ReplayFileError } from '../errors';

/** The operator's view of a deployed stack: the outputs `cdk deploy` printed. */
export interface DeployedStack {
  stateMachineArn: string;
  inboxBucket: string;
  deadLetterBucket: string;
}

export class StackNotFoundError extends BadgesImportError {
  static override readonly code = ERROR_CODES.STACK_NOT_FOUND;
}

/** Reads the stack's outputs (StateMachineArn, InboxBucketName, DeadLetterBucketName). */
export async function describeStack(cloudFormation: CloudFormationClient, stackName: string): Promise<DeployedStack> {
  let outputs: Array<{ OutputKey?: string; OutputValue?: string }> | undefined;
  try {
    outputs = (await cloudFormation.send(new DescribeStacksCommand({ StackName: stackName }))).Stacks?.[0]?.Outputs;
  } catch (error) {
    throw new StackNotFoundError(`Stack "${stackName}" cannot be read: ${(error as Error).message}. Check --stack, the region (AWS_REGION or --region) and your credentials.`, { cause: error });
  }
  const output = (key: string) => {
    const value = outputs?.find((o) => o.OutputKey === key)?.OutputValue;
    if (!value) throw new StackNotFoundError(`Stack "${stackName}" has no output ${key}: is it a badges-import stack?`);
    return value;
  };
  return { stateMachineArn: output('StateMachineArn'), inboxBucket: output('InboxBucketName'), deadLetterBucket: output('DeadLetterBucketName') };
}

/** A fresh execution name for an operator's run of an object: readable, unique, within Step Functions' 80 characters. */
export function operatorExecutionName(kind: 'start' | 'replay', key: string): string {
  const stamp = new Date().toISOString().replace(/[-:.TZ]/g, '').slice(0, 14);
  const suffix = `-${kind}-${stamp}-${randomBytes(3).toString('hex')}`;
  return `${fileNameOf(key).replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 80 - suffix.length)}${suffix}`;
}

export interface AwsClients {
  s3: S3Client;
  sfn: SFNClient;
  cloudFormation: CloudFormationClient;
}

/** `badges-import start`: runs the workflow on an object of the inbox (again), as an upload would. */
export async function startDeployed(clients: AwsClients, options: { stack: string; dataflow: string; key: string; force?: boolean; dryRun?: boolean }): Promise<{ executionArn: string; input: ExecutionInput }> {
  const stack = await describeStack(clients.cloudFormation, options.stack);
  const input: ExecutionInput = { dataflow: options.dataflow, bucket: stack.inboxBucket, key: options.key, ...(options.force ? { force: true } : {}), ...(options.dryRun ? { dryRun: true } : {}) };
  const started = await clients.sfn.send(new StartExecutionCommand({ stateMachineArn: stack.stateMachineArn, name: operatorExecutionName('start', options.key), input: JSON.stringify(input) }));
  return { executionArn: started.executionArn!, input };
}

/** `rejected/<dataflow>/<runId>/<name>.rejected.csv`, as finalize writes it. */
export function parseRejectedUri(uri: string): { bucket: string; key: string; dataflow?: string } {
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!match) throw new ReplayFileError(`--rejected must be an s3:// URI of a rejected-records file, e.g. s3://<dead-letter bucket>/rejected/<dataflow>/<runId>/<name>.rejected.csv; got "${uri}"`);
  const key = match[2]!;
  const layout = /^rejected\/([^/]+)\/[^/]+\/[^/]+$/.exec(key);
  return { bucket: match[1]!, key, ...(layout ? { dataflow: layout[1] } : {}) };
}

/**
 * `badges-import replay --stack`: selects the records of a rejected-records file in the dead-letter bucket, writes them
 * to the inbox under `replays/<dataflow>/…` (outside any dataflow's prefix, so no upload rule starts a run) and starts a
 * replay run on them: records keep their original numbers.
 */
export async function replayDeployed(
  clients: AwsClients,
  options: { stack: string; rejected: string; dataflow?: string; stages?: readonly ReplayStage[]; force?: boolean },
): Promise<{ selection: ReplaySelection; executionArn?: string; key?: string }> {
  const stack = await describeStack(clients.cloudFormation, options.stack);
  const source = parseRejectedUri(options.rejected);
  const dataflow = options.dataflow ?? source.dataflow;
  if (!dataflow) throw new ReplayFileError(`Cannot tell the dataflow from ${options.rejected}: pass --dataflow`);
  const body = await openObject(clients.s3, source.bucket, source.key);
  if (!body) throw new ReplayFileError(`${options.rejected} does not exist`);
  const { stream, ...dialect } = await peekDelimiter(body);
  const ledger = s3Ledger(clients.s3, source.bucket, source.key);
  const taken = options.force ? undefined : await ledger.taken();
  const key = `replays/${dataflow}/${new Date().toISOString().replace(/[-:.]/g, '')}/${replayNameOf(source.key)}`;
  const selected = new PassThrough();
  const upload = new Upload({ client: clients.s3, params: { Bucket: stack.inboxBucket, Key: key, Body: selected, ContentType: 'text/csv; charset=utf-8' } });
  const uploaded = upload.done();
  let selection: ReplaySelection;
  let versionId: string | undefined;
  try {
    selection = await selectForReplay(stream, dialect, { stages: options.stages ?? ['api'], ...(taken ? { replayedBefore: taken.rows } : {}) }, async (text) => {
      if (!selected.write(text)) await once(selected, 'drain');
    });
    selected.end();
    versionId = (await uploaded).VersionId;
  } catch (error) {
    await upload.abort().catch(() => undefined);
    selected.destroy();
    throw error;
  }
  if (selection.kept === 0) {
    // A header alone is nothing to replay: leave nothing behind.
    await clients.s3.send(new DeleteObjectCommand({ Bucket: stack.inboxBucket, Key: key }));
    return { selection };
  }
  const input: ExecutionInput = { dataflow, bucket: stack.inboxBucket, key, replay: true, ...(versionId ? { versionId } : {}), ...(options.force ? { force: true } : {}) };
  const name = operatorExecutionName('replay', key);
  // Remembered before the run starts: whatever it does not issue is in its own rejected file.
  await ledger.record(name, selection.rows);
  const started = await clients.sfn.send(new StartExecutionCommand({ stateMachineArn: stack.stateMachineArn, name, input: JSON.stringify(input) }));
  return { selection, executionArn: started.executionArn!, key };
}

/** The replays of a rejected-records file in S3: one object per replay run under `<its key>.replayed/`, beside it. */
export function s3Ledger(s3: S3Client, bucket: string, rejectedKey: string): ReplayLedger {
  const prefix = `${rejectedKey}.replayed/`;
  return {
    async taken() {
      const rows = new Set<number>();
      const runs: string[] = [];
      for await (const object of listObjects(s3, bucket, prefix)) {
        const entry = await readJson<{ run: string; rows: number[] }>(s3, bucket, object.key);
        if (!entry) continue;
        runs.push(entry.run);
        for (const row of entry.rows) rows.add(row);
      }
      return { rows, runs };
    },
    async record(run, rows) {
      await putJson(s3, bucket, `${prefix}${run}.json`, { run, at: new Date().toISOString(), rows });
    },
  };
}

export function defaultAwsClients(region: string | undefined, s3: S3Client): AwsClients {
  return { s3, sfn: new SFNClient(region ? { region } : {}), cloudFormation: new CloudFormationClient(region ? { region } : {}) };
}
