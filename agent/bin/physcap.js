#!/usr/bin/env node
'use strict';
// The physcap CLI; the TypeScript is compiled to dist/ by "npm run build".
const { main } = require('../../dist/agent/src/cli/main.js');

// A reader that went away (`physcap show ID | head`) ends the output, as it
// does for any Unix tool: not the process with a stack trace on stderr.
process.stdout.on('error', (err) => {
  if (err && err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

main(process.argv).then((code) => {
  process.exitCode = code;
});
