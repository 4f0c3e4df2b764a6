import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SecretsProvider } from '../aws/secrets';
import type { Authorize } from './iam';
import { localSecretArn } from './lambda-stack';

export interface LocalAwsEndpointsOptions {
  /** Where secret values come from (the `--secrets` file locally). */
  secrets: SecretsProvider;
  /** Receives what is published to a topic (in AWS: the alerts topic's subscribers). */
  publish?: (topicArn: string, subject: string | undefined, message: string) => Promise<void>;
  /** Checks each request's caller, as IAM does; absent, every caller may do anything. */
  authorize?: Authorize;
  host?: string;
}

export interface LocalAwsEndpoints {
  /** `http://127.0.0.1:<port>`: give it to the SDK as AWS_ENDPOINT_URL_SECRETS_MANAGER and AWS_ENDPOINT_URL_SNS. */
  readonly url: string;
  close(): Promise<void>;
}

/** The access key of a SigV4-signed request (`Credential=<key>/<date>/<region>/<service>/aws4_request`). */
export function accessKeyOf(request: IncomingMessage): string {
  return /Credential=([^/]+)\//.exec(request.headers.authorization ?? '')?.[1] ?? '';
}

async function body(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const xml = (s: string) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * Local stand-ins for the two AWS services the bundles call besides S3: Secrets Manager (`GetSecretValue`, JSON
 * protocol) and SNS (`Publish`, query protocol), on one loopback port, each request checked with `authorize`.
 */
export async function startLocalAwsEndpoints(options: LocalAwsEndpointsOptions): Promise<LocalAwsEndpoints> {
  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const text = await body(request);
    const target = request.headers['x-amz-target'];
    if (typeof target === 'string' && target.startsWith('secretsmanager.')) return secretsManager(target.slice('secretsmanager.'.length), text, request, response);
    const form = new URLSearchParams(text);
    if (form.get('Action')) return sns(form, request, response);
    response.writeHead(400).end('Unknown service');
  };

  const json = (response: ServerResponse, status: number, document: unknown) => {
    response.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() }).end(JSON.stringify(document));
  };

  async function secretsManager(operation: string, text: string, request: IncomingMessage, response: ServerResponse) {
    if (operation !== 'GetSecretValue') return json(response, 400, { __type: 'InvalidRequestException', message: `The twin's Secrets Manager does not implement ${operation}` });
    const { SecretId } = JSON.parse(text || '{}') as { SecretId?: string };
    const name = (SecretId ?? '').startsWith('arn:') ? (SecretId ?? '').replace(/^arn:aws:secretsmanager:[^:]*:[^:]*:secret:/, '').replace(/-[A-Za-z0-9]{6}$/, '') : (SecretId ?? '');
    const arn = localSecretArn(name);
    const decision = (await options.authorize?.({ accessKeyId: accessKeyOf(request), action: 'secretsmanager:GetSecretValue', resource: arn })) ?? { allowed: true };
    if (!decision.allowed) return json(response, 400, { __type: 'AccessDeniedException', Message: decision.message });
    let value: string;
    try {
      value = await options.secrets.get(name);
    } catch {
      return json(response, 400, { __type: 'ResourceNotFoundException', Message: "Secrets Manager can't find the specified secret." });
    }
    return json(response, 200, { ARN: arn, Name: name, SecretString: value, VersionId: '00000000-0000-0000-0000-000000000001', VersionStages: ['AWSCURRENT'], CreatedDate: 0 });
  }

  async function sns(form: URLSearchParams, request: IncomingMessage, response: ServerResponse) {
    const requestId = randomUUID();
    const error = (status: number, code: string, message: string) =>
      response
        .writeHead(status, { 'content-type': 'text/xml' })
        .end(`<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${xml(message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`);
    if (form.get('Action') !== 'Publish') return error(400, 'InvalidAction', `The twin's SNS does not implement ${form.get('Action')}`);
    const topicArn = form.get('TopicArn') ?? '';
    const decision = (await options.authorize?.({ accessKeyId: accessKeyOf(request), action: 'sns:Publish', resource: topicArn })) ?? { allowed: true };
    if (!decision.allowed) return error(403, 'AuthorizationError', decision.message);
    await options.publish?.(topicArn, form.get('Subject') ?? undefined, form.get('Message') ?? '');
    const messageId = randomUUID();
    response
      .writeHead(200, { 'content-type': 'text/xml' })
      .end(`<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>${messageId}</MessageId></PublishResult><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></PublishResponse>`);
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: Error) => {
      if (!response.headersSent) response.writeHead(500).end(error.message);
    });
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  // A pooled twin outlives its runs: it must not keep the process alive.
  server.unref();
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
