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
  /** OAuth clients: `POST /v3/oauth/token/generate` with `{ key, secret }` returns a token. */
  oauthClients: z.array(z.strictObject({ key: z.string().min(1), secret: z.string().min(1) })).default([]),
  /** Lifetime of an OAuth token. @default 300 */
  tokenTtlSeconds: z.number().positive().default(300),
  /** Throttling: 429 beyond either limit (token buckets with one second of burst). */
  rateLimit: z
    .strictObject({
      /** Requests per minute, all endpoints. */
      requestsPerMinute: z.number().positive().optional(),
      /** Import items per second. */
      itemsPerSecond: z.number().positive().optional(),
      /** Say when to come back (`Retry-After`, whole seconds). @default true */
      retryAfter: z.boolean().default(true),
    })
    .optional(),
  /** Import requests processed at once; more are answered 429. */
  maxConcurrentRequests: z.int().min(1).optional(),
  /** Fault injection on import requests, drawn from a seeded generator (deterministic for a given request order). */
  faults: z
    .strictObject({
      /** @default 1 */
      seed: z.int().default(1),
      /** Share of requests answered with this status without processing them, e.g. `{ "503": 0.05 }`. */
      statusRates: z.partialRecord(z.enum(['429', '500', '502', '503', '504', '520', '521']), z.number().min(0).max(1)).default({}),
      /** Share of requests whose connection is reset before anything is processed. */
      resetBeforeProcessing: z.number().min(0).max(1).default(0),
      /** Share of requests processed (badges issued) whose answer is then lost: the connection is reset. */
      lostAfterProcessing: z.number().min(0).max(1).default(0),
      /** Share of requests processed and answered only after `slowDelayMs` (beyond a client's timeout). */
      slowRate: z.number().min(0).max(1).default(0),
      /** @default 5000 */
      slowDelayMs: z.int().min(0).default(5000),
      /** After this many import requests, every credential is refused (401), as if revoked mid-run. */
      revokeCredentialsAfterRequests: z.int().min(0).optional(),
    })
    .optional(),
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
  /** Import requests answered, by HTTP status; `reset` for connections cut (before or after processing). */
  readonly statusCounts: Readonly<Record<string, number>>;
  /** Import items received in requests that were processed (issued or refused item by item). */
  readonly itemsProcessed: number;
  /** Expires every OAuth token at once (as a clock jump past their TTL would). */
  expireTokens(): void;
  addUser(username: string, password: string): void;
  /** Refuses every credential from now on (401), as a revoked key would be; `restoreCredentials` undoes it. */
  revokeCredentials(): void;
  restoreCredentials(): void;
  addOAuthClient(key: string, secret: string): void;
  addBadge(badgeMetaId: string): void;
  /** Every OAuth token it has issued (tests look for them where they must not be). */
  readonly tokensIssued: readonly string[];
  close(): Promise<void>;
}

type ItemError = { code: number; message: string; reference: null };
const error = (code: number, message: string): ItemError => ({ code, message, reference: null });

/** mulberry32: a small seeded generator, so fault injection replays the same way for the same seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A token bucket refilled at `rate` per second, holding at most one second's worth (at least one request's). */
class Bucket {
  private tokens: number;
  private last = Date.now();
  constructor(private readonly rate: number) {
    this.tokens = Math.max(rate, 1);
  }

  /** Takes `n` tokens, or says in how many ms there will be enough. */
  take(n: number): { ok: true } | { ok: false; waitMs: number } {
    const now = Date.now();
    this.tokens = Math.min(Math.max(this.rate, n, 1), this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens >= n) {
      this.tokens -= n;
      return { ok: true };
    }
    return { ok: false, waitMs: ((n - this.tokens) / this.rate) * 1000 };
  }
}

type Fault = { kind: 'none' } | { kind: 'status'; status: number } | { kind: 'reset' } | { kind: 'lost' } | { kind: 'slow' };

/**
 * A local stand-in for Capillary's badges API: the documented import contract (Basic auth and OAuth, a JSON array in,
 * one `data`/`errors` item out per item in), `badgeMeta/{id}` and `customer/{id}` answered from its own ledger, and
 * the misbehaviour of a real service on demand: throttling, a concurrency limit, 5xx, resets, lost answers and slow
 * answers, drawn from a seeded generator.
 */
export async function startSandbox(input: SandboxSettings = {}, port = 0, host = '127.0.0.1'): Promise<Sandbox> {
  const settings = sandboxSettingsSchema.parse(input);
  const authorizations = new Set(settings.users.map((u) => basicAuthorization(u.username, u.password)));
  const clients = new Map(settings.oauthClients.map((c) => [c.key, c.secret]));
  const tokens = new Map<string, number>(); // token → expiry (ms)
  const tokensIssued: string[] = [];
  const known = settings.knownBadgeIds ? new Set(settings.knownBadgeIds.map((id) => id.toLowerCase())) : undefined;
  const ledger: LedgerEntry[] = [];
  const statusCounts: Record<string, number> = {};
  let itemsProcessed = 0;
  let inFlight = 0;
  const factor = settings.epochUnit === 'ms' ? 1 : 1000;
  const random = seeded(settings.faults?.seed ?? 1);
  const requestBucket = settings.rateLimit?.requestsPerMinute ? new Bucket(settings.rateLimit.requestsPerMinute / 60) : undefined;
  const itemBucket = settings.rateLimit?.itemsPerSecond ? new Bucket(settings.rateLimit.itemsPerSecond) : undefined;

  const count = (key: string | number) => (statusCounts[key] = (statusCounts[key] ?? 0) + 1);
  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const badgeExists = (id: string) => /^[0-9a-fA-F]{24}$/.test(id) && (!known || known.has(id.toLowerCase()));

  let revoked = false;
  let importRequests = 0;
  function authorized(req: IncomingMessage): boolean {
    if (revoked) return false;
    const token = req.headers['x-cap-api-oauth-token'];
    if (typeof token === 'string') return (tokens.get(token) ?? 0) > Date.now();
    return authorizations.has(req.headers.authorization ?? '');
  }

  function drawFault(): Fault {
    const faults = settings.faults;
    if (!faults) return { kind: 'none' };
    let roll = random();
    for (const [status, rate] of Object.entries(faults.statusRates)) {
      if (roll < rate) return { kind: 'status', status: Number(status) };
      roll -= rate;
    }
    if (roll < faults.resetBeforeProcessing) return { kind: 'reset' };
    roll -= faults.resetBeforeProcessing;
    if (roll < faults.lostAfterProcessing) return { kind: 'lost' };
    roll -= faults.lostAfterProcessing;
    if (roll < faults.slowRate) return { kind: 'slow' };
    return { kind: 'none' };
  }

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

  function throttled(res: ServerResponse, waitMs: number): void {
    count(429);
    const headers: Record<string, string> = settings.rateLimit?.retryAfter === false ? {} : { 'Retry-After': String(Math.max(1, Math.ceil(waitMs / 1000))) };
    send(res, 429, { errors: [error(429, 'Too many requests')] }, headers);
  }

  async function handleImport(req: IncomingMessage, res: ServerResponse, text: string): Promise<void> {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      count(400);
      return send(res, 400, { errors: [error(400, 'Request body is not JSON')] });
    }
    if (!Array.isArray(body)) {
      count(400);
      return send(res, 400, { errors: [error(400, 'Request body must be an array')] });
    }
    if (body.length > settings.maxBatchSize) {
      count(400);
      return send(res, 400, { errors: [error(1060, `Batch limit exceeded: at most ${settings.maxBatchSize} items`)] });
    }
    if (settings.maxConcurrentRequests !== undefined && inFlight >= settings.maxConcurrentRequests) return throttled(res, 1000);
    const items = itemBucket?.take(body.length);
    if (items && !items.ok) return throttled(res, items.waitMs);

    const fault = drawFault();
    if (fault.kind === 'status') {
      count(fault.status);
      return send(res, fault.status, { errors: [error(fault.status, 'Injected fault')] }, fault.status === 429 ? { 'Retry-After': '1' } : {});
    }
    if (fault.kind === 'reset') {
      count('reset');
      req.socket.destroy();
      return;
    }
    inFlight += 1;
    try {
      if (settings.latencyMs > 0) await new Promise((r) => setTimeout(r, settings.latencyMs));
      const requestId = randomBytes(8).toString('hex');
      itemsProcessed += body.length;
      const answer = body.map((item) => importItem(item, requestId));
      if (fault.kind === 'lost') {
        count('reset');
        req.socket.destroy();
        return;
      }
      if (fault.kind === 'slow') await new Promise((r) => setTimeout(r, settings.faults!.slowDelayMs));
      count(200);
      send(res, 200, answer);
    } finally {
      inFlight -= 1;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (req.method === 'GET' && url.pathname === '/__sandbox/ledger') return send(res, 200, ledger);
    const requests = requestBucket?.take(1);
    if (requests && !requests.ok) return throttled(res, requests.waitMs);

    if (req.method === 'POST' && url.pathname === '/v3/oauth/token/generate') {
      let credentials: { key?: unknown; secret?: unknown } = {};
      try {
        credentials = JSON.parse(text) as typeof credentials;
      } catch {
        // answered below as invalid
      }
      if (typeof credentials.key !== 'string' || clients.get(credentials.key) !== credentials.secret) {
        return send(res, 401, { data: null, errors: [error(401, 'Invalid key or secret')] });
      }
      const accessToken = randomBytes(24).toString('base64url');
      tokens.set(accessToken, Date.now() + settings.tokenTtlSeconds * 1000);
      tokensIssued.push(accessToken);
      return send(res, 200, { data: { accessToken, ttlSeconds: settings.tokenTtlSeconds }, errors: [] });
    }
    if (url.pathname === IMPORT_PATH && settings.faults?.revokeCredentialsAfterRequests !== undefined && ++importRequests > settings.faults.revokeCredentialsAfterRequests) {
      revoked = true;
    }
    if (!authorized(req)) {
      if (url.pathname === IMPORT_PATH) count(401);
      return send(res, 401, { errors: [error(401, 'Invalid or expired credentials')] });
    }
    if (url.pathname === IMPORT_PATH && (req.method === 'PUT' || req.method === 'POST')) return handleImport(req, res, text);
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
      for (const entry of ledger) {
        // A badge earned more than once shows only its last earn event, as Capillary documents.
        const seen = latest.get(entry.badgeMetaId);
        if (entry.customerId === id && (!seen || entry.earnEventDate >= seen.earnEventDate)) latest.set(entry.badgeMetaId, entry);
      }
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
    get itemsProcessed() {
      return itemsProcessed;
    },
    expireTokens: () => tokens.clear(),
    addUser: (username, password) => authorizations.add(basicAuthorization(username, password)),
    revokeCredentials: () => {
      revoked = true;
    },
    restoreCredentials: () => {
      revoked = false;
      if (settings.faults) delete settings.faults.revokeCredentialsAfterRequests;
    },
    addOAuthClient: (key, secret) => clients.set(key, secret),
    addBadge: (id) => known?.add(id.toLowerCase()),
    tokensIssued,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
