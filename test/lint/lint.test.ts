/**
 * Lint and format in CI: each tool over its part of the tree, a failure
 * listing every finding.  The scripts are what a developer runs by hand
 * (npm run lint).
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const root = path.join(__dirname, '..', '..');

function lint(script: string, ...args: string[]): { status: number | null; output: string } {
  const r = spawnSync('bash', [path.join(root, 'scripts', 'lint', script), ...args], { cwd: root, encoding: 'utf8', timeout: 600_000, maxBuffer: 64 << 20 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

// The output is compared too, so a failure shows every finding.
const clean = (r: { status: number | null; output: string }) =>
  expect({ status: r.status, findings: r.status === 0 ? '' : r.output }).toEqual({ status: 0, findings: '' });

test('ESLint (typescript-eslint, type-aware): no findings in the agent, tests, benchmarks and scripts', () => clean(lint('typescript.sh', 'eslint')), 600_000);

test('Prettier: every TypeScript and build script file is formatted', () => clean(lint('typescript.sh', 'prettier')), 600_000);

test('checkpatch.pl --no-tree: the kernel module and the C tools are kernel style', () => clean(lint('checkpatch.sh')), 600_000);

test('clang-format: the native engine is formatted (native/.clang-format)', () => clean(lint('clang-format.sh')), 600_000);
