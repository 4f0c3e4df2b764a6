import { Duration, Validations } from 'aws-cdk-lib';
import { type Bucket, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { houseBucket } from './defaults';

/** The stack's buckets, by role. */
export interface Storage {
  /** Vendors drop files here, under each dataflow's prefix; processed and failed sources are moved within it. */
  inbox: Bucket;
  /** Each run's chunks, results and rejects under runs/<runId>/, SFTP pulls under pulls/; expired by lifecycle. */
  staging: Bucket;
  /** Rejected records, one CSV per file. */
  deadLetter: Bucket;
  /** Reports, content claims (imported/) and arrivals. */
  reports: Bucket;
  /** The server access logs of the other four. */
  accessLogs: Bucket;
}

export interface StorageProps {
  /** Days staged chunks and step results are kept. */
  stagingRetentionDays: number;
}

/**
 * The five buckets. Created in `scope` itself, the stack, and not in a construct of their own: they are retained on
 * delete, and a construct would add a segment to their logical IDs, which makes CloudFormation create new, empty
 * buckets and orphan the old ones (test/logical-ids.test.ts pins them).
 */
export function buildStorage(scope: Construct, props: StorageProps): Storage {
  // S3 delivers access logs through the log-delivery ACL, which needs object-writer ownership.
  const accessLogs = houseBucket(scope, 'AccessLogs', undefined, { objectOwnership: ObjectOwnership.OBJECT_WRITER });
  Validations.of(accessLogs).acknowledge({ id: 'AwsSolutions-S1', reason: 'This is the access-log bucket of the other buckets; logging it into itself would loop.' });
  return {
    accessLogs,
    inbox: houseBucket(scope, 'Inbox', accessLogs, { eventBridgeEnabled: true, versioned: true }),
    staging: houseBucket(scope, 'Staging', accessLogs, {
      lifecycleRules: [{ expiration: Duration.days(props.stagingRetentionDays), abortIncompleteMultipartUploadAfter: Duration.days(1) }],
    }),
    deadLetter: houseBucket(scope, 'DeadLetter', accessLogs, { versioned: true }),
    reports: houseBucket(scope, 'Reports', accessLogs, { versioned: true }),
  };
}
