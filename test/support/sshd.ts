import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where Debian's openssh-server puts the daemon. */
const SSHD = '/usr/sbin/sshd';
/** The two login users the tests use: one signs in with a password, the other with a key. */
export const SFTP_USERS = { password: 'badges-sftp-pw', key: 'badges-sftp-key' } as const;

export interface Sshd {
  port: number;
  /** The root the tests deliver into (world-writable, so both users can move files in it). */
  root: string;
  /** The host key's fingerprint, as `ssh-keygen -lf` prints it. */
  hostKeySha256: string;
  /** The host's public key line (`ssh-ed25519 AAAA… comment`). */
  hostPublicKey: string;
  password: string;
  /** OpenSSH private key of the key user, protected by `keyPassphrase`. */
  privateKey: string;
  keyPassphrase: string;
  /** The key user's second key, without a passphrase. */
  plainPrivateKey: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}: ${stderr()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`sshd did not listen on ${port}: ${stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function ensureUser(name: string, password: string): Promise<void> {
  const exists = await run('id', ['-u', name]).then(
    () => true,
    () => false,
  );
  if (!exists) await run('useradd', ['--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name]);
  const child = spawn('chpasswd');
  child.stdin.end(`${name}:${password}\n`);
  await new Promise<void>((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`chpasswd exited with ${code}`)))));
}

/**
 * A real OpenSSH server on a loopback port, serving SFTP only (internal-sftp), with a fresh host key, a password user
 * and a key user. It needs root (sshd authenticates system users) and Debian's openssh-server, which .ci/run installs.
 */
export async function startSshd(): Promise<Sshd> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: install Debian's openssh-server (.ci/run does)`);
  if (process.getuid?.() !== 0) throw new Error('The SFTP tests start sshd, which must run as root to sign users in');
  const dir = mkdtempSync(join(tmpdir(), 'badges-sshd-'));
  const root = join(dir, 'vendor');
  mkdirSync(root);
  chmodSync(dir, 0o755);
  chmodSync(root, 0o777);
  const password = `pw-${randomBytes(9).toString('base64url')}`;
  const keyPassphrase = `kp-${randomBytes(9).toString('base64url')}`;
  await ensureUser(SFTP_USERS.password, password);
  // The key user gets a random password nobody knows: only its keys sign it in.
  await ensureUser(SFTP_USERS.key, randomBytes(24).toString('base64url'));
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'badges-test-host', '-f', join(dir, 'host_ed25519')]);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', keyPassphrase, '-C', 'badges-test-user', '-f', join(dir, 'user_ed25519')]);
  await run('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-m', 'PEM', '-N', '', '-C', 'badges-test-user-plain', '-f', join(dir, 'user_rsa')]);
  const keys = join(dir, 'authorized_keys');
  mkdirSync(keys);
  writeFileSync(join(keys, SFTP_USERS.key), readFileSync(join(dir, 'user_ed25519.pub'), 'utf8') + readFileSync(join(dir, 'user_rsa.pub'), 'utf8'));
  const fingerprint = (await run('ssh-keygen', ['-lf', join(dir, 'host_ed25519.pub')])).stdout.split(' ')[1]!;
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_ed25519')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'UsePAM no',
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      `AuthorizedKeysFile ${keys}/%u`,
      'StrictModes no',
      'PermitRootLogin no',
      `AllowUsers ${SFTP_USERS.password} ${SFTP_USERS.key}`,
      'Subsystem sftp internal-sftp -u 0000',
      'ForceCommand internal-sftp -u 0000',
      'AllowTcpForwarding no',
      'X11Forwarding no',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  // The privilege-separation directory Debian's package expects (a container may not have it after a reboot).
  mkdirSync('/run/sshd', { recursive: true });
  const child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  await waitForPort(port, child, () => stderr);
  return {
    port,
    root,
    hostKeySha256: fingerprint,
    hostPublicKey: readFileSync(join(dir, 'host_ed25519.pub'), 'utf8').trim(),
    password,
    privateKey: readFileSync(join(dir, 'user_ed25519'), 'utf8'),
    keyPassphrase,
    plainPrivateKey: readFileSync(join(dir, 'user_rsa'), 'utf8'),
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
