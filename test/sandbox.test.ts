import { basicAuthorization } from '../src/api/auth';
import { IMPORT_PATH, type SandboxSettings, startSandbox } from '../src/api/sandbox';
import { KNOWN_BADGES } from './support/factories';

const USER = { username: 'u', password: 'p' };
const item = (customerId: number) => ({ badgeMetaId: KNOWN_BADGES[0], customerId, earnEventDate: Date.UTC(2026, 9, 1), earnExpiresOn: Date.UTC(2027, 0, 1) });

async function withSandbox<T>(settings: SandboxSettings, act: (put: (items: unknown[]) => Promise<Response>) => Promise<T>): Promise<T> {
  const sandbox = await startSandbox({ users: [USER], ...settings });
  try {
    return await act((items) =>
      fetch(`${sandbox.url}${IMPORT_PATH}`, { method: 'PUT', headers: { Authorization: basicAuthorization(USER.username, USER.password), 'Content-Type': 'application/json' }, body: JSON.stringify(items) }),
    );
  } finally {
    await sandbox.close();
  }
}

describe('Function: startSandbox', () => {
  it('throttles beyond its items-per-second limit, saying when to come back', async () => {
    // Act
    const [first, second] = await withSandbox({ rateLimit: { itemsPerSecond: 10 } }, async (put) => [await put([1, 2, 3, 4, 5, 6, 7, 8].map(item)), await put([9, 10, 11].map(item))]);

    // Assess
    expect(first.status).toBe(200);
    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).toBe('1');
  });

  it('throttles without Retry-After when told not to give it', async () => {
    // Act
    const statuses = await withSandbox({ rateLimit: { requestsPerMinute: 60, retryAfter: false } }, async (put) => {
      const a = await put([item(1)]);
      const b = await put([item(2)]);
      return [a.status, b.status, b.headers.get('retry-after')];
    });

    // Assess
    expect(statuses).toEqual([200, 429, null]);
  });

  it('answers 429 to requests beyond its concurrency limit', async () => {
    // Act
    const statuses = await withSandbox({ maxConcurrentRequests: 1, latencyMs: 200 }, async (put) => (await Promise.all([put([item(1)]), put([item(2)])])).map((r) => r.status).sort());

    // Assess
    expect(statuses).toEqual([200, 429]);
  });

  it('refuses a batch over its size limit with 1060', async () => {
    // Act
    const body = await withSandbox({ maxBatchSize: 2 }, async (put) => (await put([1, 2, 3].map(item))).json());

    // Assess
    expect(body).toEqual({ errors: [expect.objectContaining({ code: 1060 })] });
  });

  it('draws the same faults in the same order for the same seed', async () => {
    // Prepare
    const settings: SandboxSettings = { faults: { seed: 42, statusRates: { '503': 0.3, '502': 0.2 } } };
    const run = () =>
      withSandbox(settings, async (put) => {
        const statuses: number[] = [];
        for (let i = 1; i <= 20; i++) statuses.push((await put([item(i)])).status);
        return statuses;
      });

    // Act
    const first = await run();
    const second = await run();

    // Assess
    expect(second).toEqual(first);
    expect(new Set(first)).toEqual(new Set([200, 502, 503]));
  });
});
