/**
 * Jest runs the TypeScript sources through ts-jest (typescript 5: ts-jest cannot drive the native TypeScript 7).
 *
 * Two projects, so a developer can run the fast set alone (`npm run test:unit`) while `npm test` runs both:
 * - `unit`: suites that start nothing but in-process servers (the embedded S3, the sandbox, scripted HTTP servers)
 *   and short oracles (python3's csv): no workflow run, no CDK synthesis, no Lambda containers, no gpg, sshd or
 *   Chromium. Listed by name below.
 * - `e2e`: every other suite (the local workflow on the deployed bundles, the twin, CDK synthesis, GnuPG, OpenSSH,
 *   Chromium). A new suite lands here until it is listed as a unit: slow by default, never skipped.
 * test/projects.test.ts checks that the two sets partition test/**\/*.test.ts and that no unit suite starts what
 * belongs to e2e.
 */
const UNIT_SUITES = [
  'advice', 'chunk-writer', 'client', 'codes', 'config', 'csv', 'deployed', 'docs', 'distributed-map', 'errors', 'expressions', 'guard', 'house',
  'init',
  'mapping', 'metrics', 'projects', 'replay-quote', 'report-texts', 'sandbox', 'secrets', 'send', 'staged-record', 'sweep',
  'unpack', 'zip', 'estimate-model',
];

/**
 * `@marcbachmann/cel-js` (the CEL evaluator) ships only ES modules; Jest's CommonJS runtime needs it compiled to
 * CommonJS, so ts-jest transforms that one package too (esbuild bundles and tsx load it as it is).
 */
const ESM_PACKAGES = ['@marcbachmann/cel-js'];

const common = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', diagnostics: false }],
    '^.+/node_modules/@marcbachmann/cel-js/.+\\.js$': ['ts-jest', { tsconfig: { allowJs: true, module: 'commonjs', isolatedModules: true }, diagnostics: false }],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${ESM_PACKAGES.join('|')})/)`],
};

module.exports = {
  testTimeout: 120000,
  // Two suites at once on CI's two cores (Jest's default there is one): staging in phases made each local run several
  // stage invocations, and one suite at a time took 22 minutes; an e2e suite spends much of its time waiting on its
  // Lambda containers and servers, which the other suite's work fills.
  maxWorkers: 2,
  projects: [
    { ...common, displayName: 'unit', testMatch: UNIT_SUITES.map((name) => `<rootDir>/test/${name}.test.ts`) },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['**/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', ...UNIT_SUITES.map((name) => `/test/${name}\\.test\\.ts$`)],
    },
  ],
};
