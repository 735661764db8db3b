/**
 * `npm run demo` is the first thing a new user runs; it must keep working.
 * This runs the compiled demo (scripts/build.js compiled it) end to end on
 * the emulated board, with its captures in a temporary directory, and
 * checks what it promises: exit 0, the narrated steps, a table where every
 * capture verified and matched the ground truth, and explore commands that
 * work as printed.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

import { exec } from './support/cli';
import { removeDir, tempDir } from './support/tmp';

const root = path.join(__dirname, '..');
const demo = path.join(root, 'dist', 'scripts', 'demo.js');

describe('npm run demo', () => {
  let out: string;
  let stdout = '';
  let code = -1;

  beforeAll(async () => {
    out = tempDir('demo');
    const r = await exec(process.execPath, [demo], { cwd: root, env: { ...process.env, PHYSCAP_DEMO_OUT: out }, timeout: 15 * 60_000, maxBuffer: 16 << 20 });
    stdout = `${r.stdout}${r.stderr}`;
    code = r.code;
  }, 16 * 60_000);
  afterAll(() => removeDir(out));

  test('exits 0 and says every check held', () => {
    if (code !== 0) throw new Error(stdout);
    expect(stdout).toMatch(/Every capture is complete, verifies, went zero-copy and matches the host ground truth/);
  });

  test('narrates the story: EFAULT, the four triggers, the broken profile with file:line:col', () => {
    for (const step of [
      /EFAULT/,
      /1\/4 the watchdog repair hook/,
      /2\/4 freezing the agent/,
      /first byte \d+ us after the pretimeout/,
      /3\/4 physcap trigger on-demand/,
      /broken\.yaml:7:11 +\/regions\/0\/size/,
      /and keeps going: 3 profiles active/,
    ]) {
      expect(stdout).toMatch(step);
    }
  });

  test('the table: one capture per trigger kind, each verified and matching the ground truth', () => {
    const rows = stdout.split('\n').filter((l) => /^(watchdog-hook|pretimeout|on-demand)-\d{8}T/.test(l));
    expect(rows.map((r) => r.split(/\s+/)[2])).toEqual(['file', 'watchdog', 'control']);
    for (const r of rows) expect(r).toMatch(/\s+all\s+\d+\s+ok\s+match \(/);
  });

  test('the printed list command works on the demo output', () => {
    const line = stdout.split('\n').find((l) => l.trim().startsWith('node agent/bin/physcap.js list'))!;
    const args = line.trim().split(/\s+/).slice(1);
    const listed = execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
    expect(listed.match(/ complete /g)).toHaveLength(3);
  });
});
