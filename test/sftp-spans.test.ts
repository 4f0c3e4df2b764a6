import { chmodSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { parseConfig } from '../src/config/load';
import type { Dataflow } from '../src/config/schema';
import type { Report } from '../src/contracts';
import { LOCAL_BUCKETS } from '../src/local/s3';
import { pullSftp, writeBack } from '../src/sources/sftp';
import { silentLog } from '../src/steps/deps';
import { type SpanAnnotations, useTracing } from '../src/trace';
import { KNOWN_BADGES, SECRETS, configDocument, toCsv, validRow } from './support/factories';
import { type LocalServices, startLocalServices, stopLocalServices } from './support/local';
import { SFTP_USERS, type Sshd, startSshd } from './support/sshd';

let sshd: Sshd;
let services: LocalServices;
beforeAll(async () => {
  sshd = await startSshd();
  services = await startLocalServices({ knownBadgeIds: [...KNOWN_BADGES] });
}, 60_000);
afterAll(async () => {
  await stopLocalServices(services);
  await sshd.stop();
});

/** An SFTP dataflow over a fresh delivery area, with one complete vendor file in it. */
function deliveredFlow(): { flow: Dataflow; file: string } {
  const base = join(sshd.root, 'spans');
  const paths = { in: join(base, 'in'), processed: join(base, 'processed'), errors: join(base, 'errors') };
  mkdirSync(paths.in, { recursive: true });
  for (const dir of [base, paths.in]) chmodSync(dir, 0o777);
  const file = join(paths.in, 'events_1.csv');
  writeFileSync(file, toCsv([validRow(1), validRow(2)]));
  const old = new Date('2026-11-20T10:00:00Z');
  utimesSync(file, old, old);
  const source = { type: 'sftp', host: '127.0.0.1', port: sshd.port, username: SFTP_USERS.password, passwordSecret: 'sftp/password', hostKeySha256: sshd.hostKeySha256, directory: paths.in, filePattern: '^events_.*\\.csv$', processedDirectory: paths.processed, errorDirectory: paths.errors };
  return { flow: parseConfig(configDocument({ name: 'sftp-spans', source })).dataflows[0]!, file };
}

function report(): Report {
  return {
    runId: 'run-1',
    dataflow: 'sftp-spans',
    status: 'COMPLETED_WITH_REJECTIONS',
    dryRun: false,
    startedAt: '2026-11-29T10:00:00.000Z',
    finishedAt: '2026-11-29T10:01:00.000Z',
    durationMs: 60_000,
    rows: { total: 2, accepted: 1, rejected: 1, valid: 2 },
    rejectionsByCode: { '1054': 1 },
    files: [],
  };
}

describe('Functions: pullSftp, writeBack', () => {
  it('talks to the SFTP server only inside spans: connect, list, each download and each move', async () => {
    // Prepare
    const spans: Array<{ name: string; annotations?: SpanAnnotations }> = [];
    const restore = useTracing((name, work, annotations) => (spans.push({ name, ...(annotations ? { annotations } : {}) }), work()));
    const { flow, file } = deliveredFlow();
    const deps = { s3: services.s3.client, buckets: LOCAL_BUCKETS, secrets: new StaticSecretsProvider({ ...SECRETS, 'sftp/password': sshd.password }), log: silentLog };

    try {
      // Act
      const pulled = await pullSftp(flow, deps);
      const written = await writeBack(flow, deps, { path: file }, report(), undefined);

      // Assess
      expect(pulled.taken).toHaveLength(1);
      expect(written).toHaveLength(1);
      const bytes = pulled.taken[0]!.bytes;
      expect(spans).toEqual([
        { name: 'sftp connect' },
        { name: 'sftp list' },
        { name: 'sftp download', annotations: { bytes } },
        { name: 'sftp move' },
        { name: 'sftp connect' },
        { name: 'sftp write-back' },
      ]);
      expect(JSON.stringify(spans)).not.toContain(sshd.password);
    } finally {
      restore();
    }
  });
});
