import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoBudget } from '../src/aws/budget';
import { ENV, type SendEvent } from '../src/contracts';
import { send } from '../src/steps/send';
import { lambdaDeps, lambdaHandler, traced } from './runtime';

const table = process.env[ENV.budgetTable];
// The shared send budget (lib/budget.ts): every worker of every execution takes its request slots from one item per
// destination. One client per container, so what it saw of the budget carries over to its next chunk.
const deps = { ...lambdaDeps(), ...(table ? { budget: new DynamoBudget(traced(new DynamoDBClient({})), table) } : {}) };

/** The send step (see src/steps/send.ts). */
export const handler = lambdaHandler((event: SendEvent) => send(event, deps));
