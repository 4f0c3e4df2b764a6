import type { Destination } from '../config/schema';
import type { ApiItem } from '../core/mapping';
import { AuthError } from '../errors';
import type { AuthProvider } from './auth';

/** What became of one item of a request. */
export type ItemOutcome =
  | { accepted: true; earnedBadgeId: string; warnings?: unknown[] }
  | { accepted: false; code: string; message: string };

/** Codes of records that the client could not settle; all are replayable. */
export const SEND_CODES = {
  /** Retries used up on 429, 502, 503, 504, 520, 521 or refused connections: the API never took the records. */
  RETRIES_EXHAUSTED: 'RETRIES_EXHAUSTED',
  /** The request may have been processed (timeout, reset, 500, an answer of the wrong length): check before replaying. */
  AMBIGUOUS: 'AMBIGUOUS',
  /** The API refused the request itself (4xx other than auth). */
  REQUEST_REJECTED: 'REQUEST_REJECTED',
} as const;

/** Statuses that mean "not processed, try again": Connect+'s recoverable list plus 429. */
const RETRYABLE_STATUS = new Set([429, 502, 503, 504, 520, 521]);
/** Network errors raised before a request could reach the server: safe to resend. */
const NOT_SENT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

interface ApiError {
  code?: number | string;
  message?: string;
}
interface ResponseItem {
  data?: { earnedBadgeId?: string | null } | null;
  errors?: ApiError[] | null;
  warnings?: unknown[] | null;
}

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
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Sends batches to the import API. It never throws for the fate of a record (every item gets an outcome); it throws
 * only AuthError, when the credentials are refused, since then no record of the file can be sent.
 */
export class BadgesApiClient {
  private readonly fetch: typeof fetch;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly url: string;
  private readonly intervalMs: number;
  private nextSlot = 0;

  constructor(private readonly options: ClientOptions) {
    this.fetch = options.fetch ?? globalThis.fetch;
    this.sleep = options.sleep ?? defaultSleep;
    this.random = options.random ?? Math.random;
    this.url = `${options.destination.baseUrl}${options.destination.endpoint}`;
    this.intervalMs = 60_000 / options.requestsPerMinute;
  }

  /** Full-jitter exponential backoff for retry `attempt` (0-based), or the server's Retry-After when it gave one. */
  backoffMs(attempt: number, retryAfter?: string | null): number {
    const cap = this.options.backoffCapMs ?? 30_000;
    if (retryAfter) {
      const seconds = Number(retryAfter);
      const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(retryAfter) - Date.now();
      if (Number.isFinite(ms) && ms >= 0) return Math.min(ms, cap * 4);
    }
    const ceiling = Math.min(cap, (this.options.backoffBaseMs ?? 500) * 2 ** attempt);
    return Math.floor(this.random() * ceiling);
  }

  /** Waits for this client's next request slot (pacing to its share of the rate limit). */
  private async pace(): Promise<void> {
    const now = Date.now();
    const slot = Math.max(now, this.nextSlot);
    this.nextSlot = slot + this.intervalMs;
    if (slot > now) await this.sleep(slot - now);
  }

  /** Sends one batch; returns one outcome per item, in order. */
  async send(items: readonly ApiItem[]): Promise<ItemOutcome[]> {
    const { destination } = this.options;
    let lastProblem = '';
    for (let attempt = 0; attempt <= destination.maxRetries; attempt++) {
      await this.pace();
      let response: Response;
      try {
        response = await this.fetch(this.url, {
          method: destination.method,
          headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...destination.headers, ...(await this.options.auth.headers()) },
          body: JSON.stringify(items),
          signal: AbortSignal.timeout(destination.requestTimeoutMs),
        });
      } catch (error) {
        const code = networkCode(error);
        if (code && NOT_SENT_ERRORS.has(code)) {
          lastProblem = `connection failed (${code})`;
          await this.sleep(this.backoffMs(attempt));
          continue;
        }
        // The body may have reached the API: resending could issue the badges twice.
        return fill(items, SEND_CODES.AMBIGUOUS, `No answer (${code ?? describe(error)}); the records may or may not have been issued`);
      }

      if (response.status === 401 || response.status === 403) {
        await response.body?.cancel();
        throw new AuthError(`The API refused the credentials (HTTP ${response.status})`);
      }
      if (RETRYABLE_STATUS.has(response.status)) {
        lastProblem = `HTTP ${response.status}`;
        const retryAfter = response.headers.get('retry-after');
        await response.body?.cancel();
        await this.sleep(this.backoffMs(attempt, retryAfter));
        continue;
      }
      let body: unknown;
      try {
        body = await response.json();
      } catch (error) {
        return fill(items, SEND_CODES.AMBIGUOUS, `HTTP ${response.status} with an unreadable body (${describe(error)}); the records may or may not have been issued`);
      }
      if (response.status >= 500) {
        return fill(items, SEND_CODES.AMBIGUOUS, `HTTP ${response.status}: ${firstMessage(body)}; the records may or may not have been issued`);
      }
      if (response.status >= 400) {
        return this.refused(items, response.status, body);
      }
      if (!Array.isArray(body) || body.length !== items.length) {
        return fill(
          items,
          SEND_CODES.AMBIGUOUS,
          `The API answered ${Array.isArray(body) ? `${body.length} items` : 'something other than an array'} for ${items.length}; the records may or may not have been issued`,
        );
      }
      return (body as ResponseItem[]).map(toOutcome);
    }
    return fill(items, SEND_CODES.RETRIES_EXHAUSTED, `Not sent after ${destination.maxRetries + 1} attempts (last: ${lastProblem})`);
  }

  /** A whole batch refused: split it to isolate the records at fault; a single refused record is rejected. */
  private async refused(items: readonly ApiItem[], status: number, body: unknown): Promise<ItemOutcome[]> {
    if (items.length === 1) {
      const error = firstError(body);
      return [{ accepted: false, code: String(error?.code ?? `HTTP_${status}`), message: error?.message ?? `HTTP ${status}` }];
    }
    const half = Math.ceil(items.length / 2);
    return [...(await this.send(items.slice(0, half))), ...(await this.send(items.slice(half)))];
  }
}

function toOutcome(item: ResponseItem): ItemOutcome {
  const errors = item?.errors ?? [];
  const earnedBadgeId = item?.data?.earnedBadgeId;
  if (errors.length === 0 && earnedBadgeId) {
    return item.warnings?.length ? { accepted: true, earnedBadgeId, warnings: item.warnings } : { accepted: true, earnedBadgeId };
  }
  const error = errors[0];
  if (!error) return { accepted: false, code: SEND_CODES.AMBIGUOUS, message: 'The API answered without an earnedBadgeId and without an error' };
  return { accepted: false, code: String(error.code ?? 'API_ERROR'), message: error.message ?? 'no message' };
}

function fill(items: readonly ApiItem[], code: string, message: string): ItemOutcome[] {
  return items.map(() => ({ accepted: false, code, message }));
}

function firstError(body: unknown): ApiError | undefined {
  const candidate = Array.isArray(body) ? (body[0] as ResponseItem | undefined)?.errors?.[0] : (body as { errors?: ApiError[] } | null)?.errors?.[0];
  return candidate ?? undefined;
}

function firstMessage(body: unknown): string {
  return firstError(body)?.message ?? 'no message';
}

function networkCode(error: unknown): string | undefined {
  const e = error as { name?: string; code?: string; cause?: { code?: string; name?: string } };
  if (e?.name === 'TimeoutError') return 'TIMEOUT';
  return e?.cause?.code ?? e?.code;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
