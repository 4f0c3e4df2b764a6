// The import boundaries: arrows point down. Each layer may import the layers below it, never one above it nor a
// sibling beside it, so a wrong arrow fails `npm run lint`. CommonJS, so that eslint.config.mjs and a jest test
// (test/boundaries-lint.test.ts) read the very same rules.
//
// Static imports and re-exports (no-restricted-imports) and run-time loads, import() and require() (no-restricted-syntax,
// the same patterns) are held to the same rules.
//
// src/, bottom to top:
//   src/*.ts (contracts, errors, codes, ports: constants, types and ports; they import only each other)
//   → config → core (pure: no AWS SDK, no Powertools, no SFTP) → aws → report → api | sources → steps
//   → ops | local → cli
// lambdas/ may import src/ up to the steps (never ops, local, cli); lib/ (the stack) only src/contracts, src/errors,
// src/codes and src/config; bin/ is on top. Nothing in src/ or lambdas/ imports aws-cdk-lib, constructs, cdk-nag or
// lib/.

/** The directories of src/, bottom to top; those of one rank are siblings and do not import each other. */
const LAYERS = [['config'], ['core'], ['aws'], ['report'], ['api', 'sources'], ['steps'], ['ops', 'local'], ['cli']];
const ALL = LAYERS.flat();
const ORDER = 'src/*.ts → config → core → aws → report → api | sources → steps → ops | local → cli';

/** Packages of the infrastructure side: only lib/ and bin/ may load them. */
const INFRASTRUCTURE = ['aws-cdk-lib', 'aws-cdk-lib/*', 'constructs', 'cdk-nag'];
/** Packages that talk to the outside world: not for the pure layers (nor for lib/, which only synthesizes). */
const RUNTIME_IO = ['@aws-sdk/*', '@aws-lambda-powertools/*', 'ssh2-sftp-client'];

const any = (names) => `(${names.join('|')})(/|$)`;

/** A restriction of relative imports that reach `names` (directories of src/) from one directory down in src/. */
function upward(from, names, why) {
  return { regex: `^(\\.\\./)+${any(names)}`, caseSensitive: true, message: `src/${from} must not import src/${names.length === 1 ? names[0] : `{${names.join(',')}}`}: ${why}. Layers, bottom to top: ${ORDER}.` };
}

const noInfrastructure = (where) => ({ group: INFRASTRUCTURE, message: `${where} is runtime code: it must not import the CDK (aws-cdk-lib, constructs, cdk-nag); only lib/ and bin/ do.` });
const noLib = (where) => ({ regex: '^(\\.\\./)+(lib|lambdas)(/|$)', caseSensitive: true, message: `${where} must not import lib/ (the stack) or lambdas/ (the handlers): both sit on top of src/.` });
/**
 * A relative path that climbs after it descends (`../core/../api/x`, `./../x`, `../src/config/../aws/s3`) or that
 * leaves src/ to come back in (`../../src/api/x` from src/core) names the module it reaches by another way than the
 * path the patterns read: the boundaries could not see where it lands, so it is refused. The plain path is checked.
 */
const plainPaths = (where, srcInside) => [
  { regex: '^\\./\\.\\.(/|$)|(^|/)[^./][^/]*/\\.\\.(/|$)|/\\.(/|$)', caseSensitive: true, message: `${where}: write the plain relative path (no "./.." and no ".." after a directory name), so that the import boundaries see where it lands.` },
  ...(srcInside ? [{ regex: '^(\\.\\./)+src(/|$)', caseSensitive: true, message: `${where}: an import within src/ does not leave src/ and come back in ("../../src/…"): write the plain relative path, so that the import boundaries see where it lands.` }] : []),
];
const noRuntimeIo = (where) => ({ group: RUNTIME_IO, message: `${where} is pure: it must not import the AWS SDK, Powertools or the SFTP client; adapters in src/aws, src/api, src/sources do.` });

/** The rule for the files of one directory of src/: nothing above it, no sibling, no infrastructure. */
function layerConfig(rank, name) {
  const above = LAYERS.slice(rank + 1).flat();
  const siblings = LAYERS[rank].filter((other) => other !== name);
  const patterns = [
    ...(above.length > 0 ? [upward(name, above, 'arrows point down')] : []),
    ...(siblings.length > 0 ? [upward(name, siblings, 'siblings of one layer do not import each other')] : []),
    noInfrastructure(`src/${name}`),
    noLib(`src/${name}`),
    ...(rank <= 1 ? [noRuntimeIo(`src/${name}`)] : []),
    ...plainPaths(`src/${name}`, true),
  ];
  return { name: `boundaries/src/${name}`, files: [`src/${name}/**/*.ts`], rules: restrict(patterns) };
}

/**
 * The same patterns for the imports no-restricted-imports does not see: `import()` and `require()` (a lazy load, as
 * src/local/s3.ts and lambdas/runtime.ts do it). esquery regexes cannot hold a "/": it is written \x2F.
 */
function loadsOf(patterns) {
  // `aws-cdk-lib` and `aws-cdk-lib/*` are one regex here; ESLint refuses a selector given twice.
  const regexes = (pattern) => pattern.regex ? [pattern.regex] : [...new Set(pattern.group.map((glob) => `^${glob.replace(/\/\*$/, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(/|$)`))];
  return patterns.flatMap((pattern) =>
    regexes(pattern).flatMap((regex) => {
      const value = `/${regex.replace(/\//g, '\\x2F')}/`;
      return [
        { selector: `ImportExpression[source.value=${value}]`, message: pattern.message },
        { selector: `CallExpression[callee.name='require'][arguments.0.value=${value}]`, message: pattern.message },
      ];
    }),
  );
}

/** Both rules for one set of patterns: static imports and re-exports, and dynamic loads. */
function restrict(patterns) {
  return { 'no-restricted-imports': ['error', { patterns }], 'no-restricted-syntax': ['error', ...loadsOf(patterns)] };
}

const boundaries = [
  // Any file of src/ not in a layer below still keeps off the infrastructure (a new directory gets a layer here).
  { name: 'boundaries/src', files: ['src/**/*.ts'], rules: restrict([noInfrastructure('src/'), noLib('src/'), ...plainPaths('src/', true)]) },
  {
    name: 'boundaries/src-base',
    files: ['src/*.ts'],
    rules: restrict([
      { regex: `^\\./${any(ALL)}`, caseSensitive: true, message: `The files of src/ itself (contracts, errors, codes, ports) are the bottom layer: they import only each other. Layers, bottom to top: ${ORDER}.` },
      { regex: '^\\.\\./', caseSensitive: true, message: 'The files of src/ itself are the bottom layer: they import nothing outside src/.' },
      noInfrastructure('src/'),
      noRuntimeIo('src/*.ts'),
      ...plainPaths('src/', true),
    ]),
  },
  ...LAYERS.flatMap((names, rank) => names.map((name) => layerConfig(rank, name))),
  {
    name: 'boundaries/lambdas',
    files: ['lambdas/**/*.ts'],
    rules: restrict([
      { regex: '^(\\.\\./)+src/(ops|local|cli)(/|$)', caseSensitive: true, message: 'lambdas/ hands events to src/steps: it must not import src/ops, src/local or src/cli (they would be bundled into the Lambda).' },
      { regex: '^(\\.\\./)+lib(/|$)', caseSensitive: true, message: 'lambdas/ must not import lib/: the stack is not part of a Lambda.' },
      noInfrastructure('lambdas/'),
      ...plainPaths('lambdas/', false),
    ]),
  },
  {
    name: 'boundaries/lib',
    files: ['lib/**/*.ts'],
    rules: restrict([
      {
        regex: '^(\\.\\./)+src/(?!(contracts|errors|codes|config)(/|$))',
        caseSensitive: true,
        message: 'lib/ may import only src/contracts, src/errors, src/codes and src/config: the rest of src/ is runtime code (it would load the AWS SDK and Powertools into the synth).',
      },
      { regex: '^(\\.\\./)+lambdas(/|$)', caseSensitive: true, message: 'lib/ must not import lambdas/: the handlers load the AWS SDK and Powertools, which the synth must not (the stack names their files as entries only).' },
      { group: RUNTIME_IO, message: 'lib/ synthesizes the stack: it must not load the AWS SDK, Powertools or the SFTP client.' },
      ...plainPaths('lib/', false),
    ]),
  },
];

module.exports = { LAYERS, ORDER, boundaries };
