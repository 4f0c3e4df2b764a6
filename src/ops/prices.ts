/**
 * AWS list prices in us-east-1 (US East, N. Virginia), on-demand, without free tiers or savings plans: the one table
 * `badges-import estimate` prices its counts with. Update `readOn` with the figures.
 *
 * Sources (the pricing pages; their tables are rendered in the browser):
 * - Lambda: https://aws.amazon.com/lambda/pricing/ — Arm: $0.0000133334 per GB-second (first 7.5 billion GB-s a
 *   month), $0.20 per million requests. The INIT phase of on-demand functions is billed as duration too.
 * - Step Functions: https://aws.amazon.com/step-functions/pricing/ — Standard: $0.025 per 1,000 state transitions.
 *   What is a transition: https://docs.aws.amazon.com/step-functions/latest/dg/concepts-transitions.html (a
 *   Distributed Map: one transition per child execution started, plus the child's own; an inline Map: none per
 *   iteration, but each state entered in it; retries count).
 * - S3 Standard: https://aws.amazon.com/s3/pricing/ — PUT, COPY, POST, LIST requests $0.005 per 1,000; GET, SELECT
 *   and all other requests $0.0004 per 1,000; DELETE and CANCEL free.
 * - DynamoDB on-demand: https://aws.amazon.com/dynamodb/pricing/on-demand/ — $0.625 per million write request units,
 *   $0.125 per million read request units (since the November 2024 price cut).
 * - CloudWatch Logs: https://aws.amazon.com/cloudwatch/pricing/ — Standard log ingestion $0.50 per GB (storage and
 *   the Lambda logs' tiered "vended" price left out: ingestion is the part a file's size moves).
 */
export const PRICES = {
  /** When these figures were read from the pages above. */
  readOn: '2026-11-30',
  region: 'us-east-1',
  lambdaArmPerGbSecond: 0.0000133334,
  lambdaPerRequest: 0.2 / 1_000_000,
  stepFunctionsStandardPerTransition: 0.025 / 1000,
  s3PutCopyPostListPerRequest: 0.005 / 1000,
  s3GetAndOtherPerRequest: 0.0004 / 1000,
  dynamoDbPerWriteRequestUnit: 0.625 / 1_000_000,
  dynamoDbPerReadRequestUnit: 0.125 / 1_000_000,
  cloudWatchLogsIngestionPerGb: 0.5,
} as const;

export type Prices = typeof PRICES;
