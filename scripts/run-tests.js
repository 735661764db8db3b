#!/usr/bin/env node
// Runs the whole jest suite (or only the emulated-board tests with --vm-only)
// and ends with the plain "N passed, N failed" line CI reads.  Suites run one
// at a time: each boot of the emulated board takes both cores.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const resultFile = path.join(root, 'build', 'jest-results.json');
const vmOnly = process.argv.includes('--vm-only');

const args = [path.join(root, 'node_modules', 'jest', 'bin', 'jest.js'), '--runInBand', '--verbose', '--json', `--outputFile=${resultFile}`];
if (vmOnly) args.push('--testPathPatterns', '\\.vm\\.test\\.ts$');

fs.rmSync(resultFile, { force: true });
const jest = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });

let passed = 0;
let failed;
if (fs.existsSync(resultFile)) {
  const results = JSON.parse(fs.readFileSync(resultFile, 'utf8'));
  passed = results.numPassedTests;
  // A suite that could not run at all counts as one failure.
  failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
} else {
  failed = 1;
}
if (jest.status !== 0 && failed === 0) failed = 1;
if (passed + failed === 0) failed = 1; // running no test is a failure

console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
