/**
 * Adversarial: the CLI misused, an unprivileged user trying the agent and
 * the captures, and bursts of triggers at a running agent.  Misuse gets a
 * usage error or a clear failure (never exit 0, never a stack trace);
 * the unprivileged user gets nothing; a burst leaves the agent answering
 * and every capture it recorded verifiable.
 */
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { physcapCli, runAgent, stopAgent } from '../../harness/agent';
import { captureNow, imageProfile, indexOf, makeImage, MiB, writeProfile } from '../support/capture';
import { exec, Exit } from '../support/cli';
import { waitUntil } from '../support/wait';
import { cli, NOBODY, scratch } from './kit';

let s: ReturnType<typeof scratch>;
let img: ReturnType<typeof makeImage>;
let dest: string;
let id: string;
beforeAll(async () => {
  s = scratch('users');
  fs.chmodSync(s.dir, 0o755); // nobody may look in; the destination itself stays 0750
  img = makeImage(s.dir, 4 * MiB);
  fs.chmodSync(img.file, 0o644);
  dest = path.join(s.dir, 'captures');
  id = (await captureNow(writeProfile(s.dir, 'users', imageProfile({ image: img.file, dest, regions: [['a', 0, MiB]] })))).id;
});
afterAll(() => s.done());

describe('[cli] misuse', () => {
  const USAGE: Array<[string, string[], RegExp]> = [
    ['an unknown command', ['bogus'], /unknown command 'bogus'/],
    ['verify without a capture', ['verify'], /missing required argument 'capture'/],
    ['export in an unknown format', ['export', 'x', '--format', 'bogus', '-o', '/tmp/x'], /--format must be lime, raw, elf or kdump, not "bogus"/],
    ['export without an output', ['export', 'x', '--format', 'raw'], /required option '-o, --out <path>' not specified/],
    ['verify with a malformed --head', ['verify', 'x', '--head', '7'], /--head: "7" is not a head/],
    ['an unknown option', ['list', '--destination', '/x'], /unknown option '--destination'/],
  ];
  test.each(USAGE)('[cli] %s: exit 2 with a usage message', async (_what, args, why) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(why);
  });

  test('[cli] export over an existing file: refused, the file unchanged', async () => {
    const out = path.join(s.dir, 'existing.lime');
    fs.writeFileSync(out, 'mine');
    const r = await cli(['export', id, '--dest', dest, '--format', 'lime', '-o', out]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/EEXIST|exists/);
    expect(fs.readFileSync(out, 'utf8')).toBe('mine');
  });

  test('[cli] export of a region the capture does not have: exit 1 naming it', async () => {
    const r = await cli(['export', id, '--dest', dest, '--format', 'raw', '--region', 'nope', '-o', path.join(s.dir, 'nope.raw')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/nope/);
    expect(fs.existsSync(path.join(s.dir, 'nope.raw'))).toBe(false);
  });

  test('[cli] keygen over an existing key: refused, the key unchanged', async () => {
    const k = path.join(s.dir, 'k');
    expect((await cli(['keygen', '-o', k])).code).toBe(0);
    const before = fs.readFileSync(`${k}.key`);
    const r = await cli(['keygen', '-o', k]);
    expect(r.code).toBe(1);
    expect(fs.readFileSync(`${k}.key`)).toEqual(before);
  });

  test('[cli] verify --key naming a missing file: exit 1, saying so', async () => {
    const r = await cli(['verify', id, '--dest', dest, '--key', path.join(s.dir, 'none.pub')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/none\.pub.*ENOENT|ENOENT.*none\.pub/);
  });

  test('[cli] verify --key naming a file that is not a key: exit 1, saying so', async () => {
    const f = path.join(s.dir, 'not-a-key.pub');
    fs.writeFileSync(f, 'hello\n');
    const r = await cli(['verify', id, '--dest', dest, '--key', f]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/physcap: /);
    expect(r.err).not.toMatch(/\n\s+at /); // a message, not a stack
  });

  test.each([
    ['a destination that does not exist', () => path.join(s.dir, 'nowhere')],
    ['a destination that is a file', () => img.file],
  ])('[cli] list --dest %s: exit 1, never "no captures"', async (_what, where) => {
    const r = await cli(['list', '--dest', where()]);
    expect(r.code).toBe(1);
    expect(r.out).not.toMatch(/no captures/);
  });

  test('[cli] import of a file that is not an ELF core: exit 1, nothing imported', async () => {
    const f = path.join(s.dir, 'not-a-core');
    fs.writeFileSync(f, 'not an ELF file at all');
    const into = path.join(s.dir, 'imports');
    const r = await cli(['import', f, '--dest', into]);
    expect(r.code).not.toBe(0);
    expect(indexOf(into)).toEqual([]);
  });

  test('[cli] status with no agent running: exit 69 (unavailable), saying where it looked', async () => {
    const r = await cli(['status', '--runtime-dir', path.join(s.dir, 'no-agent')]);
    expect(r.code).toBe(69);
    expect(r.err).toMatch(/the agent does not answer on .*control\.sock/);
  });

  test('[cli] diff against a capture that is not there: exit 1 naming it', async () => {
    const r = await cli(['diff', id, 'missing-capture', '--dest', dest]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/missing-capture/);
  });
});

/** The CLI as "nobody": a real process with that uid, no groups. */
function asNobody(args: string[]): Promise<Exit> {
  return exec('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, physcapCli, ...args], { timeout: 30_000 });
}

describe('[users] an unprivileged user and a running agent', () => {
  let agentDir: string;
  let agent: ChildProcess;
  let log = '';
  const runtime = () => path.join(agentDir, 'run');
  const out = () => path.join(agentDir, 'out');

  beforeAll(async () => {
    agentDir = path.join(s.dir, 'agent');
    fs.mkdirSync(path.join(agentDir, 'profiles'), { recursive: true });
    fs.writeFileSync(
      path.join(agentDir, 'profiles', 'vm.yaml'),
      `apiVersion: physcap.dev/v1\nkind: CaptureProfile\nname: vm\n${imageProfile({ image: img.file, dest: out(), regions: [['low', 0, MiB]] })}cooldown: 0\n`,
    );
    agent = runAgent(agentDir);
    agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    expect(await waitUntil(() => log.includes('"agent ready"'))).toBe(true);
  });
  afterAll(() => stopAgent(agent));

  test('[users] status through the agent socket (0600): nobody cannot connect; exit 69', async () => {
    const r = await asNobody(['status', '--runtime-dir', runtime()]);
    expect(r.code).toBe(69);
  });

  test('[users] status and trigger through a socket someone opened up (0666): the agent refuses the caller; exit 1; nothing captured', async () => {
    const sock = path.join(runtime(), 'control.sock');
    fs.chmodSync(runtime(), 0o755);
    fs.chmodSync(sock, 0o666);
    try {
      const before = indexOf(out()).length;
      const st = await asNobody(['status', '--runtime-dir', runtime()]);
      expect(st.code).toBe(1);
      expect(st.stderr).toMatch(/not allowed/);
      const tr = await asNobody(['trigger', 'vm', '--runtime-dir', runtime()]);
      expect(tr.code).toBe(1);
      expect(tr.stderr).toMatch(/not allowed/);
      await new Promise((r) => setTimeout(r, 300));
      expect(indexOf(out())).toHaveLength(before);
      expect(log).toMatch(/control connection refused: user not allowed/);
    } finally {
      fs.chmodSync(sock, 0o600);
    }
  });

  test('[users] list and verify of a root destination (0750): nobody is refused; exit 1', async () => {
    const l = await asNobody(['list', '--dest', dest]);
    expect(l.code).toBe(1);
    expect(l.stderr).toMatch(/EACCES/);
    const v = await asNobody(['verify', id, '--dest', dest]);
    expect(v.code).toBe(1);
  });

  test('[users] nobody running a capture into a root destination: refused before anything is written', async () => {
    const p = path.join(s.dir, 'nobody.yaml');
    fs.writeFileSync(p, `apiVersion: physcap.dev/v1\nkind: CaptureProfile\nname: nobody\n${imageProfile({ image: img.file, dest, regions: [['a', 0, MiB]] })}`);
    fs.chmodSync(p, 0o644);
    const before = fs.readdirSync(dest).sort();
    const r = await asNobody(['capture', p]);
    expect(r.code).not.toBe(0);
    expect(fs.readdirSync(dest).sort()).toEqual(before);
  });

  test('[users] nobody writing into the agent spool: denied by the file system (0700)', async () => {
    const r = await exec('setpriv', [
      `--reuid=${NOBODY}`,
      `--regid=${NOBODY}`,
      '--clear-groups',
      'sh',
      '-c',
      `echo x > ${path.join(runtime(), 'triggers', 'vm')}`,
    ]);
    expect(r.code).not.toBe(0);
  });

  test('[bursts] 300 control triggers at once: the agent keeps answering status; every capture it recorded verifies; it is still running', async () => {
    const burst = Array.from({ length: 300 }, () => cli(['trigger', 'vm', '--runtime-dir', runtime(), '--reason', 'burst']));
    const mid = await cli(['status', '--runtime-dir', runtime(), '--json']);
    expect(mid.code).toBe(0);
    const results = await Promise.all(burst);
    for (const r of results) expect([0, 1]).toContain(r.code); // started, coalesced, or refused by policy: all answered
    // The burst drains: the agent answers and reports nothing running.
    let idle = false;
    for (let i = 0; i < 300 && !idle; i++) {
      const st = await cli(['status', '--runtime-dir', runtime(), '--json']);
      expect(st.code).toBe(0);
      idle = (JSON.parse(st.out) as { running: unknown[] }).running.length === 0;
      if (!idle) await new Promise((r) => setTimeout(r, 100));
    }
    expect(idle).toBe(true);
    expect(agent.exitCode).toBeNull();
    const entries = indexOf(out());
    expect(entries.length).toBeGreaterThan(0);
    for (const e of entries.filter((x) => x.status === 'complete')) {
      expect((await cli(['verify', String(e.id), '--dest', out()])).code).toBe(0);
    }
  }, 120_000);
});
