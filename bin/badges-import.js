#!/usr/bin/env node
// The CLI runs on the Node the project installs (the node@24 dependency, as the Lambdas' nodejs24.x):
// aws-local-stepfunctions needs Node >= 22. `npx badges-import` and npm scripts find that node first on PATH. Started
// by an older node (`node bin/badges-import.js` with the system's Node 20), this launcher hands over to it, so the
// package's `engines` asks only for what the launcher itself needs.
const RUNTIME_MAJOR = 22;
if (Number(process.versions.node.split('.')[0]) < RUNTIME_MAJOR) {
  const { existsSync } = require('node:fs');
  const { join } = require('node:path');
  const bundled = join(__dirname, '..', 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(bundled)) {
    process.stderr.write(`badges-import needs Node ${RUNTIME_MAJOR} or later (this is ${process.version}): run \`npm ci\` to install the Node it runs on.\n`);
    process.exit(2);
  }
  // Started asynchronously so that this process stays responsive: a SIGTERM or SIGHUP sent to it alone (a process
  // manager, `timeout`, a closed terminal) is passed on, and it answers only once the CLI has stopped, with its code or
  // signal. Blocked in spawnSync it would die at once and leave the CLI running. SIGINT is not passed on: Ctrl-C
  // reaches the whole foreground process group, the CLI included, and a second one would end the CLI's graceful stop.
  const { spawn } = require('node:child_process');
  const child = spawn(bundled, [__filename, ...process.argv.slice(2)], { stdio: 'inherit' });
  const forward = (signal) => () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  process.on('SIGTERM', forward('SIGTERM'));
  process.on('SIGHUP', forward('SIGHUP'));
  process.on('SIGINT', () => {});
  child.once('error', (error) => {
    throw error;
  });
  child.once('exit', (status, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      return;
    }
    process.exit(status ?? 1);
  });
} else {
  runCli();
}

function runCli() {
  // The CLI is TypeScript run through tsx, so the repository needs no build step.
  require('tsx/cjs');
  const { main } = require('../src/cli/main.ts');
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
