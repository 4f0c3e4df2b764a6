import { API_CODES, SEND_CODES } from '../codes';
import type { Destination } from '../config/schema';
import { destinationKey } from '../core/budget';
import type { ApiItem } from '../core/mapping';
import { AuthError } from '../errors';
import type { BudgetSlot, Log, SendBudget } from '../ports';
import { SPANS, trace } from '../trace';
import { type AuthProvider, TokenUnavailableError } from './auth';

/** What became of one item of a request. */
export type ItemOutcome =
  | { accepted: true; earnedBadgeId: string; reconciled?: boolean; warnings?: unknown[] }
  | { accepted: false; code: string; message: string };

/** Credentials refused in the middle of a batch; `settled` holds the outcomes known before (undefined: not sent). */
export class SendAuthError extends AuthError {
  constructor(
    message: string,
    readonly settled: ReadonlyArray<ItemOutcome | undefined>,
  ) {
    super(message);
  }
}

/**
 * Statuses that mean "not processed, try again": the request never reached a backend that acted on it (429 throttled,
 * 502/503 no healthy backend, 521 "multiple actions are running for the same customer", refused before processing).
 */
const RETRYABLE_STATUS = new Set([429, 502, 503, 521]);
/**
 * Statuses a gateway answers when it gave up on a backend that may still have processed the batch: 504 (the backend
 * did not answer in time) and 520 (Cloudflare: the origin answered something unexpected, e.g. a reset after work).
 * Connect+ resends these blindly; here they are unknown outcomes, reconciled before anything is sent again.
 */
const MAYBE_PROCESSED_STATUS = new Set([504, 520]);
/**
 * Badges asked for in one customer-badges lookup. The endpoint pages (documented default: 10 results), so an answer
 * that may be a full page cannot prove a badge absent.
 */
export const CUSTOMER_BADGES_LIMIT = 100;
const CUSTOMER_BADGES_DEFAULT_PAGE = 10;
/** Epoch values below this are seconds (1e11 s is the year 5138; 1e11 ms is March 1973). */
const SECONDS_BELOW = 1e11;
/** Network errors raised before a request could reach the server: safe to resend without reconciling. */
const NOT_SENT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
const CUSTOMER_BADGES_PATH = '/api_gateway/v1/badges/customer/';
const BADGE_META_PATH = '/api_gateway/v1/badges/badgeMeta/';

interface ApiError {
  code?: number | string;
  message?: string;
}
interface ResponseItem {
  data?: { earnedBadgeId?: string | null } | null;
  errors?: ApiError[] | null;
  warnings?: unknown[] | null;
}

/** One HTTP exchange with the import endpoint, classified. */
type Exchange =
  | { kind: 'answered'; outcomes: ItemOutcome[] }
  | { kind: 'retry'; problem: string; retryAfter?: string | null; throttled: boolean }
  /** `unfinished`: the backend may still be working on the batch (a gateway gave up, or no answer came). */
  | { kind: 'ambiguous'; problem: string; unfinished: boolean }
  | { kind: 'refused'; status: number; body: unknown }
  | { kind: 'unauthorized'; status: number };

/** Whether an item whose request had an unknown outcome was issued, per the customer-badges endpoint. */
type Reconciled = 'issued' | 'not-issued' | 'unknown';

export interface ClientOptions {
  destination: Destination;
  auth: AuthProvider;
  /** Requests per minute this client may make: its share of the dataflow's `maxRequestsPerMinute`. */
  requestsPerMinute: number;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /** Base of the exponential backoff. @default 500 */
  backoffBaseMs?: number;
  /** Cap of one backoff wait. @default 30000 */
  backoffCapMs?: number;
  /** A pacer kept from an earlier chunk (same container): its phase and learned rate carry over. */
  pacer?: Pacer;
  /**
   * The destination's budget shared by every worker of every execution (a DynamoDB table in AWS): when given, the
   * client takes its slots there at the dataflow's whole `maxRequestsPerMinute`, and `requestsPerMinute` (its share)
   * is only the pace it falls back to if the budget cannot be reached.
   */
  budget?: SendBudget;
  /** Where a warning about the budget goes. */
  log?: Log;
  /** Badge ids already checked (same container): each is asked about once. */
  badgeChecks?: BadgeChecks;
}

/** Whether each badge id exists, as `badgeMeta/{id}` answered: true, false, or undefined when it could not tell. */
export type BadgeChecks = Map<string, Promise<boolean | undefined>>;

/** Counters of what the client did, for reports and benchmarks. */
export interface ClientStats {
  requests: number;
  throttled: number;
  retried: number;
  reconciled: number;
  /** Import requests answered, and the sum of their latencies (request sent to answer's headers), ms. */
  answered?: number;
  latencyMs?: number;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** What a request's turn was given as: a slot of the shared budget, or nothing (the in-process pacer). */
export type PaceTicket = BudgetSlot | undefined;

/** Paces a client's requests and learns from their outcomes. */
export interface RequestPacer {
  /** Waits for a request's turn. */
  wait(): Promise<PaceTicket>;
  succeeded(ticket: PaceTicket): void;
  /** The request of `ticket` was answered 429 (`retryAfterMs`: what the API asked for). */
  throttled(ticket: PaceTicket, retryAfterMs?: number): void | Promise<void>;
  /** Whether a 429's Retry-After is already waited out in the pace (a shared pause): the client then does not wait it again. */
  readonly honoursRetryAfter: boolean;
}

/**
 * Paces one worker's requests to its share of the rate. On a 429 it halves its rate (down to a sixteenth), and each
 * request answered without throttling wins back a twentieth of the share: the rate settles just under what the API
 * really allows, with few 429s, and recovers once the API does.
 */
export class Pacer implements RequestPacer {
  readonly honoursRetryAfter = false;
  private rate: number;
  private nextSlot = 0;

  constructor(
    private readonly maxPerMinute: number,
    private readonly sleep: (ms: number) => Promise<void>,
    random: () => number,
  ) {
    this.rate = maxPerMinute;
    // A random phase, so that workers started together do not send in lockstep.
    this.nextSlot = Date.now() + random() * (60_000 / maxPerMinute);
  }

  get perMinute(): number {
    return this.rate;
  }

  async wait(): Promise<PaceTicket> {
    const now = Date.now();
    const slot = Math.max(now, this.nextSlot);
    this.nextSlot = slot + 60_000 / this.rate;
    if (slot > now) await this.sleep(slot - now);
    return undefined;
  }

  throttled(): void {
    this.rate = Math.max(this.maxPerMinute / 16, this.rate / 2);
  }

  succeeded(): void {
    this.rate = Math.min(this.maxPerMinute, this.rate + this.maxPerMinute / 20);
  }
}

/**
 * Takes each request's turn from the destination's shared budget (every worker of every execution that sends to it):
 * a slot given ahead is checked after the wait, since a 429 meanwhile voids it (the holder takes a new one, after the
 * pause, instead of sending into it). If the budget cannot be reached the worker does not stop: it paces itself at its
 * share of the rate (the in-process pacer), and says so once.
 */
export class SharedPacer implements RequestPacer {
  private local: Pacer | undefined;

  constructor(
    private readonly options: {
      budget: SendBudget;
      destination: string;
      maxPerMinute: number;
      fallback: () => Pacer;
      sleep: (ms: number) => Promise<void>;
      log?: Log;
      now?: () => number;
    },
  ) {}

  get honoursRetryAfter(): boolean {
    return this.local === undefined;
  }

  async wait(): Promise<PaceTicket> {
    if (this.local) return this.local.wait();
    const { budget, destination, maxPerMinute, sleep } = this.options;
    const now = this.options.now ?? Date.now;
    try {
      for (;;) {
        const slot = await budget.take(destination, maxPerMinute);
        const delay = slot.at - now();
        if (delay <= 0) return slot;
        await sleep(delay);
        if (await budget.isCurrent(slot)) return slot;
      }
    } catch (error) {
      this.options.log?.warn('The shared send budget cannot be reached: this worker paces itself at its share of the rate', { error: error instanceof Error ? error.name : String(error) });
      this.local = this.options.fallback();
      return this.local.wait();
    }
  }

  succeeded(): void {
    this.local?.succeeded();
  }

  async throttled(ticket: PaceTicket, retryAfterMs?: number): Promise<void> {
    if (!ticket) return this.local?.throttled();
    try {
      await this.options.budget.throttled(ticket, this.options.maxPerMinute, retryAfterMs);
    } catch {
      // The budget is out of reach: the next wait finds it so and falls back.
    }
  }
}

/**
 * Sends batches to the import API. It never throws for the fate of a record: every item gets an outcome. It throws
 * only AuthError, when the credentials are refused even after a refresh, since then no record of the file can be sent.
 *
 * A request whose outcome is unknown (a timeout after sending, a reset, a 500, an answer of the wrong length) is never
 * resent blindly: each of its items is looked up through the customer-badges endpoint; issued ones count as accepted,
 * ones found not issued are sent again, and ones that cannot be told apart are parked as AMBIGUOUS.
 */
export class BadgesApiClient {
  readonly stats: ClientStats = { requests: 0, throttled: 0, retried: 0, reconciled: 0, answered: 0, latencyMs: 0 };
  private readonly fetch: typeof fetch;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  readonly pacer: RequestPacer;
  readonly badgeChecks: BadgeChecks;

  constructor(private readonly options: ClientOptions) {
    this.fetch = options.fetch ?? globalThis.fetch;
    const sleep = options.sleep ?? defaultSleep;
    // Pacing and backoff are the client's own waits: a span each, so a trace tells them apart from the API's time.
    this.sleep = (ms) => trace(SPANS.apiWait, () => sleep(ms), { ms: Math.round(ms) });
    this.random = options.random ?? Math.random;
    this.pacer = options.budget
      ? new SharedPacer({ budget: options.budget, destination: destinationKey(options.destination), maxPerMinute: options.destination.maxRequestsPerMinute, fallback: () => options.pacer ?? new Pacer(options.requestsPerMinute, this.sleep, this.random), sleep: this.sleep, log: options.log })
      : (options.pacer ?? new Pacer(options.requestsPerMinute, this.sleep, this.random));
    this.badgeChecks = options.badgeChecks ?? new Map();
  }

  /** Full-jitter exponential backoff for retry `attempt` (0-based), or the server's Retry-After when it gave one. */
  backoffMs(attempt: number, retryAfter?: string | null): number {
    const cap = this.options.backoffCapMs ?? 30_000;
    const asked = retryAfterMs(retryAfter);
    if (asked !== undefined) return Math.min(asked, cap * 4);
    const ceiling = Math.min(cap, (this.options.backoffBaseMs ?? 500) * 2 ** attempt);
    return Math.floor(this.random() * ceiling);
  }

  /**
   * How long to wait, after an unknown outcome whose backend may still be working (504, 520, no answer), before a
   * lookup may prove a badge absent: `requestTimeoutMs`, the longest this client lets one request take, or the backoff
   * of `attempt` when that is longer. A batch still unfinished after its own request time plus that much again is
   * taken to have been dropped.
   */
  settleMs(attempt: number): number {
    return Math.max(this.options.destination.requestTimeoutMs, this.backoffMs(attempt));
  }

  /**
   * Sends one batch; returns one outcome per item, in order.
   *
   * @throws SendAuthError when the credentials are refused; it carries the outcomes settled before that (a record
   *   already issued must not be reported as unsent).
   */
  async send(items: readonly ApiItem[]): Promise<ItemOutcome[]> {
    const outcomes: Array<ItemOutcome | undefined> = new Array(items.length);
    try {
      await this.settle(items, items.map((_, i) => i), outcomes);
    } catch (error) {
      if (error instanceof AuthError) throw new SendAuthError(error.message, outcomes);
      throw error;
    }
    return outcomes as ItemOutcome[];
  }

  /**
   * For items whose earlier outcome was unknown (a replay of AMBIGUOUS records): looks each up first and sends only
   * those found not issued; one found issued counts as accepted, one still undecidable stays AMBIGUOUS, unsent.
   */
  async sendUnlessIssued(items: readonly ApiItem[]): Promise<ItemOutcome[]> {
    const outcomes: Array<ItemOutcome | undefined> = new Array(items.length);
    const states = await this.reconcile(items);
    const toSend: number[] = [];
    states.forEach((state, i) => {
      if (state === 'issued') outcomes[i] = { accepted: true, earnedBadgeId: 'reconciled', reconciled: true };
      else if (state === 'not-issued') toSend.push(i);
      else outcomes[i] = { accepted: false, code: SEND_CODES.AMBIGUOUS, message: "Replayed: the customer's badges still cannot tell whether it was issued, so it was not sent again" };
    });
    try {
      if (toSend.length > 0) await this.settle(items, toSend, outcomes);
    } catch (error) {
      if (error instanceof AuthError) throw new SendAuthError(error.message, outcomes);
      throw error;
    }
    return outcomes as ItemOutcome[];
  }

  /** Settles the items at `indexes`, writing their outcomes into `outcomes`. */
  private async settle(items: readonly ApiItem[], indexes: number[], outcomes: Array<ItemOutcome | undefined>): Promise<void> {
    const { maxRetries } = this.options.destination;
    let pending = indexes;
    let lastProblem = '';
    let refreshed = false;
    for (let attempt = 0; pending.length > 0 && attempt <= maxRetries; ) {
      const batch = pending.map((i) => items[i]!);
      const exchange = await this.exchange(batch);
      switch (exchange.kind) {
        case 'answered':
          exchange.outcomes.forEach((outcome, k) => (outcomes[pending[k]!] = outcome));
          pending = [];
          break;
        case 'unauthorized':
          if (!refreshed && this.options.auth.refresh()) {
            refreshed = true;
            continue;
          }
          throw new AuthError(`The API refused the credentials (HTTP ${exchange.status})${refreshed ? ' even after a new token' : ''}`);
        case 'refused': {
          // A whole batch refused: split it to isolate the records at fault; a single refused record is rejected.
          if (batch.length === 1) {
            const error = firstError(exchange.body);
            outcomes[pending[0]!] = { accepted: false, code: String(error?.code ?? `HTTP_${exchange.status}`), message: error?.message ?? `HTTP ${exchange.status}` };
          } else {
            const half = Math.ceil(batch.length / 2);
            for (const part of [pending.slice(0, half), pending.slice(half)]) await this.settle(items, part, outcomes);
          }
          pending = [];
          break;
        }
        case 'retry':
          lastProblem = exchange.problem;
          if (exchange.throttled) this.stats.throttled += 1;
          this.stats.retried += 1;
          // A shared budget has paused every worker for the Retry-After already: the next slot comes after it.
          if (!(exchange.throttled && this.pacer.honoursRetryAfter)) await this.sleep(this.backoffMs(attempt, exchange.retryAfter));
          attempt += 1;
          break;
        case 'ambiguous': {
          lastProblem = exchange.problem;
          // A backend that may still be working would show the badge only later: a lookup made at once could find it
          // absent and have it sent twice. So wait out a request's time (or the backoff, if longer) first.
          if (exchange.unfinished) await this.sleep(this.settleMs(attempt));
          const states = await this.reconcile(batch);
          const notIssued: number[] = [];
          states.forEach((state, k) => {
            const index = pending[k]!;
            if (state === 'issued') outcomes[index] = { accepted: true, earnedBadgeId: 'reconciled', reconciled: true };
            else if (state === 'not-issued') notIssued.push(index);
            else outcomes[index] = { accepted: false, code: SEND_CODES.AMBIGUOUS, message: `${exchange.problem}; the customer's badges cannot tell whether it was issued` };
          });
          pending = notIssued;
          if (pending.length > 0) {
            this.stats.retried += 1;
            if (!exchange.unfinished) await this.sleep(this.backoffMs(attempt));
          }
          attempt += 1;
          break;
        }
      }
    }
    for (const index of pending) {
      outcomes[index] = { accepted: false, code: SEND_CODES.RETRIES_EXHAUSTED, message: `Not issued after ${maxRetries + 1} attempts (last: ${lastProblem})` };
    }
  }

  /**
   * Whether a badge id exists in the org (`badgeMeta/{id}`), asked once per id: true, false (404), or undefined when
   * the endpoint could not tell (the import API will then answer for itself).
   */
  badgeExists(badgeMetaId: string): Promise<boolean | undefined> {
    let check = this.badgeChecks.get(badgeMetaId);
    if (!check) {
      check = this.get(SPANS.apiBadgeMeta, `${BADGE_META_PATH}${encodeURIComponent(badgeMetaId)}`).then((r) => (r.status === 200 ? true : r.status === 404 ? false : undefined));
      this.badgeChecks.set(badgeMetaId, check);
    }
    return check;
  }

  private async exchange(items: readonly ApiItem[]): Promise<Exchange> {
    const { destination } = this.options;
    const ticket = await this.pacer.wait();
    let headers: Record<string, string>;
    try {
      headers = await this.options.auth.headers();
    } catch (error) {
      if (error instanceof TokenUnavailableError) return { kind: 'retry', problem: error.message, throttled: false };
      throw error;
    }
    const allHeaders = { 'Content-Type': 'application/json', Accept: 'application/json', ...destination.headers, ...headers };
    let request: Request;
    try {
      // Built before fetch, so that what fetch refuses before sending (a header value with a line break, a bad URL) is
      // told apart from a failure after sending: nothing reached the API, so it is a plain retry, never AMBIGUOUS.
      request = new Request(`${destination.baseUrl}${destination.endpoint}`, {
        method: destination.method,
        headers: allHeaders,
        body: JSON.stringify(items),
        signal: AbortSignal.timeout(destination.requestTimeoutMs),
      });
    } catch (error) {
      // Not the error's message: it quotes the offending value, which may be a credential.
      return { kind: 'retry', problem: `the request could not be built (${errorName(error)}: a header value or the URL is not valid HTTP); nothing was sent`, throttled: false };
    }
    return trace(SPANS.apiImport, () => this.post(request, items, Object.values(allHeaders), ticket), { items: items.length });
  }

  /** Sends one built import request and classifies what came back; `secrets` are scrubbed from any message. */
  private async post(request: Request, items: readonly ApiItem[], secrets: readonly string[], ticket: PaceTicket): Promise<Exchange> {
    this.stats.requests += 1;
    let response: Response;
    const sentAt = performance.now();
    try {
      response = await this.fetch(request);
      this.stats.answered = (this.stats.answered ?? 0) + 1;
      this.stats.latencyMs = (this.stats.latencyMs ?? 0) + (performance.now() - sentAt);
    } catch (error) {
      const code = networkCode(error);
      if (code && NOT_SENT_ERRORS.has(code)) return { kind: 'retry', problem: `connection failed (${code})`, throttled: false };
      return { kind: 'ambiguous', problem: `No answer (${code ?? scrub(describe(error), secrets)})`, unfinished: true };
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      return { kind: 'unauthorized', status: response.status };
    }
    if (MAYBE_PROCESSED_STATUS.has(response.status)) {
      await response.body?.cancel();
      return { kind: 'ambiguous', problem: `HTTP ${response.status} from the gateway (the backend may have processed the batch)`, unfinished: true };
    }
    if (RETRYABLE_STATUS.has(response.status)) {
      const retryAfter = response.headers.get('retry-after');
      await response.body?.cancel();
      if (response.status === 429) await this.pacer.throttled(ticket, retryAfterMs(retryAfter));
      return { kind: 'retry', problem: `HTTP ${response.status}`, retryAfter, throttled: response.status === 429 };
    }
    let body: unknown;
    try {
      body = await response.json();
    } catch (error) {
      // A JSON.parse message quotes the body; only other failures (the stream cut short) are worth their message.
      const why = error instanceof SyntaxError ? 'not JSON' : scrub(describe(error), secrets);
      return { kind: 'ambiguous', problem: `HTTP ${response.status} with an unreadable body (${why})`, unfinished: false };
    }
    if (response.status >= 500) return { kind: 'ambiguous', problem: `HTTP ${response.status}: ${firstError(body)?.message ?? 'no message'}`, unfinished: false };
    if (response.status >= 400) return { kind: 'refused', status: response.status, body };
    if (!Array.isArray(body) || body.length !== items.length) {
      return { kind: 'ambiguous', problem: `The API answered ${Array.isArray(body) ? `${body.length} items` : 'something other than an array'} for ${items.length}`, unfinished: false };
    }
    this.pacer.succeeded(ticket);
    return { kind: 'answered', outcomes: (body as ResponseItem[]).map(toOutcome) };
  }

  /**
   * Looks each item up among its customer's earned badges. The endpoint shows only a badge's last earn event, so an
   * item is `issued` when that event is the item's, `not-issued` when the badge is absent or its last event is older,
   * and `unknown` when a later event hides it, the lookup fails, or the badge is absent from an answer that may be
   * one page of several. Badge ids are compared case-insensitively (hex ids; validation accepts either case).
   */
  private async reconcile(items: readonly ApiItem[]): Promise<Reconciled[]> {
    this.stats.reconciled += items.length;
    const toMs = this.options.destination.epochUnit === 's' ? 1000 : 1;
    const byCustomer = new Map<number, Promise<CustomerBadges | undefined>>();
    const lookup = (customerId: number) => {
      let badges = byCustomer.get(customerId);
      if (!badges) {
        badges = this.customerBadges(customerId);
        byCustomer.set(customerId, badges);
      }
      return badges;
    };
    const states: Reconciled[] = [];
    for (const item of items) {
      const badges = await lookup(item.customerId);
      if (!badges) {
        states.push('unknown');
        continue;
      }
      const last = badges.lastEvents.get(item.badgeMetaId.toLowerCase());
      if (last === undefined) {
        states.push(badges.complete ? 'not-issued' : 'unknown');
        continue;
      }
      // Compared at the precision the endpoint gave: a date in seconds proves the item's event only when that event
      // falls on a whole second (it cannot tell two events within one second apart).
      const eventMs = item.earnEventDate * toMs;
      const event = Math.floor(eventMs / last.precisionMs);
      const shown = Math.floor(last.epochMs / last.precisionMs);
      const exact = eventMs % last.precisionMs === 0;
      states.push(Number.isNaN(shown) ? 'unknown' : shown < event ? 'not-issued' : shown === event && exact ? 'issued' : 'unknown');
    }
    return states;
  }

  /** A customer's earned badges (undefined when the endpoint cannot be read). */
  private async customerBadges(customerId: number): Promise<CustomerBadges | undefined> {
    for (let attempt = 0; attempt <= this.options.destination.maxRetries; attempt++) {
      // includeExpired: a historical import may carry an expiry already past, and the badge then no longer counts as
      // EARNED; without it such a badge would look not issued and be sent again.
      const response = await this.get(SPANS.apiCustomerBadges, `${CUSTOMER_BADGES_PATH}${customerId}?badgeType=EARNED&includeExpired=true&limit=${CUSTOMER_BADGES_LIMIT}`);
      // A 200 without a readable list (an error object, another shape) is a failed lookup, never an empty list: read
      // as "no badges" it would send an issued record a second time. It is asked again, like a 5xx.
      const badges = response.status === 200 ? readCustomerBadges(response.body) : undefined;
      if (badges) return badges;
      if (response.status !== 200 && response.status !== 0 && !RETRYABLE_STATUS.has(response.status) && response.status < 500) return undefined;
      await this.sleep(this.backoffMs(attempt, response.retryAfter));
    }
    return undefined;
  }

  /** A paced, authenticated GET, in a span called `span`; status 0 when no answer came. */
  private async get(span: string, path: string): Promise<{ status: number; body?: unknown; retryAfter?: string | null }> {
    const ticket = await this.pacer.wait();
    return trace(span, () => this.getOnce(path, ticket));
  }

  private async getOnce(path: string, ticket: PaceTicket): Promise<{ status: number; body?: unknown; retryAfter?: string | null }> {
    const { destination } = this.options;
    try {
      this.stats.requests += 1;
      const response = await this.fetch(`${destination.baseUrl}${path}`, {
        method: 'GET',
        headers: { Accept: 'application/json', ...destination.headers, ...(await this.options.auth.headers()) },
        signal: AbortSignal.timeout(destination.requestTimeoutMs),
      });
      const retryAfter = response.headers.get('retry-after');
      if (response.status === 429) await this.pacer.throttled(ticket, retryAfterMs(retryAfter));
      const body = await response.json().catch(() => undefined);
      return { status: response.status, body, retryAfter };
    } catch {
      return { status: 0 };
    }
  }
}

/** A customer's earned badges as the lookup saw them. */
interface CustomerBadges {
  /** Badge id (lower case) → its last earn event, and the precision the endpoint gave it in (1000: seconds). */
  lastEvents: Map<string, { epochMs: number; precisionMs: number }>;
  /** Whether the answer is surely the whole list: only then does a badge missing from it prove it was not issued. */
  complete: boolean;
}

interface CustomerBadgeEntry {
  badgeMetaId?: unknown;
  lastEarnEventDate?: unknown;
  lastEarnEventDateISO?: unknown;
}

/**
 * Reads the customer-badges answer: undefined when it holds no `data.customerBadges` list or carries errors (it then
 * proves nothing, least of all that a badge is absent). One entry whose date cannot be read gets NaN (its items stay
 * unknown); an entry without a badge id makes the list incomplete (it may be the badge looked for).
 */
export function readCustomerBadges(body: unknown): CustomerBadges | undefined {
  const answer = body as { data?: { customerBadges?: unknown } | null; errors?: unknown } | null | undefined;
  const list = answer?.data?.customerBadges;
  if (!Array.isArray(list)) return undefined;
  if (Array.isArray(answer?.errors) ? answer.errors.length > 0 : answer?.errors != null) return undefined;
  const lastEvents = new Map<string, { epochMs: number; precisionMs: number }>();
  let unreadable = false;
  for (const entry of list as CustomerBadgeEntry[]) {
    if (typeof entry?.badgeMetaId !== 'string' || entry.badgeMetaId === '') {
      unreadable = true;
      continue;
    }
    lastEvents.set(entry.badgeMetaId.toLowerCase(), lastEarnEvent(entry));
  }
  // Fewer than the documented default page proves nothing is left out; more than it shows `limit` was honoured, so
  // fewer than the limit is everything. Exactly a default page, the limit or more, or any sign of further pages: not.
  const n = list.length;
  const complete = !unreadable && (n < CUSTOMER_BADGES_DEFAULT_PAGE || (n > CUSTOMER_BADGES_DEFAULT_PAGE && n < CUSTOMER_BADGES_LIMIT)) && !morePages(body, n);
  return { lastEvents, complete };
}

/**
 * A badge's last earn event: the `…ISO` twin when it carries an offset, else the epoch (seconds when below 1e11,
 * else milliseconds, whatever the import's own unit). Both given and disagreeing: NaN, since neither can be trusted.
 */
function lastEarnEvent(entry: CustomerBadgeEntry): { epochMs: number; precisionMs: number } {
  const raw = typeof entry.lastEarnEventDate === 'string' && entry.lastEarnEventDate.trim() !== '' ? Number(entry.lastEarnEventDate) : entry.lastEarnEventDate;
  const epoch = typeof raw === 'number' && Number.isFinite(raw) && raw > 0 ? (raw < SECONDS_BELOW ? { epochMs: raw * 1000, precisionMs: 1000 } : { epochMs: raw, precisionMs: 1 }) : undefined;
  const isoText = entry.lastEarnEventDateISO;
  // Only an ISO value with its own offset is an instant; one without would be read in the host's zone.
  const iso = typeof isoText === 'string' && /T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/i.test(isoText.trim()) ? Date.parse(isoText.trim()) : NaN;
  if (!Number.isNaN(iso)) {
    const fromIso = { epochMs: iso, precisionMs: /\.\d/.test(isoText as string) ? 1 : 1000 };
    if (!epoch) return fromIso;
    const coarse = Math.max(epoch.precisionMs, fromIso.precisionMs);
    if (Math.floor(epoch.epochMs / coarse) !== Math.floor(iso / coarse)) return { epochMs: NaN, precisionMs: 1 };
    return epoch.precisionMs <= fromIso.precisionMs ? epoch : fromIso;
  }
  return epoch ?? { epochMs: NaN, precisionMs: 1 };
}

const MORE_FLAGS = ['hasMore', 'hasNext', 'hasNextPage', 'more', 'moreAvailable'];
const LAST_FLAGS = ['last', 'isLast', 'isLastPage', 'lastPage'];
const NEXT_LINKS = ['next', 'nextPage', 'nextPageUrl', 'nextUrl', 'nextCursor', 'nextToken', 'nextPageToken'];
const TOTALS = ['total', 'totalCount', 'totalElements', 'totalRecords', 'totalResults', 'totalBadges'];

/** Whether an answer says, anywhere near its list (top level, `data`, or a paging object), that more was left out. */
function morePages(body: unknown, returned: number): boolean {
  const places: Array<Record<string, unknown>> = [];
  const add = (value: unknown) => {
    if (value && typeof value === 'object' && !Array.isArray(value)) places.push(value as Record<string, unknown>);
  };
  add(body);
  add((body as { data?: unknown } | null)?.data);
  for (const place of [...places]) for (const key of ['pagination', 'paging', 'page', 'pageInfo', 'pageable', 'meta', 'links']) add(place[key]);
  return places.some(
    (p) =>
      MORE_FLAGS.some((k) => p[k] === true || p[k] === 'true') ||
      LAST_FLAGS.some((k) => p[k] === false || p[k] === 'false') ||
      NEXT_LINKS.some((k) => (typeof p[k] === 'string' && p[k] !== '') || typeof p[k] === 'number') ||
      TOTALS.some((k) => Number(p[k]) > returned) ||
      Number(p.totalPages) > 1,
  );
}

function toOutcome(item: ResponseItem): ItemOutcome {
  const errors = item?.errors ?? [];
  const earnedBadgeId = item?.data?.earnedBadgeId;
  if (errors.length === 0 && earnedBadgeId) {
    return item.warnings?.length ? { accepted: true, earnedBadgeId, warnings: item.warnings } : { accepted: true, earnedBadgeId };
  }
  const error = errors[0];
  if (!error) return { accepted: false, code: SEND_CODES.AMBIGUOUS, message: 'The API answered without an earnedBadgeId and without an error' };
  return { accepted: false, code: String(error.code ?? API_CODES.UNCODED), message: error.message ?? 'no message' };
}

/** A `Retry-After` header in milliseconds (seconds, or an HTTP date), when it holds one. */
function retryAfterMs(retryAfter: string | null | undefined): number | undefined {
  if (!retryAfter) return undefined;
  const seconds = Number(retryAfter);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(retryAfter) - Date.now();
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

function firstError(body: unknown): ApiError | undefined {
  const candidate = Array.isArray(body) ? (body[0] as ResponseItem | undefined)?.errors?.[0] : (body as { errors?: ApiError[] } | null)?.errors?.[0];
  return candidate ?? undefined;
}

function networkCode(error: unknown): string | undefined {
  const e = error as { name?: string; code?: string; cause?: { code?: string; name?: string } };
  if (e?.name === 'TimeoutError') return 'TIMEOUT';
  return e?.cause?.code ?? e?.code;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

/** Replaces every header value sent (credentials among them) found in an error message; short values are left. */
export function scrub(text: string, values: readonly string[]): string {
  let scrubbed = text;
  for (const value of values) if (value.length >= 4) scrubbed = scrubbed.split(value).join('[redacted]');
  return scrubbed;
}
