#!/usr/bin/env node
// Per-area counts of the adversarial suite from the last jest run
// (build/jest-results.json): every case is named "[area] ...".
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const file = path.join(__dirname, '..', 'build', 'jest-results.json');
const results = JSON.parse(fs.readFileSync(file, 'utf8'));
const areas = new Map();
for (const suite of results.testResults) {
  for (const t of suite.assertionResults) {
    const m = /^\[([a-z]+)\] /.exec(t.title);
    if (!m) continue;
    const a = areas.get(m[1]) ?? { tried: 0, passed: 0 };
    a.tried++;
    if (t.status === 'passed') a.passed++;
    areas.set(m[1], a);
  }
}
let tried = 0;
let passed = 0;
for (const [area, a] of [...areas].sort()) {
  console.log(`${area.padEnd(14)} ${String(a.passed).padStart(4)} / ${a.tried}`);
  tried += a.tried;
  passed += a.passed;
}
console.log(`${'all'.padEnd(14)} ${String(passed).padStart(4)} / ${tried}`);
