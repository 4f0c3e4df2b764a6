import type { Sandbox } from '../src/api/sandbox';
import { putText, readJson } from '../src/aws/s3';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { type ChunkRef, KEYS } from '../src/contracts';
import { LOCAL_BUCKETS, type LocalS3 } from '../src/local/s3';
import { startLocalServices, stopLocalServices } from './support/local';
import { newContainerState, silentLog } from '../src/steps/deps';
import { send } from '../src/steps/send';
import { encodeStagedRecord } from '../src/core/staged-record';
import { stageFile } from '../src/steps/stage';
import { KNOWN_BADGES, UNKNOWN_BADGE, makeConfig, toCsv, validRow } from './support/factories';

let s3: LocalS3;
let sandbox: Sandbox;
beforeAll(async () => {
  ({ s3, sandbox } = await startLocalServices({ oauthClients: [{ key: 'k', secret: 's' }], knownBadgeIds: [...KNOWN_BADGES] }));
});
afterAll(() => stopLocalServices({ s3, sandbox }));

/** Stages one chunk of `count` records, every fifth with an unknown badge. */
async function chunk(runId: string, index: number, count: number) {
  const lines = Array.from({ length: count }, (_, k) => {
    const n = index * count + k + 1;
    const at = Date.UTC(2026, 9, 1) + n * 1000;
    const badgeMetaId = n % 5 === 0 ? UNKNOWN_BADGE : KNOWN_BADGES[n % 2]!;
    const item = { badgeMetaId, customerId: 8_000_000 + n, earnEventDate: at, earnExpiresOn: at + 86_400_000, earnEventDateISO: new Date(at).toISOString(), earnExpiresOnISO: new Date(at + 86_400_000).toISOString() };
    return encodeStagedRecord(n, [String(n)], item);
  });
  const ref = { index, key: KEYS.chunk(runId, index), records: count, firstRecord: index * count + 1 };
  await putText(s3.client, LOCAL_BUCKETS.staging, ref.key, lines.join('\n'));
  return ref;
}

describe('Function: send', () => {
  it('keeps one OAuth token and one check per badge id for all the chunks a container sends', async () => {
    // Prepare: every HTTP call the step makes is counted by path.
    const calls: string[] = [];
    const counting: typeof fetch = (input, init) => {
      calls.push(new URL(input instanceof Request ? input.url : input).pathname);
      return fetch(input, init);
    };
    const base = makeConfig().dataflows[0]!;
    const config = makeConfig({
      destination: { ...base.destination, baseUrl: sandbox.url, auth: { type: 'oauth', keySecret: 'key', secretSecret: 'secret' }, validateBadgeIds: true },
    });
    const deps = { config, s3: s3.client, buckets: LOCAL_BUCKETS, secrets: new StaticSecretsProvider({ key: 'k', secret: 's' }), log: silentLog, fetch: counting, container: newContainerState() };

    // Act: two chunks, one after the other, in the same container.
    const outputs = [];
    for (const index of [0, 1]) outputs.push(await send({ runId: 'send-1', startedAt: '', dataflow: 'weekly-events', chunk: await chunk('send-1', index, 20) }, deps));

    // Assess
    expect(outputs.map((o) => [o.accepted, o.rejected, o.rejectionsByCode])).toEqual([
      [16, 4, { '1054': 4 }],
      [16, 4, { '1054': 4 }],
    ]);
    expect(calls.filter((p) => p === '/v3/oauth/token/generate')).toHaveLength(1);
    expect(calls.filter((p) => p.includes('/badgeMeta/')).sort()).toEqual([...KNOWN_BADGES, UNKNOWN_BADGE].map((id) => `/api_gateway/v1/badges/badgeMeta/${id}`).sort());
  });
});

describe('Function: send, on records the stage wrote', () => {
  it('sends a record whose note holds a line or paragraph separator (U+2028, U+2029) once, as one record', async () => {
    // Prepare: JSON leaves U+2028 and U+2029 unescaped, and node:readline ends a line at each of them.
    const base = makeConfig().dataflows[0]!;
    const config = makeConfig({ destination: { ...base.destination, baseUrl: sandbox.url, auth: { type: 'oauth', keySecret: 'key', secretSecret: 'secret' } } });
    const deps = { config, s3: s3.client, buckets: LOCAL_BUCKETS, secrets: new StaticSecretsProvider({ key: 'k', secret: 's' }), log: silentLog, now: () => Date.UTC(2026, 10, 27) };
    const rows = [1, 2, 3].map((i) => ({ ...validRow(i, 9_100_000), note: i === 2 ? 'one\u2028two\u2029three' : `plain ${i}` }));
    await putText(s3.client, LOCAL_BUCKETS.inbox, 'inbox/weekly-events/events_separators.csv', toCsv(rows));
    const staged = await stageFile({ input: { dataflow: 'weekly-events', bucket: LOCAL_BUCKETS.inbox, key: 'inbox/weekly-events/events_separators.csv', dryRun: true }, runId: 'send-sep', startedAt: new Date().toISOString() }, deps);
    const chunks = (await readJson<ChunkRef[]>(s3.client, LOCAL_BUCKETS.staging, staged.chunksKey))!;

    // Act
    const output = await send({ runId: 'send-sep', startedAt: '', dataflow: 'weekly-events', chunk: chunks[0]! }, deps);

    // Assess
    expect(staged).toMatchObject({ records: 3, valid: 3, chunkCount: 1 });
    expect(output).toMatchObject({ records: 3, accepted: 3, rejected: 0 });
  });
});
