import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/**
 * What a new user sees first: `npx badges-import …` from a clone, with the machine's own Node (v20 in CI) and npm, as
 * typed in a shell. npm scripts put node_modules/.bin (the bundled Node 24) first on PATH; a user's shell does not, so
 * these runs take it off again. npx finds no `badges-import` in node_modules/.bin (a package's own bin is not linked
 * there), so on its first run in a clone it installs the clone itself into its cache (~/.npm/_npx), checking the
 * package's `engines` as it does: that check printed EBADENGINE, twice. Later runs reuse the cache and print nothing,
 * so the test gives npm a cache of its own, as on a new machine.
 */
const root = join(__dirname, '..');
const systemPath = (process.env.PATH ?? '').split(delimiter).filter((dir) => !dir.includes('node_modules')).join(delimiter);
const systemBin = (name: string): string | undefined => systemPath.split(delimiter).map((dir) => join(dir, name)).find((path) => existsSync(path));
const systemEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: systemPath };
  // What npm sets for its scripts (npm test) would otherwise reach the npx below.
  for (const key of Object.keys(env)) if (key.startsWith('npm_')) delete env[key];
  return env;
};
const node = systemBin('node');
const npx = systemBin('npx');

describe('Function: the first commands of a clone', () => {
  it('runs `npx badges-import --help` on the system Node without an EBADENGINE or any other npm warning', () => {
    // Prepare
    if (!node || !npx) throw new Error(`no system node/npx on PATH (${systemPath}): the first-run check needs the Node a user has`);
    const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    const cache = mkdtempSync(join(tmpdir(), 'first-run-npm-cache-'));

    // Act
    const result = spawnSync(npx, ['badges-import', '--help'], { cwd: root, env: { ...systemEnv(), npm_config_cache: cache }, encoding: 'utf8' });

    // Assess
    expect({ version, status: result.status }).toEqual({ version, status: 0 });
    expect(result.stdout).toContain('Usage: badges-import');
    expect(result.stderr).not.toContain('EBADENGINE');
    expect(result.stderr.split('\n').filter((line) => /^npm (warn|error|WARN|ERR)/.test(line))).toEqual([]);
  });

  it('runs the CLI on the bundled Node when an older node (v20 in CI) starts the launcher', () => {
    // Prepare: a preload that records the version of every node process the launch goes through.
    if (!node) throw new Error(`no system node on PATH (${systemPath})`);
    const dir = mkdtempSync(join(tmpdir(), 'first-run-'));
    const preload = join(dir, 'record-version.js');
    const versions = join(dir, 'versions.txt');
    writeFileSync(preload, `require('node:fs').appendFileSync(${JSON.stringify(versions)}, process.version + '\\n');\n`);

    // Act
    const result = spawnSync(node, [join(root, 'bin', 'badges-import.js'), '--help'], {
      cwd: root,
      env: { ...systemEnv(), NODE_OPTIONS: `--require ${preload}` },
      encoding: 'utf8',
    });

    // Assess
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('Usage: badges-import');
    const seen = readFileSync(versions, 'utf8').trim().split('\n');
    const bundled = execFileSync(join(root, 'node_modules', '.bin', 'node'), ['--version'], { encoding: 'utf8' }).trim();
    // The last process is the one that ran the CLI: on Node 22 or later, and the bundled one when the first was older.
    const major = (v: string | undefined): number => Number(v?.slice(1).split('.')[0]);
    expect(major(seen.at(-1))).toBeGreaterThanOrEqual(22);
    if (major(seen[0]) < 22) expect(seen).toEqual([seen[0], bundled]);
  });
});

describe('Function: the launcher handing over to the bundled Node', () => {
  it('stops the CLI it started when it is itself asked to stop (SIGTERM), instead of leaving it running', async () => {
    // Prepare: a preload that records the pid of every node process the launch goes through; a long-running command.
    if (!node) throw new Error(`no system node on PATH (${systemPath})`);
    const dir = mkdtempSync(join(tmpdir(), 'first-run-signal-'));
    const preload = join(dir, 'record-pid.js');
    const pids = join(dir, 'pids.txt');
    writeFileSync(preload, `require('node:fs').appendFileSync(${JSON.stringify(pids)}, process.pid + ' ' + process.version + '\\n');\n`);
    const launcher = spawn(node, [join(root, 'bin', 'badges-import.js'), 'sandbox', '--port', '0'], {
      cwd: root,
      env: { ...systemEnv(), NODE_OPTIONS: `--require ${preload}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise<void>((resolve) => {
      let out = '';
      launcher.stdout.on('data', (data: Buffer) => {
        out += data.toString();
        if (out.includes('listening')) resolve();
      });
    });
    const [, cli] = readFileSync(pids, 'utf8').trim().split('\n').map((line) => Number(line.split(' ')[0]));
    if (!cli) throw new Error('the launcher did not hand over to another node (is the system node 22 or later?)');

    // Act
    const exited = new Promise<number | null>((resolve) => launcher.once('exit', (code) => resolve(code)));
    launcher.kill('SIGTERM');
    const code = await exited;

    // Assess: the CLI stopped (as it does on SIGTERM) before the launcher answered for it.
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const cliAlive = alive(cli);
    if (cliAlive) process.kill(cli, 'SIGKILL');
    expect({ cliAlive, code }).toEqual({ cliAlive: false, code: 0 });
  });
});
