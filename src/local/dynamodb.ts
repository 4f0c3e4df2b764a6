import { type IncomingMessage, type Server, type ServerResponse, createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CreateTableCommand, DynamoDBClient, ResourceInUseException } from '@aws-sdk/client-dynamodb';
import { BUDGET_TABLE_KEY } from '../aws/budget';
import { accessKeyOf } from './aws-endpoints';
import { ADMIN_ACCESS_KEY, type Authorize, authorizeTwinRequest } from './iam';
import { LOCAL_ACCOUNT, LOCAL_REGION, type Template } from './lambda-stack';

/**
 * DynamoDB locally: dynalite (a real implementation of DynamoDB's API on LevelDB, in memory), in this process. The
 * shared send budget's table lives there for the twin, the local commands, the tests and the bench. dynalite is a
 * devDependency, loaded here only (never from a Lambda bundle).
 */
export interface LocalDynamo {
  /** `http://127.0.0.1:<port>`: AWS_ENDPOINT_URL_DYNAMODB for the functions. */
  readonly endpoint: string;
  /** A client with the operator's key (not held to the stack's IAM). */
  readonly client: DynamoDBClient;
  close(): Promise<void>;
}

/** A table as the stack defines it (the properties CreateTable needs). */
export interface TableSpec {
  TableName: string;
  KeySchema: Array<{ AttributeName: string; KeyType: 'HASH' | 'RANGE' }>;
  AttributeDefinitions: Array<{ AttributeName: string; AttributeType: 'S' | 'N' | 'B' }>;
}

/** The send budget's table (lib/budget.ts defines the same key). */
export function budgetTableSpec(name: string): TableSpec {
  return { TableName: name, KeySchema: [{ AttributeName: BUDGET_TABLE_KEY, KeyType: 'HASH' }], AttributeDefinitions: [{ AttributeName: BUDGET_TABLE_KEY, AttributeType: 'S' }] };
}

/** The DynamoDB tables of a synthesized template, named as the twin names them (by logical ID). */
export function tablesOf(template: Template): TableSpec[] {
  return Object.entries(template.Resources)
    .filter(([, r]) => r.Type === 'AWS::DynamoDB::Table')
    .map(([id, r]) => ({ TableName: String(r.Properties?.TableName ?? id), KeySchema: r.Properties?.KeySchema as TableSpec['KeySchema'], AttributeDefinitions: r.Properties?.AttributeDefinitions as TableSpec['AttributeDefinitions'] }));
}

/** Creates a table unless it exists (on-demand, as the stack's). */
export async function ensureTable(client: DynamoDBClient, spec: TableSpec): Promise<void> {
  try {
    await client.send(new CreateTableCommand({ ...spec, BillingMode: 'PAY_PER_REQUEST' }));
  } catch (error) {
    if (!(error instanceof ResourceInUseException || (error as { name?: string }).name === 'ResourceInUseException')) throw error;
  }
}

export interface LocalDynamoOptions {
  /** Checks each request's caller against the stack's IAM (the twin's); absent, anyone may do anything. */
  authorize?: Authorize;
}

/**
 * Starts dynalite on a loopback port. With `authorize`, a front on its own port checks each request (its SigV4 key,
 * the operation as `dynamodb:<Operation>`, the table's ARN) before dynalite sees it, and refuses as DynamoDB does
 * (AccessDeniedException), so a grant missing from the stack fails locally as in AWS.
 */
export async function startLocalDynamo(options: LocalDynamoOptions = {}): Promise<LocalDynamo> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const dynalite = require('dynalite') as (options: { createTableMs: number; deleteTableMs: number; updateTableMs: number }) => Server;
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const port = await listen(server);
  const front = options.authorize ? createServer((req, res) => void authorizing(req, res, port, options.authorize!)) : undefined;
  const endpoint = `http://127.0.0.1:${front ? await listen(front) : port}`;
  const client = new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: { accessKeyId: ADMIN_ACCESS_KEY, secretAccessKey: ADMIN_ACCESS_KEY } });
  return {
    endpoint,
    client,
    async close() {
      client.destroy();
      for (const s of [front, server]) {
        if (!s) continue;
        s.closeAllConnections();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
    },
  };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // The twin outlives runs (a pooled twin): its servers must not keep the process alive.
  server.unref();
  return (server.address() as AddressInfo).port;
}

/** Checks one request against IAM, then hands it to dynalite unchanged. */
async function authorizing(request: IncomingMessage, response: ServerResponse, port: number, authorize: Authorize): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  const operation = String(request.headers['x-amz-target'] ?? '').split('.')[1] ?? '';
  let table = '';
  try {
    const name = (JSON.parse(body.toString('utf8') || '{}') as { TableName?: unknown }).TableName;
    table = typeof name === 'string' ? name : '';
  } catch {
    // dynalite answers a body that is not JSON itself.
  }
  const action = `dynamodb:${operation}`;
  const resource = `arn:aws:dynamodb:${LOCAL_REGION}:${LOCAL_ACCOUNT}:table/${table}`;
  const decision = await authorize({ accessKeyId: accessKeyOf(request), action, resource });
  if (!decision.allowed) {
    response.writeHead(400, { 'content-type': 'application/x-amz-json-1.0' }).end(JSON.stringify({ __type: 'com.amazon.coral.service#AccessDeniedException', message: decision.message }));
    return;
  }
  const forward = httpRequest({ host: '127.0.0.1', port, method: request.method, path: request.url, headers: request.headers }, (answer) => {
    response.writeHead(answer.statusCode ?? 500, answer.headers);
    answer.pipe(response);
  });
  forward.on('error', (error) => {
    if (!response.headersSent) response.writeHead(500).end(error.message);
  });
  forward.end(body);
}

let shared: Promise<LocalDynamo> | undefined;

/**
 * The process's one local DynamoDB, shared by every twin it starts: executions running at once (serve, three files
 * together) share one budget per destination, as they do in AWS. Held to IAM through the twins' registered keys.
 */
export function sharedLocalDynamo(): Promise<LocalDynamo> {
  shared ??= startLocalDynamo({ authorize: authorizeTwinRequest });
  return shared;
}
