import * as path from 'node:path';
import { type Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Architecture, LoggingFormat, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { BlockPublicAccess, Bucket, BucketEncryption, type BucketProps, type IBucket, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { BUNDLED_CONFIG_FILE, ENV, type StepName } from '../src/contracts';

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

export interface StepFunctionProps {
  step: StepName;
  /** Absolute path of the configuration file bundled next to the handler. */
  configFile: string;
  environment: Record<string, string>;
  timeout: Duration;
  /** @default 512 */
  memorySize?: number;
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
        POWERTOOLS_SERVICE_NAME: 'badges-import',
        NODE_OPTIONS: '--enable-source-maps',
        ...props.environment,
      },
      bundling: {
        target: 'node24',
        format: OutputFormat.CJS,
        minify: true,
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
