import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { parse } from 'csv-parse/sync';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { deleteObject, listObjects, readText } from '../src/aws/s3';
import { parseConfig } from '../src/config/load';
import type { Dataflow } from '../src/config/schema';
import { LOCAL_BUCKETS } from '../src/local/s3';
import { runObject } from '../src/local/runner';
import { type ServeEvent, startServe } from '../src/local/serve';
import { type Report, fileNameOf } from '../src/contracts';
import { main } from '../src/cli/main';
import { HostKeyMismatchError, SftpError } from '../src/errors';
import { type PullResult, fingerprintOf, okMarkersFor, pullOriginOf, pullSftp, writeBack } from '../src/sources/sftp';
import { silentLog } from '../src/steps/deps';
import { type SpanAnnotations, useTracing } from '../src/trace';
import { KNOWN_BADGES, SECRETS, UNKNOWN_BADGE, configDocument, toCsv, validRow } from './support/factories';
import { type LocalServices, startLocalServices, stopLocalServices } from './support/local';
import { SFTP_USERS, type Sshd, startSshd } from './support/sshd';
import { runCli } from './support/cli';

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

let caseNo = 0;
/** A fresh delivery area per test: `<root>/<case>/{in,processed,errors}`. */
function area(): { base: string; in: string; processed: string; errors: string } {
  const base = join(sshd.root, `case-${++caseNo}`);
  const paths = { base, in: join(base, 'in'), processed: join(base, 'processed'), errors: join(base, 'errors') };
  mkdirSync(paths.in, { recursive: true });
  for (const dir of [base, paths.in]) chmodSync(dir, 0o777);
  return paths;
}

const OLD = new Date('2026-11-20T10:00:00Z');
/** A vendor file, last modified long enough ago to be complete unless `fresh`. */
function deliver(path: string, content: string, fresh = false): void {
  mkdirSync(dirname(path), { recursive: true });
  chmodSync(dirname(path), 0o777);
  writeFileSync(path, content);
  if (!fresh) utimesSync(path, OLD, OLD);
}

function secrets(extra: Record<string, string> = {}): StaticSecretsProvider {
  return new StaticSecretsProvider({ ...SECRETS, 'sftp/password': sshd.password, 'sftp/key': sshd.privateKey, 'sftp/key-passphrase': sshd.keyPassphrase, ...extra });
}

function sftpFlow(paths: ReturnType<typeof area>, source: Record<string, unknown> = {}): Dataflow {
  const document = configDocument({
    name: `sftp-${caseNo}`,
    source: {
      type: 'sftp',
      host: '127.0.0.1',
      port: sshd.port,
      username: SFTP_USERS.password,
      passwordSecret: 'sftp/password',
      hostKeySha256: sshd.hostKeySha256,
      directory: paths.in,
      filePattern: '^events_.*\\.csv$',
      processedDirectory: paths.processed,
      errorDirectory: paths.errors,
      ...source,
    },
  });
  return parseConfig(document).dataflows[0]!;
}

async function pull(flow: Dataflow, secretValues = secrets()): Promise<PullResult> {
  return pullSftp(flow, { s3: services.s3.client, buckets: LOCAL_BUCKETS, secrets: secretValues, log: silentLog });
}

async function inboxKeys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of listObjects(services.s3.client, LOCAL_BUCKETS.inbox, prefix)) keys.push(object.key);
  return keys.sort();
}

const csv = (base: number, n = 3) => toCsv(Array.from({ length: n }, (_, i) => validRow(i + 1, base)));
const list = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : []);

describe('Function: okMarkersFor', () => {
  it('accepts <name>.ok and <name without its extension>.ok', () => {
    expect(okMarkersFor('events_1.csv')).toEqual(['events_1.csv.ok', 'events_1.ok']);
    expect(okMarkersFor('README')).toEqual(['README.ok']);
  });
});

describe('Function: fingerprintOf', () => {
  it('prints a host key as ssh-keygen -lf does', () => {
    const blob = Buffer.from(sshd.hostPublicKey.split(' ')[1]!, 'base64');
    expect(fingerprintOf(blob)).toBe(sshd.hostKeySha256);
  });
});

describe('Function: pullSftp against OpenSSH', () => {
  it('takes matching, settled files into the inbox and the processed directory, and leaves the rest', async () => {
    // Prepare
    const paths = area();
    deliver(join(paths.in, 'events_1.csv'), csv(1_000_000));
    deliver(join(paths.in, 'notes.txt'), 'not for us');
    deliver(join(paths.in, 'events_2.csv'), csv(1_000_100), true);
    deliver(join(paths.in, 'sub', 'events_3.csv'), csv(1_000_200));
    const flow = sftpFlow(paths);

    // Act
    const result = await pull(flow);

    // Assert: one taken, one still growing, the other name and the subdirectory untouched.
    expect(result.taken.map((t) => t.path)).toEqual([join(paths.in, 'events_1.csv')]);
    expect(result.waiting).toEqual([{ path: join(paths.in, 'events_2.csv'), reason: expect.stringContaining('may still be growing') }]);
    expect(result.failed).toEqual([]);
    expect(await inboxKeys(flow.source.prefix)).toEqual([`sftp/${flow.name}/events_1.csv`]);
    expect(await readText(services.s3.client, LOCAL_BUCKETS.inbox, `sftp/${flow.name}/events_1.csv`)).toBe(csv(1_000_000));
    expect(list(paths.in)).toEqual(['events_2.csv', 'notes.txt', 'sub']);
    expect(list(paths.processed)).toEqual(['events_1.csv']);
    // The object tells the run where the file came from and went.
    const head = await services.s3.client.send(new HeadObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: `sftp/${flow.name}/events_1.csv` }));
    expect(head.Metadata).toMatchObject({ 'badges-origin': `sftp://127.0.0.1:${sshd.port}${join(paths.in, 'events_1.csv')}`, 'badges-sftp-moved-to': join(paths.processed, 'events_1.csv') });
  });

  it('searches subdirectories when recursive, keeping relative paths in the processed directory but never descending into it', async () => {
    const paths = area();
    // The processed directory sits inside the source directory here, as vendors often set it up.
    const processed = join(paths.in, 'done');
    deliver(join(processed, 'events_0.csv'), csv(1_001_000));
    deliver(join(paths.in, 'a', 'events_4.csv'), csv(1_001_100));
    deliver(join(paths.in, 'a', 'b', 'events_5.csv'), csv(1_001_200));
    const flow = sftpFlow(paths, { recursive: true, processedDirectory: processed, errorDirectory: undefined });

    const result = await pull(flow);

    expect(result.taken.map((t) => t.movedTo).sort()).toEqual([join(processed, 'a', 'b', 'events_5.csv'), join(processed, 'a', 'events_4.csv')]);
    expect(await inboxKeys(flow.source.prefix)).toEqual([`sftp/${flow.name}/events_4.csv`, `sftp/${flow.name}/events_5.csv`]);
    expect(list(processed)).toEqual(['a', 'events_0.csv']);
  });

  it('takes a file only once its .ok marker exists, and moves the marker with it', async () => {
    const paths = area();
    deliver(join(paths.in, 'events_a.csv'), csv(1_002_000), true);
    deliver(join(paths.in, 'events_b.csv'), csv(1_002_100), true);
    deliver(join(paths.in, 'events_b.csv.ok'), '', true);
    deliver(join(paths.in, 'events_c.csv'), csv(1_002_200), true);
    deliver(join(paths.in, 'events_c.ok'), '', true);
    const flow = sftpFlow(paths, { requireOkFile: true });

    const result = await pull(flow);

    expect(result.taken.map((t) => t.path).sort()).toEqual([join(paths.in, 'events_b.csv'), join(paths.in, 'events_c.csv')]);
    expect(result.waiting).toEqual([{ path: join(paths.in, 'events_a.csv'), reason: 'no marker yet (events_a.csv.ok or events_a.ok)' }]);
    expect(list(paths.in)).toEqual(['events_a.csv']);
    expect(list(paths.processed)).toEqual(['events_b.csv', 'events_b.csv.ok', 'events_c.csv', 'events_c.ok']);
  });

  it('signs in with a passphrase-protected key, and with a Base64-encoded key', async () => {
    const paths = area();
    deliver(join(paths.in, 'events_k1.csv'), csv(1_003_000));
    const keyFlow = sftpFlow(paths, { username: SFTP_USERS.key, passwordSecret: undefined, privateKeySecret: 'sftp/key', privateKeyPassphraseSecret: 'sftp/key-passphrase' });
    expect((await pull(keyFlow)).taken).toHaveLength(1);

    deliver(join(paths.in, 'events_k2.csv'), csv(1_003_100));
    const base64Flow = sftpFlow(paths, { username: SFTP_USERS.key, passwordSecret: undefined, privateKeySecret: 'sftp/key-b64' });
    const result = await pull(base64Flow, secrets({ 'sftp/key-b64': Buffer.from(sshd.plainPrivateKey).toString('base64') }));
    expect(result.taken.map((t) => t.path)).toEqual([join(paths.in, 'events_k2.csv')]);
  });

  it('refuses a server whose host key is not the pinned one, touching nothing; accepts it when pinning is off', async () => {
    const paths = area();
    deliver(join(paths.in, 'events_h.csv'), csv(1_004_000));
    const wrong = 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s';

    const refused = pull(sftpFlow(paths, { hostKeySha256: wrong }));

    await expect(refused).rejects.toThrow(HostKeyMismatchError);
    await expect(refused).rejects.toThrow(`presented host key ${sshd.hostKeySha256}, which is not the pinned hostKeySha256 (${wrong})`);
    expect(list(paths.in)).toEqual(['events_h.csv']);
    expect(await inboxKeys(`sftp/sftp-${caseNo}/`)).toEqual([]);

    // A list of fingerprints (a key rotation) pins any of them; false turns pinning off.
    expect((await pull(sftpFlow(paths, { hostKeySha256: [wrong, sshd.hostKeySha256] }))).taken).toHaveLength(1);
    deliver(join(paths.in, 'events_h2.csv'), csv(1_004_100));
    expect((await pull(sftpFlow(paths, { hostKeySha256: false }))).taken).toHaveLength(1);
  });

  it('`badges-import run` exits 1 naming the refusal when the server shows another host key', async () => {
    const paths = area();
    deliver(join(paths.in, 'events_cli_refused.csv'), csv(1_004_900));
    const dir = mkdtempSync(join(tmpdir(), 'sftp-refused-'));
    const configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify(configDocument(flowDocument(sftpFlow(paths, { hostKeySha256: 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s' })))));
    const secretsFile = join(dir, 'secrets.json');
    writeFileSync(secretsFile, JSON.stringify({ ...SECRETS, 'sftp/password': sshd.password }));

    const result = await runCli(['run', '--config', configFile, '--secrets', secretsFile, '--data', join(dir, 'data'), '--out', join(dir, 'out')]);

    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`HostKeyMismatchError: SFTP server 127.0.0.1:${sshd.port} presented host key ${sshd.hostKeySha256}`);
    expect(list(paths.in)).toEqual(['events_cli_refused.csv']);
  });

  it('says which credentials were refused, without the password', async () => {
    const paths = area();
    const attempt = pull(sftpFlow(paths), secrets({ 'sftp/password': 'not-the-password-4711' }));
    await expect(attempt).rejects.toThrow(SftpError);
    await expect(attempt).rejects.toThrow(`refused user "${SFTP_USERS.password}" with the configured password (secret "sftp/password")`);
    await expect(attempt).rejects.not.toThrow('not-the-password-4711');
  });

  it('leaves a file that changed while it was being copied for the next poll, with nothing under the prefix', async () => {
    // Prepare: the vendor appends to the file while the poll is copying it.
    const paths = area();
    const path = join(paths.in, 'events_g.csv');
    deliver(path, csv(1_004_500));
    const flow = sftpFlow(paths);
    const deps = { s3: services.s3.client, buckets: LOCAL_BUCKETS, secrets: secrets(), log: silentLog };

    // Act
    const first = await pullSftp(flow, { ...deps, afterCopy: async () => appendFileSync(path, '1004599,6571a3b9e4b0c1a2b3c4d5e6,2026-11-01 00:00:00,2027-01-15,late\n') });

    // Assert
    expect(first.waiting).toEqual([{ path, reason: 'changed while it was being copied: it may still be growing' }]);
    expect(await inboxKeys(flow.source.prefix)).toEqual([]);
    expect(list(paths.in)).toEqual(['events_g.csv']);
    const staged: string[] = [];
    for await (const object of listObjects(services.s3.client, LOCAL_BUCKETS.staging, `pulls/${flow.name}/`)) staged.push(object.key);
    expect(staged).toEqual([]);
    // Once it has settled (here: its time set back), the next poll takes all of it.
    utimesSync(path, OLD, OLD);
    const second = await pullSftp(flow, deps);
    expect(second.taken.map((t) => t.bytes)).toEqual([statSync(join(paths.processed, 'events_g.csv')).size]);
    expect(await readText(services.s3.client, LOCAL_BUCKETS.inbox, `${flow.source.prefix}events_g.csv`)).toContain('1004599');
  });

  it('takes a file over the copy limit through staging like any other, copying it into the inbox in parts (no longer straight under the prefix)', async () => {
    // Prepare: 11 MiB, with the multipart threshold lowered from S3's 5 GiB to 1 MiB.
    const paths = area();
    const path = join(paths.in, 'events_big.csv');
    const content = `${csv(1_004_700)}${'x'.repeat(11 * 1024 * 1024)}\n`;
    deliver(path, content);
    const flow = sftpFlow(paths);
    const deps = { s3: services.s3.client, buckets: LOCAL_BUCKETS, secrets: secrets(), log: silentLog, copy: { multipartAboveBytes: 1024 * 1024, partBytes: 5 * 1024 * 1024 } };
    let copiesDuringCheck: string[] | undefined;

    // Act
    const taken = await pullSftp(flow, { ...deps, afterCopy: async () => void (copiesDuringCheck = await inboxKeys(flow.source.prefix)) });

    // Assess: nothing in the inbox (which starts the run) until the file was found unchanged; then a three-part copy.
    const key = `${flow.source.prefix}events_big.csv`;
    const head = await services.s3.client.send(new HeadObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: key }));
    expect(taken.taken.map((t) => t.key)).toEqual([key]);
    expect(copiesDuringCheck).toEqual([]);
    expect(head.ETag).toMatch(/-3"$/);
    expect(pullOriginOf(head.Metadata)).toMatchObject({ path });
    expect(await readText(services.s3.client, LOCAL_BUCKETS.inbox, key)).toBe(content);
    await deleteObject(services.s3.client, LOCAL_BUCKETS.inbox, key);
  });

  it('a file whose move failed after its copy is moved by the next poll without a second copy', async () => {
    const paths = area();
    deliver(join(paths.in, 'events_m.csv'), csv(1_005_000));
    // The processed directory exists but the SFTP user may not write into it.
    mkdirSync(paths.processed);
    chmodSync(paths.processed, 0o555);
    const flow = sftpFlow(paths);

    const first = await pull(flow);
    expect(first.failed).toEqual([{ path: join(paths.in, 'events_m.csv'), message: expect.any(String) }]);
    expect(await inboxKeys(flow.source.prefix)).toEqual([`sftp/${flow.name}/events_m.csv`]);
    const key = `sftp/${flow.name}/events_m.csv`;
    const copied = (await services.s3.client.send(new HeadObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: key }))).LastModified;

    chmodSync(paths.processed, 0o777);
    await new Promise((r) => setTimeout(r, 1100));
    const second = await pull(flow);

    expect(second.taken.map((t) => t.path)).toEqual([join(paths.in, 'events_m.csv')]);
    expect((await services.s3.client.send(new HeadObjectCommand({ Bucket: LOCAL_BUCKETS.inbox, Key: key }))).LastModified).toEqual(copied);
    expect(list(paths.processed)).toEqual(['events_m.csv']);
  });
});

describe('Functions: pullSftp, writeBack (spans)', () => {
  it('talks to the SFTP server only inside spans: connect, list, each download and move, the write-back', async () => {
    // Prepare: a tracing that records each span as it opens.
    const spans: Array<{ name: string; annotations?: SpanAnnotations }> = [];
    const restore = useTracing((name, work, annotations) => (spans.push({ name, ...(annotations ? { annotations } : {}) }), work()));
    const paths = area();
    const file = join(paths.in, 'events_1.csv');
    deliver(file, toCsv([validRow(1), validRow(2)]));
    const flow = sftpFlow(paths);
    const report: Report = {
      runId: 'run-1',
      dataflow: flow.name,
      status: 'COMPLETED_WITH_REJECTIONS',
      dryRun: false,
      startedAt: '2026-11-29T10:00:00.000Z',
      finishedAt: '2026-11-29T10:01:00.000Z',
      durationMs: 60_000,
      rows: { total: 2, accepted: 1, rejected: 1, valid: 2 },
      rejectionsByCode: { '1054': 1 },
      files: [],
    };

    try {
      // Act
      const pulled = await pull(flow);
      const written = await writeBack(flow, { s3: services.s3.client, buckets: LOCAL_BUCKETS, secrets: secrets(), log: silentLog }, { path: file }, report, undefined);

      // Assess
      expect([pulled.taken.length, written.length]).toEqual([1, 1]);
      expect(spans).toEqual([
        { name: 'sftp connect' },
        { name: 'sftp list' },
        { name: 'sftp download', annotations: { bytes: pulled.taken[0]!.bytes } },
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

describe('SFTP dataflow through the local workflow', () => {
  it('imports a pulled file and writes its rejected records and a summary back to the error directory', async () => {
    // Prepare: 4 good rows and one for a badge the API does not know.
    const paths = area();
    const rows = [...Array.from({ length: 4 }, (_, i) => validRow(i + 1, 1_006_000)), { ...validRow(5, 1_006_000), badge_code: UNKNOWN_BADGE }];
    deliver(join(paths.in, 'sub', 'events_w.csv'), toCsv(rows));
    const flow = sftpFlow(paths, { recursive: true });
    const config = parseConfig(configDocument({ ...flowDocument(flow) }));
    const configFile = join(mkdtempSync(join(tmpdir(), 'sftp-config-')), 'config.json');
    writeFileSync(configFile, JSON.stringify(configDocument({ ...flowDocument(flow) })));
    const taken = (await pull(flow)).taken;
    expect(taken).toHaveLength(1);

    // Act: what the upload event starts in AWS.
    const result = await runObject(
      { config, configFile, dataflow: config.dataflows[0]!, secrets: secrets(), s3: services.s3, sandbox: services.sandbox, outDir: mkdtempSync(join(tmpdir(), 'sftp-out-')) },
      taken[0]!.key,
    );

    // Assert
    expect(result.report.status).toBe('COMPLETED_WITH_REJECTIONS');
    expect(result.report.rows).toMatchObject({ total: 5, accepted: 4, rejected: 1 });
    const source = result.report.files[0]!.source;
    expect(source).toMatchObject({ origin: `sftp://127.0.0.1:${sshd.port}${join(paths.in, 'sub', 'events_w.csv')}`, remoteMovedTo: join(paths.processed, 'sub', 'events_w.csv') });
    const written = list(join(paths.errors, 'sub'));
    expect(written).toEqual([expect.stringMatching(/^result_\d{14}_events_w\.csv\.rejected\.csv$/), expect.stringMatching(/^result_\d{14}_events_w\.csv\.summary\.txt$/)]);
    expect(source.writtenBack?.map((p) => p.slice(p.lastIndexOf('/') + 1))).toEqual(written);
    const rejected = parse<Record<string, string>>(readFileSync(join(paths.errors, 'sub', written[0]!), 'utf8'), { columns: true });
    expect(rejected).toEqual([expect.objectContaining({ member_id: '1006005', badge_code: UNKNOWN_BADGE, _row: '5', _stage: 'api', _error_code: '1054' })]);
    const summary = readFileSync(join(paths.errors, 'sub', written[1]!), 'utf8');
    expect(summary).toContain('Status:    COMPLETED_WITH_REJECTIONS');
    expect(summary).toContain('Records:   5 read, 4 accepted, 1 rejected');
    expect(summary).not.toContain(sshd.password);
    expect(services.sandbox.ledger.filter((e) => e.customerId >= 1_006_001 && e.customerId <= 1_006_005)).toHaveLength(4);
  });

  it('`badges-import run` without --file polls the server and imports what it takes; the same content again is skipped and the vendor told', async () => {
    const paths = area();
    deliver(join(paths.in, 'events_cli.csv'), csv(1_007_000, 6));
    const flow = sftpFlow(paths);
    const dir = mkdtempSync(join(tmpdir(), 'sftp-cli-'));
    const configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify(configDocument(flowDocument(flow))));
    const secretsFile = join(dir, 'secrets.json');
    writeFileSync(secretsFile, JSON.stringify({ ...SECRETS, 'sftp/password': sshd.password }));
    const sandboxFile = join(dir, 'sandbox.json');
    writeFileSync(sandboxFile, JSON.stringify({ knownBadgeIds: [...KNOWN_BADGES] }));
    const args = ['node', 'badges-import', 'run', '--config', configFile, '--secrets', secretsFile, '--sandbox', sandboxFile, '--data', join(dir, 'data'), '--quiet'];

    expect(await main([...args, '--out', join(dir, 'out1')])).toBe(0);
    expect(list(paths.processed)).toEqual(['events_cli.csv']);
    expect(JSON.parse(readFileSync(join(dir, 'out1', 'events_cli.csv', 'report.json'), 'utf8'))).toMatchObject({ status: 'SUCCEEDED', rows: { accepted: 6 } });

    // The vendor delivers the same content again.
    deliver(join(paths.in, 'events_cli.csv'), csv(1_007_000, 6));
    expect(await main([...args, '--out', join(dir, 'out2')])).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'out2', 'events_cli.csv', 'report.json'), 'utf8'))).toMatchObject({ status: 'SKIPPED_DUPLICATE' });
    expect(list(paths.processed)).toEqual(['events_cli.csv', expect.stringMatching(/^events_cli\.csv\.\d{8}T\d{6}Z$/)]);
    const summaries = list(paths.errors);
    expect(summaries).toEqual([expect.stringMatching(/^result_\d{14}_events_cli\.csv\.summary\.txt$/)]);
    expect(readFileSync(join(paths.errors, summaries[0]!), 'utf8')).toContain('The same content was imported before');
  });
});

describe('SFTP dataflow under `badges-import serve`', () => {
  it('polls the server on its own and runs each file it takes', async () => {
    // Prepare
    const paths = area();
    deliver(join(paths.in, 'events_s1.csv'), csv(1_008_000, 4));
    const flow = sftpFlow(paths);
    const dir = mkdtempSync(join(tmpdir(), 'sftp-serve-'));
    const document = configDocument(flowDocument(flow));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(document));
    const events: ServeEvent[] = [];
    const serve = await startServe({
      config: parseConfig(document),
      configFile: join(dir, 'config.json'),
      secrets: secrets(),
      sandbox: { knownBadgeIds: [...KNOWN_BADGES] },
      s3Port: 0,
      apiPort: 0,
      dataDir: join(dir, 'data'),
      outDir: join(dir, 'out'),
      pollMs: 100,
      sftpPollMs: 200,
      onEvent: (e) => events.push(e),
    });
    try {
      // Act: a second file arrives while serve runs.
      const done = (name: string) => events.find((e) => e.type === 'finished' && e.key.endsWith(`/${name}`));
      for (let i = 0; i < 300 && !done('events_s1.csv'); i++) await new Promise((r) => setTimeout(r, 100));
      deliver(join(paths.in, 'events_s2.csv'), csv(1_008_100, 2));
      for (let i = 0; i < 300 && !done('events_s2.csv'); i++) await new Promise((r) => setTimeout(r, 100));

      // Assert
      const finishedRuns = events.filter((e): e is Extract<ServeEvent, { type: 'finished' }> => e.type === 'finished');
      expect(finishedRuns.map((e) => [fileNameOf(e.key), e.result.report.status, e.result.report.rows.accepted])).toEqual([
        ['events_s1.csv', 'SUCCEEDED', 4],
        ['events_s2.csv', 'SUCCEEDED', 2],
      ]);
      expect(list(paths.processed)).toEqual(['events_s1.csv', 'events_s2.csv']);
      expect(events.filter((e) => e.type === 'error')).toEqual([]);
    } finally {
      await serve.stop();
    }
  });
});

/** The raw configuration fields of a parsed SFTP dataflow, to write it back out as a file. */
function flowDocument(flow: Dataflow): Record<string, unknown> {
  return { name: flow.name, source: flow.source };
}
