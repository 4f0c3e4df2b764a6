import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { ENV } from '../src/contracts';
import type { StepLambda } from './defaults';

/** The budget item's key and expiry attributes (src/aws/budget.ts writes them). */
export const BUDGET_TABLE = { key: 'pk', expiresAt: 'expiresAt' } as const;

/**
 * The shared send budget (docs/deploy.md, "One budget per destination"): one item per destination (base URL and the
 * credentials' secret names, hashed), which every Send worker of every execution takes its request slots from with
 * conditional writes. On demand (a few requests per API request: cents per million records), TTL on `expiresAt` (a
 * destination unused for a day is forgotten), no point-in-time recovery (the items are a pace, rebuilt by the first
 * request), destroyed with the stack (nothing in it outlives a run). Only the Send function may read and write it.
 */
export function buildSendBudget(scope: Construct, send: StepLambda): Table {
  const table = new Table(scope, 'SendBudget', {
    partitionKey: { name: BUDGET_TABLE.key, type: AttributeType.STRING },
    billingMode: BillingMode.PAY_PER_REQUEST,
    timeToLiveAttribute: BUDGET_TABLE.expiresAt,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: false },
    encryption: TableEncryption.AWS_MANAGED,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  Validations.of(table).acknowledge({
    id: 'AwsSolutions-DDB3',
    reason: 'The send budget holds a pace per destination (a schedule tail, a rate, a counter), rebuilt by the next request and forgotten after a day of disuse: there is nothing to restore, and recovery would cost more than the table.',
  });
  send.addEnvironment(ENV.budgetTable, table.tableName);
  // A slot is one UpdateItem; a worker reads the item (GetItem) to see whether a 429 voided its slot, and creates it
  // (PutItem) the first time a destination is used. Nothing else: no Scan, no Query, no DeleteItem.
  send.addToRolePolicy(new PolicyStatement({ actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:PutItem'], resources: [table.tableArn] }));
  return table;
}
