/**
 * Capture profiles: the bad-input corpus with the exact diagnostics each
 * file must produce, drop-in directory rules, cross-profile claims, units,
 * the typed profile, and `physcap validate`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { main } from '../../agent/src/cli/main';
import { formatDiagnostic, hasErrors } from '../../agent/src/config/diagnostics';
import { AGENT_DEFAULTS, loadAgentConfig } from '../../agent/src/config/agent-config';
import { checkFile, checkFiles, listDropIns, loadProfiles } from '../../agent/src/config/load';
import { parseAddress, parseDuration, parseSize } from '../../agent/src/core/units';
import { removeDir, tempDir, withTempDir } from '../support/tmp';

const fixtures = path.join(__dirname, 'fixtures');
const badDir = path.join(fixtures, 'bad');
const configs = path.join(__dirname, '..', '..', 'configs');

const expected = new Map<string, string[]>();
for (const line of fs.readFileSync(path.join(badDir, 'expected.txt'), 'utf8').split('\n').filter(Boolean)) {
  const file = line.split(/[:\s]/)[0]!;
  expected.set(file, [...(expected.get(file) ?? []), line]);
}
const badFiles = fs
  .readdirSync(badDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

// The fixtures' destination: a directory of its own that exists (a system
// directory such as /tmp itself is refused; a missing one is a warning).
beforeAll(() => fs.mkdirSync('/tmp/physcap-fixture-captures', { recursive: true, mode: 0o750 }));

const formatted = (file: string) => checkFile(path.join(badDir, file)).diagnostics.map((d) => formatDiagnostic({ ...d, file: path.basename(d.file) }));

describe('the bad-profile corpus', () => {
  test('has at least 40 cases, each with its expected diagnostics', () => {
    expect(badFiles.length).toBeGreaterThanOrEqual(40);
    expect([...expected.keys()].sort()).toEqual(badFiles);
  });

  test.each(badFiles)('%s: exactly the expected errors, with file:line:col and pointer', (file) => {
    const got = formatted(file);
    expect(got).toEqual(expected.get(file));
    expect(hasErrors(checkFile(path.join(badDir, file)).diagnostics)).toBe(true);
  });
});

describe('files that are not profiles at all', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('config');
  });
  afterEach(() => removeDir(dir));

  test('a huge file is refused unread', () => {
    const f = path.join(dir, 'huge.yaml');
    fs.writeFileSync(f, `# ${'x'.repeat(2 << 20)}\n`);
    expect(checkFile(f).diagnostics.map((d) => d.message)).toEqual([`${fs.statSync(f).size} bytes is too large for a profile`]);
  });

  test('a symbolic link loop, a dangling link and a link to a file: refused as links, never read', () => {
    fs.symlinkSync(path.join(dir, 'b.yaml'), path.join(dir, 'a.yaml'));
    fs.symlinkSync(path.join(dir, 'a.yaml'), path.join(dir, 'b.yaml'));
    fs.symlinkSync(path.join(dir, 'gone.yaml'), path.join(dir, 'dangling.yaml'));
    fs.writeFileSync(path.join(dir, 'secret'), 'root:$y$j9T$hash:19000:0:99999:7:::\n');
    fs.symlinkSync(path.join(dir, 'secret'), path.join(dir, 'shadow.yaml'));
    for (const [name, to] of [
      ['a.yaml', 'b.yaml'],
      ['dangling.yaml', 'gone.yaml'],
      ['shadow.yaml', 'secret'],
    ]) {
      const ds = checkFile(path.join(dir, name!)).diagnostics;
      expect(ds).toEqual([expect.objectContaining({ line: 0, message: expect.stringContaining(`a symbolic link (to ${path.join(dir, to!)})`) })]);
      expect(JSON.stringify(ds)).not.toContain('hash');
    }
  });

  test('a directory named like a profile', () => {
    fs.mkdirSync(path.join(dir, 'dir.yaml'));
    expect(checkFile(path.join(dir, 'dir.yaml')).diagnostics[0]!.message).toBe('a directory, not a profile file');
  });

  test('a directory of bad files never throws and keeps serving the good profile', () => {
    for (const f of badFiles) fs.copyFileSync(path.join(badDir, f), path.join(dir, f));
    fs.copyFileSync(path.join(fixtures, 'good', 'minimal.yaml'), path.join(dir, 'zz-good.yaml'));
    fs.writeFileSync(path.join(dir, 'huge.yaml'), 'x'.repeat(3 << 20));
    fs.symlinkSync(path.join(dir, 'loop.yaml'), path.join(dir, 'loop.yaml'));
    const result = loadProfiles([dir]);
    expect([...result.profiles.keys()]).toEqual(['minimal']);
    expect(result.files.filter((f) => hasErrors(f.diagnostics))).toHaveLength(badFiles.length + 2);
  });
});

describe('drop-in directories', () => {
  let root: string;
  const dirs = () => ['usr', 'etc', 'run'].map((d) => path.join(root, d));
  const write = (dir: string, name: string, profile: string) => {
    fs.mkdirSync(path.join(root, dir), { recursive: true });
    const text = fs.readFileSync(path.join(fixtures, 'good', 'minimal.yaml'), 'utf8').replace('name: minimal', `name: ${profile}`);
    fs.writeFileSync(path.join(root, dir, name), text);
  };
  beforeEach(() => {
    root = tempDir('dropin');
  });
  afterEach(() => removeDir(root));

  test('a later directory overrides a file of the same name; a link to /dev/null masks it', () => {
    write('usr', 'a.yaml', 'vendor-a');
    write('etc', 'a.yaml', 'admin-a');
    write('usr', 'b.yaml', 'vendor-b');
    fs.mkdirSync(path.join(root, 'run'));
    fs.symlinkSync('/dev/null', path.join(root, 'run', 'b.yaml'));
    write('usr', 'c.yml', 'vendor-c');
    fs.writeFileSync(path.join(root, 'usr', '.hidden.yaml'), 'junk');
    fs.writeFileSync(path.join(root, 'usr', 'notes.txt'), 'junk');
    const listing = listDropIns([...dirs(), path.join(root, 'missing')]);
    expect(listing.files).toEqual([path.join(root, 'etc', 'a.yaml'), path.join(root, 'usr', 'c.yml')]);
    expect(listing.masked).toEqual(['b.yaml']);
    expect([...loadProfiles(dirs()).profiles.keys()].sort()).toEqual(['admin-a', 'vendor-c']);
  });

  test('a name, a trigger file or a signal belongs to one profile only', () => {
    write('etc', 'a.yaml', 'same');
    write('etc', 'b.yaml', 'same');
    const result = loadProfiles(dirs());
    expect([...result.profiles.keys()]).toEqual(['same']);
    const b = result.files.find((f) => f.file.endsWith('b.yaml'))!;
    expect(formatDiagnostic(b.diagnostics[0]!)).toMatch(/b\.yaml:3:7 {2}\/name {2}profile name "same" is already claimed by .*a\.yaml/);

    const sig = (name: string) =>
      fs
        .readFileSync(path.join(fixtures, 'good', 'minimal.yaml'), 'utf8')
        .replace('name: minimal', `name: ${name}`)
        .replace('  - kind: control', '  - kind: signal\n  - kind: file\n    name: shared');
    fs.writeFileSync(path.join(root, 'etc', 'c.yaml'), sig('first'));
    fs.writeFileSync(path.join(root, 'etc', 'd.yaml'), sig('second'));
    const d = loadProfiles(dirs()).files.find((f) => f.file.endsWith('d.yaml'))!;
    expect(d.profile).toBeUndefined();
    expect(d.diagnostics.map((x) => x.message)).toEqual([
      expect.stringMatching(/^signal SIGUSR2 is already claimed by/),
      expect.stringMatching(/^trigger file "shared" is already claimed by/),
    ]);
  });
});

describe('units', () => {
  test.each([
    [4096, 4096n],
    ['4096', 4096n],
    ['64KiB', 65536n],
    ['64K', 65536n],
    ['3MiB', 3n << 20n],
    ['1.5GiB', 3n << 29n],
    ['2T', 2n << 40n],
  ])('size %p is %p bytes', (v, bytes) => expect(parseSize(v)).toBe(bytes));

  test.each([['3 parsecs'], ['1.5B'], [-1], [1.5], ['0x10'], [{}]])('%p is not a size', (v) => {
    expect(parseSize(v)).toBeInstanceOf(Error);
  });

  test.each([
    [30, 30_000],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
    ['250ms', 250],
    ['1d', 86_400_000],
  ])('duration %p is %p ms', (v, ms) => expect(parseDuration(v)).toBe(ms));

  test.each([['soon'], ['5 minutes'], ['1h 30'], [-5]])('%p is not a duration', (v) => {
    expect(parseDuration(v)).toBeInstanceOf(Error);
  });

  test('addresses keep all 64 bits', () => {
    expect(parseAddress('0xfffffffffffff000')).toBe(0xfffffffffffff000n);
    expect(parseAddress(536870912)).toBeInstanceOf(Error);
  });
});

describe('the shipped examples', () => {
  test('every file in configs/ is valid (warnings only for paths this machine lacks)', () => {
    const files = listDropIns([configs]).files;
    expect(files.length).toBeGreaterThanOrEqual(5);
    const result = checkFiles(files);
    for (const f of result.files) {
      expect(f.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic)).toEqual([]);
      for (const d of f.diagnostics) expect(d.message).toMatch(/does not exist on this machine|not writable/);
    }
    expect([...result.profiles.keys()].sort()).toEqual([
      'board-watchdog-dump',
      'fleet-s3',
      'fleet-sftp',
      'periodic-snapshot',
      'server-lockup-ram',
      'vm-memory-file',
    ]);
  });

  test('the typed profile: defaults applied, units resolved, immutable', () => {
    const p = checkFile(path.join(configs, 'periodic-snapshot.yaml')).profile!;
    expect(p.regions[0]).toEqual({ name: 'persistent-log', kind: 'range', start: 0x2100_0000n, size: 16n << 20n, allowDevice: false, memory: 'quiescent' });
    expect(p.triggers[0]).toEqual({ kind: 'interval', everyMs: 3_600_000, atStart: false });
    expect(p.destination).toEqual({
      kind: 'dir',
      path: '/var/lib/physcap/snapshots',
      retention: { count: 24, bytes: 2n << 30n, keepFree: 1n << 30n },
      onInterrupted: 'keep',
    });
    expect(p).toMatchObject({ cooldownMs: 600_000, priority: 50, enabled: true, output: { format: 'raw' } });
    expect(p.hash).toEqual({ algorithm: 'sha256', chunkSize: 4n << 20n, readback: 'auto' });
    expect(p.textSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(Object.isFrozen(p.regions[0])).toBe(true);
  });
});

describe('physcap validate', () => {
  const run = async (...args: string[]) => {
    let out = '';
    let err = '';
    const code = await main(
      ['node', 'physcap', 'validate', ...args],
      (s) => (out += s),
      (s) => (err += s),
    );
    return { code, out, err };
  };

  test('configs/ passes: exit 0', async () => {
    const { code, out } = await run(configs);
    expect(code).toBe(0);
    expect(out).toMatch(/7 of 7 valid/);
  });

  test('a bad file fails with exit 1 and its positioned errors', async () => {
    const { code, out } = await run(path.join(badDir, '30-overlapping-regions.yaml'), path.join(fixtures, 'good', 'minimal.yaml'));
    expect(code).toBe(1);
    expect(out).toMatch(/^FAIL {2}.*30-overlapping-regions\.yaml$/m);
    expect(out).toMatch(/30-overlapping-regions\.yaml:9:12 {2}\/regions\/1\/start {2}overlaps region \/regions\/0/);
    expect(out).toMatch(/^PASS {2}.*minimal\.yaml$/m);
  });

  test('--json, and --deny-warnings makes a warning fail', async () => {
    await withTempDir('validate', async (dir) => {
      const f = path.join(dir, 'warn.yaml');
      fs.writeFileSync(f, fs.readFileSync(path.join(fixtures, 'good', 'minimal.yaml'), 'utf8') + 'source:\n  kind: kernel\n  image_path: /dev/shm/x\n');
      const plain = await run('--json', f);
      expect(plain.code).toBe(0);
      const json = JSON.parse(plain.out) as { ok: boolean; files: Array<{ status: string; diagnostics: Array<{ line: number; pointer: string }> }> };
      expect(json.ok).toBe(true);
      expect(json.files[0]).toMatchObject({ status: 'warn', diagnostics: [{ line: 15, pointer: '/source/image_path' }] });
      expect((await run('--deny-warnings', f)).code).toBe(1);
    });
  });

  test('usage errors exit 2', async () => {
    expect((await run('--no-such-flag')).code).toBe(2);
  });
});

describe('agent.yaml', () => {
  test('the example is read with its values; a missing file means the defaults', () => {
    expect(loadAgentConfig(path.join(configs, 'agent.yaml'))).toEqual({
      config: {
        profileDirs: ['/usr/lib/physcap/profiles.d', '/etc/physcap/profiles.d', '/run/physcap/profiles.d'],
        stateDir: '/var/lib/physcap',
        runtimeDir: '/run/physcap',
        spoolDir: '/run/physcap/triggers',
        logLevel: 'info',
        metricsListen: '',
        signingKey: '',
      },
      diagnostics: [],
    });
    expect(loadAgentConfig('/nonexistent/agent.yaml')).toEqual({ config: AGENT_DEFAULTS, diagnostics: [] });
  });

  test('an invalid one gives positioned errors and no config', () => {
    withTempDir('agent', (dir) => {
      const f = path.join(dir, 'agent.yaml');
      fs.writeFileSync(f, 'apiVersion: physcap.dev/v1\nkind: AgentConfig\nlog_level: loud\nstate_dir: relative\n');
      const r = loadAgentConfig(f);
      expect(r.config).toBeUndefined();
      expect(r.diagnostics.map(formatDiagnostic)).toEqual([
        `${f}:3:12  /log_level  not one of the allowed values  (one of "trace", "debug", "info", "warn", "error", "fatal")`,
        `${f}:4:12  /state_dir  does not have the expected form  (matching ^/)`,
      ]);
    });
  });
});
