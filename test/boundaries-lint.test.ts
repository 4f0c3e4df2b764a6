/**
 * The import boundaries (eslint.boundaries.cjs), through ESLint's Node API: a wrong arrow fails the lint with the
 * rule's message, a right one passes, and every directory of src/ has a layer.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { ESLint, type Linter } from 'eslint';
import tseslint from 'typescript-eslint';

const ROOT = join(__dirname, '..');
const { LAYERS, boundaries } = createRequire(__filename)('../eslint.boundaries.cjs') as { LAYERS: string[][]; boundaries: Linter.Config[] };

/** The boundary rules alone, without type information (they need none), so that a text lints in milliseconds. */
const eslint = new ESLint({
  cwd: ROOT,
  overrideConfigFile: true,
  overrideConfig: [
    // The plugin only so that the tree's eslint-disable comments name known rules; none of its rules is on here.
    {
      files: ['**/*.ts'],
      languageOptions: { parser: tseslint.parser },
      plugins: { '@typescript-eslint': tseslint.plugin },
      linterOptions: { reportUnusedDisableDirectives: 'off' },
    },
    ...boundaries,
  ],
});

/** Every .ts file under a directory of the repository. */
function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

/** The boundary messages for `text` as if it were the file at `path` (relative to the repository). */
async function violations(path: string, text: string): Promise<string[]> {
  const [result] = await eslint.lintText(text, { filePath: join(ROOT, path) });
  return result!.messages.map((m) => `${m.ruleId ?? 'parse'}: ${m.message}`);
}

describe('Config: import boundaries', () => {
  it.each([
    ['src/core/wrong.ts', "import { BadgesApiClient } from '../api/client';\n", /src\/core must not import src\/\{aws,report,api,sources,steps,ops,local,cli\}: arrows point down/],
    ['src/core/wrong.ts', "import type { StepDeps } from '../steps/deps';\n", /src\/core must not import .*arrows point down/],
    ['src/aws/wrong.ts', "import { METRICS } from '../steps/deps';\n", /src\/aws must not import .*steps.*arrows point down/],
    ['src/sources/wrong.ts', "import type { Log } from '../steps/deps';\n", /src\/sources must not import .*arrows point down/],
    ['src/api/wrong.ts', "import { pullSftp } from '../sources/sftp';\n", /src\/api must not import src\/sources: siblings of one layer do not import each other/],
    ['src/report/wrong.ts', "import { Stack } from 'aws-cdk-lib';\n", /src\/report is runtime code: it must not import the CDK/],
    ['src/steps/wrong.ts', "import { Construct } from 'constructs';\n", /src\/steps is runtime code: it must not import the CDK/],
    ['src/local/wrong.ts', "import { BadgesImportStack } from '../../lib/badges-import-stack';\n", /src\/local must not import lib\//],
    ['src/core/wrong.ts', "import { S3Client } from '@aws-sdk/client-s3';\n", /src\/core is pure/],
    ['src/errors.ts', "import { compileMapper } from './core/mapping';\n", /bottom layer: they import only each other/],
    ['lib/wrong.ts', "import { openObject } from '../src/aws/s3';\n", /lib\/ may import only src\/contracts, src\/errors, src\/codes and src\/config/],
    ['lib/wrong.ts', "import { METRICS } from '../src/steps/deps';\n", /lib\/ may import only/],
    ['lambdas/wrong.ts', "import { runLocal } from '../src/local/runner';\n", /lambdas\/ hands events to src\/steps/],
    // Wrong arrows the patterns could not see: a path that descends then climbs, or leaves src/ and comes back in.
    ['src/core/wrong.ts', "import { BadgesApiClient } from '../core/../api/client';\n", /src\/core: write the plain relative path/],
    ['src/core/wrong.ts', "import { BadgesApiClient } from './../api/client';\n", /src\/core: write the plain relative path/],
    ['src/core/wrong.ts', "import { BadgesApiClient } from '../../src/api/client';\n", /src\/core: an import within src\/ does not leave src\/ and come back in/],
    ['lambdas/wrong.ts', "import { runLocal } from '../src/steps/../local/runner';\n", /lambdas\/: write the plain relative path/],
    ['lib/wrong.ts', "import { openObject } from '../src/config/../aws/s3';\n", /lib\/: write the plain relative path/],
    ['lib/wrong.ts', "import { lambdaDeps } from '../lambdas/runtime';\n", /lib\/ must not import lambdas\//],
  ])('fails %s importing: %s', async (path, text, message) => {
    // Act
    const found = await violations(path, text);

    // Assess
    expect(found).toEqual([expect.stringMatching(message)]);
    expect(found[0]).toMatch(/^no-restricted-imports: /);
  });

  it.each([
    ['src/core/wrong.ts', "export const load = () => import('../api/client');\n", /src\/core must not import .*arrows point down/],
    ['src/core/wrong.ts', "// eslint-disable-next-line @typescript-eslint/no-require-imports\nexport const client = require('../api/client');\n", /src\/core must not import .*arrows point down/],
    ['src/steps/wrong.ts', "export const cdk = () => import('aws-cdk-lib');\n", /src\/steps is runtime code: it must not import the CDK/],
    ['lambdas/wrong.ts', "export const runner = () => import('../src/local/runner');\n", /lambdas\/ hands events to src\/steps/],
    ['lib/wrong.ts', "// eslint-disable-next-line @typescript-eslint/no-require-imports\nexport const s3 = require('@aws-sdk/client-s3');\n", /lib\/ synthesizes the stack/],
  ])('fails %s loading at run time: %s', async (path, text, message) => {
    // Act
    const found = await violations(path, text);

    // Assess
    expect(found).toEqual([expect.stringMatching(message)]);
    expect(found[0]).toMatch(/^no-restricted-syntax: /);
  });

  it.each([
    ['src/core/right.ts', "import { ERROR_CODES } from '../codes';\nimport { MissingColumnError } from '../errors';\nimport type { Dataflow } from '../config/schema';\nimport { compileMapper } from './mapping';\nimport { parse } from 'csv-parse';\n"],
    ['src/aws/right.ts', "import type { MetricsSink } from '../ports';\nimport { METRICS } from '../contracts';\nimport { S3Client } from '@aws-sdk/client-s3';\n"],
    ['src/sources/right.ts', "import { vendorSummary } from '../report/texts';\nimport { headObject } from '../aws/s3';\n"],
    ['src/steps/right.ts', "import { BadgesApiClient } from '../api/client';\nimport { writeBack } from '../sources/sftp';\nimport { stage } from './stage';\n"],
    ['src/cli/right.ts', "import { runLocal } from '../local/runner';\nimport { startDeployed } from '../ops/deployed';\n"],
    ['src/errors.ts', "import { ERROR_CODES } from './codes';\n"],
    ['lib/right.ts', "import { ENV, METRICS } from '../src/contracts';\nimport { FATAL_ERROR_NAMES } from '../src/errors';\nimport type { Config } from '../src/config/schema';\nimport { Stack } from 'aws-cdk-lib';\n"],
    ['lambdas/right.ts', "import { stage } from '../src/steps/stage';\nimport { powertoolsMetrics } from '../src/aws/metrics';\n"],
    ['bin/right.ts', "import { BadgesImportStack } from '../lib/badges-import-stack';\nimport { App } from 'aws-cdk-lib';\n"],
    ['lambdas/right.ts', "// eslint-disable-next-line @typescript-eslint/no-require-imports\nexport const tracer = require('@aws-lambda-powertools/tracer');\nexport const steps = () => import('../src/steps/stage');\n"],
  ])('lets %s import downwards', async (path, text) => {
    expect(await violations(path, text)).toEqual([]);
  });

  it('gives no rule the same selector twice (ESLint refuses such a configuration when it lints the tree)', () => {
    // Act
    const repeated = boundaries.flatMap((config) => {
      const selectors = ((config.rules?.['no-restricted-syntax'] ?? []) as unknown[]).slice(1).map((entry) => (entry as { selector: string }).selector);
      return selectors.filter((selector, i) => selectors.indexOf(selector) !== i).map((selector) => `${config.name}: ${selector}`);
    });

    // Assess
    expect(repeated).toEqual([]);
  });

  it('gives every directory of src/ a layer', () => {
    // Prepare
    const directories = readdirSync(join(ROOT, 'src'), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);

    // Assess
    expect(LAYERS.flat().sort()).toEqual(directories.sort());
  });

  it('finds no wrong arrow in the tree', async () => {
    // Act: src/, lambdas/ and lib/ as they are (lintText: ESLint's file search needs ESM, which jest does not give).
    const files = ['src', 'lambdas', 'lib'].flatMap(sources);
    const found: string[] = [];
    for (const file of files) {
      const [result] = await eslint.lintText(readFileSync(join(ROOT, file), 'utf8'), { filePath: join(ROOT, file) });
      found.push(...result!.messages.map((m) => `${relative(ROOT, result!.filePath)}:${m.line}: ${m.message}`));
    }

    // Assess: the twin reaches the stack only through the synthesized assembly (src/local/lambda-stack.ts runs bin/app.ts).
    expect(files.length).toBeGreaterThan(60);
    expect(found).toEqual([]);
  });
});
