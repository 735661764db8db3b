/**
 * Adversarial: bad profiles and agent.yaml, as a careless or hostile
 * author writes them.  Each is checked through `physcap validate` (or the
 * agent's own loader for agent.yaml): exit 1, and a message naming the
 * file, line, column and field.  Nothing hangs, nothing is echoed that
 * is not the profile's own.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { loadAgentConfig } from '../../agent/src/config/agent-config';
import { formatDiagnostic } from '../../agent/src/config/diagnostics';
import { compileLinear } from '../../agent/src/core/linear-regexp';
import { cli, NOBODY, profileYaml, scratch } from './kit';

let s: ReturnType<typeof scratch>;
beforeAll(() => {
  s = scratch('profiles');
  fs.mkdirSync('/tmp/physcap-fixture-captures', { recursive: true, mode: 0o750 });
});
afterAll(() => s.done());

let n = 0;
function file(text: string | Buffer, name?: string): string {
  const f = path.join(s.dir, name ?? `case-${++n}.yaml`);
  fs.writeFileSync(f, text);
  return f;
}

/** [what is tried, the profile text, the diagnostic every case must print (file:line:col  pointer  message)] */
const CASES: Array<[string, string, RegExp]> = [
  ['a destination in /etc', profileYaml({ destination: '  kind: dir\n  path: /etc' }), /:12:9 {2}\/destination\/path {2}\/etc is a system directory/],
  ['a destination at /', profileYaml({ destination: '  kind: dir\n  path: /' }), /:12:9 {2}\/destination\/path {2}\/ is a system directory/],
  [
    'a destination inside /usr',
    profileYaml({ destination: '  kind: dir\n  path: /usr/lib/physcap' }),
    /\/destination\/path {2}\/usr\/lib\/physcap is inside \/usr, a system directory/,
  ],
  [
    'a destination inside /proc',
    profileYaml({ destination: '  kind: dir\n  path: /proc/self/cwd' }),
    /\/destination\/path {2}\/proc\/self\/cwd is inside \/proc/,
  ],
  ['a destination at /tmp itself', profileYaml({ destination: '  kind: dir\n  path: /tmp' }), /\/destination\/path {2}\/tmp is a system directory/],
  ['a destination at /var/lib', profileYaml({ destination: '  kind: dir\n  path: /var/lib' }), /\/destination\/path {2}\/var\/lib is a system directory/],
  [
    'a destination spelt with dot-dot into /etc',
    profileYaml({ destination: '  kind: dir\n  path: /tmp/../etc' }),
    /\/destination\/path {2}\/etc is a system directory/,
  ],
  ['a relative destination', profileYaml({ destination: '  kind: dir\n  path: captures' }), /:12:9 {2}\/destination\/path {2}does not have the expected form/],
  [
    'an unquoted 23-digit size',
    profileYaml({ regions: '  - name: a\n    start: "0x20000000"\n    size: 99999999999999999999999' }),
    /:7:11 {2}\/regions\/0\/size {2}a 23-digit number does not fit in 64 bits/,
  ],
  [
    'an unquoted 17-digit size',
    profileYaml({ regions: '  - name: a\n    start: "0x20000000"\n    size: 12345678901234567' }),
    /\/regions\/0\/size {2}a 17-digit unquoted number is not exact in YAML/,
  ],
  ['a negative size', profileYaml({ regions: '  - name: a\n    start: "0x20000000"\n    size: -4096' }), /\/regions\/0\/size/],
  [
    'a size of 2^64 bytes',
    profileYaml({ regions: '  - name: a\n    start: "0x20000000"\n    size: "16777216TiB"' }),
    /\/regions\/0\/size {2}"16777216TiB" does not fit in 64 bits/,
  ],
  ['a region running past 2^64', profileYaml({ regions: '  - name: a\n    start: "0xfffffffffffff000"\n    size: 8192' }), /\/regions\/0/],
  ['an address of 17 hex digits', profileYaml({ regions: '  - name: a\n    start: "0x10000000000000000"\n    size: 4096' }), /\/regions\/0\/start/],
  ['a region name with a path in it', profileYaml({ regions: '  - name: ../../etc/passwd\n    start: "0x20000000"\n    size: 4096' }), /\/regions\/0\/name/],
  ['a region name with a NUL', profileYaml({ regions: '  - name: "a\\0b"\n    start: "0x20000000"\n    size: 4096' }), /\/regions\/0\/name/],
  ['a profile name with a slash', profileYaml({ name: 'a/b' }), /:3:7 {2}\/name/],
  ['a profile name of 100 characters', profileYaml({ name: 'a'.repeat(100) }), /:3:7 {2}\/name/],
  ['a trigger file name that climbs out of the spool', profileYaml({ triggers: '  - kind: file\n    name: ../../etc/passwd' }), /\/triggers\/0\/name/],
  ['a trigger file name that is hidden', profileYaml({ triggers: '  - kind: file\n    name: .hidden' }), /\/triggers\/0\/name/],
  ['SIGKILL as a trigger signal', profileYaml({ triggers: '  - kind: signal\n    signal: SIGKILL' }), /\/triggers\/0\/signal/],
  [
    'an interval of a million years',
    profileYaml({ triggers: '  - kind: interval\n    every: 365000000d' }),
    /\/triggers\/0\/every {2}"365000000d" is too long a duration/,
  ],
  ['an interval of 1e400 seconds', profileYaml({ triggers: '  - kind: interval\n    every: 1e400' }), /\/triggers\/0\/every/],
  ['an interval of zero', profileYaml({ triggers: '  - kind: interval\n    every: 0s' }), /\/triggers\/0\/every/],
  ['a kmsg pattern with a back-reference', profileYaml({ triggers: '  - kind: kmsg\n    patterns: ["(a)\\\\1"]' }), /\/triggers\/0\/patterns\/0/],
  ['a kmsg pattern with a look-ahead', profileYaml({ triggers: '  - kind: kmsg\n    patterns: ["(?=a)b"]' }), /\/triggers\/0\/patterns\/0/],
  ['a kmsg pattern that does not compile', profileYaml({ triggers: '  - kind: kmsg\n    patterns: ["(unclosed"]' }), /\/triggers\/0\/patterns\/0/],
  ['a duplicate key', profileYaml({ extra: 'name: again' }), /:13:1 {2}\/ {2}YAML: a key appears twice in one mapping/],
  ['a second YAML document', `${profileYaml()}---\nname: other\n`, /second document|one document|more than one/i],
  [
    'an alias bomb',
    `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n`,
    /alias|Excessive/i,
  ],
  ['10,000 nested brackets', `${'['.repeat(10_000)}${']'.repeat(10_000)}\n`, /case-\d+\.yaml/],
  ['a sequence, not a mapping', '- a\n- b\n', /:1:1 {2}\/ {2}a profile is a mapping of fields/],
  ['a bare number', '42\n', /:1:1 {2}\/ {2}a profile is a mapping of fields/],
  ['an empty file', '', /the file holds no document/],
  ['a misspelt field', profileYaml({ extra: 'destinaton: {}' }), /\/destinaton {2}unknown field "destinaton"/],
  [
    'a key that is no field name (a line of another file)',
    profileYaml({ extra: 'root:$y$j9T$secret-hash:19000:0:99999:7::: x' }),
    /unknown field \(a key of \d+ characters that is no field name; not quoted\)/,
  ],
  ['a tab-indented mapping', 'apiVersion: physcap.dev/v1\nkind: CaptureProfile\nname: t\nregions:\n\t- name: a\n', /case-\d+\.yaml:\d+:\d+ {2}\/ {2}YAML/],
  ['a kind that is not a profile', profileYaml().replace('kind: CaptureProfile', 'kind: Pod'), /:2:7 {2}\/kind/],
  ['an apiVersion from the future', profileYaml().replace('physcap.dev/v1', 'physcap.dev/v9'), /:1:13 {2}\/apiVersion/],
  ['an unknown destination kind', profileYaml({ destination: '  kind: nfs\n  path: /x' }), /\/destination\/kind {2}unknown kind/],
  ['a block device destination that is a directory', profileYaml({ destination: '  kind: blockdev\n  device: 12' }), /\/destination\/device/],
];

describe('[profiles] hostile and careless profiles through physcap validate', () => {
  test.each(CASES)('[profiles] %s: exit 1, the file, line, column and field named', async (_what, text, want) => {
    const f = file(text);
    const r = await cli(['validate', f]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^FAIL {2}/m);
    expect(r.out).toMatch(want);
    expect(r.out).not.toMatch(/secret-hash/);
  });
});

describe('[profiles] patterns that would stall a backtracking engine', () => {
  test('[profiles] a kmsg pattern with nested quantifiers: accepted, and a 100,000-character hostile line is answered (linear-time matching)', async () => {
    const f = file(profileYaml({ triggers: '  - kind: kmsg\n    patterns: ["^(a+)+$"]' }));
    expect((await cli(['validate', f])).code).toBe(0);
    const re = compileLinear('^(a+)+$');
    expect(re.test(`${'a'.repeat(100_000)}!`)).toBe(false);
    expect(re.test('a'.repeat(100_000))).toBe(true);
  });
});

describe('[profiles] files and directories that are not what they claim', () => {
  test('[profiles] a profile that is a symlink to a secret: refused as a link, the secret never read or echoed', async () => {
    const secret = file('root:$y$j9T$secret-hash:19000:0:99999:7:::\n', 'secret');
    fs.symlinkSync(secret, path.join(s.dir, 'shadow.yaml'));
    const r = await cli(['validate', path.join(s.dir, 'shadow.yaml')]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/shadow\.yaml {2}\/ {2}a symbolic link \(to .*secret\): profiles are read only from regular files/);
    expect(r.out).not.toMatch(/secret-hash|root:/);
  });

  test('[profiles] a FIFO named like a profile: refused at once, no reader hangs on it', async () => {
    const fifo = path.join(s.dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    const r = await cli(['validate', fifo]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/fifo\.yaml {2}\/ {2}not a regular file/);
  });

  test('[profiles] a directory named x.yaml: exit 1, "a directory, not a profile file"', async () => {
    fs.mkdirSync(path.join(s.dir, 'x.yaml'));
    const r = await cli(['validate', path.join(s.dir, 'x.yaml')]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/x\.yaml {2}\/ {2}a directory, not a profile file/);
  });

  test('[profiles] a directory with no profiles: exit 1, said', async () => {
    fs.mkdirSync(path.join(s.dir, 'empty'));
    const r = await cli(['validate', path.join(s.dir, 'empty')]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/empty {2}\/ {2}no profiles \(\*\.yaml, \*\.yml\) in this directory/);
  });

  test('[profiles] a profile file anyone can write: refused, saying who could change it', async () => {
    const f = file(profileYaml());
    fs.chmodSync(f, 0o666);
    const r = await cli(['validate', f]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/profile refused: .* is writable by every user \(mode 0666\)/);
  });

  test('[profiles] a profile owned by another user: refused', async () => {
    const f = file(profileYaml());
    fs.chownSync(f, NOBODY, NOBODY);
    const r = await cli(['validate', f]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/profile refused: .* is owned by uid 65534, neither root nor the user physcap runs as/);
  });

  test('[profiles] a profile directory anyone can write: refused whole, its profiles not read', async () => {
    const d = path.join(s.dir, 'open-dir');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'good.yaml'), profileYaml());
    fs.chmodSync(d, 0o777);
    const r = await cli(['validate', d]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/open-dir {2}\/ {2}profile directory refused: .* is writable by every user \(mode 0777\)/);
    expect(r.out).not.toMatch(/good\.yaml/);
  });

  test('[profiles] a profile of 2 MiB: refused unread', async () => {
    const f = file(`# ${'x'.repeat(2 << 20)}\n${profileYaml()}`);
    const r = await cli(['validate', f]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/bytes is too large for a profile/);
  });

  test('[profiles] binary data: refused as not YAML text', async () => {
    const r = await cli(['validate', file(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3]))]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/binary data, not YAML text/);
  });

  test('[profiles] invalid UTF-8: refused as not text', async () => {
    const r = await cli(['validate', file(Buffer.concat([Buffer.from('name: '), Buffer.from([0xc3, 0x28]), Buffer.from('\n')]))]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/not valid UTF-8 text/);
  });

  test('[profiles] a file that does not exist: exit 1, "no such file"', async () => {
    const r = await cli(['validate', path.join(s.dir, 'missing.yaml')]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/missing\.yaml {2}\/ {2}no such file/);
  });
});

/** agent.yaml: the daemon refuses to start on these (exit 78), each positioned. */
const AGENT_CASES: Array<[string, string, RegExp]> = [
  [
    'spool_dir: /etc',
    'spool_dir: /etc',
    /:3:12 {2}\/spool_dir {2}\/etc is a system directory; a spool gets a directory of its own \(such as \/run\/physcap\/triggers\)/,
  ],
  ['spool_dir: /', 'spool_dir: /', /\/spool_dir {2}\/ is a system directory/],
  ['spool_dir: /tmp', 'spool_dir: /tmp', /\/spool_dir {2}\/tmp is a system directory/],
  ['spool_dir inside /etc', 'spool_dir: /etc/physcap', /\/spool_dir {2}\/etc\/physcap is inside \/etc/],
  ['state_dir: /var/lib', 'state_dir: /var/lib', /\/state_dir {2}\/var\/lib is a system directory; a state directory/],
  ['runtime_dir: /run', 'runtime_dir: /run', /\/runtime_dir {2}\/run is a system directory; a runtime directory/],
  ['a relative spool_dir', 'spool_dir: triggers', /\/spool_dir/],
  ['an unknown field', 'spool: /run/x', /\/spool {2}unknown field "spool"/],
  ['log_level: loud', 'log_level: loud', /\/log_level/],
  ['profile_dirs as a string', 'profile_dirs: /etc/physcap', /\/profile_dirs/],
];

describe('[profiles] agent.yaml', () => {
  test.each(AGENT_CASES)('[profiles] agent.yaml with %s: refused, the line and field named', (_what, line, want) => {
    const f = file(`apiVersion: physcap.dev/v1\nkind: AgentConfig\n${line}\n`, `agent-${++n}.yaml`);
    const r = loadAgentConfig(f);
    expect(r.config).toBeUndefined();
    expect(r.diagnostics.map(formatDiagnostic).join('\n')).toMatch(want);
  });
});
