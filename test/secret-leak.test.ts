import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSandbox, type Sandbox } from '../src/api/sandbox';
import { KNOWN_BADGES, UNKNOWN_BADGE, configDocument, toCsv, validRow } from './support/factories';
import { runCli } from './support/cli';
import { GnuPG } from './support/gpg';
import { SFTP_USERS, type Sshd, startSshd } from './support/sshd';

/**
 * A whole local workflow with recognizable secret values, everywhere a secret goes: an SFTP password, a PGP key and
 * its passphrase, an API password (sent as its MD5), an OAuth key and secret and the tokens they buy. Then every
 * output file, the run logs, the embedded S3's storage, what was written back to the vendor's server, and everything
 * printed, must hold none of them.
 */
const SECRET_VALUES = {
  apiUser: 'api-user-LEAKCHECK-1',
  apiPassword: 'api-password-LEAKCHECK-2',
  oauthKey: 'oauth-key-LEAKCHECK-3',
  oauthSecret: 'oauth-secret-LEAKCHECK-4',
  pgpPassphrase: 'pgp-passphrase-LEAKCHECK-5',
};

const work = mkdtempSync(join(tmpdir(), 'leak-'));
const gpg = new GnuPG();
let sshd: Sshd;
let sandbox: Sandbox;
beforeAll(async () => {
  sshd = await startSshd();
  sandbox = await startSandbox({
    users: [{ username: SECRET_VALUES.apiUser, password: SECRET_VALUES.apiPassword }],
    oauthClients: [{ key: SECRET_VALUES.oauthKey, secret: SECRET_VALUES.oauthSecret }],
    knownBadgeIds: [...KNOWN_BADGES],
  });
}, 60_000);
afterAll(async () => {
  await sandbox.close();
  await sshd.stop();
});

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

async function captured(argv: string[]): Promise<{ code: number; output: string }> {
  const { code, stdout, stderr } = await runCli(argv);
  return { code, output: stdout + stderr };
}

describe('Secrets', () => {
  it('appear in no output file, log, stored object, written-back file or printed line of a whole workflow', async () => {
    // Prepare: a passphrase-protected PGP key; a vendor file with some records the API refuses, encrypted to it and
    // left on the SFTP server; a second file for an OAuth dataflow.
    const key = gpg.generate('Brand <brand@leak.test>', 'curve25519', SECRET_VALUES.pgpPassphrase);
    const armoredKey = gpg.exportSecret(key, SECRET_VALUES.pgpPassphrase);
    const vendor = join(sshd.root, 'leak');
    for (const dir of ['in', 'done', 'errors']) {
      mkdirSync(join(vendor, dir), { recursive: true });
      chmodSync(join(vendor, dir), 0o777);
    }
    const plain = join(work, 'events_leak.csv');
    writeFileSync(plain, toCsv([validRow(1, 9_500_000), { ...validRow(2, 9_500_000), badge_code: UNKNOWN_BADGE }, { ...validRow(3, 9_500_000), member_id: 'N/A' }]));
    gpg.encrypt(plain, join(vendor, 'in', 'events_leak.csv.gpg'), { recipients: [key] });
    utimesSync(join(vendor, 'in', 'events_leak.csv.gpg'), new Date('2026-11-01'), new Date('2026-11-01'));
    const oauthFile = join(work, 'events_oauth.csv');
    writeFileSync(oauthFile, toCsv([validRow(1, 9_600_000), { ...validRow(2, 9_600_000), badge_code: UNKNOWN_BADGE }]));

    const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
    const destination = flow!.destination as Record<string, unknown>;
    const config = {
      dataflows: [
        {
          ...flow,
          name: 'leak-sftp',
          source: { type: 'sftp', host: '127.0.0.1', port: sshd.port, username: SFTP_USERS.password, passwordSecret: 'sftp/password', hostKeySha256: sshd.hostKeySha256, directory: join(vendor, 'in'), processedDirectory: join(vendor, 'done'), errorDirectory: join(vendor, 'errors'), filePattern: '^events_' },
          decrypt: { privateKeySecret: 'pgp/key', passphraseSecret: 'pgp/passphrase' },
        },
        { ...flow, name: 'leak-oauth', source: { type: 's3', prefix: 'inbox/leak-oauth/', filePattern: '^events_' }, destination: { ...destination, auth: { type: 'oauth', keySecret: 'oauth/key', secretSecret: 'oauth/secret' } } },
      ],
    };
    const configFile = join(work, 'config.json');
    writeFileSync(configFile, JSON.stringify(config));
    const secretsFile = join(work, 'secrets.json');
    writeFileSync(
      secretsFile,
      JSON.stringify({
        'api/user': SECRET_VALUES.apiUser,
        'api/password': SECRET_VALUES.apiPassword,
        'oauth/key': SECRET_VALUES.oauthKey,
        'oauth/secret': SECRET_VALUES.oauthSecret,
        'pgp/key': Buffer.from(armoredKey).toString('base64'),
        'pgp/passphrase': SECRET_VALUES.pgpPassphrase,
        'sftp/password': sshd.password,
      }),
    );
    const data = join(work, 'data');
    const out = join(work, 'out');
    const common = ['--config', configFile, '--secrets', secretsFile, '--api-url', sandbox.url, '--data', data];

    // Act: the SFTP dataflow pulled and run; the OAuth one run on a file; then again with its secret missing.
    const runs = [
      await captured(['run', ...common, '--dataflow', 'leak-sftp', '--out', join(out, 'sftp')]),
      await captured(['run', ...common, '--dataflow', 'leak-oauth', '--file', oauthFile, '--out', join(out, 'oauth')]),
    ];
    writeFileSync(secretsFile, JSON.stringify({ 'oauth/key': SECRET_VALUES.oauthKey }));
    runs.push(await captured(['run', ...common, '--dataflow', 'leak-oauth', '--file', oauthFile, '--force', '--out', join(out, 'missing2')]));

    // Assess: the runs did what they should, so the check below looked at real output.
    expect(runs.map((r) => r.code)).toEqual([3, 3, 1]);
    expect(runs[2]!.output).toContain('SECRET_NOT_FOUND');
    expect(readdirSync(join(vendor, 'errors')).length).toBe(2);
    expect(sandbox.tokensIssued.length).toBeGreaterThan(0);
    const needles: Record<string, string> = {
      ...SECRET_VALUES,
      apiPasswordMd5: createHash('md5').update(SECRET_VALUES.apiPassword).digest('hex'),
      apiBasicAuthorization: Buffer.from(`${SECRET_VALUES.apiUser}:${createHash('md5').update(SECRET_VALUES.apiPassword).digest('hex')}`).toString('base64'),
      sftpPassword: sshd.password,
      pgpKeyArmored: armoredKey.split('\n').find((line) => line.length >= 60)!,
      pgpKeyBase64: Buffer.from(armoredKey).toString('base64').slice(100, 160),
      ...Object.fromEntries(sandbox.tokensIssued.map((t, i) => [`oauthToken${i}`, t])),
    };
    const places: Array<[string, string]> = [
      ...runs.map((r, i): [string, string] => [`printed by run ${i + 1}`, r.output]),
      ...[...walk(out), ...walk(data), ...walk(join(vendor, 'errors'))].map((path): [string, string] => [path, readFileSync(path).toString('latin1')]),
    ];
    expect(places.length).toBeGreaterThan(20);
    const leaks = places.flatMap(([where, text]) => Object.entries(needles).filter(([, value]) => text.includes(value)).map(([name]) => `${name} in ${where}`));
    expect(leaks).toEqual([]);
  }, 120_000);
});
