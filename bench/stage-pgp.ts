/**
 * `npm run bench:stage:pgp`: the stage step on a GnuPG-encrypted file (decrypt, verify, parse, validate, stage),
 * bundled as the Lambda runs it, against `gpg --decrypt | mlr --icsv --ojsonl cat` on the same file in the same run.
 * Prints both times, their ratio (stage / baseline), and the stage's peak RSS per size.
 * Sizes: BENCH_ROWS="1000000" (default). Needs gpg and mlr (Debian: gnupg, miller).
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, createReadStream, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Upload } from '@aws-sdk/lib-storage';
import { LOCAL_BUCKETS, startLocalS3 } from '../src/local/s3';
import { generateEvents } from './generate';
import { buildStageWorker, stageProcessFlags } from './stage-process';

const gpgHome = mkdtempSync(join(tmpdir(), 'bench-gnupg-'));
chmodSync(gpgHome, 0o700);
const gpg = (args: string[]) => execFileSync('gpg', ['--homedir', gpgHome, '--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], { encoding: 'utf8' });

async function main() {
  const sizes = (process.env.BENCH_ROWS ?? '1000000').split(',').map(Number);
  const root = join(__dirname, '..');
  const dir = join(root, '.bench');
  mkdirSync(dir, { recursive: true });
  gpg(['--quick-gen-key', 'Bench <bench@bench.test>', 'ed25519', 'sign,cert', 'never']);
  const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(gpg(['--with-colons', '--list-keys', 'bench@bench.test']))![1]!;
  gpg(['--quick-add-key', fpr, 'cv25519', 'encr', 'never']);
  const example = JSON.parse(execFileSync('cat', [join(root, 'examples', 'config.json')], { encoding: 'utf8' })) as { dataflows: Array<Record<string, unknown>> };
  const configFile = join(dir, 'config-pgp.json');
  writeFileSync(configFile, JSON.stringify({ dataflows: [{ ...example.dataflows[0], source: { type: 's3', prefix: 'inbox/weekly-events/', filePattern: '^events_' }, decrypt: { privateKeySecret: 'pgp/key' } }] }));
  const secretsFile = join(dir, 'secrets-pgp.json');
  writeFileSync(secretsFile, JSON.stringify({ 'pgp/key': gpg(['--armor', '--export-secret-keys', fpr]) }));
  const worker = buildStageWorker(dir);

  const nodeFlags = stageProcessFlags(configFile);
  console.log(`stage process flags: ${nodeFlags.join(' ') || '(V8 defaults)'}`);
  const rss: Array<{ rows: number; mb: number }> = [];
  const s3 = await startLocalS3();
  try {
    for (const rows of sizes) {
      const plain = join(dir, `events_bench_${rows}.csv`);
      if (!existsSync(plain)) await generateEvents(plain, rows);
      const encrypted = join(dir, `events_bench_${rows}.csv.gpg`);
      gpg(['--trust-model', 'always', '--recipient', fpr, '--output', encrypted, '--encrypt', plain]);

      let started = process.hrtime.bigint();
      execFileSync('bash', ['-c', `gpg --homedir '${gpgHome}' --batch --quiet --decrypt '${encrypted}' | mlr --icsv --ojsonl cat > /dev/null`]);
      const baseline = Number(process.hrtime.bigint() - started) / 1e9;

      const key = `inbox/weekly-events/events_bench_${rows}.csv.gpg`;
      await new Upload({ client: s3.client, params: { Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: createReadStream(encrypted) } }).done();
      started = process.hrtime.bigint();
      // Asynchronous: the embedded S3 serving the worker runs in this process's event loop.
      const { stdout } = await promisify(execFile)(process.execPath, [...nodeFlags, worker, s3.endpoint, configFile, key, `pgp-${rows}-${Date.now()}`, secretsFile], { encoding: 'utf8' });
      const r = JSON.parse(stdout.trim().split('\n').pop()!) as { seconds: number; records: number; maxRssKb: number };
      rss.push({ rows, mb: r.maxRssKb / 1024 });
      console.log(
        `${String(rows).padStart(9)} rows  stage ${r.seconds.toFixed(2)} s  gpg|mlr ${baseline.toFixed(2)} s  ratio ${(r.seconds / baseline).toFixed(2)} (target <= 1.0)  stage peak RSS ${(r.maxRssKb / 1024).toFixed(0)} MB  (${r.records} records)`,
      );
    }
    if (rss.length > 1) {
      const [first, last] = [rss[0]!, rss[rss.length - 1]!];
      const ratio = last.mb / first.mb;
      console.log(
        `peak RSS ${last.rows}/${first.rows} rows: ratio ${ratio.toFixed(2)} (target within 10%: ${Math.abs(ratio - 1) <= 0.1 ? 'met' : 'not met'}); largest ${Math.max(...rss.map((x) => x.mb)).toFixed(0)} MB (target < 256 MB)`,
      );
    }
  } finally {
    await s3.close();
  }
}
void main();
