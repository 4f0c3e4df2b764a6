import { Annotations, CfnOutput, Fn, type Stack } from 'aws-cdk-lib';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { type Config, type Dataflow, dataflowIdOf, vendorBucketOf } from '../src/config/schema';

/** CloudFormation's limit on a template's outputs. */
export const MAX_OUTPUTS = 200;

/** Where a dataflow's vendor puts a file, and the command that does it (`FILE` stands for the file). */
export interface UploadTarget {
  location: string;
  command: string;
  description: string;
}

/** CloudFormation's limit on an output's description. */
const MAX_DESCRIPTION = 1024;

/** A word for a POSIX shell: as it is when it holds nothing the shell would read, else single-quoted. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./~-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

/**
 * The vendor's SFTP directory, and one `sftp` command in batch mode (it stops at the first failure) that puts the file,
 * and its marker when the dataflow waits for one. A relative directory is under the login's home (`~/` in the URI).
 */
function sftpTarget(source: Extract<Dataflow['source'], { type: 'sftp' }>): UploadTarget {
  const directory = source.directory.replace(/(.)\/+$/, '$1');
  const puts = source.requireOkFile ? "'put FILE\\nput FILE.ok\\n'" : "'put FILE\\n'";
  return {
    location: `sftp://${source.username}@${source.host}:${source.port}${directory.startsWith('/') ? '' : '/~/'}${directory}`,
    command: `printf ${puts} | sftp -b - -P ${source.port} ${shellWord(`${source.username}@${source.host}:${directory.replace(/\/?$/, '/')}`)}`,
    description: `The vendor's SFTP directory that the schedule polls (as ${source.username}); file names must match ${source.filePattern}${source.requireOkFile ? ', each followed by FILE.ok' : ''}`,
  };
}

/** `aws s3 cp FILE s3://<inbox>/<prefix>`, the address single-quoted when the prefix needs it (a bucket name never does). */
function inboxCommand(inbox: IBucket, prefix: string): string {
  if (shellWord(prefix) === prefix) return Fn.join('', ['aws s3 cp FILE s3://', inbox.bucketName, '/', prefix]);
  return Fn.join('', ["aws s3 cp FILE 's3://", inbox.bucketName, '/', prefix.replace(/'/g, "'\\''"), "'"]);
}

/** The upload location and command of a dataflow: our inbox, the vendor's own bucket, or its SFTP server. */
export function uploadTargetOf(flow: Dataflow, inbox: IBucket): UploadTarget {
  const source = flow.source;
  if (source.type === 'sftp') return sftpTarget(source);
  // The vendor's own bucket is polled under its prefix there (`vendorPrefix`; `prefix` is then the inbox's).
  const theirs = vendorBucketOf(flow);
  const location = theirs ? `s3://${theirs.bucket}/${theirs.vendorPrefix}` : Fn.join('', ['s3://', inbox.bucketName, '/', source.prefix]);
  return {
    location,
    // No --acl (ACLs are disabled: objects belong to the bucket owner whoever puts them) and no --sse (the bucket
    // encrypts with S3-managed keys; another key is refused). The CLI speaks HTTPS, which the bucket requires.
    // The prefix may hold spaces or characters the shell reads ($, ;, quotes): the address is one shell word.
    command: theirs ? `aws s3 cp FILE ${shellWord(location)}` : inboxCommand(inbox, source.prefix),
    description:
      theirs
        ? `The vendor's own bucket and prefix the schedule polls; file names must match ${source.filePattern}`
        : `Where the vendor puts files (under this prefix of the inbox); file names must match ${source.filePattern}`,
  };
}

/**
 * Two outputs per dataflow, `Dataflow<Name>UploadLocation` and `Dataflow<Name>UploadCommand` (`<Name>` as
 * {@link dataflowIdOf} writes it), for as many dataflows as CloudFormation's 200 outputs allow next to the stack's own
 * (added before these); the rest are named in a warning.
 */
export function addDataflowOutputs(stack: Stack, config: Config, inbox: IBucket): void {
  const existing = stack.node.findAll().filter((c) => c instanceof CfnOutput).length;
  const fit = Math.max(0, Math.floor((MAX_OUTPUTS - existing) / 2));
  config.dataflows.slice(0, fit).forEach((flow) => {
    const target = uploadTargetOf(flow, inbox);
    const id = `Dataflow${dataflowIdOf(flow.name)}`;
    new CfnOutput(stack, `${id}UploadLocation`, { value: target.location, description: `${flow.name}: ${target.description}`.slice(0, MAX_DESCRIPTION) });
    new CfnOutput(stack, `${id}UploadCommand`, { value: target.command, description: `${flow.name}: a command that uploads FILE there` });
  });
  const left = config.dataflows.slice(fit).map((flow) => flow.name);
  if (left.length > 0) {
    Annotations.of(stack).addWarningV2(
      'badges-import:outputs',
      `CloudFormation takes ${MAX_OUTPUTS} outputs: ${left.length} dataflow(s) have no upload outputs (${left.join(', ')}). Their location is s3://<InboxBucketName>/<source.prefix> (or their SFTP directory).`,
    );
  }
}
