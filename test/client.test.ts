import { authProvider, basicAuthorization } from '../src/api/auth';
import { BadgesApiClient, SEND_CODES } from '../src/api/client';
import { type Sandbox, IMPORT_PATH, startSandbox } from '../src/api/sandbox';
import { StaticSecretsProvider } from '../src/aws/secrets';
import type { ApiItem } from '../src/core/mapping';
import { AuthError } from '../src/errors';
import { KNOWN_BADGES, SECRETS, UNKNOWN_BADGE, makeDataflow } from './support/factories';
import { type ScriptedServer, accepted, scriptedServer } from './support/http';

const item = (customerId: number, badgeMetaId: string = KNOWN_BADGES[0]): ApiItem => ({
  badgeMetaId,
  customerId,
  earnEventDate: Date.UTC(2026, 10, 20, 5),
  earnExpiresOn: Date.UTC(2027, 0, 1),
  earnEventDateISO: '2026-11-20T10:30:00+05:30',
  earnExpiresOnISO: '2027-01-01T05:30:00+05:30',
});

const sleeps: number[] = [];
function client(baseUrl: string, overrides: Record<string, unknown> = {}) {
  const flow = makeDataflow();
  return new BadgesApiClient({
    destination: { ...flow.destination, baseUrl, maxRetries: 3, requestTimeoutMs: 1000, ...overrides },
    auth: authProvider(flow.destination.auth, new StaticSecretsProvider(SECRETS)),
    requestsPerMinute: 600_000,
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
    random: () => 0.5,
  });
}

describe('Function: basicAuthorization', () => {
  it('encodes user and the MD5 of the password, as Capillary requires', () => {
    // Act + Assess: md5("secret") = 5ebe2294ecd0e0f08eab7690d2a6ee69
    expect(basicAuthorization('till', 'secret')).toBe(`Basic ${Buffer.from('till:5ebe2294ecd0e0f08eab7690d2a6ee69').toString('base64')}`);
  });
});

describe('Class: BadgesApiClient against the sandbox', () => {
  let sandbox: Sandbox;
  beforeAll(async () => {
    sandbox = await startSandbox({ users: [{ username: SECRETS['api/user'], password: SECRETS['api/password'] }], knownBadgeIds: [...KNOWN_BADGES] });
  });
  afterAll(() => sandbox.close());

  it('gets one outcome per item: accepted, or the API code and message', async () => {
    // Act
    const outcomes = await client(sandbox.url).send([item(1), item(2, UNKNOWN_BADGE), item(3)]);

    // Assess
    expect(outcomes).toEqual([
      { accepted: true, earnedBadgeId: expect.any(String) },
      { accepted: false, code: '1054', message: 'GLOBAL.BADGE_NOT_FOUND' },
      { accepted: true, earnedBadgeId: expect.any(String) },
    ]);
    expect(sandbox.ledger.filter((e) => [1, 2, 3].includes(e.customerId)).map((e) => e.customerId)).toEqual([1, 3]);
  });

  it('throws AuthError when the credentials are refused', async () => {
    // Prepare
    const flow = makeDataflow();
    const wrong = new BadgesApiClient({
      destination: { ...flow.destination, baseUrl: sandbox.url },
      auth: authProvider(flow.destination.auth, new StaticSecretsProvider({ ...SECRETS, 'api/password': 'wrong' })),
      requestsPerMinute: 600_000,
    });

    // Act + Assess
    await expect(wrong.send([item(4)])).rejects.toThrow(AuthError);
  });
});

describe('Class: BadgesApiClient under faults', () => {
  let server: ScriptedServer | undefined;
  beforeEach(() => {
    sleeps.length = 0;
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('retries 503 and 429 with backoff, honouring Retry-After, then succeeds', async () => {
    // Prepare
    server = await scriptedServer((body, n) =>
      n === 0 ? { status: 503 } : n === 1 ? { status: 429, headers: { 'Retry-After': '2' } } : { status: 200, body: accepted(body) },
    );

    // Act
    const outcomes = await client(server.url).send([item(1), item(2)]);

    // Assess
    expect(outcomes.every((o) => o.accepted)).toBe(true);
    expect(server.requests).toHaveLength(3);
    expect(sleeps.filter((ms) => ms > 0)).toEqual([250, 2000]);
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

  it('never resends a request whose answer was lost: AMBIGUOUS', async () => {
    // Prepare
    server = await scriptedServer([{ status: 200, reset: true }]);

    // Act
    const outcomes = await client(server.url).send([item(1), item(2)]);

    // Assess
    expect(server.requests).toHaveLength(1);
    expect(outcomes.map((o) => !o.accepted && o.code)).toEqual([SEND_CODES.AMBIGUOUS, SEND_CODES.AMBIGUOUS]);
  });

  it('treats a timeout after sending as AMBIGUOUS', async () => {
    // Prepare
    server = await scriptedServer([{ status: 200, body: [], delayMs: 500 }]);

    // Act
    const outcomes = await client(server.url, { requestTimeoutMs: 100 }).send([item(1)]);

    // Assess
    expect(server.requests).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ accepted: false, code: SEND_CODES.AMBIGUOUS, message: expect.stringContaining('TIMEOUT') });
  });

  it('treats an answer with the wrong number of items as AMBIGUOUS, never as success', async () => {
    // Prepare
    server = await scriptedServer((body) => ({ status: 200, body: accepted(body).slice(1) }));

    // Act
    const outcomes = await client(server.url).send([item(1), item(2)]);

    // Assess
    expect(outcomes.every((o) => !o.accepted && o.code === SEND_CODES.AMBIGUOUS)).toBe(true);
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

  it('bounds full-jitter backoff by the cap', () => {
    // Prepare
    const c = new BadgesApiClient({
      destination: makeDataflow().destination,
      auth: { headers: () => Promise.resolve({}) },
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

  it('uses the configured method and path', async () => {
    // Prepare
    server = await scriptedServer((body) => ({ status: 200, body: accepted(body) }));

    // Act
    await client(server.url, { method: 'POST' }).send([item(1)]);

    // Assess
    expect(server.calls).toEqual([{ method: 'POST', path: IMPORT_PATH }]);
  });
});
