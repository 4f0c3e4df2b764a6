// Runs the stage step once in its own process (as bench/stage-worker.ts does) and prints, besides time and peak RSS,
// the rejections by code from the staged summary, so the benchmark can tell DUPLICATE_IN_FILE from other rejections.
import { S3Client } from '@aws-sdk/client-s3';
import { readJson } from '../src/aws/s3';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { loadConfig } from '../src/config/load';
import type { StageSummary } from '../src/contracts';
import { LOCAL_BUCKETS } from '../src/local/s3';
import { silentLog } from '../src/steps/deps';
import { stageFile } from '../src/steps/stage';

async function main() {
  const [endpoint, configFile, key, runId] = process.argv.slice(2) as [string, string, string, string];
  const s3 = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  const config = loadConfig(configFile);
  const started = process.hrtime.bigint();
  const output = await stageFile(
    { input: { dataflow: config.dataflows[0]!.name, bucket: LOCAL_BUCKETS.inbox, key }, runId, startedAt: new Date().toISOString() },
    { config, s3, buckets: LOCAL_BUCKETS, secrets: new StaticSecretsProvider({}), log: silentLog, now: () => Date.UTC(2026, 10, 27) },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const summary = await readJson<StageSummary>(s3, LOCAL_BUCKETS.staging, output.summaryKey);
  process.stdout.write(
    `${JSON.stringify({ seconds, records: output.records, valid: output.valid, rejected: output.rejected, rejectionsByCode: summary?.rejectionsByCode ?? {}, maxRssKb: process.resourceUsage().maxRSS })}\n`,
  );
}
main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}\n`);
  process.exit(2);
});
