import { type AddressInfo, type Socket, createServer } from 'node:net';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { authProvider } from '../src/api/auth';
import { BadgesApiClient } from '../src/api/client';
import { type Sandbox, startSandbox } from '../src/api/sandbox';
import { DynamoBudget, readBudget } from '../src/aws/budget';
import { StaticSecretsProvider } from '../src/aws/secrets';
import type { Destination } from '../src/config/schema';
import { BUDGET_LAW, type BudgetState, afterThrottle, destinationKey, grow, initialBudget, measuredRate, rateOf, takeSlot } from '../src/core/budget';
import type { ApiItem } from '../src/core/mapping';
import { type LocalDynamo, budgetTableSpec, ensureTable, startLocalDynamo } from '../src/local/dynamodb';
import type { Log } from '../src/ports';
import { KNOWN_BADGES, SECRETS, makeDataflow } from './support/factories';

const T0 = Date.UTC(2026, 10, 30, 4);
const TABLE = 'send-budget-test';

describe('Function: takeSlot', () => {
  it('gives now on an idle schedule, then one interval apart, and earns no burst from idle time', () => {
    // Prepare
    let state = initialBudget(T0, 600); // 100 ms apart

    // Act
    const slots: number[] = [];
    for (const now of [T0, T0, T0, T0 + 10_000, T0 + 10_000]) {
      const taken = takeSlot(state, now);
      slots.push(taken.at - T0);
      state = taken.state;
    }

    // Assess
    expect(slots).toEqual([0, 100, 200, 10_000, 10_100]);
    expect(state.taken).toBe(5);
  });
});

describe('Function: afterThrottle', () => {
  it('cuts the lower of the scheduled and the measured rate, remembers it, pauses for the Retry-After and starts a new epoch', () => {
    // Prepare: scheduled at 1200/min, workers waiting for slots, but only 105 went out in the 10 s since the epoch began
    // (600/min, once the API's half second of burst is counted)
    const state: BudgetState = { ...initialBudget(T0, 1200), taken: 107, epochTaken: 0, next: T0 + 10_100 };

    // Act
    const cut = afterThrottle(state, T0 + 10_000, 1200, 3000);

    // Assess
    expect(measuredRate(state, T0 + 10_000)).toBeCloseTo(600);
    expect(afterThrottle({ ...state, next: T0 + 9000 }, T0 + 10_000, 1200, 3000).top).toBe(1200); // workers behind: the measure is theirs
    expect(cut.top).toBeCloseTo(600);
    expect(rateOf(cut)).toBeCloseTo(600 * BUDGET_LAW.cut);
    expect([cut.next - T0, cut.epoch, cut.cuts, cut.epochStart - T0, cut.epochTaken]).toEqual([13_000, 1, 1, 13_000, 107]);
  });

  it('pauses one new interval without a Retry-After, and never longer than the cap', () => {
    // Prepare
    const state = initialBudget(T0, 600);

    // Act
    const without = afterThrottle(state, T0, 600);
    const huge = afterThrottle(state, T0, 600, 3_600_000);

    // Assess
    expect(without.next - T0).toBeCloseTo(without.interval);
    expect(huge.next - T0).toBe(BUDGET_LAW.maxPauseMs);
  });
});

describe('Function: grow', () => {
  it('climbs back quickly toward just under the throttled rate, then slowly beyond (faster the longer no 429 comes), never above the configured maximum', () => {
    // Prepare: throttled at 1000/min, cut to 700
    let state: BudgetState = { ...initialBudget(T0, 2000), top: 1000, interval: 60_000 / 700, grownAt: T0 };

    // Act: a tick a second for a minute, then ten minutes more
    const rates: number[] = [];
    for (let s = 1; s <= 60; s++) {
      state = grow(state, T0 + s * 1000, 2000);
      rates.push(rateOf(state));
    }
    for (let s = 61; s <= 660; s++) state = grow(state, T0 + s * 1000, 2000);

    // Assess
    expect(rates[0]).toBeGreaterThan(800);
    expect(rates[9]).toBeGreaterThanOrEqual(1000 * BUDGET_LAW.recoverTo);
    expect(rates[19]).toBeLessThan(1000 * 1.1);
    expect(rateOf(state)).toBe(2000);
  });

  it('counts only time while slots are taken: a destination idle for an hour keeps what it learned', () => {
    // Prepare
    const state: BudgetState = { ...initialBudget(T0, 2000), top: 1000, interval: 60_000 / 950, grownAt: T0 };

    // Act
    const later = grow(state, T0 + 3_600_000, 2000);

    // Assess
    expect(rateOf(later)).toBeLessThan(1000);
  });

  it('brings a rate above what this dataflow allows down to its maximum', () => {
    // Act
    const grown = grow({ ...initialBudget(T0, 3000) }, T0, 1000);

    // Assess
    expect(rateOf(grown)).toBe(1000);
  });
});

describe('Function: destinationKey', () => {
  it('names a destination by its URL and its secrets\' names, not their values', () => {
    // Prepare
    const destination = makeDataflow().destination;

    // Act
    const key = destinationKey(destination);

    // Assess
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(destinationKey({ ...destination, baseUrl: `${destination.baseUrl}/` })).toBe(key);
    expect(destinationKey({ ...destination, baseUrl: 'https://other.example' })).not.toBe(key);
    expect(destinationKey({ ...destination, auth: { type: 'basic', usernameSecret: 'api/user', passwordSecret: 'other/password' } })).not.toBe(key);
  });

  it('names one API by one key however its URL is spelled: the host\'s case and its default port', () => {
    // Prepare: the same configured dataflow, written by two people
    const destination = { ...makeDataflow().destination, baseUrl: 'https://eu.api.capillarytech.com' };

    // Act
    const key = destinationKey(destination);

    // Assess
    expect(destinationKey({ ...destination, baseUrl: 'https://EU.API.Capillarytech.com' })).toBe(key);
    expect(destinationKey({ ...destination, baseUrl: 'https://eu.api.capillarytech.com:443' })).toBe(key);
    expect(destinationKey({ ...destination, baseUrl: 'https://eu.api.capillarytech.com/v2' })).not.toBe(key);
  });
});

const EVENT = Date.UTC(2026, 10, 20, 5);
const items = (first: number, n: number): ApiItem[] =>
  Array.from({ length: n }, (_, k) => ({
    badgeMetaId: KNOWN_BADGES[0],
    customerId: first + k,
    earnEventDate: EVENT + k,
    earnExpiresOn: Date.UTC(2027, 0, 1),
    earnEventDateISO: new Date(EVENT + k).toISOString(),
    earnExpiresOnISO: '2027-01-01T00:00:00.000Z',
  }));

describe('Class: DynamoBudget (on dynalite)', () => {
  let dynamo: LocalDynamo;
  beforeAll(async () => {
    dynamo = await startLocalDynamo();
    await ensureTable(dynamo.client, budgetTableSpec(TABLE));
  });
  afterAll(() => dynamo.close());

  it('slows every worker after one worker\'s 429: their next slots come after the pause, and slots given before are void', async () => {
    // Prepare: two workers (two containers) of one destination, on one clock
    let now = T0;
    const clock = () => now;
    const [a, b] = [new DynamoBudget(dynamo.client, TABLE, { now: clock }), new DynamoBudget(dynamo.client, TABLE, { now: clock })];
    const key = 'a-429-slows-everyone';
    const first = await a.take(key, 600);
    const second = await b.take(key, 600);

    // Act
    now += 50;
    await a.throttled(first, 600, 2000);
    await b.throttled(second, 600, 2000); // the same episode: answered already
    const next = await b.take(key, 600);

    // Assess
    expect([first.at - T0, second.at - T0]).toEqual([0, 100]);
    expect(await b.isCurrent(second)).toBe(false);
    expect(next.at - T0).toBeGreaterThanOrEqual(2050);
    const state = await readBudget(dynamo.client, TABLE, key);
    expect([state?.cuts, state?.epoch]).toEqual([1, 1]);
  });

  it('keeps destinations apart: one busy destination does not delay another', async () => {
    // Prepare
    const clock = () => T0;
    const budget = new DynamoBudget(dynamo.client, TABLE, { now: clock });

    // Act
    const busy = [];
    for (let i = 0; i < 5; i++) busy.push(await budget.take('destination-one', 60));
    const other = await budget.take('destination-two', 60);

    // Assess
    expect(busy.map((s) => s.at - T0)).toEqual([0, 1000, 2000, 3000, 4000]);
    expect(other.at).toBe(T0);
  });
});

describe('Class: BadgesApiClient with the shared budget (sandbox and dynalite)', () => {
  let dynamo: LocalDynamo;
  let sandbox: Sandbox;
  /** The sandbox takes 600 requests a minute (10 a second, a second of burst), as the API's own limit. */
  const LIMIT = 600;
  beforeAll(async () => {
    dynamo = await startLocalDynamo();
    await ensureTable(dynamo.client, budgetTableSpec(TABLE));
  });
  afterAll(() => dynamo.close());
  beforeEach(async () => {
    sandbox = await startSandbox({ users: [{ username: SECRETS['api/user'], password: SECRETS['api/password'] }], knownBadgeIds: [...KNOWN_BADGES], rateLimit: { requestsPerMinute: LIMIT } });
  });
  afterEach(() => sandbox.close());

  /** `workers` clients of one destination (each with its own budget client, as each Lambda container has), configured at `configured` a minute. */
  function workers(count: number, configured: number, log?: Log): { clients: BadgesApiClient[]; destination: Destination } {
    const destination = { ...makeDataflow().destination, baseUrl: sandbox.url, maxRequestsPerMinute: configured, maxRetries: 10 };
    const secrets = new StaticSecretsProvider(SECRETS);
    const clients = Array.from({ length: count }, () => new BadgesApiClient({ destination, auth: authProvider(destination.auth, secrets, { baseUrl: destination.baseUrl }), requestsPerMinute: configured, budget: new DynamoBudget(dynamo.client, TABLE), ...(log ? { log } : {}) }));
    return { clients, destination };
  }

  /** Each client sends `requests` one-item batches, all clients at once; the items accepted. */
  async function sendAll(clients: BadgesApiClient[], requests: number): Promise<number> {
    const outcomes = await Promise.all(clients.map(async (client, c) => {
      let accepted = 0;
      for (let r = 0; r < requests; r++) accepted += (await client.send(items(1_000_000 * (c + 1) + r * 10, 1))).filter((o) => o.accepted).length;
      return accepted;
    }));
    return outcomes.reduce((a, b) => a + b, 0);
  }

  it('keeps six workers of one destination, each configured at the limit, within it together: no 429', async () => {
    // Prepare
    const { clients, destination } = workers(6, LIMIT);

    // Act
    const accepted = await sendAll(clients, 10);

    // Assess
    expect(accepted).toBe(60);
    expect(sandbox.statusCounts[429] ?? 0).toBe(0);
    expect((await readBudget(dynamo.client, TABLE, destinationKey(destination)))?.taken).toBe(60);
  });

  it('brings a configuration of twice the limit under it with few 429s, and remembers the rate the API throttled', async () => {
    // Prepare
    const { clients, destination } = workers(6, LIMIT * 2);

    // Act
    const accepted = await sendAll(clients, 15);

    // Assess
    expect(accepted).toBe(90);
    const throttled = sandbox.statusCounts[429] ?? 0;
    expect(throttled).toBeGreaterThan(0);
    expect(throttled).toBeLessThanOrEqual(6);
    const state = await readBudget(dynamo.client, TABLE, destinationKey(destination));
    // What it learned: the rate the API throttled, below the configured one, and a pace under that.
    expect(state!.cuts).toBeGreaterThan(0);
    expect(state!.top).toBeLessThan(LIMIT * 2);
    expect(rateOf(state!)).toBeLessThan(LIMIT * 2);
  });

  it('falls back to pacing itself when the table\'s endpoint takes the connection and never answers', async () => {
    // Prepare: an endpoint that accepts connections and says nothing (a network that drops the answers), and a client
    // of the budget made as the Send Lambda makes it (an SDK client with its own defaults)
    const held: Socket[] = [];
    const silent = createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const budget = new DynamoBudget(new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }), TABLE);
    const lines: string[] = [];
    const log: Log = { debug: () => undefined, info: () => undefined, warn: (message: string) => lines.push(message), error: () => undefined };
    const destination = { ...makeDataflow().destination, baseUrl: sandbox.url, maxRequestsPerMinute: LIMIT };
    const client = new BadgesApiClient({ destination, auth: authProvider(destination.auth, new StaticSecretsProvider(SECRETS), { baseUrl: sandbox.url }), requestsPerMinute: LIMIT, budget, log });

    try {
      // Act
      const accepted = await sendAll([client], 2);

      // Assess
      expect(accepted).toBe(2);
      expect(lines.filter((l) => l.includes('paces itself'))).toHaveLength(1);
    } finally {
      for (const socket of held) socket.destroy();
      silent.close();
    }
  }, 30_000);

  it('never writes a secret into the table or a log line, and falls back to pacing itself when the table cannot be reached', async () => {
    // Prepare: a budget whose table does not exist, and a log that keeps every line
    const lines: string[] = [];
    const keep = (level: string) => (message: string, ...extra: Array<Record<string, unknown>>) => lines.push(JSON.stringify({ level, message, extra }));
    const log: Log = { debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error') };
    const { clients: shared } = workers(2, LIMIT);
    const destination = { ...makeDataflow().destination, baseUrl: sandbox.url, maxRequestsPerMinute: LIMIT };
    const lost = new BadgesApiClient({ destination, auth: authProvider(destination.auth, new StaticSecretsProvider(SECRETS), { baseUrl: sandbox.url }), requestsPerMinute: LIMIT, budget: new DynamoBudget(dynamo.client, 'no-such-table'), log });

    // Act
    const accepted = (await sendAll(shared, 3)) + (await sendAll([lost], 3));

    // Assess
    expect(accepted).toBe(9);
    const everything = JSON.stringify((await dynamo.client.send(new ScanCommand({ TableName: TABLE }))).Items) + lines.join('\n');
    for (const secret of Object.values(SECRETS)) expect(everything).not.toContain(secret);
    expect(lines.filter((l) => l.includes('paces itself'))).toHaveLength(1);
  });
});
