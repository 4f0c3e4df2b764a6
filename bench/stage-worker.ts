// One phase of the stage (one Lambda invocation) in a process of its own, so that its peak RSS is the phase's alone
// (the embedded S3 runs in the parent). Arguments: S3 endpoint, configuration file, secrets file ('' for none), and
// the event file (JSON). Forked with an IPC channel and no event file, it loads and then waits for its one event as
// a message (a warm Lambda: the bench starts these before its clock), and answers with its report.
import { readFileSync } from 'node:fs';
import { S3Client } from '@aws-sdk/client-s3';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { loadConfig } from '../src/config/load';
import type { StageEvent } from '../src/contracts';
import { LOCAL_BUCKETS } from '../src/local/s3';
import { silentLog } from '../src/steps/deps';
import { stage } from '../src/steps/stage';

const [endpoint, configFile, secretsFile, eventFile] = process.argv.slice(2) as [string, string, string, string | undefined];

async function run(event: StageEvent) {
  const s3 = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  const config = loadConfig(configFile);
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const output = await stage(event, {
    config,
    s3,
    buckets: LOCAL_BUCKETS,
    secrets: secretsFile ? StaticSecretsProvider.fromFile(secretsFile) : new StaticSecretsProvider({}),
    log: silentLog,
    now: () => Date.UTC(2026, 10, 27),
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  // CPU time (user + system) of the phase alone: the embedded S3 runs in the parent, and a shared machine's other
  // load stretches wall time far more than it does this.
  const used = process.cpuUsage(cpu);
  return { output, seconds, cpuSeconds: (used.user + used.system) / 1e6, maxRssKb: peakRssKb() };
}

/**
 * This process's peak RSS: VmHWM on Linux (getrusage's maxRSS of a spawned child can carry its parent's peak across
 * the spawn, as i13-dups found), else maxRSS.
 */
function peakRssKb(): number {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (hwm) return Number(hwm);
  } catch {
    // Not Linux: maxRSS below.
  }
  return process.resourceUsage().maxRSS;
}

if (eventFile) {
  void run(JSON.parse(readFileSync(eventFile, 'utf8')) as StageEvent).then((report) => process.stdout.write(`${JSON.stringify(report)}\n`));
} else {
  process.once('message', (event: StageEvent) => {
    void run(event).then(
      (report) => process.send!(report, () => process.disconnect()),
      (error: unknown) => process.send!({ error: String((error as Error).stack ?? error) }, () => process.disconnect()),
    );
  });
  process.send!('ready');
}
