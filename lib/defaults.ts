import * as path from 'node:path';
import { type Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Architecture, LoggingFormat, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { BlockPublicAccess, Bucket, BucketEncryption, type BucketProps, type IBucket, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { BUNDLED_CONFIG_FILE, ENV, METRICS, SERVICE_NAME, type StepName } from '../src/contracts';

const PROJECT_ROOT = path.join(__dirname, '..');

/**
 * The Lambdas are bundled as CommonJS, where `import.meta.url` is undefined; openpgp's Node build calls
 * `createRequire(import.meta.url)` when it loads. The banner gives the bundle its own file URL and `define` points
 * `import.meta.url` at it. Shared by the stack and by the tests and benchmarks that bundle the same code.
 */
export const CJS_BUNDLE_SHIMS = {
  banner: "const __bundle_import_meta_url = require('url').pathToFileURL(__filename).href;",
  define: { 'import.meta.url': '__bundle_import_meta_url' },
} as const;

/**
 * Left out of every bundle: the AWS SDK (the runtime has it) and ssh2's optional native add-ons (cpu-features and its
 * own crypto binding), which it loads inside try/catch and replaces with pure JavaScript when they are absent. Their
 * install scripts are not approved (package.json allowScripts), so they are never built here either.
 */
export const BUNDLE_EXTERNALS = ['@aws-sdk/*', 'cpu-features', '*.node'];

/**
 * V8 heap settings of the stage function. Left alone, V8 sizes its heap for the function's 1769 MB and collects
 * lazily, so a stage whose live data stays under 64 MB peaks near 400 MB RSS. A bounded young generation (16 MB
 * semi-spaces: 8 MB made the stage 40% slower, 32 MB grew it by 30 MB) and an old generation sized to what the stage can hold at once keep its footprint flat and small: a base
 * of 128 MB plus room for the chunks it may hold (the one being filled, the joined body, and those in flight), at up to
 * 2 KB a staged record, so a large `recordsPerWorker` raises the limit rather than running out of heap.
 */
export function stageNodeOptions(recordsPerWorker: number, memorySizeMb: number): string {
  const chunksHeld = 4 + 3;
  const oldSpaceMb = Math.min(memorySizeMb - 256, 128 + Math.ceil((chunksHeld * recordsPerWorker * 2048) / 1024 ** 2));
  return `--max-semi-space-size=16 --max-old-space-size=${oldSpaceMb}`;
}

export interface StepFunctionProps {
  step: StepName;
  /** Absolute path of the configuration file bundled next to the handler. */
  configFile: string;
  environment: Record<string, string>;
  timeout: Duration;
  /** @default 512 */
  memorySize?: number;
  /** Added to NODE_OPTIONS. */
  nodeOptions?: string;
}

/** Every Lambda of the stack: Node.js 24 on arm64, JSON logs (Powertools), X-Ray, the config file bundled with the code. */
export class StepFunction extends NodejsFunction {
  constructor(scope: Construct, id: string, props: StepFunctionProps) {
    super(scope, id, {
      entry: path.join(PROJECT_ROOT, 'lambdas', `${props.step}.ts`),
      // Pinned, so that synthesis works from any working directory (the CLI synthesizes wherever it is run).
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
      handler: 'handler',
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout,
      tracing: Tracing.ACTIVE,
      loggingFormat: LoggingFormat.JSON,
      logGroup: new LogGroup(scope, `${id}Logs`, { retention: RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY }),
      environment: {
        [ENV.step]: props.step,
        POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
        POWERTOOLS_METRICS_NAMESPACE: METRICS.namespace,
        NODE_OPTIONS: ['--enable-source-maps', props.nodeOptions].filter(Boolean).join(' '),
        ...props.environment,
      },
      bundling: {
        target: 'node24',
        format: OutputFormat.CJS,
        minify: true,
        // Error class names are Step Functions' ErrorEquals values and the report's codes: minified, every named error
        // would reach the state machine as "vs" and every FAILED file would say INTERNAL_ERROR.
        keepNames: true,
        sourceMap: true,
        externalModules: BUNDLE_EXTERNALS,
        banner: CJS_BUNDLE_SHIMS.banner,
        define: { ...CJS_BUNDLE_SHIMS.define },
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (_input: string, output: string) => [`cp "${props.configFile}" "${path.join(output, BUNDLED_CONFIG_FILE)}"`],
        },
      },
    });
  }
}

/** Every bucket of the stack: encrypted, TLS only, never public, access-logged, kept when the stack goes. */
export function houseBucket(scope: Construct, id: string, accessLogs: IBucket | undefined, props: BucketProps = {}): Bucket {
  return new Bucket(scope, id, {
    encryption: BucketEncryption.S3_MANAGED,
    enforceSSL: true,
    blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
    objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
    removalPolicy: RemovalPolicy.RETAIN,
    ...(accessLogs ? { serverAccessLogsBucket: accessLogs, serverAccessLogsPrefix: `${id}/` } : {}),
    ...props,
  });
}
