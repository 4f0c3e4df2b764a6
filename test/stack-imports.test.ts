import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..');

/** The modules Node loads when it loads `entry` (run by tsx in a process of its own, so nothing else is cached). */
function modulesLoadedBy(entry: string): string[] {
  const script = `require(${JSON.stringify(entry)}); process.stdout.write(JSON.stringify(Object.keys(require.cache)));`;
  const output = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, encoding: 'utf8' });
  return JSON.parse(output) as string[];
}

describe('Stack: what lib loads', () => {
  it('loads no runtime SDK and, of src/, only the contracts, the errors, the codes and the configuration', () => {
    // Act
    const loaded = modulesLoadedBy(join(ROOT, 'lib', 'badges-import-stack.ts'));
    const fromSrc = loaded.filter((m) => m.startsWith(join(ROOT, 'src'))).map((m) => m.slice(ROOT.length + 1));

    // Assess
    expect(loaded.filter((m) => /[/\\]node_modules[/\\](@aws-sdk|@aws-lambda-powertools|@smithy)[/\\]/.test(m))).toEqual([]);
    expect(fromSrc.filter((m) => !/^src[/\\](contracts|errors|codes)\.ts$|^src[/\\]config[/\\]/.test(m))).toEqual([]);
    expect(fromSrc).toContain(join('src', 'contracts.ts'));
  });
});
