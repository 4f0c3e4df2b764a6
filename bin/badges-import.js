#!/usr/bin/env node
// The CLI runs on the Node the project installs (the node@24 dependency, as the Lambdas' nodejs24.x):
// aws-local-stepfunctions needs Node >= 22. `npx badges-import` and npm scripts find that node first on PATH. Started
// by an older node (`node bin/badges-import.js` with the system's Node 20), this launcher hands over to it, so the
// package's `engines` asks only for what the launcher itself needs.
const RUNTIME_MAJOR = 22;
if (Number(process.versions.node.split('.')[0]) < RUNTIME_MAJOR) {
  const { existsSync } = require('node:fs');
  const { join } = require('node:path');
  const { spawnSync } = require('node:child_process');
  const bundled = join(__dirname, '..', 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(bundled)) {
    process.stderr.write(`badges-import needs Node ${RUNTIME_MAJOR} or later (this is ${process.version}): run \`npm ci\` to install the Node it runs on.\n`);
    process.exit(2);
  }
  const child = spawnSync(bundled, [__filename, ...process.argv.slice(2)], { stdio: 'inherit' });
  if (child.error) throw child.error;
  if (child.signal) process.kill(process.pid, child.signal);
  process.exit(child.status ?? 1);
}

// The CLI is TypeScript run through tsx, so the repository needs no build step.
require('tsx/cjs');
const { main } = require('../src/cli/main.ts');
main(process.argv).then((code) => {
  process.exitCode = code;
});
