import { existsSync, lstatSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { Command, CommanderError, Option } from 'commander';
import { StaticSecretsProvider } from '../aws/secrets';
import { loadConfig, selectDataflow } from '../config/load';
import { type Config, type Dataflow, vendorBucketOf } from '../config/schema';
import { type Sandbox, type SandboxSettings, sandboxSettingsSchema, startSandbox } from '../api/sandbox';
import { BadgesImportError, ConfigError, HostKeyMismatchError, SftpError } from '../errors';
import { type LocalRunResult, runLocal, runObject } from '../local/runner';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from '../local/s3';
import { waitingObjects } from '../steps/sweep';
import { fileNameOf } from '../contracts';
import { startServe } from '../local/serve';
import { type ProgressDisplay, progressDisplay } from './progress';
import { pullSftp } from '../sources/sftp';
import { pullVendorBucket } from '../sources/vendor-bucket';
import { type ReplayStage, describeSelection } from '../core/replay';
import { replayLocal } from '../local/replay';
import { defaultAwsClients, replayDeployed, startDeployed } from '../ops/deployed';
import { type InitOptions, draftConfiguration } from '../ops/init';
import { estimate } from '../ops/estimate';
import { estimateText } from '../ops/estimate-text';
import { workflowTimeout } from '../config/limits';
import { renderHtml } from '../report/html';
import { pullSummary, summary } from '../report/texts';
import { openRejected, readReport, sampleRejected } from '../report/load';
import { silentLog } from '../steps/deps';

/** Exit status for usage and configuration errors. */
const USAGE = 2;

class UsageError extends Error {}

function readSandboxSettings(file: string | undefined): SandboxSettings {
  if (!file) return {};
  try {
    return sandboxSettingsSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
  } catch (error) {
    throw new UsageError(`${file}: not usable as sandbox settings (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`);
  }
}

/** Progress on stderr (stdout stays for the summary or the JSON report): a live bar on a terminal, else plain lines. */
async function withProgress<T>(flags: { quiet?: boolean }, work: (progress: ProgressDisplay) => Promise<T>): Promise<T> {
  const display = progressDisplay({ live: Boolean(process.stderr.isTTY) && !flags.quiet });
  try {
    return await work(display);
  } finally {
    display.stop();
  }
}

interface RunFlags {
  config: string;
  file?: string;
  dataflow?: string;
  secrets?: string;
  apiUrl?: string;
  sandbox?: string;
  out?: string;
  dryRun?: boolean;
  force?: boolean;
  data?: string;
  quiet?: boolean;
  json?: boolean;
}

/** What one `run` works with: the configuration, secrets, an embedded S3 and the API (the sandbox unless --api-url). */
interface LocalSession {
  config: Config;
  configFile: string;
  dataflow: Dataflow;
  secrets: StaticSecretsProvider;
  s3: LocalS3;
  sandbox?: Sandbox;
}

async function withLocalSession(flags: RunFlags, s3Directory: string | undefined, work: (session: LocalSession) => Promise<number>): Promise<number> {
  const configFile = resolve(flags.config);
  const config = loadConfig(configFile);
  const dataflow = selectDataflow(config, flags.dataflow);
  const secrets = flags.secrets ? StaticSecretsProvider.fromFile(flags.secrets) : new StaticSecretsProvider({});
  const s3 = await startLocalS3(s3Directory ? { directory: s3Directory } : {});
  let sandbox: Sandbox | undefined;
  try {
    if (!flags.apiUrl) sandbox = await startSandbox(readSandboxSettings(flags.sandbox));
    return await work({ config, configFile, dataflow, secrets, s3, sandbox });
  } finally {
    await sandbox?.close();
    await s3.close();
  }
}

function printResult(result: LocalRunResult, flags: RunFlags): void {
  process.stdout.write(flags.json ? `${JSON.stringify(result.report, null, 2)}\n` : summary(result.report, result.reportPath, result.rejectedPath, result.filteredPath));
}

/**
 * Runs an object of the local inbox, prints its outcome, and follows a zip's entries, which were written to the
 * inbox where an upload event would start a run for each. Returns the exit codes of all the runs.
 */
async function runAndPrint(session: LocalSession, flags: RunFlags, key: string, outDir: string, first?: LocalRunResult): Promise<number[]> {
  const result =
    first ??
    (await withProgress(flags, (progress) => runObject({ ...session, apiUrl: flags.apiUrl, outDir, dryRun: flags.dryRun, force: flags.force, progress }, key)));
  printResult(result, flags);
  const codes: number[] = [result.exitCode];
  for (const entry of result.report.dryRun ? [] : (result.report.files[0]?.expandedTo ?? [])) {
    codes.push(...(await runAndPrint(session, flags, entry, join(outDir, fileNameOf(entry)))));
  }
  return codes;
}

function defaultOutDir(flags: RunFlags, dataflow: Dataflow): string {
  return resolve(flags.out ?? join('out', `${dataflow.name}-${new Date().toISOString().replace(/[:.]/g, '-')}`));
}

async function runCommand(flags: RunFlags): Promise<number> {
  if (!flags.file) return pullCommand(flags);
  const file = flags.file;
  if (!existsSync(file)) throw new UsageError(`--file ${file}: no such file`);
  return withLocalSession(flags, undefined, async (session) => {
    const outDir = defaultOutDir(flags, session.dataflow);
    const result = await withProgress(flags, (progress) => runLocal({ ...session, file, apiUrl: flags.apiUrl, outDir, dryRun: flags.dryRun, force: flags.force, progress }));
    return worstExitCode(await runAndPrint(session, flags, result.report.files[0]?.source.key ?? '', outDir, result));
  });
}

/**
 * `run` without `--file`: takes every file waiting in the dataflow's source, the way the schedule's sweep does. Locally
 * the source is the embedded S3 inbox that `serve` keeps in `--data`.
 */
async function pullCommand(flags: RunFlags): Promise<number> {
  const data = resolve(flags.data ?? join('out', 'serve-data'));
  const fromSftp = selectDataflow(loadConfig(resolve(flags.config)), flags.dataflow).source.type === 'sftp';
  if (!fromSftp && !existsSync(data)) throw new UsageError(`No local inbox at ${data}: upload files through \`badges-import serve\` first, or pass --file`);
  mkdirSync(data, { recursive: true });
  return withLocalSession(flags, data, async (session) => {
    const { dataflow } = session;
    const codes: number[] = [];
    if (dataflow.source.type === 'sftp') {
      // What the schedule's sweep does first: take the settled files from the server into the inbox.
      const pulled = await pullSftp(dataflow, { s3: session.s3.client, buckets: LOCAL_BUCKETS, secrets: session.secrets, log: silentLog });
      if (!flags.json) process.stdout.write(pullSummary(dataflow, pulled));
      if (pulled.failed.length > 0) codes.push(1);
    } else if (vendorBucketOf(dataflow)) {
      // Locally the vendor's bucket is a bucket of that name in the embedded S3 (with roleArn, STS is not played).
      const vendorS3Config = { endpoint: session.s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } };
      const pulled = await pullVendorBucket(dataflow, { s3: session.s3.client, buckets: LOCAL_BUCKETS, log: silentLog, vendorS3Config });
      if (!flags.json) process.stdout.write(pullSummary(dataflow, pulled));
      if (pulled.failed.length > 0) codes.push(1);
    }
    const keys: string[] = [];
    for await (const object of waitingObjects(session.s3.client, LOCAL_BUCKETS.inbox, dataflow)) keys.push(object.key);
    if (keys.length === 0 && !flags.json) process.stdout.write(`No files waiting under s3://inbox/${dataflow.source.prefix} matching ${dataflow.source.filePattern}\n`);
    for (const key of keys) codes.push(...(await runAndPrint(session, flags, key, join(defaultOutDir(flags, dataflow), fileNameOf(key)))));
    return worstExitCode(codes);
  });
}

/** The worst outcome decides: a failed file (1) over rejections (3) over success (0). */
function worstExitCode(codes: number[]): number {
  return codes.includes(1) ? 1 : codes.includes(3) ? 3 : 0;
}

interface ServeFlags {
  config: string;
  secrets?: string;
  sandbox?: string;
  apiUrl?: string;
  s3Port: string;
  apiPort: string;
  host: string;
  data: string;
  out: string;
}

async function serveCommand(flags: ServeFlags): Promise<number> {
  const configFile = resolve(flags.config);
  const config = loadConfig(configFile);
  const secrets = flags.secrets ? StaticSecretsProvider.fromFile(flags.secrets) : new StaticSecretsProvider({});
  const serve = await startServe({
    config,
    configFile,
    secrets,
    sandbox: readSandboxSettings(flags.sandbox),
    apiUrl: flags.apiUrl,
    host: flags.host,
    s3Port: Number(flags.s3Port),
    apiPort: Number(flags.apiPort),
    dataDir: resolve(flags.data),
    outDir: resolve(flags.out),
    onEvent: (event) => {
      if (event.type === 'pulled') {
        if (event.result.taken.length + event.result.failed.length > 0) process.stdout.write(pullSummary(config.dataflows.find((d) => d.name === event.dataflow)!, event.result));
      } else if (event.type === 'started') process.stdout.write(`\n${event.dataflow}: s3://inbox/${event.key} arrived; running\n`);
      else if (event.type === 'finished') process.stdout.write(summary(event.result.report, event.result.reportPath, event.result.rejectedPath, event.result.filteredPath));
      else if (event.type === 'delivered') {
        // An upload the sweep did not start: Step Functions refused the name (a run of it exists, running or closed).
        if (event.trigger === 'upload' && event.key && event.output.alreadyStarted.includes(event.key)) process.stdout.write(`\n${event.dataflow}: s3://inbox/${event.key} arrived; not started: an execution of the same name exists (running, or closed less than 90 days ago)\n`);
      } else process.stderr.write(`${event.dataflow}: ${event.key}: ${event.error.message}\n`);
    },
  });
  const lines = [
    'badges-import serve: the local twin of the deployed stack (Ctrl-C to stop)',
    `  S3   ${serve.s3.endpoint}  (access key S3RVER, secret S3RVER, path-style; bucket "inbox")`,
    `  API  ${serve.apiUrl}${flags.apiUrl ? '' : '  (sandbox)'}`,
    ...config.dataflows.map((d) =>
      d.source.type === 'sftp'
        ? `  ${d.name}: polls sftp://${d.source.host}:${d.source.port}${d.source.directory} every 30 s (names matching ${d.source.filePattern}) into s3://inbox/${d.source.prefix}`
        : `  ${d.name}: upload to s3://inbox/${d.source.prefix} (names matching ${d.source.filePattern})${d.schedule ? `; schedule ${d.schedule.cron} (${d.schedule.timeZone}) is played by the inbox watch` : ''}`,
    ),
    `  e.g. AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER aws --endpoint-url ${serve.s3.endpoint} s3 cp events.csv s3://inbox/${config.dataflows[0]!.source.prefix}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  await new Promise<void>((resolveStop) => {
    process.once('SIGINT', resolveStop);
    process.once('SIGTERM', resolveStop);
  });
  await serve.stop();
  return 0;
}

async function sandboxCommand(flags: { port: string; config?: string; host: string }): Promise<number> {
  const sandbox = await startSandbox(readSandboxSettings(flags.config), Number(flags.port), flags.host);
  process.stdout.write(`badges API sandbox listening on ${sandbox.url} (Ctrl-C to stop)\n`);
  await new Promise<void>((resolveStop) => {
    process.once('SIGINT', resolveStop);
    process.once('SIGTERM', resolveStop);
  });
  await sandbox.close();
  return 0;
}

interface ReplayFlags extends RunFlags {
  rejected: string;
  stage: string;
  stack?: string;
  region?: string;
}

const STAGES: Record<string, ReplayStage[]> = { api: ['api'], validate: ['validate'], all: ['api', 'validate'] };

function replayStages(flag: string): ReplayStage[] {
  const stages = STAGES[flag];
  if (!stages) throw new UsageError(`--stage ${flag}: expected api (default: what the API refused, RETRIES_EXHAUSTED and AMBIGUOUS among them), validate (validation rejects you fixed in the file) or all`);
  return stages;
}

/**
 * `replay`: runs the records of a rejected-records file again. With --config, through the local workflow; with
 * --stack, on the deployed stack (the file is then an s3:// URI in its dead-letter bucket).
 */
async function replayCommand(flags: ReplayFlags): Promise<number> {
  const stages = replayStages(flags.stage);
  if (flags.stack) {
    if (flags.config) throw new UsageError('Give --stack (replay on the deployed stack) or --config (replay locally), not both');
    const result = await replayDeployed(defaultAwsClients(flags.region, new S3Client(flags.region ? { region: flags.region } : {})), {
      stack: flags.stack,
      rejected: flags.rejected,
      dataflow: flags.dataflow,
      stages,
      force: flags.force,
    });
    process.stdout.write(
      result.executionArn
        ? `${describeSelection(result.selection, flags.stage)}\n  input      s3://…/${result.key}\n  execution  ${result.executionArn}\n`
        : `${describeSelection(result.selection, flags.stage)}\n`,
    );
    return 0;
  }
  if (!flags.config) throw new UsageError('replay needs --config FILE (replay locally) or --stack NAME (replay on the deployed stack)');
  return withLocalSession(flags, flags.data ? resolve(flags.data) : undefined, async (session) => {
    const outDir = defaultOutDir(flags, session.dataflow);
    const { selection, result } = await withProgress(flags, (progress) =>
      replayLocal({ ...session, rejected: resolve(flags.rejected), stages, apiUrl: flags.apiUrl, outDir, dryRun: flags.dryRun, force: flags.force, progress }),
    );
    if (!result) {
      process.stdout.write(`${describeSelection(selection, flags.stage)}\n`);
      return 0;
    }
    if (!flags.json) process.stdout.write(`${describeSelection(selection, flags.stage)}\n`);
    printResult(result, flags);
    return result.exitCode;
  });
}

async function startCommand(flags: { stack: string; dataflow: string; key: string; force?: boolean; dryRun?: boolean; region?: string }): Promise<number> {
  const { executionArn, input } = await startDeployed(defaultAwsClients(flags.region, new S3Client(flags.region ? { region: flags.region } : {})), flags);
  process.stdout.write(`started s3://${input.bucket}/${input.key} (dataflow ${input.dataflow}${input.force ? ', forced' : ''}${input.dryRun ? ', dry run' : ''})\n  execution  ${executionArn}\n`);
  return 0;
}

async function reportCommand(path: string, flags: { html?: string; rows: string }): Promise<number> {
  const report = readReport(path);
  const file = report.files[0];
  // Local copies are named relative to the report; s3:// URIs as they are.
  const where = (named: string | undefined) => (named && !/^s3:/.test(named) ? join(dirname(resolve(path)), named) : named);
  process.stdout.write(summary(report, resolve(path), where(file?.rejectedFile), where(file?.filteredFile)));
  if (flags.html) {
    const limit = Number(flags.rows);
    if (!Number.isInteger(limit) || limit < 0) throw new UsageError(`--rows ${flags.rows}: expected a whole number`);
    const rejected = await openRejected(report, resolve(path));
    const sample = rejected ? await sampleRejected(rejected, limit, report.rows.rejected) : undefined;
    writeFileSync(flags.html, renderHtml(report, sample));
    process.stdout.write(`  html    ${resolve(flags.html)}\n`);
  }
  return 0;
}

/** `npm start`: the example file, with some bad rows, through the local workflow against the sandbox. */
async function demoCommand(flags: { out?: string }): Promise<number> {
  const root = resolve(__dirname, '..', '..');
  const examples = join(root, 'examples');
  const code = await runCommand({
    config: join(examples, 'config.json'),
    file: join(examples, 'events_2026-11-23.csv'),
    secrets: join(examples, 'secrets.json'),
    sandbox: join(examples, 'sandbox.json'),
    out: flags.out ?? join('out', 'demo'),
  });
  process.stdout.write(
    code === 3
      ? '\nThe demo file holds some bad rows on purpose: they are in the rejected file above, with their record numbers and reasons.\n'
      : '\nThe demo did not end as expected (it should reject a few rows).\n',
  );
  return code === 3 ? 0 : 1;
}

interface InitFlags extends Omit<InitOptions, 'secretsFile'> {
  out: string;
  secrets?: string;
  force?: boolean;
}

/** `init`: a configuration drafted from a sample; an existing --out is left alone unless --force. */
async function initCommand(flags: InitFlags): Promise<number> {
  if (!existsSync(flags.sample)) throw new UsageError(`--sample ${flags.sample}: no such file`);
  if (statSync(flags.sample).isDirectory()) throw new UsageError(`--sample ${flags.sample}: is a directory; give one of the vendor's files`);
  // lstat, not existsSync: a dangling symlink "does not exist" to existsSync, and writing would follow it elsewhere.
  if (lstatSync(flags.out, { throwIfNoEntry: false }) && !flags.force) throw new UsageError(`--out ${flags.out} exists: init does not overwrite it; pass --force, or choose another --out`);
  // Said before the sample is read (a PGP sample takes seconds), not as a raw ENOENT after it.
  if (!existsSync(dirname(resolve(flags.out)))) throw new UsageError(`--out ${flags.out}: the directory ${dirname(resolve(flags.out))} does not exist; create it, or choose another --out`);
  const result = await draftConfiguration({ ...flags, secretsFile: flags.secrets });
  writeFileSync(flags.out, result.json);
  const secrets = flags.secrets ? ` --secrets ${flags.secrets}` : '';
  process.stdout.write(`${result.text}
wrote ${resolve(flags.out)}
try it:  badges-import run --config ${flags.out} --file ${flags.sample}${secrets} --dry-run
`);
  return 0;
}

/** The options of a run through the local workflow, shared by `run` and `replay` (`where` says when they apply). */
function withLocalRunOptions(command: Command, where = ''): Command {
  return command
    .option('--secrets <file>', `${where}JSON file of secret values: { "name": "value" }`)
    .option('--api-url <url>', `${where}send to this API instead of the embedded sandbox`)
    .option('--sandbox <file>', `${where}settings of the embedded sandbox (known badge ids, …)`)
    .option('--out <dir>', `${where}directory for report.json and the rejected records (default: ./out/<dataflow>-<time>)`)
    .option('--dry-run', 'validate and report without calling the API')
    .option('--quiet', 'plain progress lines instead of the live bar')
    .option('--json', 'print the report as JSON on stdout');
}

/** `run`: a local file (or every file waiting in the source) through the local workflow. */
function addRunCommand(program: Command): void {
  const run = program
    .command('run')
    .description('Process a local file through the local workflow (the synthesized state machine on aws-local-stepfunctions)')
    .requiredOption('--config <file>', 'configuration file')
    .option('--file <path>', 'local file to process as if dropped into the dataflow source; without it, every file waiting in the source is taken')
    .option('--data <dir>', 'without --file: the local inbox kept by `serve` (default: out/serve-data)')
    .option('--dataflow <name>', 'dataflow to use (optional when the configuration has one)')
    .option('--force', 'import even if the same content was imported before');
  withLocalRunOptions(run).action(async (flags: RunFlags) => {
    process.exitCode = await runCommand(flags);
  });
}

/** `replay`: the records of a rejected-records file again, locally or on the deployed stack. */
function addReplayCommand(program: Command): void {
  const replay = program
    .command('replay')
    .description('Run the records of a rejected-records file again, under their original record numbers (locally with --config, on a deployed stack with --stack)')
    .requiredOption('--rejected <path>', 'rejected-records file: a local path, or with --stack an s3:// URI in the dead-letter bucket')
    .option('--config <file>', 'configuration file: replay through the local workflow')
    .option('--stack <name>', 'deployed stack: replay there (AWS credentials and region from the environment)')
    .option('--region <region>', 'AWS region of the stack')
    .addOption(new Option('--stage <stage>', 'which rejects: api (what the API refused, RETRIES_EXHAUSTED and AMBIGUOUS among them), validate (after fixing them in the file), all').default('api'))
    .option('--dataflow <name>', 'dataflow (optional when the configuration has one, or the s3:// key names it)')
    .option('--data <dir>', 'locally: keep the embedded S3 in this directory')
    .option('--force', 'run even if the same selection was replayed before');
  withLocalRunOptions(replay, 'locally: ').action(async (flags: ReplayFlags) => {
    process.exitCode = await replayCommand(flags);
  });
}

/** `start`: the deployed workflow on an object of the inbox, as its upload would. */
function addStartCommand(program: Command): void {
  program
    .command('start')
    .description('Start the deployed workflow on an object of the inbox (again), as its upload would')
    .requiredOption('--stack <name>', 'deployed stack (AWS credentials and region from the environment)')
    .requiredOption('--dataflow <name>', 'dataflow')
    .requiredOption('--key <key>', 'object key in the inbox bucket, e.g. processed/weekly-events/<runId>/events.csv')
    .option('--region <region>', 'AWS region of the stack')
    .option('--force', 'import even if the same content was imported before')
    .option('--dry-run', 'validate and report without calling the API')
    .action(async (flags: { stack: string; dataflow: string; key: string; force?: boolean; dryRun?: boolean; region?: string }) => {
      process.exitCode = await startCommand(flags);
    });
}

/** `report`: a run's report as a summary, or as an HTML page. */
function addReportCommand(program: Command): void {
  program
    .command('report')
    .description('Print a run\'s report as a summary; --html writes a self-contained page with charts and the first rejected records')
    .argument('<report.json>', 'a report written by a run (locally in --out; in AWS in the reports bucket)')
    .option('--html <file>', 'write the HTML report here')
    .addOption(new Option('--rows <n>', 'rejected records shown in the HTML report').default('50'))
    .action(async (path: string, flags: { html?: string; rows: string }) => {
      process.exitCode = await reportCommand(path, flags);
    });
}

/** `sandbox`: the badges API sandbox on its own. */
function addSandboxCommand(program: Command): void {
  program
    .command('sandbox')
    .description('Start the badges API sandbox on its own')
    .addOption(new Option('--port <n>', 'port').default('8080'))
    .addOption(new Option('--host <address>', 'address to listen on').default('127.0.0.1'))
    .option('--config <file>', 'sandbox settings (users, known badge ids, …)')
    .action(async (flags: { port: string; config?: string; host: string }) => {
      process.exitCode = await sandboxCommand(flags);
    });
}

/** `serve`: the local twin of the deployed stack. */
function addServeCommand(program: Command): void {
  program
    .command('serve')
    .description('Run the local twin of the deployed stack: an S3 endpoint to upload to, the sandbox API, and a run per uploaded file')
    .requiredOption('--config <file>', 'configuration file')
    .option('--secrets <file>', 'JSON file of secret values: { "name": "value" }')
    .option('--sandbox <file>', 'settings of the embedded sandbox')
    .option('--api-url <url>', 'send to this API instead of the embedded sandbox')
    .addOption(new Option('--s3-port <n>', 'port of the embedded S3').default('4569'))
    .addOption(new Option('--api-port <n>', 'port of the sandbox').default('8080'))
    .addOption(new Option('--host <address>', 'address to listen on').default('127.0.0.1'))
    .addOption(new Option('--data <dir>', 'where the embedded S3 keeps its data across restarts').default('out/serve-data'))
    .addOption(new Option('--out <dir>', 'where each run\'s report goes').default('out/serve'))
    .action(async (flags: ServeFlags) => {
      process.exitCode = await serveCommand(flags);
    });
}

/** `init`: a configuration drafted from a sample of the vendor's file. */
function addInitCommand(program: Command): void {
  program
    .command('init')
    .description('Draft a configuration from a sample of the vendor\'s file: encoding, delimiter, header, the columns and date formats, and what to review')
    .requiredOption('--sample <file>', 'a sample of the vendor\'s file (plain, gzip, or PGP with --secrets); its first 8 MiB / 10,000 records are read')
    .option('--name <name>', 'the dataflow\'s name (default: from the sample\'s file name)')
    .addOption(new Option('--out <file>', 'where to write the configuration').default('config.json'))
    .option('--secrets <file>', 'JSON file of secret values, for a PGP sample: its private key (and passphrase)')
    .option('--private-key-secret <name>', 'the secret holding the private key (default: the one whose value is one)')
    .option('--passphrase-secret <name>', 'the secret holding its passphrase (default: the one named like "passphrase")')
    .option('--force', 'overwrite --out if it exists')
    .action(async (flags: InitFlags) => {
      process.exitCode = await initCommand(flags);
    });
}

interface EstimateFlags {
  config: string;
  rows: string;
  bytes?: string;
  dataflow?: string;
  gzip?: boolean;
  json?: boolean;
}

/** A whole number of at least `min` from an option, or a usage error naming it. */
function wholeNumber(name: string, value: string, min: number): number {
  const n = Number(value.replace(/_/g, ''));
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`${name} ${value}: expected a whole number of at least ${min}`);
  return n;
}

/** `estimate`: what a file of N records costs and how long it takes, at the configured settings. */
function estimateCommand(flags: EstimateFlags): number {
  const config = loadConfig(resolve(flags.config));
  const dataflow = selectDataflow(config, flags.dataflow);
  const rows = wholeNumber('--rows', flags.rows, 1);
  // A plain file holds at least a character and a line end a record (the last line end optional); a compressed or
  // encrypted one may be smaller than its records, so only a plain file's --bytes can be told wrong.
  const fewest = flags.gzip || dataflow.decrypt || dataflow.csv.encoding === 'utf-16le' ? 1 : 2 * rows - 1;
  const bytes = flags.bytes === undefined ? undefined : wholeNumber('--bytes', flags.bytes, 1);
  if (bytes !== undefined && bytes < fewest) {
    throw new UsageError(`--bytes ${flags.bytes}: a plain file of ${rows.toLocaleString('en-US')} records holds at least ${fewest.toLocaleString('en-US')} bytes (a character and a line end each); give the file's size in bytes (add --gzip for a gzip file), or leave --bytes out`);
  }
  const result = estimate({ dataflow, rows, ...(bytes !== undefined ? { bytes } : {}), gzip: flags.gzip, workflowTimeoutSeconds: workflowTimeout(config).seconds });
  process.stdout.write(flags.json ? `${JSON.stringify(result, null, 2)}\n` : estimateText(result));
  return 0;
}

/** `estimate`: the cost model, printed for a configuration and a file size. */
function addEstimateCommand(program: Command): void {
  program
    .command('estimate')
    .description('Estimate what one file costs in AWS and how long it takes (staging, then sending at the configured rate), per file and per million records, at us-east-1 list prices')
    .requiredOption('--config <file>', 'configuration file')
    .requiredOption('--rows <n>', 'records in the file (the header excluded)')
    .option('--bytes <n>', 'bytes of the delivered file (default: rows × a typical record of 90 bytes)')
    .option('--dataflow <name>', 'dataflow (optional when the configuration has one)')
    .option('--gzip', 'the file is gzip-compressed (read once in a sequential pass)')
    .option('--json', 'print the estimate as one JSON object (headline: usdPerMillionRecords)')
    .action((flags: EstimateFlags) => {
      process.exitCode = estimateCommand(flags);
    });
}

/** `demo`: the example file through the local workflow (`npm start`). */
function addDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('Run the example file through the local workflow (what `npm start` does)')
    .option('--out <dir>', 'output directory (default: ./out/demo)')
    .action(async (flags: { out?: string }) => {
      process.exitCode = await demoCommand(flags);
    });
}

/** The CLI: one command per thing an operator does, each defined by its own function above. */
export function buildProgram(): Command {
  const program = new Command()
    .name('badges-import')
    .description('Turn vendor files into earned badges through Capillary\'s import API, locally or on AWS.')
    .exitOverride()
    .showHelpAfterError();
  addInitCommand(program);
  addRunCommand(program);
  addReplayCommand(program);
  addStartCommand(program);
  addReportCommand(program);
  addSandboxCommand(program);
  addServeCommand(program);
  addDemoCommand(program);
  addEstimateCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : USAGE;
    if (error instanceof ConfigError || error instanceof UsageError) {
      process.stderr.write(`${error.message}\n`);
      return USAGE;
    }
    if (error instanceof BadgesImportError) {
      process.stderr.write(`${error.name}: ${error.message}\n`);
      // A source that cannot be used is a failure of the run, not of how it was asked for.
      return error instanceof SftpError || error instanceof HostKeyMismatchError ? 1 : USAGE;
    }
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
