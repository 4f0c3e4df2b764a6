import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ScriptedReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Destroy the socket after reading the request, without answering. */
  reset?: boolean;
  delayMs?: number;
}

export interface ScriptedServer {
  url: string;
  /** Bodies of the requests received, parsed. */
  requests: unknown[];
  /** Method and path of each request. */
  calls: Array<{ method: string; path: string }>;
  close(): Promise<void>;
}

/** A loopback HTTP server that answers from a script (a list, or a function of the request body). */
export async function scriptedServer(script: ScriptedReply[] | ((body: unknown, n: number, call: { method: string; path: string }) => ScriptedReply)): Promise<ScriptedServer> {
  const requests: unknown[] = [];
  const calls: Array<{ method: string; path: string }> = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const body = text ? (JSON.parse(text) as unknown) : undefined;
      requests.push(body);
      const call = { method: req.method ?? '', path: req.url ?? '' };
      calls.push(call);
      const reply = typeof script === 'function' ? script(body, requests.length - 1, call) : (script[requests.length - 1] ?? script[script.length - 1]!);
      const answer = () => {
        if (reply.reset) return req.socket.destroy();
        res.writeHead(reply.status, { 'Content-Type': 'application/json', ...reply.headers });
        res.end(reply.body === undefined ? '' : JSON.stringify(reply.body));
      };
      if (reply.delayMs) setTimeout(answer, reply.delayMs);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    calls,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The import API's answer for accepted items. */
export function accepted(items: unknown): unknown[] {
  return (items as Array<{ badgeMetaId: string; customerId: number }>).map((item, i) => ({
    data: { badgeMetaId: item.badgeMetaId, customerId: item.customerId, earnedBadgeId: `earned-${i}`, requestId: 'r' },
    errors: null,
    warnings: null,
  }));
}
