import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { BUNDLE_EXTERNALS, CJS_BUNDLE_SHIMS } from '../lib/defaults';
import { BUNDLED_CONFIG_FILE, ENV, STEPS } from '../src/contracts';

const root = join(__dirname, '..');

describe('Lambda bundles', () => {
  it.each(STEPS)('the %s function, bundled as CDK bundles it, loads on Node 24 and exports its handler', (step) => {
    // Prepare: the same esbuild settings as the stack's NodejsFunction (CommonJS, minified, node24, shims).
    const dir = mkdtempSync(join(tmpdir(), `bundle-${step}-`));
    buildSync({
      entryPoints: [join(root, 'lambdas', `${step}.ts`)],
      bundle: true,
      platform: 'node',
      target: 'node24',
      format: 'cjs',
      minify: true,
      keepNames: true,
      outfile: join(dir, 'index.js'),
      logLevel: 'silent',
      external: BUNDLE_EXTERNALS,
      banner: { js: CJS_BUNDLE_SHIMS.banner },
      define: { ...CJS_BUNDLE_SHIMS.define },
    });
    copyFileSync(join(root, 'examples', 'config.json'), join(dir, BUNDLED_CONFIG_FILE));

    // Act: a cold start, as Lambda does it: load the module, which builds its dependencies from the environment.
    const out = execFileSync(join(root, 'node_modules', '.bin', 'node'), ['-e', `const m = require(${JSON.stringify(join(dir, 'index.js'))}); console.log(typeof m.handler)`], {
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        // The runtime provides the AWS SDK; the project's copy stands in for it.
        NODE_PATH: join(root, 'node_modules'),
        AWS_REGION: 'eu-west-1',
        [ENV.inboxBucket]: 'inbox',
        [ENV.stagingBucket]: 'staging',
        [ENV.deadLetterBucket]: 'dead-letter',
        [ENV.reportsBucket]: 'reports',
        [ENV.stateMachineArn]: 'arn:aws:states:eu-west-1:111122223333:stateMachine:x',
      },
    });

    // Assess
    expect(out.trim()).toBe('function');
  });
});
