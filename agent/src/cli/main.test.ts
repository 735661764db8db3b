import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { EXIT, main } from './main';

describe('physcap module', () => {
  let root: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'physcap-sys-'));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  const run = async (...args: string[]) => {
    let text = '';
    let errors = '';
    const code = await main(
      ['node', 'physcap', ...args],
      (s) => {
        text += s;
      },
      (s) => {
        errors += s;
      },
    );
    return { code, text, errors };
  };

  test('not loaded: says so and exits 69 (EX_UNAVAILABLE)', async () => {
    const { code, text } = await run('module', '--sys-root', root);
    expect(code).toBe(EXIT.unavailable);
    expect(text).toMatch(/not loaded/);
  });

  test('loaded: ABI version and counters, as JSON', async () => {
    const dir = path.join(root, 'sys', 'class', 'misc', 'physcap');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'abi_version'), '1\n');
    fs.writeFileSync(path.join(dir, 'bytes_zero_copy'), '268435456\n');
    fs.writeFileSync(path.join(dir, 'writes_done'), '3\n');
    const { code, text } = await run('module', '--json', '--sys-root', root);
    expect(code).toBe(EXIT.ok);
    expect(JSON.parse(text)).toMatchObject({
      loaded: true,
      abiVersion: 1,
      counters: { bytes_zero_copy: 268435456, writes_done: 3 },
    });
  });

  test('a counter that is not a number is an error naming the file', async () => {
    const dir = path.join(root, 'sys', 'class', 'misc', 'physcap');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'abi_version'), 'one\n');
    const { code, errors } = await run('module', '--sys-root', root);
    expect(code).toBe(EXIT.failure);
    expect(errors).toMatch(/abi_version: not a number: one/);
  });

  test('an unknown command is a usage error (2)', async () => {
    const { code, errors } = await run('frobnicate');
    expect(code).toBe(EXIT.usage);
    expect(errors).toMatch(/unknown command 'frobnicate'/);
  });
});
