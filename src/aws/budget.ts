import { type AttributeValue, ConditionalCheckFailedException, type DynamoDBClient, GetItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { BUDGET_LAW, type BudgetState, afterThrottle, grow, growthDue, initialBudget } from '../core/budget';
import type { BudgetSlot, SendBudget } from '../ports';

/** How long a destination's item outlives its last use (DynamoDB's TTL deletes it then): what it learned is kept a day. */
export const BUDGET_ITEM_TTL_SECONDS = 86_400;
/**
 * The longest one call to the table may take (ms), retries included. DynamoDB answers in milliseconds; a call that
 * takes longer meets a network that drops answers, and the SDK client has no request timeout of its own: without
 * this a worker would wait for its slot until the Send Lambda's timeout killed it with its chunk unsettled.
 */
export const BUDGET_CALL_TIMEOUT_MS = 3000;
/** Conditional writes that lost a race, in a row, before a take gives up (the caller then paces itself). */
const MAX_ATTEMPTS = 20;

/** A call's options: abandoned (AbortError) after BUDGET_CALL_TIMEOUT_MS, so the caller falls back. */
const bounded = () => ({ abortSignal: AbortSignal.timeout(BUDGET_CALL_TIMEOUT_MS) });

/** The item's attribute names (short: they are written on every request). */
const A = { key: 'pk', next: 'nx', interval: 'iv', epoch: 'ep', top: 'tp', grownAt: 'ga', taken: 'tk', cuts: 'ct', epochStart: 'es', epochTaken: 'et', probing: 'pm', expiresAt: 'expiresAt' } as const;
const NAMES = Object.fromEntries(Object.entries(A).map(([, name]) => [`#${name}`, name]));

export interface DynamoBudgetOptions {
  /** @default Date.now */
  now?: () => number;
}

const n = (value: number): AttributeValue => ({ N: String(value) });
const num = (item: Record<string, AttributeValue>, name: string): number => Number(item[name]?.N ?? 0);

function stateOf(item: Record<string, AttributeValue>): BudgetState {
  return {
    next: num(item, A.next),
    interval: num(item, A.interval),
    epoch: num(item, A.epoch),
    top: num(item, A.top),
    grownAt: num(item, A.grownAt),
    taken: num(item, A.taken),
    cuts: num(item, A.cuts),
    epochStart: num(item, A.epochStart),
    epochTaken: num(item, A.epochTaken),
    probing: num(item, A.probing),
  };
}

const conditionFailed = (error: unknown) => error instanceof ConditionalCheckFailedException || (error as { name?: string })?.name === 'ConditionalCheckFailedException';

/**
 * The shared send budget in a DynamoDB table: one item per destination, keyed by `destinationKey` (a hash of the base
 * URL and the credentials' secret names). A slot is one atomic UpdateItem (the schedule's tail moves one interval;
 * the condition names the epoch, so a slot is never given on a state that a 429 has voided); the rate's growth (once
 * a second per destination), a cut and a pause are conditional writes on a state read or returned just before
 * (optimistic: a lost race reads again). Each worker keeps the state it last saw, to choose the write without a read.
 */
export class DynamoBudget implements SendBudget {
  private readonly now: () => number;
  private readonly known = new Map<string, BudgetState>();
  /** What this client did: slots taken, conditional writes that lost a race, 429s that cut the rate, growth writes, slots found void after the wait. */
  readonly stats = { slots: 0, racesLost: 0, cuts: 0, grown: 0, voided: 0 };
  /** Per destination: whether this worker's last slot was the tail of a busy schedule. */
  private readonly busy = new Map<string, boolean>();

  constructor(
    private readonly client: DynamoDBClient,
    private readonly table: string,
    options: DynamoBudgetOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  async take(destination: string, maxPerMinute: number): Promise<BudgetSlot> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const known = this.known.get(destination) ?? (await this.load(destination, maxPerMinute));
      const now = this.now();
      // Under load the schedule is ahead of now, or behind by less than the catch-up (the slot is its tail); idle, it
      // is further behind (the slot is now). What this
      // worker's last slot found says which is likelier; the other is tried next without a read.
      const busyFirst = this.busy.get(destination) ?? known.next >= now - BUDGET_LAW.catchUpMs;
      const slot = (await this.takeAs(destination, busyFirst, now, known.epoch, maxPerMinute)) ?? (await this.takeAs(destination, !busyFirst, now, known.epoch, maxPerMinute));
      if (slot) return slot;
      // A 429's new epoch, or a race lost twice: read the state again.
      this.known.delete(destination);
    }
    throw new Error(`The send budget's slot could not be taken after ${MAX_ATTEMPTS} attempts (too much contention)`);
  }

  /** One atomic slot, on a busy schedule (its tail) or an idle one (now); undefined when that is not the state. */
  private async takeAs(destination: string, busy: boolean, now: number, epoch: number, maxPerMinute: number): Promise<BudgetSlot | undefined> {
    let old: BudgetState;
    try {
      old = await this.update(destination, {
        set: busy ? '#nx = #nx + #iv' : '#nx = :now + #iv',
        condition: busy ? '#ep = :ep AND #nx >= :since' : '#ep = :ep AND #nx < :since',
        values: { ...(busy ? {} : { ':now': n(now) }), ':since': n(now - BUDGET_LAW.catchUpMs), ':ep': n(epoch) },
      });
    } catch (error) {
      if (!conditionFailed(error)) throw error;
      this.stats.racesLost += 1;
      return undefined;
    }
    this.stats.slots += 1;
    const at = busy ? old.next : now;
    this.busy.set(destination, busy);
    this.known.set(destination, { ...old, next: at + old.interval, taken: old.taken + 1 });
    if (growthDue(old, now, maxPerMinute)) await this.grow(destination, old, now, maxPerMinute);
    return { destination, at, epoch: old.epoch };
  }

  async isCurrent(slot: BudgetSlot): Promise<boolean> {
    const state = await this.read(slot.destination);
    const current = state !== undefined && state.epoch === slot.epoch;
    if (!current) this.stats.voided += 1;
    return current;
  }

  async throttled(slot: BudgetSlot, maxPerMinute: number, retryAfterMs?: number): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const state = await this.read(slot.destination);
      // A later epoch: this 429 belongs to an episode already answered (its slot was given before the cut).
      if (!state || state.epoch !== slot.epoch) return;
      const cut = afterThrottle(state, this.now(), maxPerMinute, retryAfterMs);
      try {
        await this.write(slot.destination, cut, '#ep = :ep', { ':ep': n(state.epoch) });
        this.known.set(slot.destination, cut);
        this.stats.cuts += 1;
        return;
      } catch (error) {
        if (!conditionFailed(error)) throw error;
      }
    }
  }

  /** Recomputes the rate after a tick; a lost race means another worker just did it. */
  private async grow(destination: string, state: BudgetState, now: number, maxPerMinute: number): Promise<void> {
    const grown = grow(state, now, maxPerMinute);
    try {
      await this.update(destination, {
        set: '#iv = :iv, #ga = :ga, #pm = :pm',
        condition: '#ep = :ep AND #ga = :oldGa',
        values: { ':iv': n(grown.interval), ':ga': n(grown.grownAt), ':pm': n(grown.probing), ':ep': n(state.epoch), ':oldGa': n(state.grownAt) },
      });
      this.stats.grown += 1;
      const known = this.known.get(destination);
      if (known) this.known.set(destination, { ...known, interval: grown.interval, grownAt: grown.grownAt, probing: grown.probing });
    } catch (error) {
      if (!conditionFailed(error)) throw error;
    }
  }

  /** The destination's state; a new item (the configured rate, nothing learned) when there is none. */
  private async load(destination: string, maxPerMinute: number): Promise<BudgetState> {
    const existing = await this.read(destination);
    if (existing) return existing;
    const fresh = initialBudget(this.now(), maxPerMinute);
    try {
      await this.client.send(
        new PutItemCommand({ TableName: this.table, Item: this.itemOf(destination, fresh), ConditionExpression: 'attribute_not_exists(#pk)', ExpressionAttributeNames: { '#pk': A.key } }),
        bounded(),
      );
      this.known.set(destination, fresh);
      return fresh;
    } catch (error) {
      if (!conditionFailed(error)) throw error;
      // Another worker created it meanwhile.
      return (await this.read(destination)) ?? fresh;
    }
  }

  private async read(destination: string): Promise<BudgetState | undefined> {
    const { Item } = await this.client.send(new GetItemCommand({ TableName: this.table, Key: { [A.key]: { S: destination } }, ConsistentRead: true }), bounded());
    if (!Item) {
      this.known.delete(destination);
      return undefined;
    }
    const state = stateOf(Item);
    this.known.set(destination, state);
    return state;
  }

  /** One UpdateItem that also counts the slot and renews the TTL; returns the state before it. */
  private async update(destination: string, expression: { set: string; condition: string; values: Record<string, AttributeValue> }): Promise<BudgetState> {
    const countsSlot = expression.set.includes('#nx');
    const set = `${expression.set}${countsSlot ? ', #tk = #tk + :one' : ''}, #expiresAt = :exp`;
    const output = await this.client.send(
      new UpdateItemCommand({
        TableName: this.table,
        Key: { [A.key]: { S: destination } },
        UpdateExpression: `SET ${set}`,
        ConditionExpression: expression.condition,
        ExpressionAttributeNames: pick(NAMES, `${set} ${expression.condition}`),
        ExpressionAttributeValues: { ...expression.values, ...(countsSlot ? { ':one': n(1) } : {}), ':exp': n(this.expiresAt()) },
        ReturnValues: 'ALL_OLD',
      }),
      bounded(),
    );
    return stateOf(output.Attributes ?? {});
  }

  /** Writes a whole state (a cut) under a condition. */
  private async write(destination: string, state: BudgetState, condition: string, values: Record<string, AttributeValue>): Promise<void> {
    const set = '#nx = :nx, #iv = :iv, #ep = :nep, #tp = :tp, #ga = :ga, #ct = :ct, #es = :es, #et = :et, #pm = :pm, #expiresAt = :exp';
    await this.client.send(
      new UpdateItemCommand({
        TableName: this.table,
        Key: { [A.key]: { S: destination } },
        UpdateExpression: `SET ${set}`,
        ConditionExpression: condition,
        ExpressionAttributeNames: pick(NAMES, `${set} ${condition}`),
        ExpressionAttributeValues: { ...values, ':nx': n(state.next), ':iv': n(state.interval), ':nep': n(state.epoch), ':tp': n(state.top), ':ga': n(state.grownAt), ':ct': n(state.cuts), ':es': n(state.epochStart), ':et': n(state.epochTaken), ':pm': n(state.probing), ':exp': n(this.expiresAt()) },
      }),
      bounded(),
    );
  }

  private itemOf(destination: string, state: BudgetState): Record<string, AttributeValue> {
    return {
      [A.key]: { S: destination },
      [A.next]: n(state.next),
      [A.interval]: n(state.interval),
      [A.epoch]: n(state.epoch),
      [A.top]: n(state.top),
      [A.grownAt]: n(state.grownAt),
      [A.taken]: n(state.taken),
      [A.cuts]: n(state.cuts),
      [A.epochStart]: n(state.epochStart),
      [A.epochTaken]: n(state.epochTaken),
      [A.probing]: n(state.probing),
      [A.expiresAt]: n(this.expiresAt()),
    };
  }

  private expiresAt(): number {
    return Math.floor(this.now() / 1000) + BUDGET_ITEM_TTL_SECONDS;
  }
}

/** The attribute names an expression uses (DynamoDB refuses names it was given but does not use). */
function pick(names: Record<string, string>, expression: string): Record<string, string> {
  return Object.fromEntries(Object.entries(names).filter(([placeholder]) => new RegExp(`${placeholder}\\b`).test(expression)));
}

/** The budget's state of a destination, as tests and the bench read it. */
export async function readBudget(client: DynamoDBClient, table: string, destination: string): Promise<BudgetState | undefined> {
  const { Item } = await client.send(new GetItemCommand({ TableName: table, Key: { [A.key]: { S: destination } }, ConsistentRead: true }));
  return Item ? stateOf(Item) : undefined;
}

/** The table as the stack defines it (lib/budget.ts): the twin and the tests create it in dynalite from this. */
export const BUDGET_TABLE_KEY = A.key;
