import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readConfigs } from 'jest-config';
import { globsToMatcher } from 'jest-util';

/**
 * The jest projects (jest.config.js) say what a suite is: `unit` (fast, in-process) or `e2e` (the rest). These checks
 * use jest's own configuration reading and glob matching, so they see the files jest would run.
 */
const root = join(__dirname, '..');

/** Every test file under test/, as jest finds them (`*.test.ts`, any depth). */
function testFiles(dir: string = join(root, 'test')): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : testFiles(path);
    return entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

/** The files of each project, by jest's rules: a testMatch glob matches and no testPathIgnorePatterns regex does. */
async function projectMembers(): Promise<Map<string, string[]>> {
  const { configs } = await readConfigs({ $0: 'jest', _: [] }, [root]);
  const files = testFiles();
  const members = new Map<string, string[]>();
  for (const config of configs) {
    const matches = globsToMatcher(config.testMatch);
    const ignored = config.testPathIgnorePatterns.length > 0 ? new RegExp(config.testPathIgnorePatterns.join('|')) : undefined;
    const name = typeof config.displayName === 'string' ? config.displayName : config.displayName?.name ?? '';
    members.set(name, files.filter((file) => matches(file) && !ignored?.test(file)).map((file) => relative(root, file)));
  }
  return members;
}

/**
 * What a unit suite may not start: a run of the local workflow (the runner, replay, serve, the CLI's `run`), the twin
 * (a synthesis with bundles, Lambda containers, the local Step Functions service), a CDK synthesis (seconds each, more
 * on a loaded machine), GnuPG, sshd, Chromium, or a child process running TypeScript, a bundle or a stage worker.
 */
const E2E_MARKS: Array<[RegExp, string]> = [
  [/\b(runObject|runLocal|replayLocal|startServe|runLocalWorkflow)\b/, 'runs the local workflow'],
  [/\b(synthesizeStack|LambdaTwin|startLocalStepFunctions)\b/, 'starts the twin'],
  [/\bGnuPG\b|support\/gpg/, 'runs gpg'],
  [/\bstartSshd\b|support\/sshd/, 'starts sshd'],
  [/chromium|playwright/i, 'starts Chromium'],
  [/\.bin['"], ['"](tsx|node)['"]|buildStageWorker|execFile(Sync)?\(process\.execPath/, 'runs a child Node process'],
  [/\bbuildSync\b|from 'esbuild'/, 'bundles with esbuild'],
  [/\b(BadgesImportStack|synthesizeDefinition)\b|new App\(/, 'synthesizes the CDK stack'],
];

describe('Function: jest projects', () => {
  it('puts every test file in exactly one project, unit or e2e', async () => {
    // Prepare
    const files = testFiles().map((file) => relative(root, file));

    // Act
    const members = await projectMembers();

    // Assess
    expect([...members.keys()].sort()).toEqual(['e2e', 'unit']);
    const unit = members.get('unit')!;
    const e2e = members.get('e2e')!;
    expect(unit.filter((file) => e2e.includes(file))).toEqual([]);
    expect([...unit, ...e2e].sort()).toEqual([...files].sort());
  });

  it('lists no unit suite that does not exist (a renamed suite would silently move to e2e)', () => {
    // Prepare
    const config = readFileSync(join(root, 'jest.config.js'), 'utf8');
    const listed = [...(/const UNIT_SUITES = \[([^\]]*)\]/.exec(config)?.[1] ?? '').matchAll(/'([^']+)'/g)].map((m) => m[1]!);

    // Act
    const missing = listed.filter((name) => !testFiles().some((file) => file.endsWith(`/test/${name}.test.ts`)));

    // Assess
    expect(listed.length).toBeGreaterThan(10);
    expect(missing).toEqual([]);
  });

  it('keeps the unit project free of workflows, the twin, CDK synthesis, gpg, sshd, Chromium and child Node processes', async () => {
    // Prepare
    const unit = (await projectMembers()).get('unit')!;

    // Act
    const offences = unit.filter((file) => file !== 'test/projects.test.ts').flatMap((file) => {
      const source = readFileSync(join(root, file), 'utf8');
      return E2E_MARKS.filter(([pattern]) => pattern.test(source)).map(([, what]) => `${file} ${what}`);
    });

    // Assess
    expect(offences).toEqual([]);
  });
});
