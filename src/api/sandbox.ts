import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { basicAuthorization } from './auth';

export const IMPORT_PATH = '/api_gateway/v1/badges/import/customerBadges';

/** Settings of the sandbox (`--sandbox FILE`). */
export const sandboxSettingsSchema = z.strictObject({
  /** Accepted Basic-auth users (password in clear; the sandbox checks the MD5 form the API expects). */
  users: z.array(z.strictObject({ username: z.string().min(1), password: z.string().min(1) })).default([]),
  /** Badge ids the org has; any other id is answered with 1054. Absent: every well-formed id exists. */
  knownBadgeIds: z.array(z.string().regex(/^[0-9a-fA-F]{24}$/)).optional(),
  /** Unit the sandbox expects epoch dates in. @default "ms" */
  epochUnit: z.enum(['ms', 's']).default('ms'),
  /** Largest array the API takes (1060 beyond it). @default 1000 */
  maxBatchSize: z.int().min(1).default(1000),
  /** Added latency per request. @default 0 */
  latencyMs: z.int().min(0).default(0),
});
export type SandboxSettings = z.input<typeof sandboxSettingsSchema>;

/** One badge the sandbox issued. */
export interface LedgerEntry {
  earnedBadgeId: string;
  requestId: string;
  customerId: number;
  badgeMetaId: string;
  earnEventDate: number;
  earnExpiresOn: number;
  earnEventDateISO?: string;
  earnExpiresOnISO?: string;
  issuedAt: number;
}

export interface Sandbox {
  readonly url: string;
  readonly ledger: readonly LedgerEntry[];
  /** Requests answered, by HTTP status. */
  readonly statusCounts: Readonly<Record<number, number>>;
  addUser(username: string, password: string): void;
  addBadge(badgeMetaId: string): void;
  close(): Promise<void>;
}

type ItemError = { code: number; message: string; reference: null };
const error = (code: number, message: string): ItemError => ({ code, message, reference: null });

/**
 * A local stand-in for Capillary's badges API: the documented import contract (Basic auth, a JSON array in, one
 * `data`/`errors` item out per item in), `badgeMeta/{id}` and `customer/{id}` answered from its own ledger.
 */
export async function startSandbox(input: SandboxSettings = {}, port = 0, host = '127.0.0.1'): Promise<Sandbox> {
  const settings = sandboxSettingsSchema.parse(input);
  const authorizations = new Set(settings.users.map((u) => basicAuthorization(u.username, u.password)));
  const known = settings.knownBadgeIds ? new Set(settings.knownBadgeIds.map((id) => id.toLowerCase())) : undefined;
  const ledger: LedgerEntry[] = [];
  const statusCounts: Record<number, number> = {};
  const factor = settings.epochUnit === 'ms' ? 1 : 1000;

  const send = (res: ServerResponse, status: number, body: unknown) => {
    statusCounts[status] = (statusCounts[status] ?? 0) + 1;
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const badgeExists = (id: string) => /^[0-9a-fA-F]{24}$/.test(id) && (!known || known.has(id.toLowerCase()));

  function importItem(raw: unknown, requestId: string) {
    const item = (raw ?? {}) as Record<string, unknown>;
    const errors: ItemError[] = [];
    const { badgeMetaId, customerId, earnEventDate, earnExpiresOn, earnEventDateISO, earnExpiresOnISO } = item;
    if (typeof badgeMetaId !== 'string' || badgeMetaId === '') errors.push(error(400, 'badgeMetaId is required'));
    else if (!badgeExists(badgeMetaId)) errors.push(error(1054, 'GLOBAL.BADGE_NOT_FOUND'));
    if (typeof customerId !== 'number' || !Number.isSafeInteger(customerId) || customerId <= 0) errors.push(error(400, 'customerId must be a positive integer'));
    for (const [name, value, iso] of [
      ['earnEventDate', earnEventDate, earnEventDateISO],
      ['earnExpiresOn', earnExpiresOn, earnExpiresOnISO],
    ] as const) {
      if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) errors.push(error(400, `${name} must be an epoch in ${settings.epochUnit}`));
      else if (iso !== undefined && (typeof iso !== 'string' || Math.floor(Date.parse(iso) / factor) !== value)) {
        errors.push(error(400, `${name}ISO (${JSON.stringify(iso)}) does not denote the same instant as ${name} (${value} ${settings.epochUnit})`));
      }
    }
    if (errors.length === 0 && (earnExpiresOn as number) <= (earnEventDate as number)) errors.push(error(400, 'earnExpiresOn must be after earnEventDate'));
    if (errors.length === 0 && (earnEventDate as number) * factor > Date.now() + 86_400_000) errors.push(error(750, 'Earn event date cannot be in the future'));
    if (errors.length > 0) return { data: null, errors, warnings: null };
    const entry: LedgerEntry = {
      earnedBadgeId: randomBytes(12).toString('hex'),
      requestId,
      customerId: customerId as number,
      badgeMetaId: badgeMetaId as string,
      earnEventDate: earnEventDate as number,
      earnExpiresOn: earnExpiresOn as number,
      earnEventDateISO: earnEventDateISO as string | undefined,
      earnExpiresOnISO: earnExpiresOnISO as string | undefined,
      issuedAt: Date.now(),
    };
    ledger.push(entry);
    return {
      data: { badgeMetaId: entry.badgeMetaId, customerId: entry.customerId, earnedBadgeId: entry.earnedBadgeId, expiresOn: entry.earnExpiresOn, requestId },
      errors: null,
      warnings: null,
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (settings.latencyMs > 0) await new Promise((r) => setTimeout(r, settings.latencyMs));
    if (req.method === 'GET' && url.pathname === '/__sandbox/ledger') return send(res, 200, ledger);
    if (!authorizations.has(req.headers.authorization ?? '')) return send(res, 401, { errors: [error(401, 'Invalid credentials')] });

    if (url.pathname === IMPORT_PATH && (req.method === 'PUT' || req.method === 'POST')) {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return send(res, 400, { errors: [error(400, 'Request body is not JSON')] });
      }
      if (!Array.isArray(body)) return send(res, 400, { errors: [error(400, 'Request body must be an array')] });
      if (body.length > settings.maxBatchSize) return send(res, 400, { errors: [error(1060, `Batch limit exceeded: at most ${settings.maxBatchSize} items`)] });
      const requestId = randomBytes(8).toString('hex');
      return send(res, 200, body.map((item) => importItem(item, requestId)));
    }
    const meta = /^\/api_gateway\/v1\/badges\/badgeMeta\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && meta) {
      const id = decodeURIComponent(meta[1]!);
      if (!badgeExists(id)) return send(res, 404, { data: null, errors: [error(404, 'Passed badge is not found')], warnings: [] });
      return send(res, 200, { data: { id, status: 'LIVE' }, errors: [], warnings: [] });
    }
    const customer = /^\/api_gateway\/v1\/badges\/customer\/(\d+)$/.exec(url.pathname);
    if (req.method === 'GET' && customer) {
      const id = Number(customer[1]);
      const latest = new Map<string, LedgerEntry>();
      for (const entry of ledger) if (entry.customerId === id) latest.set(entry.badgeMetaId, entry);
      const customerBadges = [...latest.values()].map((e) => ({
        badgeMetaId: e.badgeMetaId,
        badgeType: 'ISSUE_EARN',
        lastEarnEventDate: e.earnEventDate * factor,
        lastEarnedOnDate: e.issuedAt,
      }));
      return send(res, 200, { data: { customerBadges }, errors: [], warnings: [] });
    }
    return send(res, 404, { errors: [error(404, `No route ${req.method} ${url.pathname}`)] });
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => send(res, 500, { errors: [error(500, e instanceof Error ? e.message : 'internal error')] }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${host}:${address.port}`,
    ledger,
    statusCounts,
    addUser: (username, password) => authorizations.add(basicAuthorization(username, password)),
    addBadge: (id) => known?.add(id.toLowerCase()),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
