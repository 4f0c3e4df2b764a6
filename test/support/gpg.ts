import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Compression = 'zlib' | 'zip' | 'bzip2' | 'none';

/** Real GnuPG in a home directory of its own, for files made the way vendors make them. */
export class GnuPG {
  readonly home = mkdtempSync(join(tmpdir(), 'gnupg-'));

  constructor() {
    chmodSync(this.home, 0o700);
  }

  run(args: string[], passphrase = ''): string {
    return execFileSync('gpg', ['--homedir', this.home, '--batch', '--yes', '--no-tty', '--pinentry-mode', 'loopback', '--passphrase', passphrase, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  /** Makes a key (RSA or Curve25519) with an encryption subkey; returns its fingerprint. */
  generate(uid: string, kind: 'rsa' | 'curve25519', passphrase = ''): string {
    const [primary, sub] = kind === 'rsa' ? ['rsa2048', 'rsa2048'] : ['ed25519', 'cv25519'];
    this.run(['--quick-gen-key', uid, primary, 'sign,cert', 'never'], passphrase);
    const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(this.run(['--with-colons', '--list-keys', uid]))![1]!;
    this.run(['--quick-add-key', fingerprint, sub, 'encr', 'never'], passphrase);
    return fingerprint;
  }

  exportSecret(fingerprint: string, passphrase = ''): string {
    return this.run(['--armor', '--export-secret-keys', fingerprint], passphrase);
  }

  exportPublic(fingerprint: string): string {
    return this.run(['--armor', '--export', fingerprint]);
  }

  encrypt(input: string, output: string, options: { recipients: string[]; armor?: boolean; compress?: Compression; signWith?: string; passphrase?: string }): void {
    const args = ['--trust-model', 'always', '--output', output, '--compress-algo', options.compress ?? 'zlib'];
    for (const r of options.recipients) args.push('--recipient', r);
    if (options.armor) args.push('--armor');
    if (options.signWith) args.push('--local-user', options.signWith, '--sign');
    this.run([...args, '--encrypt', input], options.passphrase ?? '');
  }
}
