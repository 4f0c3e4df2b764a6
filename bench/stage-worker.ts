// Runs the stage step once in its own process, so that its peak RSS is the step's alone (the embedded S3 runs in the parent).
import { S3Client } from '@aws-sdk/client-s3';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { loadConfig } from '../src/config/load';
import { LOCAL_BUCKETS } from '../src/local/s3';
import { silentLog } from '../src/steps/deps';
import { stageFile } from '../src/steps/stage';

async function main() {
  const [endpoint, configFile, key, runId, secretsFile] = process.argv.slice(2) as [string, string, string, string, string | undefined];
  const s3 = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  const config = loadConfig(configFile);
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const output = await stageFile(
    { input: { dataflow: config.dataflows[0]!.name, bucket: LOCAL_BUCKETS.inbox, key }, runId, startedAt: new Date().toISOString() },
    { config, s3, buckets: LOCAL_BUCKETS, secrets: secretsFile ? StaticSecretsProvider.fromFile(secretsFile) : new StaticSecretsProvider({}), log: silentLog, now: () => Date.UTC(2026, 10, 27) },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  // CPU time (user + system) of the step alone: the embedded S3 runs in the parent, and a shared machine's other load
  // stretches wall time far more than it does this.
  const used = process.cpuUsage(cpu);
  const cpuSeconds = (used.user + used.system) / 1e6;
  process.stdout.write(`${JSON.stringify({ seconds, cpuSeconds, records: output.records, rejected: output.rejected, chunks: output.chunkCount, maxRssKb: process.resourceUsage().maxRSS })}\n`);
}
void main();
