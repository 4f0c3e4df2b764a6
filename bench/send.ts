/**
 * `npm run bench:send`: the send step's workers (as the Distributed Map runs them) against the sandbox limited to
 * R items per second, every worker taking its slots from the shared send budget (DynamoDB's API on dynalite, one
 * budget client per worker, as each Lambda container has its own). Prints the items/s achieved, their ratio to R,
 * and the share of requests throttled (the sandbox's own tally), for:
 *   - one file, configured at the API's limit;
 *   - one file, configured at twice the limit (the budget must find the limit itself);
 *   - three files of one destination at once, each configured at the limit (three executions' workers together).
 * Settings: BENCH_RATE (R, default 1000), BENCH_SECONDS (length of a run at R, default 60), BENCH_BUDGET=off (each
 * worker paces itself at its share, as without a table: the baseline), BENCH_SCENARIO=limit|double|three (one only),
 * BENCH_LAW='{"cut":0.6}' (other constants of the law, to tune it).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pLimit from 'p-limit';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { startSandbox } from '../src/api/sandbox';
import { DynamoBudget, readBudget } from '../src/aws/budget';
import { putJson, putText } from '../src/aws/s3';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { parseConfig } from '../src/config/load';
import { type ChunkRef, KEYS, type SendOutput } from '../src/contracts';
import { BUDGET_LAW, destinationKey, rateOf } from '../src/core/budget';
import { budgetTableSpec, ensureTable, startLocalDynamo } from '../src/local/dynamodb';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from '../src/local/s3';
import { newContainerState, silentLog } from '../src/steps/deps';
import { send } from '../src/steps/send';

const BADGE = '6571a3b9e4b0c1a2b3c4d5e6';
const RATE = Number(process.env.BENCH_RATE ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const SHARED = process.env.BENCH_BUDGET !== 'off';
const BATCH = 100;
const WORKERS = 8;
const PER_CHUNK = 1000;
const TABLE = 'bench-send-budget';

/** Stages `chunks` chunks of one run; returns their refs. */
async function stageChunks(s3: LocalS3, runId: string, chunks: number, first: number): Promise<ChunkRef[]> {
  const refs: ChunkRef[] = [];
  for (let c = 0; c < chunks; c++) {
    const lines = Array.from({ length: PER_CHUNK }, (_, k) => {
      const n = (first + c) * PER_CHUNK + k + 1;
      const at = Date.UTC(2026, 9, 1) + n * 1000;
      return JSON.stringify({ n, f: [String(n)], i: { badgeMetaId: BADGE, customerId: n, earnEventDate: at, earnExpiresOn: at + 86_400_000, earnEventDateISO: new Date(at).toISOString(), earnExpiresOnISO: new Date(at + 86_400_000).toISOString() } });
    });
    const ref = { index: c, key: KEYS.chunk(runId, c), records: PER_CHUNK, firstRecord: c * PER_CHUNK + 1 };
    await putText(s3.client, LOCAL_BUCKETS.staging, ref.key, lines.join('\n'));
    refs.push(ref);
  }
  await putJson(s3.client, LOCAL_BUCKETS.staging, KEYS.chunks(runId), refs);
  return refs;
}

/** One execution's Distributed Map: WORKERS warm containers, each with its own budget client, sending every chunk. */
async function execution(runId: string, refs: ChunkRef[], deps: Parameters<typeof send>[1], dynamo: DynamoDBClient, budgets: DynamoBudget[]): Promise<SendOutput[]> {
  const limit = pLimit(WORKERS);
  const containers = Array.from({ length: WORKERS }, () => ({ container: newContainerState(), budget: SHARED ? new DynamoBudget(dynamo, TABLE) : undefined }));
  for (const { budget } of containers) if (budget) budgets.push(budget);
  return Promise.all(
    refs.map((chunk) =>
      limit(async () => {
        const { container, budget } = containers.pop()!;
        try {
          return await send({ runId, startedAt: '', dataflow: 'bench', chunk, concurrency: WORKERS }, { ...deps, container, ...(budget ? { budget } : {}) });
        } finally {
          containers.push({ container, budget });
        }
      }),
    ),
  );
}

/** BENCH_TRACE=1: once a second, the budget's rate and memory and the sandbox's answers in that second. */
function traceBudget(client: DynamoDBClient, key: string, counts: Readonly<Record<string, number>>, started: number): NodeJS.Timeout {
  let last = { ok: 0, throttled: 0 };
  return setInterval(() => {
    void readBudget(client, TABLE, key).then((state) => {
      const now = { ok: counts[200] ?? 0, throttled: counts[429] ?? 0 };
      const perSecond = (rpm: number) => ((rpm * BATCH) / 60).toFixed(0);
      console.log(`  t=${((Date.now() - started) / 1000).toFixed(0)}s rate ${state ? perSecond(rateOf(state)) : '-'} top ${state ? perSecond(state.top) : '-'} epoch ${state?.epoch ?? '-'}  answered 200: ${now.ok - last.ok}, 429: ${now.throttled - last.throttled}`);
      last = now;
    });
  }, 1000);
}

function sum(stats: Array<Record<string, number>>): Record<string, number> {
  const total: Record<string, number> = {};
  for (const s of stats) for (const [k, v] of Object.entries(s)) total[k] = (total[k] ?? 0) + v;
  return total;
}

/** Counts the DynamoDB calls made through `client` by operation (the budget's cost: docs/deploy.md). */
function countCalls(client: DynamoDBClient): Record<string, number> {
  const calls: Record<string, number> = {};
  client.middlewareStack.add(
    (next, context) => (args) => {
      calls[context.commandName ?? '?'] = (calls[context.commandName ?? '?'] ?? 0) + 1;
      return next(args);
    },
    { step: 'initialize', name: 'benchCallCounter' },
  );
  return calls;
}

async function scenario(label: string, configuredItemsPerSecond: number, files: number): Promise<void> {
  const chunksPerFile = Math.max(WORKERS, Math.round((RATE * SECONDS) / PER_CHUNK / files / WORKERS) * WORKERS);
  const sandbox = await startSandbox({
    users: [{ username: 'bench', password: 'bench-password' }],
    knownBadgeIds: [BADGE],
    rateLimit: { itemsPerSecond: RATE, retryAfter: true },
    latencyMs: 20,
  });
  const s3 = await startLocalS3();
  const dynamo = await startLocalDynamo();
  try {
    await ensureTable(dynamo.client, budgetTableSpec(TABLE));
    const config = parseConfig({
      dataflows: [
        {
          name: 'bench',
          source: { type: 's3', prefix: 'inbox/bench/' },
          mapping: { customerId: { column: 'id' }, badgeMetaId: { value: BADGE }, earnEventDate: { column: 'at' }, earnExpiresOn: { column: 'until' } },
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
    const runs = await Promise.all(Array.from({ length: files }, async (_, f) => ({ runId: `bench-${f}`, refs: await stageChunks(s3, `bench-${f}`, chunksPerFile, f * chunksPerFile) })));
    const deps = { config, s3: s3.client, buckets: LOCAL_BUCKETS, secrets: new StaticSecretsProvider({ u: 'bench', p: 'bench-password' }), log: silentLog };
    const calls = countCalls(dynamo.client);
    const budgets: DynamoBudget[] = [];
    const cpu = process.cpuUsage();
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const started = Date.now();
    const traceTimer = process.env.BENCH_TRACE ? traceBudget(dynamo.client, destinationKey(config.dataflows[0]!.destination), sandbox.statusCounts, started) : undefined;
    const outputs = (await Promise.all(runs.map((run) => execution(run.runId, run.refs, deps, dynamo.client, budgets)))).flat();
    const seconds = (Date.now() - started) / 1000;
    if (traceTimer) clearInterval(traceTimer);

    const accepted = outputs.reduce((n, o) => n + o.accepted, 0);
    const importRequests = Object.values(sandbox.statusCounts).reduce((n, v) => n + v, 0);
    const throttled = sandbox.statusCounts[429] ?? 0;
    const achieved = accepted / seconds;
    const state = SHARED ? await readBudget(dynamo.client, TABLE, destinationKey(config.dataflows[0]!.destination)) : undefined;
    const used = process.cpuUsage(cpu);
    lag.disable();
    const perRequest = Object.entries(calls).map(([name, count]) => `${name} ${(count / importRequests).toFixed(2)}`).join(', ');
    const learned = state ? `\n    budget: ${state.cuts} cuts, ends at ${((rateOf(state) * BATCH) / 60).toFixed(0)} items/s; DynamoDB calls per API request: ${perRequest}; ${JSON.stringify(sum(budgets.map((b) => b.stats)))}` : '';
    const load = `; this process used ${(((used.user + used.system) / 1e6 / seconds) * 100).toFixed(0)}% of a core, event loop delay p50 ${(lag.percentile(50) / 1e6).toFixed(0)} ms p99 ${(lag.percentile(99) / 1e6).toFixed(0)} ms`;
    console.log(
      `${label.padEnd(44)} achieved ${achieved.toFixed(0).padStart(5)} items/s  ratio ${(achieved / RATE).toFixed(3)}  ` +
        `throttled ${throttled}/${importRequests} requests (${((throttled / importRequests) * 100).toFixed(2)}%)  ` +
        `${accepted}/${files * chunksPerFile * PER_CHUNK} accepted in ${seconds.toFixed(1)} s${load}${learned}`,
    );
  } finally {
    await dynamo.close();
    await s3.close();
    await sandbox.close();
  }
}

async function main() {
  // Tuning only: BENCH_LAW='{"cut":0.6}' runs with other constants of the law (this process's, not the stack's).
  if (process.env.BENCH_LAW) Object.assign(BUDGET_LAW as Record<string, number>, JSON.parse(process.env.BENCH_LAW) as Record<string, number>);
  console.log(
    `${WORKERS} workers per file, batches of ${BATCH}, chunks of ${PER_CHUNK}; the sandbox allows R=${RATE} items/s (${(RATE / BATCH).toFixed(1)} requests/s; token bucket, 1 s burst, Retry-After); ` +
      `${SHARED ? 'shared budget on dynalite' : 'no shared budget (each worker at its share)'}`,
  );
  const only = process.env.BENCH_SCENARIO;
  if (!only || only === 'limit') await scenario('one file, configured at the limit', RATE, 1);
  if (!only || only === 'double') await scenario('one file, configured at twice the limit', RATE * 2, 1);
  if (!only || only === 'three') await scenario('three files at once, each at the limit', RATE, 3);
}
void main();
