/**
 * The control law of the shared send budget: one schedule of request slots per destination (base URL and
 * credentials), shared by every worker of every execution that sends to it. Pure: the state is a plain object that an
 * adapter keeps in a shared store (DynamoDB in AWS, dynalite locally) and changes with conditional writes.
 *
 * - Slots: the schedule's tail `next` moves by `interval` for each slot taken; idle time earns no burst (a slot taken
 *   on a schedule idle for longer than `catchUpMs` is "now", the tail then one interval later); workers that fell
 *   behind a busy schedule by less than that catch up.
 * - A 429 (the first of a congestion episode: its slot was taken in the current `epoch`) cuts the rate
 *   multiplicatively, remembers the rate that was throttled (`top`), pauses the schedule for the Retry-After the API
 *   asked (or one new interval), and starts a new epoch, which voids every slot handed out before: their holders take
 *   a new one instead of sending into the pause. A 429 of an older epoch was already answered: it changes nothing.
 * - While requests flow without a 429 the rate grows back: quickly (exponentially) toward just under the remembered
 *   `top`, then slowly beyond it (probing whether the API allows more now), never above the configured
 *   `maxRequestsPerMinute` of the dataflow taking the slot. Growth counts only time while slots are taken, so an idle
 *   destination keeps what it learned.
 */
import { createHash } from 'node:crypto';
import { type Destination, destinationIdOf } from '../config/schema';

/** One destination's budget, as the shared store keeps it. Times are epoch milliseconds. */
export interface BudgetState {
  /** The schedule's tail: the earliest time the next slot may be given. */
  next: number;
  /** Milliseconds between two slots (60000 / requests per minute). */
  interval: number;
  /** Increases at each cut: slots of an older epoch are void. */
  epoch: number;
  /** The rate (requests per minute) that was last throttled; 0 before any 429. */
  top: number;
  /** When the rate last grew (or was cut). */
  grownAt: number;
  /** Slots taken. */
  taken: number;
  /** When the epoch's slots began (its pause over), and `taken` then: the rate the API really took is measured over them. */
  epochStart: number;
  epochTaken: number;
  /** 429s that cut the rate. */
  cuts: number;
  /** Milliseconds of traffic spent probing beyond the remembered rate since the last cut (the probe speeds up with it). */
  probing: number;
}

/** The law's constants, tuned with `npm run bench:send` (docs/deploy.md gives the measurements). */
export const BUDGET_LAW = {
  /** A 429 multiplies the rate by this. */
  cut: 0.7,
  /** The rate recovers quickly up to this share of the rate that was throttled… */
  recoverTo: 0.95,
  /** …approaching it at this share of the remaining gap per second… */
  recoverPerSecond: 0.5,
  /**
   * …and beyond it grows by this share of the throttled rate per second (probing whether the API allows more now),
   * a speed that doubles every `probeDoublingMs` of traffic without a 429 (at most 64 times): it dwells just under the
   * remembered rate, then finds a higher limit (or recovers from a 429 that a burst, not the rate, caused) in a minute.
   */
  probePerSecond: 0.002,
  probeDoublingMs: 10_000,
  /** The rate never falls below this share of the configured maximum. */
  floor: 1 / 64,
  /** The rate is recomputed at most this often (ms): one conditional write per destination per tick. */
  tickMs: 1000,
  /** Growth counts at most this much time per tick (ms): an idle destination keeps what it learned. */
  maxGrowthMs: 2000,
  /**
   * A slot up to this far in the past is still given (and sent at once): workers that fell behind the schedule (a slow
   * answer, a busy host) catch up by at most this much, a small burst that an API's own burst allowance absorbs.
   */
  catchUpMs: 500,
  /** The shortest epoch whose slots measure the rate the API took (ms): a shorter one is mostly the API's burst. */
  minMeasureMs: 500,
  /**
   * The burst an API is assumed to allow, as time at its rate (ms): a token bucket refilled during the pause lets an
   * epoch send `limit × (length + burst)` before its first 429, so the measure divides by both. Half a second: the
   * sandbox's full second (1000) measured its limit 10% low at twice the limit, none (0) took four cuts.
   */
  burstMs: 500,
  /** A pause without Retry-After, and the longest one a Retry-After may ask (ms). */
  maxPauseMs: 60_000,
} as const;

const MINUTE_MS = 60_000;

/** Requests per minute of a state. */
export function rateOf(state: Pick<BudgetState, 'interval'>): number {
  return MINUTE_MS / state.interval;
}

/** A fresh budget: the configured rate, nothing learned. */
export function initialBudget(now: number, maxPerMinute: number): BudgetState {
  return { next: now, interval: MINUTE_MS / maxPerMinute, epoch: 0, top: 0, grownAt: now, taken: 0, cuts: 0, epochStart: now, epochTaken: 0, probing: 0 };
}

/**
 * Takes the next slot: the tail, unless it is more than `catchUpMs` behind now (then now); the tail moves one interval on. (The adapter does the same with one
 * atomic update; this is its specification, and the in-memory form the tests use.)
 */
export function takeSlot(state: BudgetState, now: number): { at: number; state: BudgetState } {
  const at = state.next >= now - BUDGET_LAW.catchUpMs ? state.next : now;
  return { at, state: { ...state, next: at + state.interval, taken: state.taken + 1 } };
}

/** Whether the rate is due to be recomputed: a tick has passed, or it is above what this caller allows. */
export function growthDue(state: BudgetState, now: number, maxPerMinute: number): boolean {
  return now - state.grownAt >= BUDGET_LAW.tickMs || rateOf(state) > maxPerMinute * (1 + 1e-9);
}

/** The rate after the time since the last tick without a 429 (see the module's comment), capped at `maxPerMinute`. */
export function grow(state: BudgetState, now: number, maxPerMinute: number): BudgetState {
  const seconds = Math.min(Math.max(0, now - state.grownAt), BUDGET_LAW.maxGrowthMs) / 1000;
  let rate = rateOf(state);
  let probing = state.probing;
  if (state.top <= 0) rate = maxPerMinute;
  else {
    const target = state.top * BUDGET_LAW.recoverTo;
    // Within a hair of the target the approach (which never reaches it) hands over to the probe.
    if (rate < target * 0.995) rate = target - (target - rate) * (1 - BUDGET_LAW.recoverPerSecond) ** seconds;
    else {
      const speed = state.top * BUDGET_LAW.probePerSecond * 2 ** Math.min(6, state.probing / BUDGET_LAW.probeDoublingMs);
      rate = Math.max(rate, target) + speed * seconds;
      probing += seconds * 1000;
    }
  }
  rate = Math.min(maxPerMinute, Math.max(rate, maxPerMinute * BUDGET_LAW.floor));
  return { ...state, interval: MINUTE_MS / rate, grownAt: now, probing };
}

/**
 * The rate the API took during the epoch, requests per minute: the slots given in it (those still ahead of now left
 * out) over its length. The API throttled within it, so this is at most its limit plus its burst spread over the
 * epoch: a far better memory than the scheduled rate, which a burst allowance lets run well above the limit for a
 * while. Infinity when the epoch is too short to tell.
 */
export function measuredRate(state: BudgetState, now: number): number {
  const elapsed = now - state.epochStart;
  if (elapsed < BUDGET_LAW.minMeasureMs) return Infinity;
  const ahead = Math.max(0, (state.next - now) / state.interval);
  return (Math.max(0, state.taken - state.epochTaken - ahead) * MINUTE_MS) / (elapsed + BUDGET_LAW.burstMs);
}

/**
 * After a 429 of the current epoch: the rate cut (and the throttled rate remembered: the lower of the scheduled rate
 * and, when the schedule was what held the workers back, the measured one), the schedule paused for `retryAfterMs` (or one new interval) from now, a new epoch. Slots
 * handed out before are void.
 */
export function afterThrottle(state: BudgetState, now: number, maxPerMinute: number, retryAfterMs?: number): BudgetState {
  // The measured rate is the API's only when the schedule held the workers back (busy: its tail ahead of now, or
  // behind by less than the catch-up). When the workers could not keep up (a slow host), it measures them, not the API.
  const scheduleBound = state.next >= now - BUDGET_LAW.catchUpMs;
  const throttledAt = Math.min(rateOf(state), maxPerMinute, scheduleBound ? measuredRate(state, now) : Infinity);
  const rate = Math.max(throttledAt * BUDGET_LAW.cut, maxPerMinute * BUDGET_LAW.floor);
  const interval = MINUTE_MS / rate;
  const pause = retryAfterMs !== undefined && Number.isFinite(retryAfterMs) && retryAfterMs >= 0 ? Math.min(retryAfterMs, BUDGET_LAW.maxPauseMs) : interval;
  return { ...state, interval, top: throttledAt, next: now + pause, epoch: state.epoch + 1, grownAt: now + pause, cuts: state.cuts + 1, epochStart: now + pause, epochTaken: state.taken, probing: 0 };
}

/**
 * The key of a destination's budget: the SHA-256 of its base URL and the names of the secrets its credentials are
 * read from (never their values). Two dataflows that send to the same API with the same credentials share a budget.
 */
export function destinationKey(destination: Pick<Destination, 'baseUrl' | 'auth'>): string {
  return createHash('sha256').update(destinationIdOf(destination)).digest('hex');
}
