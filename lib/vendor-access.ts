import { Annotations, Stack } from 'aws-cdk-lib';
import { AccountPrincipal, ArnPrincipal, type IPrincipal, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Bucket } from 'aws-cdk-lib/aws-s3';
import { type Config, type Dataflow, dataflowIdOf } from '../src/config/schema';

/** The principal a bucket policy names for a configured one: an account id becomes the account's root ARN. */
function principalOf(principal: string): IPrincipal {
  return /^\d{12}$/.test(principal) ? new AccountPrincipal(principal) : new ArnPrincipal(principal);
}

/** A source whose files are put into our inbox (not polled from the vendor's own bucket). */
function dropsIntoInbox(source: Dataflow['source']): source is Extract<Dataflow['source'], { type: 's3' }> {
  return source.type === 's3' && source.bucket === undefined;
}

/**
 * The statements that let one dataflow's vendor upload: put and abort under the dataflow's prefix, and with an
 * `errorPrefix`, read and list its outcomes there. Cross-account, the vendor's own IAM decides who in its account may
 * act; this policy is the whole of what any of them can reach.
 */
export function vendorStatements(inbox: Bucket, flow: Dataflow): PolicyStatement[] {
  const source = flow.source;
  if (!dropsIntoInbox(source) || !source.vendorAccess) return [];
  const principals = source.vendorAccess.principals.map(principalOf);
  const sid = `Vendor${dataflowIdOf(flow.name)}`;
  const statements = [
    new PolicyStatement({
      sid: `${sid}Upload`,
      principals,
      actions: ['s3:PutObject'],
      resources: [inbox.arnForObjects(`${source.prefix}*`)],
      // The objects become ours (BucketOwnerEnforced), but their encryption and storage class are the uploader's
      // choice: a file under the vendor's KMS key or SSE-C key, or in an archive class, is one the stage cannot read.
      // Absent headers are what `aws s3 cp` sends, and the bucket's default (SSE-S3, STANDARD) applies.
      conditions: {
        StringEqualsIfExists: { 's3:x-amz-server-side-encryption': 'AES256', 's3:x-amz-storage-class': 'STANDARD' },
        Null: { 's3:x-amz-server-side-encryption-customer-algorithm': 'true' },
      },
    }),
    // A multipart upload the vendor gave up on: abort it (else its parts are kept, and billed, until the lifecycle
    // would remove them), and list its parts to resume it.
    new PolicyStatement({ sid: `${sid}Multipart`, principals, actions: ['s3:AbortMultipartUpload', 's3:ListMultipartUploadParts'], resources: [inbox.arnForObjects(`${source.prefix}*`)] }),
  ];
  if (source.errorPrefix !== undefined) {
    statements.push(
      new PolicyStatement({ sid: `${sid}ReadOutcomes`, principals, actions: ['s3:GetObject'], resources: [inbox.arnForObjects(`${source.errorPrefix}*`)] }),
      new PolicyStatement({ sid: `${sid}ListOutcomes`, principals, actions: ['s3:ListBucket'], resources: [inbox.bucketArn], conditions: { StringLike: { 's3:prefix': [`${source.errorPrefix}*`] } } }),
    );
  }
  return statements;
}

/** S3's limit on a bucket policy's size. */
export const MAX_BUCKET_POLICY_BYTES = 20 * 1024;

/**
 * Adds each dataflow's `vendorAccess` to the inbox bucket's policy (the one that already refuses plain HTTP, so its
 * logical ID stays as it was), and warns when the policy may exceed S3's 20 KB: S3 would refuse it at deploy time.
 */
export function grantVendorAccess(inbox: Bucket, config: Config): void {
  const statements = config.dataflows.flatMap((flow) => vendorStatements(inbox, flow));
  for (const statement of statements) inbox.addToResourcePolicy(statement);
  if (statements.length === 0 || !inbox.policy) return;
  // The deployed policy names the bucket where the template has a reference: count a bucket name of S3's longest.
  const stack = Stack.of(inbox);
  const text = JSON.stringify(stack.resolve(inbox.policy.document)).replace(/\{"Fn::GetAtt":\["[^"]+","Arn"\]\}/g, `"arn:aws:s3:::${'b'.repeat(63)}"`);
  if (text.length > MAX_BUCKET_POLICY_BYTES) {
    Annotations.of(stack).addWarningV2(
      'badges-import:inbox-policy-size',
      `The inbox bucket policy may reach ${Math.round(text.length / 1024)} KB with every dataflow's vendorAccess; S3 takes 20 KB and would refuse it at deploy time: name fewer principals (an account root ARN covers its roles and users).`,
    );
  }
}
