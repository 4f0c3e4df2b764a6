import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configDocument } from './factories';

/**
 * The stack tests' configuration: three dataflows, two S3 drops (one without a schedule, decrypting with PGP, its
 * vendor uploading through the inbox's policy) and an SFTP poll, so that every kind of grant, trigger, alarm and
 * output the stack can make is in one synthesis.
 */
export function threeFlowsDocument(): Record<string, unknown> {
  const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
  const sftpSource = {
    type: 'sftp',
    host: 'sftp.vendor.example',
    username: 'brand',
    privateKeySecret: 'sftp/key',
    privateKeyPassphraseSecret: 'sftp/passphrase',
    hostKeySha256: 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s',
    directory: '/outgoing',
    processedDirectory: '/outgoing/done',
  };
  return {
    notifications: { email: ['ops@brand.example'] },
    dataflows: [
      { ...flow, alerts: { rejectedSharePercent: 2.5, retriesExhaustedPercent: 25, noFileWithinMinutes: 90 } },
      {
        ...flow,
        name: 'offline-event',
        // The vendor uploads itself, through the inbox's policy, and reads its outcomes back.
        source: { type: 's3', prefix: 'inbox/offline-event/', errorPrefix: 'results/offline-event/', vendorAccess: { principals: ['arn:aws:iam::111122223333:root', '444455556666'] } },
        schedule: undefined,
        decrypt: { privateKeySecret: 'pgp/key', passphraseSecret: 'pgp/passphrase' },
        destination: { ...(flow!.destination as object), auth: { type: 'basic', usernameSecret: 'other/user', passwordSecret: 'other/password' } },
      },
      { ...flow, name: 'vendor-sftp', source: sftpSource, schedule: { cron: '0/15 * * * ? *', timeZone: 'UTC' } },
    ],
  };
}

/** Writes a configuration document to a fresh temporary file (bundled with each Lambda) and returns its path. */
export function writeConfigFile(document: Record<string, unknown>): string {
  const file = join(mkdtempSync(join(tmpdir(), 'stack-')), 'config.json');
  writeFileSync(file, JSON.stringify(document));
  return file;
}
