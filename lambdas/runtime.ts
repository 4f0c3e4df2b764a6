import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { Logger } from '@aws-lambda-powertools/logger';
import { SNSClient } from '@aws-sdk/client-sns';
import { SERVICE_NAME, powertoolsMetrics, snsNotifier } from '../src/aws/metrics';
import { SecretsManagerProvider } from '../src/aws/secrets';
import { parseConfig } from '../src/config/load';
import { BUNDLED_CONFIG_FILE, ENV } from '../src/contracts';
import { type ProgressEvent, type StepDeps, newContainerState } from '../src/steps/deps';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`Environment variable ${name} is not set`);
  return value;
}

/** Built once per container: configuration (validated again at run time), clients, logger. */
export function lambdaDeps(): StepDeps {
  const file = process.env[ENV.configFile] ?? join(__dirname, BUNDLED_CONFIG_FILE);
  const topicArn = process.env[ENV.alertsTopicArn];
  return {
    config: parseConfig(JSON.parse(readFileSync(file, 'utf8'))),
    s3: new S3Client({}),
    buckets: {
      inbox: required(ENV.inboxBucket),
      staging: required(ENV.stagingBucket),
      deadLetter: required(ENV.deadLetterBucket),
      reports: required(ENV.reportsBucket),
    },
    secrets: new SecretsManagerProvider(),
    log: new Logger({ serviceName: SERVICE_NAME }),
    metrics: powertoolsMetrics(),
    ...(topicArn ? { notify: snsNotifier(new SNSClient({}), topicArn) } : {}),
    // Local twin only (src/local/lambda.ts forks each container with an IPC channel): progress for the CLI's bar.
    ...(process.env.BADGES_TWIN_BUNDLE && process.send ? { progress: (event: ProgressEvent) => void process.send!({ type: 'progress', event }) } : {}),
    // Built once per container, so it is this container's state across invocations.
    container: newContainerState(),
  };
}
