/**
 * `npm run bench:send`: the send step's workers (as the Distributed Map runs them) against the sandbox limited to
 * R items per second. Prints the items/s achieved, their ratio to R, and the share of requests throttled, for a
 * configuration whose rate matches the API's limit and for one that asks twice as much (the pacer must find the
 * limit itself). Settings: BENCH_RATE (R, default 1000), BENCH_SECONDS (length of a run at R, default 30).
 */
import pLimit from 'p-limit';
import { startSandbox } from '../src/api/sandbox';
import { putJson, putText } from '../src/aws/s3';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { parseConfig } from '../src/config/load';
import { type ChunkRef, KEYS, type SendOutput } from '../src/contracts';
import { LOCAL_BUCKETS, startLocalS3 } from '../src/local/s3';
import { newContainerState, silentLog } from '../src/steps/deps';
import { send } from '../src/steps/send';

const BADGE = '6571a3b9e4b0c1a2b3c4d5e6';
const RATE = Number(process.env.BENCH_RATE ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 30);
const BATCH = 100;
const WORKERS = 8;
const PER_CHUNK = 1000;

async function scenario(label: string, configuredItemsPerSecond: number, runId: string) {
  const chunks = Math.max(WORKERS, Math.round((RATE * SECONDS) / PER_CHUNK / WORKERS) * WORKERS);
  const sandbox = await startSandbox({
    users: [{ username: 'bench', password: 'bench-password' }],
    knownBadgeIds: [BADGE],
    rateLimit: { itemsPerSecond: RATE, retryAfter: true },
    latencyMs: 20,
  });
  const s3 = await startLocalS3();
  try {
    const config = parseConfig({
      dataflows: [
        {
          name: 'bench',
          source: { type: 's3', prefix: 'inbox/bench/' },
          mapping: {
            customerId: { column: 'id' },
            badgeMetaId: { value: BADGE },
            earnEventDate: { column: 'at' },
            earnExpiresOn: { column: 'until' },
          },
          destination: {
            baseUrl: sandbox.url,
            auth: { type: 'basic', usernameSecret: 'u', passwordSecret: 'p' },
            batchSize: BATCH,
            maxConcurrency: WORKERS,
            maxRequestsPerMinute: Math.round((configuredItemsPerSecond * 60) / BATCH),
            recordsPerWorker: PER_CHUNK,
            maxRetries: 20,
          },
        },
      ],
    });
    const refs: ChunkRef[] = [];
    for (let c = 0; c < chunks; c++) {
      const lines = Array.from({ length: PER_CHUNK }, (_, k) => {
        const n = c * PER_CHUNK + k + 1;
        const at = Date.UTC(2026, 9, 1) + n * 1000;
        return JSON.stringify({ n, f: [String(n)], i: { badgeMetaId: BADGE, customerId: n, earnEventDate: at, earnExpiresOn: at + 86_400_000, earnEventDateISO: new Date(at).toISOString(), earnExpiresOnISO: new Date(at + 86_400_000).toISOString() } });
      });
      const ref = { index: c, key: KEYS.chunk(runId, c), records: PER_CHUNK, firstRecord: c * PER_CHUNK + 1 };
      await putText(s3.client, LOCAL_BUCKETS.staging, ref.key, lines.join('\n'));
      refs.push(ref);
    }
    await putJson(s3.client, LOCAL_BUCKETS.staging, KEYS.chunks(runId), refs);

    const deps = { config, s3: s3.client, buckets: LOCAL_BUCKETS, secrets: new StaticSecretsProvider({ u: 'bench', p: 'bench-password' }), log: silentLog };
    const limit = pLimit(WORKERS);
    const started = Date.now();
    // One warm container per worker, as Lambda keeps them.
    const containers = Array.from({ length: WORKERS }, newContainerState);
    const outputs: SendOutput[] = await Promise.all(
      refs.map((chunk) =>
        limit(async () => {
          const container = containers.pop()!;
          try {
            return await send({ runId, startedAt: '', dataflow: 'bench', chunk, concurrency: WORKERS }, { ...deps, container });
          } finally {
            containers.push(container);
          }
        }),
      ),
    );
    const seconds = (Date.now() - started) / 1000;

    const accepted = outputs.reduce((n, o) => n + o.accepted, 0);
    const importRequests = Object.values(sandbox.statusCounts).reduce((n, v) => n + v, 0);
    const throttled = sandbox.statusCounts[429] ?? 0;
    const achieved = accepted / seconds;
    console.log(
      `${label.padEnd(34)} R=${RATE} items/s  achieved ${achieved.toFixed(0).padStart(5)} items/s  ratio ${(achieved / RATE).toFixed(2)}  ` +
        `throttled ${throttled}/${importRequests} requests (${((throttled / importRequests) * 100).toFixed(2)}%)  ` +
        `${accepted}/${chunks * PER_CHUNK} accepted in ${seconds.toFixed(1)} s`,
    );
  } finally {
    await s3.close();
    await sandbox.close();
  }
}

async function main() {
  console.log(`${WORKERS} workers, batches of ${BATCH}, chunks of ${PER_CHUNK}; the sandbox allows ${RATE} items/s (token bucket, 1 s burst, Retry-After)`);
  await scenario('configured at the API limit', RATE, 'bench-at-limit');
  await scenario('configured at twice the API limit', RATE * 2, 'bench-over-limit');
}
void main();
