/**
 * `npm run bench:stage:pgp` (and the second half of `npm run bench:stage`): issue 13's staging target. A generated
 * file (bench/generate.ts) is GnuPG-encrypted and put in the embedded S3; then, alternately BENCH_REPEAT times (default
 * 3), `gpg --decrypt FILE | mlr --icsv --ojsonl cat > /dev/null` and the staging pipeline: prepare (decrypt, verify,
 * scan, plan) → range workers → settle workers → finish, each phase a process running the stage bundled as deployed,
 * the Maps' workers two at a time (BENCH_PARALLEL; this machine's two cores, as parallel Lambdas would use them). The
 * staging time runs from the object in S3 until finish returns. Prints, per size, the fastest of each and their ratio
 * (target ≤ 1.0), the peak RSS of every worker by phase (target ≤ 256 MB), the staged objects and the S3 requests; then
 * the per-worker peak RSS ratio between the largest and the smallest size (target within 10%).
 *
 * Sizes: BENCH_ROWS="1000000,5000000" (default). BENCH_DRY=1: no baseline, one run per size (for BENCH_ROWS=50000000:
 * time, peak RSS per worker, S3 objects and requests). Needs gpg and mlr (Debian: gnupg, miller).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Upload } from '@aws-sdk/lib-storage';
import { LOCAL_BUCKETS } from '../src/local/s3';
import { generateEvents } from './generate';
import { buildStageWorker, stageProcessFlags } from './stage-process';
import { type PipelineRun, countStagedObjects, describePhases, describeWorkers, runPipeline, startCountingS3, warmWorkersFor } from './stage-pipeline';

const root = join(__dirname, '..');
const dir = join(root, '.bench');
// Kept between runs with the bench's key: an encrypted file is made again only when its plaintext is newer.
const gpgHome = join(dir, 'gnupg');
const gpg = (args: string[]) => execFileSync('gpg', ['--homedir', gpgHome, '--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], { encoding: 'utf8' });

/** The bench's key pair (made once): its fingerprint, for encrypting. */
function benchKey(): string {
  mkdirSync(gpgHome, { recursive: true });
  chmodSync(gpgHome, 0o700);
  const find = () => /^fpr:+([0-9A-F]{40}):/m.exec(gpg(['--with-colons', '--list-secret-keys']))?.[1];
  let fpr = find();
  if (!fpr) {
    gpg(['--quick-gen-key', 'Bench <bench@bench.test>', 'ed25519', 'sign,cert', 'never']);
    fpr = find()!;
    gpg(['--quick-add-key', fpr, 'cv25519', 'encr', 'never']);
  }
  return fpr;
}

/** The generated file of `rows` records, GnuPG-encrypted (both kept in .bench/). */
async function encryptedFile(rows: number, fpr: string): Promise<{ plain: string; encrypted: string }> {
  const plain = join(dir, `events_bench_${rows}.csv`);
  if (!existsSync(plain)) await generateEvents(plain, rows);
  const encrypted = join(dir, `events_bench_${rows}.csv.gpg`);
  if (!existsSync(encrypted) || statSync(encrypted).mtimeMs < statSync(plain).mtimeMs) {
    gpg(['--trust-model', 'always', '--recipient', fpr, '--output', encrypted, '--encrypt', plain]);
  }
  return { plain, encrypted };
}

function baseline(encrypted: string): number {
  const started = process.hrtime.bigint();
  execFileSync('bash', ['-c', `set -o pipefail; gpg --homedir '${gpgHome}' --batch --quiet --decrypt '${encrypted}' | mlr --icsv --ojsonl cat > /dev/null`]);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

interface SizeResult {
  rows: number;
  /** Peak RSS of the largest worker of each phase (MB), over every run of this size. */
  rssByPhase: Record<string, number>;
}

async function main() {
  const sizes = (process.env.BENCH_ROWS ?? '1000000,5000000').split(',').map(Number);
  const dry = process.env.BENCH_DRY === '1';
  const repeat = dry ? 1 : Number(process.env.BENCH_REPEAT ?? 3);
  const parallel = Number(process.env.BENCH_PARALLEL ?? 2);
  mkdirSync(dir, { recursive: true });
  const fpr = benchKey();
  const example = JSON.parse(readFileSync(join(root, 'examples', 'config.json'), 'utf8')) as { dataflows: Array<Record<string, unknown>> };
  const configFile = join(dir, 'config-pgp.json');
  writeFileSync(configFile, JSON.stringify({ dataflows: [{ ...example.dataflows[0], source: { type: 's3', prefix: 'inbox/weekly-events/', filePattern: '^events_' }, decrypt: { privateKeySecret: 'pgp/key' } }] }));
  const secretsFile = join(dir, 'secrets-pgp.json');
  writeFileSync(secretsFile, JSON.stringify({ 'pgp/key': gpg(['--armor', '--export-secret-keys', fpr]) }));
  const worker = buildStageWorker(dir);
  const nodeFlags = stageProcessFlags(configFile);
  console.log(`stage process flags: ${nodeFlags.join(' ') || '(V8 defaults)'}; Map workers ${parallel} at a time; ${dry ? 'dry: one run, no baseline' : `fastest of ${repeat}, alternately`}`);
  const results: SizeResult[] = [];
  const { s3, requests } = await startCountingS3();
  try {
    for (const rows of sizes) {
      const { encrypted } = await encryptedFile(rows, fpr);
      const key = `inbox/weekly-events/events_bench_${rows}.csv.gpg`;
      await new Upload({ client: s3.client, params: { Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: createReadStream(encrypted) } }).done();
      let fastest: PipelineRun | undefined;
      let fastestBaseline = Infinity;
      let counted: Map<string, number> | undefined;
      const rssByPhase: Record<string, number> = {};
      for (let i = 0; i < repeat; i++) {
        // Each goes first every other time: the first of a pair meets a machine that may have been idle.
        if (!dry && i % 2 === 1) fastestBaseline = Math.min(fastestBaseline, baseline(encrypted));
        const before = new Map(requests);
        const serverCpu = process.cpuUsage();
        const run = await runPipeline({ s3, worker, nodeFlags, configFile, secretsFile, key, runId: `pgp-${rows}-${Date.now()}`, parallel, warm: warmWorkersFor(statSync(encrypted).size * 2, rows) });
        const s3Cpu = process.cpuUsage(serverCpu);
        if (!dry && i % 2 === 0) fastestBaseline = Math.min(fastestBaseline, baseline(encrypted));
        for (const w of run.workers) rssByPhase[w.phase] = Math.max(rssByPhase[w.phase] ?? 0, w.maxRssKb / 1024);
        console.log(`  run ${i + 1}: staging ${run.seconds.toFixed(2)} s (embedded S3, in this process: CPU ${((s3Cpu.user + s3Cpu.system) / 1e6).toFixed(2)} s)`);
        if (!fastest || run.seconds < fastest.seconds) {
          fastest = run;
          counted = new Map([...requests].map(([action, n]) => [action, n - (before.get(action) ?? 0)]));
        }
      }
      const run = fastest!;
      const staged = await countStagedObjects(s3, run.output.runId);
      const mb = statSync(encrypted).size / 1e6;
      const ratio = dry ? '' : `  gpg|mlr ${fastestBaseline.toFixed(2)} s  ratio ${(run.seconds / fastestBaseline).toFixed(2)} (target <= 1.0)`;
      console.log(`${String(rows).padStart(9)} rows (${mb.toFixed(0)} MB encrypted)  staging ${run.seconds.toFixed(2)} s${ratio}  (${run.output.records} records, ${run.output.rejected} rejected, ${run.output.chunkCount} chunks)`);
      for (const line of describeWorkers(run.workers)) console.log(line);
      console.log(describePhases(run));
      const total = [...counted!.values()].reduce((a, b) => a + b, 0);
      console.log(`    S3: ${staged.objects} objects staged (${(staged.bytes / 1e6).toFixed(0)} MB); ${total} requests: ${[...counted!].filter(([, n]) => n > 0).map(([a, n]) => `${a.replace('s3:', '')} ${n}`).join(', ')}`);
      console.log(`    peak RSS of any worker ${Math.max(...Object.values(rssByPhase)).toFixed(0)} MB (target <= 256 MB)`);
      results.push({ rows, rssByPhase });
    }
    if (results.length > 1) {
      const [first, last] = [results[0]!, results[results.length - 1]!];
      const phases = Object.keys(last.rssByPhase).filter((p) => first.rssByPhase[p] !== undefined);
      const ratios = phases.map((p) => `${p} ${(last.rssByPhase[p]! / first.rssByPhase[p]!).toFixed(2)}`);
      const worst = Math.max(...Object.values(last.rssByPhase)) / Math.max(...Object.values(first.rssByPhase));
      console.log(`per-worker peak RSS ${last.rows}/${first.rows} rows: ${ratios.join(', ')}; largest worker ${worst.toFixed(2)} (target within 10%: ${Math.abs(worst - 1) <= 0.1 ? 'met' : 'not met'})`);
    }
  } finally {
    await s3.close();
  }
}
void main();
