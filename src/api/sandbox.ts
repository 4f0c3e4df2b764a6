import { randomBytes } from 'node:crypto';
import { type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
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
export function seeded(seed: number): () => number {
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

const TOKEN_PATH = '/v3/oauth/token/generate';
const LEDGER_PATH = '/__sandbox/ledger';
const BADGE_META_PATH = /^\/api_gateway\/v1\/badges\/badgeMeta\/([^/]+)$/;
const CUSTOMER_PATH = /^\/api_gateway\/v1\/badges\/customer\/(\d+)$/;

/**
 * Everything the sandbox knows, in one object that the routes below read and change: what it was told, the
 * credentials it takes, the badges it issued, its limits, and what it has counted.
 */
interface SandboxState {
  readonly settings: z.output<typeof sandboxSettingsSchema>;
  /** Multiplier from the configured epoch unit to milliseconds. */
  readonly factor: number;
  readonly credentials: {
    /** `Authorization` header values of the Basic-auth users. */
    readonly basic: Set<string>;
    /** OAuth client key → secret. */
    readonly clients: Map<string, string>;
    /** OAuth token → expiry (ms). */
    readonly tokens: Map<string, number>;
    readonly issued: string[];
    /** Every credential refused (revoked by the test, or by `faults.revokeCredentialsAfterRequests`). */
    revoked: boolean;
    /** Import requests seen, counted only while `faults.revokeCredentialsAfterRequests` is set. */
    importRequests: number;
  };
  /** Lower-cased ids of the org's badges; absent: every well-formed id exists. */
  readonly knownBadgeIds: Set<string> | undefined;
  readonly ledger: LedgerEntry[];
  readonly limits: { readonly requests?: Bucket; readonly items?: Bucket; inFlight: number };
  readonly random: () => number;
  readonly statusCounts: Record<string, number>;
  itemsProcessed: number;
}

function initialState(input: SandboxSettings): SandboxState {
  const settings = sandboxSettingsSchema.parse(input);
  return {
    settings,
    factor: settings.epochUnit === 'ms' ? 1 : 1000,
    credentials: {
      basic: new Set(settings.users.map((u) => basicAuthorization(u.username, u.password))),
      clients: new Map(settings.oauthClients.map((c) => [c.key, c.secret])),
      tokens: new Map(),
      issued: [],
      revoked: false,
      importRequests: 0,
    },
    knownBadgeIds: settings.knownBadgeIds ? new Set(settings.knownBadgeIds.map((id) => id.toLowerCase())) : undefined,
    ledger: [],
    limits: {
      ...(settings.rateLimit?.requestsPerMinute ? { requests: new Bucket(settings.rateLimit.requestsPerMinute / 60) } : {}),
      ...(settings.rateLimit?.itemsPerSecond ? { items: new Bucket(settings.rateLimit.itemsPerSecond) } : {}),
      inFlight: 0,
    },
    random: seeded(settings.faults?.seed ?? 1),
    statusCounts: {},
    itemsProcessed: 0,
  };
}

/** A request as the routes see it, its body read to the end. */
interface SandboxRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

/** What a route answers: a JSON document, or `reset` (the connection is cut, nothing is answered). */
type Answer = { readonly status: number; readonly body: unknown; readonly headers?: Record<string, string> } | 'reset';

const json = (status: number, body: unknown, headers?: Record<string, string>): Answer => ({ status, body, ...(headers ? { headers } : {}) });
const refusal = (status: number, code: number, message: string, headers?: Record<string, string>): Answer => json(status, { errors: [error(code, message)] }, headers);

/** Counts an answer to an import request in `statusCounts` (a cut connection as `reset`). */
function tally(state: SandboxState, answer: Answer): Answer {
  const key = answer === 'reset' ? 'reset' : answer.status;
  state.statusCounts[key] = (state.statusCounts[key] ?? 0) + 1;
  return answer;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Admission: the checks a request passes before a route does anything.

/**
 * 429 with `Retry-After` (unless the settings say not to give it), counted in `statusCounts` whatever the endpoint:
 * the requests-per-minute limit covers them all.
 */
function throttled(state: SandboxState, waitMs: number): Answer {
  const headers: Record<string, string> = state.settings.rateLimit?.retryAfter === false ? {} : { 'Retry-After': String(Math.max(1, Math.ceil(waitMs / 1000))) };
  return tally(state, refusal(429, 429, 'Too many requests', headers));
}

/** The requests-per-minute limit, which covers every endpoint. */
function admitRequestRate(state: SandboxState): Answer | undefined {
  const requests = state.limits.requests?.take(1);
  return requests && !requests.ok ? throttled(state, requests.waitMs) : undefined;
}

/** Basic auth or an unexpired OAuth token; none at all once revoked (an import request may revoke them, see `faults`). */
function admitCredentials(state: SandboxState, request: SandboxRequest): Answer | undefined {
  const { credentials, settings } = state;
  const isImport = request.path === IMPORT_PATH;
  const revokeAfter = settings.faults?.revokeCredentialsAfterRequests;
  if (isImport && revokeAfter !== undefined && ++credentials.importRequests > revokeAfter) credentials.revoked = true;
  const token = request.headers['x-cap-api-oauth-token'];
  const authorized =
    !credentials.revoked && (typeof token === 'string' ? (credentials.tokens.get(token) ?? 0) > Date.now() : credentials.basic.has(request.headers.authorization ?? ''));
  if (authorized) return undefined;
  const answer = refusal(401, 401, 'Invalid or expired credentials');
  return isImport ? tally(state, answer) : answer;
}

/** The import body: a JSON array no longer than `maxBatchSize`, or a counted 400. */
function readBatch(state: SandboxState, text: string): unknown[] | Answer {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return tally(state, refusal(400, 400, 'Request body is not JSON'));
  }
  if (!Array.isArray(body)) return tally(state, refusal(400, 400, 'Request body must be an array'));
  if (body.length > state.settings.maxBatchSize) return tally(state, refusal(400, 1060, `Batch limit exceeded: at most ${state.settings.maxBatchSize} items`));
  return body;
}

/** The concurrency limit, then the items-per-second limit (which takes the batch's items only when admitted so far). */
function admitImportLoad(state: SandboxState, items: number): Answer | undefined {
  const { settings, limits } = state;
  if (settings.maxConcurrentRequests !== undefined && limits.inFlight >= settings.maxConcurrentRequests) return throttled(state, 1000);
  const taken = limits.items?.take(items);
  return taken && !taken.ok ? throttled(state, taken.waitMs) : undefined;
}

/** One draw of the seeded generator decides the fault of an admitted import request, if any. */
function drawFault(state: SandboxState): Fault {
  const faults = state.settings.faults;
  if (!faults) return { kind: 'none' };
  let roll = state.random();
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

// Routes

/** `POST /v3/oauth/token/generate` with `{ key, secret }`: a token that lives `tokenTtlSeconds`. */
function generateToken(state: SandboxState, text: string): Answer {
  let credentials: { key?: unknown; secret?: unknown } = {};
  try {
    credentials = JSON.parse(text) as typeof credentials;
  } catch {
    // answered below as invalid
  }
  if (typeof credentials.key !== 'string' || state.credentials.clients.get(credentials.key) !== credentials.secret) {
    return json(401, { data: null, errors: [error(401, 'Invalid key or secret')] });
  }
  const accessToken = randomBytes(24).toString('base64url');
  const ttlSeconds = state.settings.tokenTtlSeconds;
  state.credentials.tokens.set(accessToken, Date.now() + ttlSeconds * 1000);
  state.credentials.issued.push(accessToken);
  return json(200, { data: { accessToken, ttlSeconds }, errors: [] });
}

const badgeExists = (state: SandboxState, id: string) => /^[0-9a-fA-F]{24}$/.test(id) && (!state.knownBadgeIds || state.knownBadgeIds.has(id.toLowerCase()));

/** `PUT|POST IMPORT_PATH`: admission, then a fault drawn, then the batch processed (unless the fault forbids it). */
async function importBadges(state: SandboxState, request: SandboxRequest): Promise<Answer> {
  const batch = readBatch(state, request.text);
  if (!Array.isArray(batch)) return batch;
  const refused = admitImportLoad(state, batch.length);
  if (refused) return refused;
  const fault = drawFault(state);
  if (fault.kind === 'status') return tally(state, refusal(fault.status, fault.status, 'Injected fault', fault.status === 429 ? { 'Retry-After': '1' } : {}));
  if (fault.kind === 'reset') return tally(state, 'reset');
  state.limits.inFlight += 1;
  try {
    if (state.settings.latencyMs > 0) await delay(state.settings.latencyMs);
    const requestId = randomBytes(8).toString('hex');
    state.itemsProcessed += batch.length;
    const answer = batch.map((item) => issueBadge(state, item, requestId));
    // The badges stand; only the answer is lost.
    if (fault.kind === 'lost') return tally(state, 'reset');
    if (fault.kind === 'slow') await delay(state.settings.faults!.slowDelayMs);
    return tally(state, json(200, answer));
  } finally {
    state.limits.inFlight -= 1;
  }
}

/** What the API finds wrong with one import item (nothing: it is issued). */
function itemErrors(state: SandboxState, item: Record<string, unknown>): ItemError[] {
  const { epochUnit } = state.settings;
  const errors: ItemError[] = [];
  const { badgeMetaId, customerId, earnEventDate, earnExpiresOn, earnEventDateISO, earnExpiresOnISO } = item;
  if (typeof badgeMetaId !== 'string' || badgeMetaId === '') errors.push(error(400, 'badgeMetaId is required'));
  else if (!badgeExists(state, badgeMetaId)) errors.push(error(1054, 'GLOBAL.BADGE_NOT_FOUND'));
  if (typeof customerId !== 'number' || !Number.isSafeInteger(customerId) || customerId <= 0) errors.push(error(400, 'customerId must be a positive integer'));
  for (const [name, value, iso] of [
    ['earnEventDate', earnEventDate, earnEventDateISO],
    ['earnExpiresOn', earnExpiresOn, earnExpiresOnISO],
  ] as const) {
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) errors.push(error(400, `${name} must be an epoch in ${epochUnit}`));
    else if (iso !== undefined && (typeof iso !== 'string' || Math.floor(Date.parse(iso) / state.factor) !== value)) {
      errors.push(error(400, `${name}ISO (${JSON.stringify(iso)}) does not denote the same instant as ${name} (${value} ${epochUnit})`));
    }
  }
  if (errors.length === 0 && (earnExpiresOn as number) <= (earnEventDate as number)) errors.push(error(400, 'earnExpiresOn must be after earnEventDate'));
  if (errors.length === 0 && (earnEventDate as number) * state.factor > Date.now() + 86_400_000) errors.push(error(750, 'Earn event date cannot be in the future'));
  return errors;
}

/** One import item: validated as the API does, and issued into the ledger when valid. */
function issueBadge(state: SandboxState, raw: unknown, requestId: string) {
  const item = (raw ?? {}) as Record<string, unknown>;
  const errors = itemErrors(state, item);
  if (errors.length > 0) return { data: null, errors, warnings: null };
  const { badgeMetaId, customerId, earnEventDate, earnExpiresOn, earnEventDateISO, earnExpiresOnISO } = item;
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
  state.ledger.push(entry);
  return {
    data: { badgeMetaId: entry.badgeMetaId, customerId: entry.customerId, earnedBadgeId: entry.earnedBadgeId, expiresOn: entry.earnExpiresOn, requestId },
    errors: null,
    warnings: null,
  };
}

/** `GET …/badgeMeta/{id}`: LIVE for a badge the org has. */
function badgeMeta(state: SandboxState, id: string): Answer {
  if (!badgeExists(state, id)) return json(404, { data: null, errors: [error(404, 'Passed badge is not found')], warnings: [] });
  return json(200, { data: { id, status: 'LIVE' }, errors: [], warnings: [] });
}

/** `GET …/customer/{id}`: the customer's badges from the ledger. */
function customerBadges(state: SandboxState, customerId: number): Answer {
  const latest = new Map<string, LedgerEntry>();
  for (const entry of state.ledger) {
    // A badge earned more than once shows only its last earn event, as Capillary documents.
    const seen = latest.get(entry.badgeMetaId);
    if (entry.customerId === customerId && (!seen || entry.earnEventDate >= seen.earnEventDate)) latest.set(entry.badgeMetaId, entry);
  }
  const badges = [...latest.values()].map((e) => ({
    badgeMetaId: e.badgeMetaId,
    badgeType: 'ISSUE_EARN',
    lastEarnEventDate: e.earnEventDate * state.factor,
    lastEarnedOnDate: e.issuedAt,
  }));
  return json(200, { data: { customerBadges: badges }, errors: [], warnings: [] });
}

/**
 * The sandbox's routing: the ledger (for tests, never throttled), the request rate, the token endpoint (which needs
 * no credentials), the credentials, then the API's routes.
 */
async function route(state: SandboxState, request: SandboxRequest): Promise<Answer> {
  const { method, path } = request;
  if (method === 'GET' && path === LEDGER_PATH) return json(200, state.ledger);
  const throttle = admitRequestRate(state);
  if (throttle) return throttle;
  if (method === 'POST' && path === TOKEN_PATH) return generateToken(state, request.text);
  const unauthorized = admitCredentials(state, request);
  if (unauthorized) return unauthorized;
  if (path === IMPORT_PATH && (method === 'PUT' || method === 'POST')) return importBadges(state, request);
  const meta = BADGE_META_PATH.exec(path);
  if (method === 'GET' && meta) return badgeMeta(state, decodeURIComponent(meta[1]!));
  const customer = CUSTOMER_PATH.exec(path);
  if (method === 'GET' && customer) return customerBadges(state, Number(customer[1]));
  return refusal(404, 404, `No route ${method} ${path}`);
}

// HTTP plumbing

function write(req: IncomingMessage, res: ServerResponse, answer: Answer): void {
  if (answer === 'reset') {
    req.socket.destroy();
    return;
  }
  res.writeHead(answer.status, { 'Content-Type': 'application/json', ...answer.headers });
  res.end(JSON.stringify(answer.body));
}

async function serve(state: SandboxState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://sandbox').pathname;
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const request: SandboxRequest = {
    method: req.method ?? 'GET',
    path,
    headers: req.headers,
    text: Buffer.concat(chunks).toString('utf8'),
  };
  write(req, res, await route(state, request));
}

/** The handle a test or the CLI holds: the sandbox's address, what it recorded, and its controls. */
function sandboxHandle(state: SandboxState, url: string, server: Server): Sandbox {
  const { credentials } = state;
  return {
    url,
    ledger: state.ledger,
    statusCounts: state.statusCounts,
    get itemsProcessed() {
      return state.itemsProcessed;
    },
    expireTokens: () => credentials.tokens.clear(),
    addUser: (username, password) => credentials.basic.add(basicAuthorization(username, password)),
    revokeCredentials: () => {
      credentials.revoked = true;
    },
    restoreCredentials: () => {
      credentials.revoked = false;
      if (state.settings.faults) delete state.settings.faults.revokeCredentialsAfterRequests;
    },
    addOAuthClient: (key, secret) => credentials.clients.set(key, secret),
    addBadge: (id) => state.knownBadgeIds?.add(id.toLowerCase()),
    tokensIssued: credentials.issued,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A local stand-in for Capillary's badges API: the documented import contract (Basic auth and OAuth, a JSON array in,
 * one `data`/`errors` item out per item in), `badgeMeta/{id}` and `customer/{id}` answered from its own ledger, and
 * the misbehaviour of a real service on demand: throttling, a concurrency limit, 5xx, resets, lost answers and slow
 * answers, drawn from a seeded generator.
 */
export async function startSandbox(input: SandboxSettings = {}, port = 0, host = '127.0.0.1'): Promise<Sandbox> {
  const state = initialState(input);
  const server: Server = createServer((req, res) => {
    serve(state, req, res).catch((e: unknown) => write(req, res, refusal(500, 500, e instanceof Error ? e.message : 'internal error')));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return sandboxHandle(state, `http://${host}:${address.port}`, server);
}
