import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import type { Buckets, StepName } from '../contracts';
import { ENV, STEPS } from '../contracts';
import { ERROR_CODES } from '../codes';
import { BadgesImportError } from '../errors';

/** The account, region and partition the twin plays. */
export const LOCAL_ACCOUNT = '000000000000';
export const LOCAL_REGION = 'us-east-1';

/** A CloudFormation template, as far as the twin reads it. */
export interface Template {
  Resources: Record<string, { Type: string; Properties?: Record<string, any> }>;
}

/** A Lambda function as the synthesized stack deploys it, with its tokens resolved to the twin's names. */
export interface LambdaFunctionSpec {
  /** Logical ID in the template (also the function's local name). */
  logicalId: string;
  step: StepName;
  /** The bundle's directory (cdk.out `asset.<hash>`): `index.js`, its source map, and the bundled configuration. */
  codeDir: string;
  /** `index.handler` */
  handler: string;
  /** The function's environment, tokens resolved (NODE_OPTIONS included). */
  environment: Record<string, string>;
  memorySize: number;
  timeoutSeconds: number;
  /** Logical ID of the function's execution role. */
  role: string;
}

/** What the twin takes from one synthesis of the stack with its Lambda bundles. */
export interface SynthesizedStack {
  /** Names this synthesis among others (the sources, the configuration and the transform): keys of its roles use it. */
  id: string;
  /** The cloud assembly directory (kept in the cache: the bundles live there). */
  outdir: string;
  template: Template;
  /** Local names of the template's resources, to resolve tokens with. */
  names: LocalNames;
}

/** How the twin names the stack's resources. */
export interface LocalNames {
  /** Bucket logical ID → local bucket name. */
  buckets: Record<string, string>;
}

/**
 * A named change to the synthesized template (a test removes a grant to see a run fail as in AWS). It changes the
 * twin's copy of the template only, never the bundles, so one synthesis serves a stack with and without it; the name
 * keys the twin's memo and its roles' keys.
 */
export interface TemplateTransform {
  name: string;
  apply: (template: Template) => Template;
}

export interface SynthesizeOptions {
  transform?: TemplateTransform;
}

/** `cdk synth` failed: the CDK app's output says why (a cdk-nag finding, an invalid configuration, a bundling error). */
export class SynthesisError extends BadgesImportError {
  static override readonly code = ERROR_CODES.SYNTHESIS_FAILED;
}

const PROJECT_ROOT = join(__dirname, '..', '..');
/** The CDK app `cdk synth` runs (cdk.json's "app"). */
const CDK_APP = join(PROJECT_ROOT, 'bin', 'app.ts');
/** The stack's name in the assembly (bin/app.ts's default). */
const STACK_NAME = 'BadgesImport';
/** Files whose content changes what synthesis and bundling produce (the local runner and the CLI are in no bundle). */
const SOURCE_DIRS = ['bin', 'lambdas', 'lib', 'src'];
const NOT_BUNDLED = [join('src', 'local'), join('src', 'cli')];

function fingerprint(configFile: string): string {
  const hash = createHash('sha256').update(readFileSync(configFile));
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!NOT_BUNDLED.includes(relative(PROJECT_ROOT, path))) walk(path);
      }
      else if (entry.name.endsWith('.ts') || entry.name.endsWith('.json')) hash.update(relative(PROJECT_ROOT, path)).update(readFileSync(path));
    }
  };
  for (const dir of SOURCE_DIRS) walk(join(PROJECT_ROOT, dir));
  for (const file of ['package-lock.json']) if (existsSync(join(PROJECT_ROOT, file))) hash.update(readFileSync(join(PROJECT_ROOT, file)));
  return hash.digest('hex').slice(0, 16);
}

/** Where synthesized stacks are kept between runs (and between processes: jest workers share it). */
export function twinCacheDir(): string {
  return process.env.BADGES_TWIN_CACHE ?? join(tmpdir(), 'badges-twin-cache');
}

const memo = new Map<string, SynthesizedStack>();

/**
 * The stack as `cdk synth` makes it: the CDK app (bin/app.ts, cdk-nag included) run in a child process that writes the
 * cloud assembly, Lambda bundles and all (local esbuild, no Docker). The assembly is cached, keyed by the configuration
 * file's content and the sources: a synthesis with bundling takes seconds, a cached one a directory listing. The twin
 * reads everything from it: the bundles, the state machine definition, the IAM, the triggers.
 */
export function synthesizeStack(configFile: string, localBuckets: Buckets, options: SynthesizeOptions = {}): SynthesizedStack {
  const key = fingerprint(configFile);
  const transform = options.transform;
  const memoKey = transform ? `${key}+${transform.name}` : key;
  const cached = memo.get(memoKey);
  if (cached) return cached;
  const outdir = join(twinCacheDir(), key);
  if (!existsSync(join(outdir, `${STACK_NAME}.template.json`))) cacheAssembly(configFile, key, outdir);
  const synthesized = JSON.parse(readFileSync(join(outdir, `${STACK_NAME}.template.json`), 'utf8')) as Template;
  const template = transform ? transform.apply(structuredClone(synthesized)) : synthesized;
  const id = transform ? createHash('sha256').update(memoKey).digest('hex').slice(0, 16) : key;
  const stack = { id, outdir, template, names: localNames(template, localBuckets) };
  memo.set(memoKey, stack);
  return stack;
}

/** Synthesizes into a directory of its own, then renames it into the cache: a reader never sees half an assembly. */
function cacheAssembly(configFile: string, key: string, outdir: string): void {
  mkdirSync(twinCacheDir(), { recursive: true });
  const building = mkdtempSync(join(twinCacheDir(), `${key}-building-`));
  try {
    cdkSynth(resolve(configFile), building);
    try {
      renameSync(building, outdir);
    } catch {
      // Another process synthesized the same stack meanwhile: theirs is as good.
    }
  } finally {
    rmSync(building, { recursive: true, force: true });
  }
}

/**
 * Runs the CDK app as the CDK CLI does: `CDK_OUTDIR` makes the App synthesize on exit, `CDK_CONTEXT_JSON` carries the
 * context (`-c badgesImport:config=…`). Its output (esbuild's report of each bundle) is shown only when it fails. As
 * the CLI, it fails on an error annotation in the assembly (cdk-nag's findings are errors).
 */
function cdkSynth(configFile: string, outdir: string): void {
  const child = spawnSync(process.execPath, ['--require', require.resolve('tsx/cjs'), CDK_APP], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, CDK_OUTDIR: outdir, CDK_CONTEXT_JSON: JSON.stringify({ 'badgesImport:config': configFile }) },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = `${child.stdout ?? ''}${child.stderr ?? ''}`.trim();
  if (child.error) throw new SynthesisError(`The CDK app ${relative(PROJECT_ROOT, CDK_APP)} could not run: ${child.error.message}`);
  if (child.status !== 0) throw new SynthesisError(`The CDK app ${relative(PROJECT_ROOT, CDK_APP)} failed (exit ${child.status ?? child.signal}) for ${configFile}:\n${output}`);
  const errors = assemblyErrors(outdir);
  if (errors.length > 0) throw new SynthesisError(`The synthesized stack has errors (cdk synth would refuse it) for ${configFile}:\n${errors.map((e) => `  ${e}`).join('\n')}`);
  if (!existsSync(join(outdir, `${STACK_NAME}.template.json`))) throw new SynthesisError(`The CDK app wrote no ${STACK_NAME}.template.json for ${configFile}:\n${output}`);
}

/** The error annotations (`aws:cdk:error`) of the assembly's artifacts, as the CDK CLI reports them. */
function assemblyErrors(outdir: string): string[] {
  type Metadata = Record<string, Array<{ type: string; data: unknown }>>;
  const read = <T>(file: string): T | undefined => (existsSync(join(outdir, file)) ? (JSON.parse(readFileSync(join(outdir, file), 'utf8')) as T) : undefined);
  const manifest = read<{ artifacts?: Record<string, { metadata?: Metadata; additionalMetadataFile?: string }> }>('manifest.json');
  const errors: string[] = [];
  for (const artifact of Object.values(manifest?.artifacts ?? {})) {
    // A large stack's metadata is in a file of its own.
    const metadata = { ...artifact.metadata, ...(artifact.additionalMetadataFile ? read<Metadata>(artifact.additionalMetadataFile) : {}) };
    for (const [path, entries] of Object.entries(metadata)) {
      for (const entry of entries) if (entry.type === 'aws:cdk:error') errors.push(`${path}: ${String(entry.data)}`);
    }
  }
  return errors;
}

function localNames(template: Template, localBuckets: Buckets): LocalNames {
  const roleOfEnv: Record<string, keyof Buckets> = {
    [ENV.inboxBucket]: 'inbox',
    [ENV.stagingBucket]: 'staging',
    [ENV.deadLetterBucket]: 'deadLetter',
    [ENV.reportsBucket]: 'reports',
  };
  const buckets: Record<string, string> = {};
  for (const [id, resource] of Object.entries(template.Resources)) {
    if (resource.Type === 'AWS::S3::Bucket') buckets[id] ??= id.replace(/[A-F0-9]{8}$/, '').toLowerCase();
    if (resource.Type !== 'AWS::Lambda::Function') continue;
    for (const [name, value] of Object.entries((resource.Properties?.Environment?.Variables ?? {}) as Record<string, unknown>)) {
      const role = roleOfEnv[name];
      const ref = (value as { Ref?: string } | null)?.Ref;
      if (role && ref) buckets[ref] = localBuckets[role];
    }
  }
  return { buckets };
}

/** The twin's ARN of a secret, as Secrets Manager makes one: the name and a random six-character suffix. */
export function localSecretArn(name: string): string {
  const suffix = createHash('sha256').update(name).digest('base64').replace(/[^A-Za-z]/g, '').slice(0, 6).padEnd(6, 'x');
  return `arn:aws:secretsmanager:${LOCAL_REGION}:${LOCAL_ACCOUNT}:secret:${name}-${suffix}`;
}

/** The twin's ARN of a Lambda function (named by its logical ID). */
export const localFunctionArn = (logicalId: string) => `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT}:function:${logicalId}`;

/**
 * Resolves CloudFormation intrinsic functions to the twin's values: bucket names and ARNs, the state machine's and the
 * topic's ARNs, partition, region and account. An unknown reference is an error, not a silent blank.
 */
export function resolveTokens(value: unknown, stack: Pick<SynthesizedStack, 'template' | 'names'>): unknown {
  const { template, names } = stack;
  const type = (id: string) => template.Resources[id]?.Type;
  const ref = (id: string): string => {
    if (id === 'AWS::Partition') return 'aws';
    if (id === 'AWS::Region') return LOCAL_REGION;
    if (id === 'AWS::AccountId') return LOCAL_ACCOUNT;
    if (id === 'AWS::URLSuffix') return 'amazonaws.com';
    if (names.buckets[id]) return names.buckets[id];
    switch (type(id)) {
      case 'AWS::StepFunctions::StateMachine':
        return `arn:aws:states:${LOCAL_REGION}:${LOCAL_ACCOUNT}:stateMachine:${id}`;
      case 'AWS::SNS::Topic':
        return `arn:aws:sns:${LOCAL_REGION}:${LOCAL_ACCOUNT}:${id}`;
      case 'AWS::SQS::Queue':
        return `https://sqs.${LOCAL_REGION}.amazonaws.com/${LOCAL_ACCOUNT}/${id}`;
      case undefined:
        throw new Error(`The twin cannot resolve { Ref: ${id} }`);
      default:
        return id; // a resource's physical name: the twin names it by its logical ID
    }
  };
  const getAtt = (id: string, attribute: string): string => {
    const t = type(id);
    if (attribute === 'Arn') {
      if (t === 'AWS::S3::Bucket') return `arn:aws:s3:::${ref(id)}`;
      if (t === 'AWS::Lambda::Function') return localFunctionArn(id);
      if (t === 'AWS::IAM::Role') return `arn:aws:iam::${LOCAL_ACCOUNT}:role/${id}`;
      if (t === 'AWS::KMS::Key') return `arn:aws:kms:${LOCAL_REGION}:${LOCAL_ACCOUNT}:key/${id}`;
      if (t === 'AWS::SQS::Queue') return `arn:aws:sqs:${LOCAL_REGION}:${LOCAL_ACCOUNT}:${id}`;
      if (t === 'AWS::DynamoDB::Table') return `arn:aws:dynamodb:${LOCAL_REGION}:${LOCAL_ACCOUNT}:table/${ref(id)}`;
      if (t === 'AWS::Logs::LogGroup') return `arn:aws:logs:${LOCAL_REGION}:${LOCAL_ACCOUNT}:log-group:${id}:*`;
    }
    if (attribute === 'Name' && t === 'AWS::StepFunctions::StateMachine') return id;
    throw new Error(`The twin cannot resolve { Fn::GetAtt: [${id}, ${attribute}] }`);
  };
  const resolve = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(resolve);
    if (v === null || typeof v !== 'object') return v;
    const o = v as Record<string, any>;
    const keys = Object.keys(o);
    if (keys.length === 1) {
      const [k] = keys as [string];
      if (k === 'Ref') return ref(o.Ref as string);
      if (k === 'Fn::GetAtt') return getAtt(o[k][0], o[k][1]);
      if (k === 'Fn::Join') return (resolve(o[k][1]) as string[]).join(o[k][0] as string);
      if (k === 'Fn::Split') return (resolve(o[k][1]) as string).split(o[k][0] as string);
      if (k === 'Fn::Select') return (resolve(o[k][1]) as unknown[])[Number(o[k][0])];
      if (k === 'Fn::Sub' && typeof o[k] === 'string') return (o[k]).replace(/\$\{([^}]+)\}/g, (_m, name: string) => (name.includes('.') ? getAtt(...(name.split('.') as [string, string])) : ref(name)));
    }
    return Object.fromEntries(keys.map((key) => [key, resolve(o[key])]));
  };
  return resolve(value);
}

/** The stack's step functions (stage, send, finalize, sweep), each with its bundle, settings and role. */
export function lambdaFunctions(stack: SynthesizedStack): Record<StepName, LambdaFunctionSpec> {
  const out: Partial<Record<StepName, LambdaFunctionSpec>> = {};
  for (const [logicalId, resource] of Object.entries(stack.template.Resources)) {
    if (resource.Type !== 'AWS::Lambda::Function') continue;
    const p = resource.Properties ?? {};
    const environment = resolveTokens(p.Environment?.Variables ?? {}, stack) as Record<string, string>;
    const step = environment[ENV.step] as StepName | undefined;
    if (!step || !(STEPS as readonly string[]).includes(step)) continue;
    const s3Key = String(p.Code?.S3Key ?? '');
    const codeDir = join(stack.outdir, `asset.${s3Key.replace(/\.zip$/, '')}`);
    if (!existsSync(join(codeDir, 'index.js')) || !statSync(codeDir).isDirectory()) throw new Error(`The bundle of ${logicalId} is not in ${codeDir}: was the stack synthesized with bundling?`);
    const roleAtt = p.Role?.['Fn::GetAtt'] as [string, string] | undefined;
    out[step] = {
      logicalId,
      step,
      codeDir,
      handler: String(p.Handler ?? 'index.handler'),
      environment,
      memorySize: Number(p.MemorySize ?? 128),
      timeoutSeconds: Number(p.Timeout ?? 3),
      role: roleAtt?.[0] ?? 'UnknownRole',
    };
  }
  for (const step of STEPS) if (!out[step]) throw new Error(`The synthesized stack has no ${step} function`);
  return out as Record<StepName, LambdaFunctionSpec>;
}

