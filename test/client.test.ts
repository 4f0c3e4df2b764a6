import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TokenUnavailableError, authProvider, basicAuthorization } from '../src/api/auth';
import { BadgesApiClient, type ItemOutcome, Pacer, SendAuthError, scrub } from '../src/api/client';
import { SEND_CODES } from '../src/codes';
import { IMPORT_PATH, type SandboxSettings, startSandbox } from '../src/api/sandbox';
import { StaticSecretsProvider } from '../src/aws/secrets';
import type { Destination } from '../src/config/schema';
import type { ApiItem } from '../src/core/mapping';
import { AuthError } from '../src/errors';
import { KNOWN_BADGES, SECRETS, UNKNOWN_BADGE, makeDataflow } from './support/factories';
import { type ScriptedServer, accepted, scriptedServer } from './support/http';

const OAUTH_SECRETS = { 'oauth/key': 'client-key', 'oauth/secret': 'client-s3cret' };
const EVENT = Date.UTC(2026, 10, 20, 5);
const item = (customerId: number, badgeMetaId: string = KNOWN_BADGES[0], earnEventDate = EVENT): ApiItem => ({
  badgeMetaId,
  customerId,
  earnEventDate,
  earnExpiresOn: Date.UTC(2027, 0, 1),
  earnEventDateISO: new Date(earnEventDate).toISOString(),
  earnExpiresOnISO: '2027-01-01T00:00:00.000Z',
});

const sleeps: number[] = [];
const instantSleep = (ms: number) => {
  sleeps.push(ms);
  return Promise.resolve();
};

function client(baseUrl: string, overrides: Partial<Destination> = {}, secrets: Record<string, string> = { ...SECRETS, ...OAUTH_SECRETS }) {
  const destination = { ...makeDataflow().destination, baseUrl, maxRetries: 3, requestTimeoutMs: 1000, ...overrides };
  return new BadgesApiClient({
    destination,
    auth: authProvider(destination.auth, new StaticSecretsProvider(secrets), { baseUrl }),
    requestsPerMinute: 600_000,
    sleep: instantSleep,
    random: () => 0.5,
  });
}
const oauth: Destination['auth'] = { type: 'oauth', keySecret: 'oauth/key', secretSecret: 'oauth/secret' };

async function sandboxWith(settings: SandboxSettings = {}) {
  return startSandbox({
    users: [{ username: SECRETS['api/user'], password: SECRETS['api/password'] }],
    oauthClients: [{ key: OAUTH_SECRETS['oauth/key'], secret: OAUTH_SECRETS['oauth/secret'] }],
    knownBadgeIds: [...KNOWN_BADGES],
    ...settings,
  });
}

beforeEach(() => {
  sleeps.length = 0;
});

describe('Function: basicAuthorization', () => {
  it('encodes user and the MD5 of the password, as Capillary requires', () => {
    // Act + Assess: md5("secret") = 5ebe2294ecd0e0f08eab7690d2a6ee69
    expect(basicAuthorization('till', 'secret')).toBe(`Basic ${Buffer.from('till:5ebe2294ecd0e0f08eab7690d2a6ee69').toString('base64')}`);
  });
});

describe('Class: BadgesApiClient against the sandbox', () => {
  it('gets one outcome per item: accepted, or the API code and message', async () => {
    // Prepare
    const sandbox = await sandboxWith();

    // Act
    const outcomes = await client(sandbox.url).send([item(1), item(2, UNKNOWN_BADGE), item(3)]);

    // Assess
    expect(outcomes).toEqual([
      { accepted: true, earnedBadgeId: expect.any(String) },
      { accepted: false, code: '1054', message: 'GLOBAL.BADGE_NOT_FOUND' },
      { accepted: true, earnedBadgeId: expect.any(String) },
    ]);
    expect(sandbox.ledger.map((e) => e.customerId)).toEqual([1, 3]);
    await sandbox.close();
  });

  it('throws AuthError when Basic credentials are refused', async () => {
    // Prepare
    const sandbox = await sandboxWith();

    // Act + Assess
    await expect(client(sandbox.url, {}, { ...SECRETS, 'api/password': 'wrong' }).send([item(4)])).rejects.toThrow(AuthError);
    expect(sandbox.ledger).toHaveLength(0);
    await sandbox.close();
  });

  it('sends with an OAuth token, and fetches a new one once when the API answers 401', async () => {
    // Prepare
    const sandbox = await sandboxWith();
    const c = client(sandbox.url, { auth: oauth });
    await c.send([item(1)]);

    // Act
    sandbox.expireTokens();
    const outcomes = await c.send([item(2)]);

    // Assess
    expect(outcomes[0]).toMatchObject({ accepted: true });
    expect(sandbox.statusCounts[401]).toBe(1);
    expect(sandbox.ledger.map((e) => e.customerId)).toEqual([1, 2]);
    await sandbox.close();
  });

  it('renews an OAuth token before it expires', async () => {
    // Prepare: tokens live 1 s; the client renews after 80% of that.
    const sandbox = await sandboxWith({ tokenTtlSeconds: 1 });
    const c = client(sandbox.url, { auth: oauth });
    await c.send([item(1)]);

    // Act
    await new Promise((r) => setTimeout(r, 900));
    const outcomes = await c.send([item(2)]);

    // Assess
    expect(outcomes[0]).toMatchObject({ accepted: true });
    expect(sandbox.statusCounts[401]).toBeUndefined();
    await sandbox.close();
  });

  it('throws AuthError when a refused token survives the refresh, and when the key is wrong', async () => {
    // Prepare
    const sandbox = await sandboxWith();

    // Act + Assess
    await expect(client(sandbox.url, { auth: oauth }, { ...OAUTH_SECRETS, 'oauth/secret': 'nope' }).send([item(1)])).rejects.toThrow(/refused the OAuth key/);
    expect(sandbox.ledger).toHaveLength(0);
    await sandbox.close();
  });

  it('counts a badge whose answer was lost as accepted once it is found issued, and never sends it twice', async () => {
    // Prepare: every import is processed, then its answer is lost.
    const sandbox = await sandboxWith({ faults: { lostAfterProcessing: 1 } });

    // Act
    const outcomes = await client(sandbox.url).send([item(11), item(12)]);

    // Assess
    expect(outcomes).toEqual([
      { accepted: true, earnedBadgeId: 'reconciled', reconciled: true },
      { accepted: true, earnedBadgeId: 'reconciled', reconciled: true },
    ]);
    expect(sandbox.ledger.map((e) => e.customerId)).toEqual([11, 12]);
    await sandbox.close();
  });

  it('reconciles a timeout after sending the same way', async () => {
    // Prepare: answers come after 400 ms; the client waits 100 ms.
    const sandbox = await sandboxWith({ faults: { slowRate: 1, slowDelayMs: 400 } });

    // Act
    const outcomes = await client(sandbox.url, { requestTimeoutMs: 100 }).send([item(21)]);

    // Assess
    expect(outcomes[0]).toMatchObject({ accepted: true, reconciled: true });
    expect(sandbox.ledger).toHaveLength(1);
    await sandbox.close();
  });

  it('resends what reconciliation finds not issued, and parks it as RETRIES_EXHAUSTED when that never works', async () => {
    // Prepare: every connection is reset before processing.
    const sandbox = await sandboxWith({ faults: { resetBeforeProcessing: 1 } });

    // Act
    const outcomes = await client(sandbox.url).send([item(31)]);

    // Assess
    expect(outcomes[0]).toMatchObject({ accepted: false, code: SEND_CODES.RETRIES_EXHAUSTED });
    expect(sandbox.statusCounts.reset).toBe(4);
    expect(sandbox.ledger).toHaveLength(0);
    await sandbox.close();
  });

  it('checks each badge id once through badgeMeta', async () => {
    // Prepare
    const sandbox = await sandboxWith();
    const c = client(sandbox.url);

    // Act
    const answers = [await c.badgeExists(KNOWN_BADGES[0]), await c.badgeExists(UNKNOWN_BADGE), await c.badgeExists(KNOWN_BADGES[0])];

    // Assess
    expect(answers).toEqual([true, false, true]);
    expect(c.stats.requests).toBe(2);
    await sandbox.close();
  });
});

describe('Class: BadgesApiClient under scripted faults', () => {
  let server: ScriptedServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('retries 503 and 429 with backoff, honouring Retry-After, then succeeds', async () => {
    // Prepare
    server = await scriptedServer((body, n) => (n === 0 ? { status: 503 } : n === 1 ? { status: 429, headers: { 'Retry-After': '2' } } : { status: 200, body: accepted(body) }));

    // Act
    const outcomes = await client(server.url).send([item(1), item(2)]);

    // Assess
    expect(outcomes.every((o) => o.accepted)).toBe(true);
    expect(server.requests).toHaveLength(3);
    expect(sleeps.filter((ms) => ms >= 100)).toEqual([250, 2000]);
  });

  it('parks the records as RETRIES_EXHAUSTED when the retries run out', async () => {
    // Prepare
    server = await scriptedServer([{ status: 502 }]);

    // Act
    const outcomes = await client(server.url).send([item(1)]);

    // Assess
    expect(server.requests).toHaveLength(4);
    expect(outcomes).toEqual([{ accepted: false, code: SEND_CODES.RETRIES_EXHAUSTED, message: expect.stringContaining('HTTP 502') }]);
  });

  it('treats an answer with the wrong number of items as unknown: reconciles, then resends only what is missing', async () => {
    // Prepare: the first answer drops an item; the customer endpoint then shows customer 1's badge only.
    server = await scriptedServer((body, n, call) => {
      if (call.path.startsWith('/api_gateway/v1/badges/customer/1?')) return { status: 200, body: { data: { customerBadges: [{ badgeMetaId: KNOWN_BADGES[0], lastEarnEventDate: EVENT }] } } };
      if (call.path.startsWith('/api_gateway/v1/badges/customer/')) return { status: 200, body: { data: { customerBadges: [] } } };
      return { status: 200, body: n === 0 ? accepted(body).slice(1) : accepted(body) };
    });

    // Act
    const outcomes = await client(server.url).send([item(1), item(2)]);

    // Assess
    expect(outcomes).toEqual([
      { accepted: true, earnedBadgeId: 'reconciled', reconciled: true },
      { accepted: true, earnedBadgeId: 'earned-0' },
    ]);
    const imports = server.calls.map((c, i) => ({ ...c, body: server!.requests[i] })).filter((c) => c.path === IMPORT_PATH);
    expect(imports.map((c) => (c.body as ApiItem[]).map((i) => i.customerId))).toEqual([[1, 2], [2]]);
  });

  it('parks a record as AMBIGUOUS when a later earn event hides whether it was issued', async () => {
    // Prepare
    server = await scriptedServer((_body, _n, call) =>
      call.path === IMPORT_PATH ? { status: 200, reset: true } : { status: 200, body: { data: { customerBadges: [{ badgeMetaId: KNOWN_BADGES[0], lastEarnEventDate: EVENT + 1000 }] } } },
    );

    // Act
    const outcomes = await client(server.url).send([item(1)]);

    // Assess
    expect(outcomes[0]).toMatchObject({ accepted: false, code: SEND_CODES.AMBIGUOUS });
    expect(server.calls.filter((c) => c.path === IMPORT_PATH)).toHaveLength(1);
  });

  it.each([504, 520])('reconciles a %i instead of resending blindly: a batch the backend processed is not issued twice', async (status) => {
    // Prepare: the gateway answers `status` after the backend issued the badge; the lookup shows it issued.
    server = await scriptedServer((_body, _n, call) =>
      call.path === IMPORT_PATH ? { status } : { status: 200, body: { data: { customerBadges: [{ badgeMetaId: KNOWN_BADGES[0], lastEarnEventDate: EVENT }] } } },
    );

    // Act
    const outcomes = await client(server.url).send([item(1)]);

    // Assess
    expect(outcomes).toEqual([{ accepted: true, earnedBadgeId: 'reconciled', reconciled: true }]);
    expect(server.calls.filter((c) => c.path === IMPORT_PATH)).toHaveLength(1);
  });

  it('still retries 502, 503, 521 and 429 without a lookup: the backend never acted on them', async () => {
    // Prepare
    server = await scriptedServer((body, n) => (n < 4 ? { status: [502, 503, 521, 429][n]! } : { status: 200, body: accepted(body) }));

    // Act
    const outcomes = await client(server.url, { maxRetries: 4 }).send([item(1)]);

    // Assess
    expect(outcomes).toEqual([{ accepted: true, earnedBadgeId: 'earned-0' }]);
    expect(server.calls.map((c) => c.path)).toEqual(Array(5).fill(IMPORT_PATH));
  });

  it('finds an issued badge whatever the case of its id, and asks for expired badges and a large page', async () => {
    // Prepare: the file had the id in upper case; the API lists it in lower case.
    server = await scriptedServer((_body, _n, call) =>
      call.path === IMPORT_PATH ? { status: 200, reset: true } : { status: 200, body: { data: { customerBadges: [{ badgeMetaId: KNOWN_BADGES[0], lastEarnEventDate: EVENT }] } } },
    );

    // Act
    const outcomes = await client(server.url).send([item(1, KNOWN_BADGES[0].toUpperCase())]);

    // Assess
    expect(outcomes).toEqual([{ accepted: true, earnedBadgeId: 'reconciled', reconciled: true }]);
    expect(server.calls.filter((c) => c.path === IMPORT_PATH)).toHaveLength(1);
    expect(server.calls.find((c) => c.path !== IMPORT_PATH)!.path).toBe('/api_gateway/v1/badges/customer/1?badgeType=EARNED&includeExpired=true&limit=100');
  });

  it.each([
    ['seconds', { lastEarnEventDate: EVENT / 1000 }],
    ['seconds as text', { lastEarnEventDate: String(EVENT / 1000) }],
    ['an ISO twin with an offset', { lastEarnEventDateISO: '2026-11-20T10:30:00+05:30' }],
    ['milliseconds and a matching ISO twin', { lastEarnEventDate: EVENT, lastEarnEventDateISO: '2026-11-20T05:00:00.000Z' }],
  ])('reads a last earn event given in %s', async (_label, dates) => {
    // Prepare
    server = await scriptedServer((_body, _n, call) =>
      call.path === IMPORT_PATH ? { status: 200, reset: true } : { status: 200, body: { data: { customerBadges: [{ badgeMetaId: KNOWN_BADGES[0], ...dates }] } } },
    );

    // Act
    const outcomes = await client(server.url).send([item(1)]);

    // Assess
    expect(outcomes).toEqual([{ accepted: true, earnedBadgeId: 'reconciled', reconciled: true }]);
    expect(server.calls.filter((c) => c.path === IMPORT_PATH)).toHaveLength(1);
  });

  it.each([
    ['an epoch and an ISO twin that disagree', { lastEarnEventDate: EVENT, lastEarnEventDateISO: '2026-11-20T06:00:00Z' }],
    ['an ISO twin without an offset', { lastEarnEventDateISO: '2026-11-20T05:00:00' }],
    ['seconds, for an event within a second', { lastEarnEventDate: EVENT / 1000 }, EVENT + 250],
  ])('parks a record as AMBIGUOUS, unsent again, when the lookup gives %s', async (_label, dates, event = EVENT) => {
    // Prepare
    server = await scriptedServer((_body, _n, call) =>
      call.path === IMPORT_PATH ? { status: 200, reset: true } : { status: 200, body: { data: { customerBadges: [{ badgeMetaId: KNOWN_BADGES[0], ...dates }] } } },
    );

    // Act
    const outcomes = await client(server.url).send([item(1, KNOWN_BADGES[0], event)]);

    // Assess
    expect(outcomes[0]).toMatchObject({ accepted: false, code: SEND_CODES.AMBIGUOUS });
    expect(server.calls.filter((c) => c.path === IMPORT_PATH)).toHaveLength(1);
  });

  const other = (i: number) => ({ badgeMetaId: (0x6571a3b9e4b0n * 2n ** 48n + BigInt(i)).toString(16).padStart(24, '0'), lastEarnEventDate: EVENT });
  it.each([
    ['says it has more pages', { data: { customerBadges: [other(1)], pagination: { page: 0, size: 1, totalElements: 7 } } }],
    ['has a next link', { data: { customerBadges: [other(1)] }, links: { next: '/api_gateway/v1/badges/customer/1?page=2' } }],
    ['says hasMore', { data: { customerBadges: [other(1)], hasMore: true } }],
    ['holds exactly the default page of 10', { data: { customerBadges: Array.from({ length: 10 }, (_, i) => other(i)) } }],
    ['holds as many as were asked for', { data: { customerBadges: Array.from({ length: 100 }, (_, i) => other(i)) } }],
  ])('never calls a badge not issued when the lookup answer %s and lacks it', async (_label, body) => {
    // Prepare
    server = await scriptedServer((_body, _n, call) => (call.path === IMPORT_PATH ? { status: 200, reset: true } : { status: 200, body }));

    // Act
    const outcomes = await client(server.url).send([item(1)]);

    // Assess
    expect(outcomes[0]).toMatchObject({ accepted: false, code: SEND_CODES.AMBIGUOUS });
    expect(server.calls.filter((c) => c.path === IMPORT_PATH)).toHaveLength(1);
  });

  it('resends a record missing from a whole answer (fewer badges than a page, more than the default)', async () => {
    // Prepare: 11 other badges: more than the default page, so the limit was honoured; the item's badge is not there.
    server = await scriptedServer((body, n, call) =>
      call.path !== IMPORT_PATH
        ? { status: 200, body: { data: { customerBadges: Array.from({ length: 11 }, (_, i) => other(i)) } } }
        : n === 0
          ? { status: 200, reset: true }
          : { status: 200, body: accepted(body) },
    );

    // Act
    const outcomes = await client(server.url).send([item(1)]);

    // Assess
    expect(outcomes).toEqual([{ accepted: true, earnedBadgeId: 'earned-0' }]);
    expect(server.calls.filter((c) => c.path === IMPORT_PATH)).toHaveLength(2);
  });

  it('splits a batch refused with 400 to isolate the record at fault', async () => {
    // Prepare: the server refuses any request that contains customer 3.
    server = await scriptedServer((body) =>
      (body as ApiItem[]).some((i) => i.customerId === 3) ? { status: 400, body: { errors: [{ code: 8001, message: 'bad customer' }] } } : { status: 200, body: accepted(body) },
    );

    // Act
    const outcomes = await client(server.url).send([1, 2, 3, 4, 5].map((n) => item(n)));

    // Assess
    expect(outcomes.map((o) => (o.accepted ? 'ok' : o.code))).toEqual(['ok', 'ok', '8001', 'ok', 'ok']);
  });

  it('keeps what was settled when the credentials are refused midway, so issued records are not reported unsent', async () => {
    // Prepare: the pair is refused with 400, so the client splits it; customer 1 is accepted, then every request is 401.
    server = await scriptedServer((body, n) =>
      n === 0 ? { status: 400, body: { errors: [{ code: 400, message: 'bad batch' }] } } : n === 1 ? { status: 200, body: accepted(body) } : { status: 401, body: {} },
    );

    // Act
    const outcome = client(server.url).send([item(1), item(2)]);

    // Assess
    await expect(outcome).rejects.toBeInstanceOf(SendAuthError);
    const error = (await outcome.catch((e: unknown) => e)) as SendAuthError;
    expect(error.settled).toEqual([{ accepted: true, earnedBadgeId: 'earned-0' }, undefined]);
  });

  it('uses the configured method and path', async () => {
    // Prepare
    server = await scriptedServer((body) => ({ status: 200, body: accepted(body) }));

    // Act
    await client(server.url, { method: 'POST' }).send([item(1)]);

    // Assess
    expect(server.calls).toEqual([{ method: 'POST', path: IMPORT_PATH }]);
  });

  it('bounds full-jitter backoff by the cap and takes Retry-After as given', () => {
    // Prepare
    const c = new BadgesApiClient({
      destination: makeDataflow().destination,
      auth: { headers: () => Promise.resolve({}), refresh: () => false },
      requestsPerMinute: 60,
      random: () => 0.999,
      backoffBaseMs: 100,
      backoffCapMs: 1000,
    });

    // Act + Assess
    expect(c.backoffMs(0)).toBe(99);
    expect(c.backoffMs(3)).toBe(799);
    expect(c.backoffMs(10)).toBe(999);
    expect(c.backoffMs(0, '3')).toBe(3000);
  });
});

describe('Class: Pacer', () => {
  it('halves its rate on a 429, never below a sixteenth, and wins it back step by step', () => {
    // Prepare
    const pacer = new Pacer(600, instantSleep, () => 0);

    // Act + Assess
    pacer.throttled();
    expect(pacer.perMinute).toBe(300);
    for (let i = 0; i < 10; i++) pacer.throttled();
    expect(pacer.perMinute).toBe(600 / 16);
    for (let i = 0; i < 100; i++) pacer.succeeded();
    expect(pacer.perMinute).toBe(600);
  });

  it('spaces requests at its rate', async () => {
    // Prepare: 1200 a minute = one per 50 ms; the sleep records what it is asked without waiting.
    const waits: number[] = [];
    const pacer = new Pacer(1200, (ms) => (waits.push(ms), Promise.resolve()), () => 0);

    // Act
    for (let i = 0; i < 5; i++) await pacer.wait();

    // Assess: the k-th request waits for k intervals (less the few ms the loop itself takes).
    expect(waits).toHaveLength(4);
    waits.forEach((ms, k) => expect(Math.abs(ms - 50 * (k + 1))).toBeLessThan(25));
  });
});

describe('Class: BadgesApiClient, lookups answered 200 without a list (red team)', () => {
  let server: ScriptedServer | undefined;
  afterEach(async () => server?.close());

  it.each([
    ['an error in a 200 answer', { data: null, errors: [{ code: 500, message: 'Internal error, try later' }] }],
    ['another shape', { customerBadges: [{ badgeMetaId: KNOWN_BADGES[0], lastEarnEventDate: EVENT }] }],
    ['an empty body object', {}],
    ['a list next to an error', { data: { customerBadges: [] }, errors: [{ code: 500, message: 'Partial answer' }] }],
    ['a list with an entry it cannot read', { data: { customerBadges: [{ id: KNOWN_BADGES[0], lastEarnEventDate: EVENT }] } }],
  ])('does not take %s as proof that the badge was not issued (the batch may have been processed)', async (_what, lookup) => {
    // Prepare: the import is processed but its answer is a 504; the lookup answers 200 without a usable list.
    let imports = 0;
    server = await scriptedServer((body, _n, call) => {
      if (call.path.startsWith('/api_gateway/v1/badges/customer/')) return { status: 200, body: lookup };
      imports += 1;
      return imports === 1 ? { status: 504 } : { status: 200, body: accepted(body) };
    });

    // Act
    const outcomes = await client(server.url, { maxRetries: 2 }).send([item(1)]);

    // Assess: the record is parked AMBIGUOUS, not sent a second time.
    expect(imports).toBe(1);
    expect(outcomes[0]).toMatchObject({ accepted: false, code: 'AMBIGUOUS' });
  });
});

describe('Class: BadgesApiClient, lookups after a gateway gave up (red team)', () => {
  let server: ScriptedServer | undefined;
  afterEach(async () => server?.close());

  it('waits at least a request timeout after a 504 before it trusts a lookup that finds nothing (the backend may still be working)', async () => {
    // Prepare: a gateway gives up (504) while the backend goes on; what happens, in order, is recorded.
    const events: string[] = [];
    server = await scriptedServer((body, _n, call) => {
      if (call.path.startsWith('/api_gateway/v1/badges/customer/')) {
        events.push('lookup');
        return { status: 200, body: { data: { customerBadges: [] } } };
      }
      events.push('import');
      return events.filter((e) => e === 'import').length === 1 ? { status: 504 } : { status: 200, body: accepted(body) };
    });
    const destination: Destination = { ...makeDataflow().destination, baseUrl: server.url, maxRetries: 2, requestTimeoutMs: 30_000 };
    const c = new BadgesApiClient({
      destination,
      auth: authProvider(destination.auth, new StaticSecretsProvider(SECRETS), { baseUrl: server.url }),
      requestsPerMinute: 600_000,
      sleep: (ms) => {
        events.push(`sleep ${ms}`);
        return Promise.resolve();
      },
      random: () => 0.5,
    });

    // Act
    await c.send([item(1)]);

    // Assess: between the 504 and the lookup that decides to send again, the client waited out the backend.
    const waited = events.slice(0, events.indexOf('lookup')).filter((e) => e.startsWith('sleep')).map((e) => Number(e.slice(6)));
    expect(Math.max(0, ...waited)).toBeGreaterThanOrEqual(destination.requestTimeoutMs);
  });

  it.each([
    ['a 504', { status: 504 }],
    ['a 520', { status: 520 }],
    ['a reset after sending', { status: 200, reset: true }],
  ])('counts a badge the backend issues after %s as accepted, and does not send it again', async (_what, fault) => {
    // Prepare: the backend finishes the batch only once the client has waited; a lookup before that finds nothing.
    let issued = false;
    let imports = 0;
    server = await scriptedServer((body, _n, call) => {
      if (call.path.startsWith('/api_gateway/v1/badges/customer/')) {
        return { status: 200, body: { data: { customerBadges: issued ? [{ badgeMetaId: KNOWN_BADGES[0], lastEarnEventDate: EVENT }] : [] } } };
      }
      imports += 1;
      return imports === 1 ? fault : { status: 200, body: accepted(body) };
    });
    const destination: Destination = { ...makeDataflow().destination, baseUrl: server.url, maxRetries: 2, requestTimeoutMs: 5_000 };
    const c = new BadgesApiClient({
      destination,
      auth: authProvider(destination.auth, new StaticSecretsProvider(SECRETS), { baseUrl: server.url }),
      requestsPerMinute: 600_000,
      sleep: (ms) => {
        if (imports > 0 && ms >= destination.requestTimeoutMs) issued = true;
        return Promise.resolve();
      },
      random: () => 0.5,
    });

    // Act
    const outcomes = await c.send([item(1)]);

    // Assess
    expect(outcomes).toEqual([{ accepted: true, earnedBadgeId: 'reconciled', reconciled: true }]);
    expect(imports).toBe(1);
  });

  it('resends at once, without that wait, a record found absent after an answer the backend finished (wrong item count)', async () => {
    // Prepare: the backend answered (so it is done) with no items; the lookup finds nothing.
    server = await scriptedServer((body, n, call) => {
      if (call.path.startsWith('/api_gateway/v1/badges/customer/')) return { status: 200, body: { data: { customerBadges: [] } } };
      return n === 0 ? { status: 200, body: [] } : { status: 200, body: accepted(body) };
    });

    // Act
    const outcomes = await client(server.url, { requestTimeoutMs: 30_000 }).send([item(1)]);

    // Assess
    expect(outcomes).toEqual([{ accepted: true, earnedBadgeId: 'earned-0' }]);
    expect(Math.max(0, ...sleeps)).toBeLessThan(30_000);
  });
});

describe('Class: BadgesApiClient, header values that fetch refuses (red team)', () => {
  const TOKEN = 'tok-3f9a-SECRET-VALUE\nsecond-line';
  let server: ScriptedServer | undefined;
  let raw: Server | undefined;
  afterEach(async () => {
    await server?.close();
    await new Promise((resolve) => (raw ? raw.close(resolve) : resolve(undefined)));
    raw = undefined;
  });

  it("never puts the token into a record's outcome message (it ends up in the rejected file, the report and the vendor's error directory)", async () => {
    // Prepare: the token endpoint answers a token with a line break in it (a proxy or a bug upstream); fetch refuses
    // it as a header value and says so with the value in its message.
    server = await scriptedServer((body, _n, call) => {
      if (call.path.includes('oauth')) return { status: 200, body: { data: { accessToken: TOKEN, ttlSeconds: 300 } } };
      if (call.path.startsWith('/api_gateway/v1/badges/customer/')) return { status: 200, body: { data: { customerBadges: [] } } };
      return { status: 200, body: accepted(body) };
    });
    const destination: Destination = { ...makeDataflow().destination, baseUrl: server.url, maxRetries: 1, requestTimeoutMs: 1000, auth: { type: 'oauth', keySecret: 'k', secretSecret: 's' } };
    const c = new BadgesApiClient({
      destination,
      auth: authProvider(destination.auth, new StaticSecretsProvider({ k: 'client-key', s: 'client-s3cret' }), { baseUrl: server.url }),
      requestsPerMinute: 600_000,
      sleep: () => Promise.resolve(),
      random: () => 0.5,
    });

    // Act
    let said: string;
    let outcomes: ItemOutcome[] | undefined;
    try {
      outcomes = await c.send([item(1)]);
      said = JSON.stringify(outcomes);
    } catch (error) {
      said = String((error as Error).message);
    }

    // Assess: the value is nowhere; the record was not sent, so it is replayable as such, not AMBIGUOUS.
    expect(said).not.toContain('SECRET-VALUE');
    expect(outcomes?.[0]).toMatchObject({ accepted: false, code: SEND_CODES.RETRIES_EXHAUSTED });
    expect(server.calls.filter((call) => call.path === IMPORT_PATH)).toHaveLength(0);
  });

  it('refuses a token that is not a valid header value with TokenUnavailableError, without the value', async () => {
    // Prepare
    server = await scriptedServer([{ status: 200, body: { data: { accessToken: 'tok-SECRET-VALUE\u00e9', ttlSeconds: 300 } } }]);
    const auth = authProvider(oauth, new StaticSecretsProvider(OAUTH_SECRETS), { baseUrl: server.url });

    // Act
    const refusal = await auth.headers().then(
      () => undefined,
      (error: unknown) => error,
    );

    // Assess
    expect(refusal).toBeInstanceOf(TokenUnavailableError);
    expect(String((refusal as Error).message)).not.toContain('SECRET-VALUE');
  });

  it('refuses a token endpoint answer that is not JSON without quoting it', async () => {
    // Prepare: the endpoint answers the bare token as text; JSON.parse would quote it in its message.
    raw = createServer((_req, res) => res.end('tok-SECRET-VALUE and some text'));
    await new Promise<void>((resolve) => raw!.listen(0, '127.0.0.1', resolve));
    const baseUrl = `http://127.0.0.1:${(raw.address() as AddressInfo).port}`;
    const auth = authProvider(oauth, new StaticSecretsProvider(OAUTH_SECRETS), { baseUrl });

    // Act
    const refusal = await auth.headers().then(
      () => undefined,
      (error: unknown) => error,
    );

    // Assess
    expect(refusal).toBeInstanceOf(TokenUnavailableError);
    expect(String((refusal as Error).message)).not.toContain('SECRET-VALUE');
  });

  it('counts a request whose headers fetch refuses as not sent, and keeps the header value out of its outcome', async () => {
    // Prepare: an auth provider whose header value holds a line break; the API would accept anything.
    server = await scriptedServer((body, _n, call) =>
      call.path === IMPORT_PATH ? { status: 200, body: accepted(body) } : { status: 200, body: { data: { customerBadges: [] } } },
    );
    const destination: Destination = { ...makeDataflow().destination, baseUrl: server.url, maxRetries: 1, requestTimeoutMs: 1000 };
    const c = new BadgesApiClient({
      destination,
      auth: { headers: () => Promise.resolve({ Authorization: TOKEN }), refresh: () => false },
      requestsPerMinute: 600_000,
      sleep: instantSleep,
      random: () => 0.5,
    });

    // Act
    const outcomes = await c.send([item(1)]);

    // Assess
    expect(outcomes[0]).toMatchObject({ accepted: false, code: SEND_CODES.RETRIES_EXHAUSTED });
    expect(JSON.stringify(outcomes)).not.toContain('SECRET-VALUE');
    expect(server.calls).toHaveLength(0);
  });
});

describe('Function: scrub', () => {
  it('replaces every header value found in an error message, whatever it holds', () => {
    // Act
    const scrubbed = scrub('Headers.append: "tok-SECRET\nline" is an invalid header value; again tok-SECRET\nline', ['tok-SECRET\nline', 'application/json', 'ab']);

    // Assess
    expect(scrubbed).toBe('Headers.append: "[redacted]" is an invalid header value; again [redacted]');
  });
});
