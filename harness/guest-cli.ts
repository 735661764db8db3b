/**
 * Run on the emulated board by the *.vm.test.ts jobs (compiled to
 * dist/harness/guest-cli.js): runs the physcap CLI as a guest would,
 * `node agent/bin/physcap.js <args...>`, and prints its outcome as one
 * record, "@@cli <label> {rc, stdout, stderr}", whatever happened.
 *
 *   node guest-cli.js <label> <physcap args...>
 */
import { spawnSync } from 'node:child_process';

import { physcapCli } from './agent';

function main(): void {
  const [label, ...args] = process.argv.slice(2);
  if (!label) {
    console.error('usage: guest-cli.js <label> <physcap args...>');
    process.exitCode = 2;
    return;
  }
  const started = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [physcapCli, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const record = {
    rc: r.status ?? (r.signal ? `signal ${r.signal}` : `error ${r.error?.message ?? '?'}`),
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
    wallSeconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
  // One line whatever the text holds (JSON leaves U+2028/9 raw; a record is one line).
  console.log(
    `@@cli ${label} ${JSON.stringify(record)
      .replace(/\u2028/g, '\\u2028')
      .replace(/\u2029/g, '\\u2029')}`,
  );
}

main();
