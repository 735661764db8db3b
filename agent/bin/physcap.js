#!/usr/bin/env node
'use strict';
// The physcap CLI; the TypeScript is compiled to dist/ by "npm run build".
const { main } = require('../../dist/agent/src/cli/main.js');

main(process.argv).then((code) => {
  process.exitCode = code;
});
