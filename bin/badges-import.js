#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so the repository needs no build step.
require('tsx/cjs');
const { main } = require('../src/cli/main.ts');
main(process.argv).then((code) => {
  process.exitCode = code;
});
