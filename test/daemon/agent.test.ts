/**
 * The agent end to end: a real `physcap run` process with the image
 * source, real trigger files, a real signal, the real control socket, a
 * bad profile dropped in while it runs, and SIGTERM.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { request } from '../../agent/src/control/client';
import { runAgent, stopAgent, writeAgentProfile } from '../../harness/agent';
import { exec, physcap as runPhyscap } from '../support/cli';
import { chunkSha256s, regionChunks, sha256 } from '../support/hash';
import { removeDir, tempDir, withTempDir } from '../support/tmp';
import { waiter } from '../support/wait';

const MiB = 2 ** 20;

const waitUntil = waiter({ ms: 10_000 });

/** physcap ARGS, 20 s at most. */
const physcap = (args: string[]) => runPhyscap(args, { timeout: 20_000 });

describe('physcap run', () => {
  let dir: string;
  let image: string;
  let agent: ChildProcess;
  let log = '';
  const out = () => path.join(dir, 'out');
  const complete = () => (fs.existsSync(out()) ? fs.readdirSync(out()).filter((d) => !d.includes('.')) : []);
  const runtime = () => path.join(dir, 'run');

  beforeAll(async () => {
    dir = tempDir('agent');
    image = path.join(dir, 'image');
    fs.writeFileSync(image, crypto.randomBytes(8 * MiB));
    writeAgentProfile(dir, {
      name: 'vm',
      region: ['low', '0x100000', '4MiB'],
      triggers: ['kind: file', 'kind: control', 'kind: signal'],
      extra: 'cooldown: 0\n',
    });
    agent = runAgent(dir);
    agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    expect(await waitUntil(() => log.includes('"agent ready"'))).toBe(true);
  });

  afterAll(async () => {
    if (agent.exitCode === null) {
      agent.kill('SIGKILL');
      await new Promise((r) => agent.once('exit', r));
    }
    removeDir(dir);
  });

  const expected = () => sha256(fs.readFileSync(image).subarray(MiB, 5 * MiB));
  const record = (capture: string) =>
    JSON.parse(fs.readFileSync(path.join(out(), capture, 'manifest.json'), 'utf8')) as {
      status: string;
      triggers: Array<{ kind: string; reason: string }>;
      regions: Array<{ sha256: string; size: number; file: string; offset: number; chunkSize: number; chunks: string[] | { file: string } }>;
    };

  test('the control socket is 0600', () => {
    expect(fs.statSync(path.join(runtime(), 'control.sock')).mode & 0o777).toBe(0o600);
  });

  test('a trigger file fires a capture: complete, exact bytes, the reason recorded', async () => {
    const spool = path.join(runtime(), 'triggers');
    fs.writeFileSync(path.join(spool, '.vm.tmp'), 'reason: watchdog repair hook\n');
    fs.renameSync(path.join(spool, '.vm.tmp'), path.join(spool, 'vm'));
    expect(await waitUntil(() => complete().length === 1)).toBe(true);
    const c = complete()[0]!;
    expect(record(c)).toMatchObject({ status: 'complete', triggers: [{ kind: 'file', reason: 'watchdog repair hook' }] });
    const region = record(c).regions[0]!;
    // The bytes in the ELF container, at the region's offset, are the image's, and so are its chunk digests.
    const bytes = fs.readFileSync(path.join(out(), c, region.file)).subarray(region.offset, region.offset + region.size);
    expect(sha256(bytes)).toBe(expected());
    expect(regionChunks(path.join(out(), c), region)).toEqual(chunkSha256s(bytes, region.chunkSize));
  });

  test('physcap trigger over the control socket', async () => {
    const r = await physcap(['trigger', 'vm', '--reason', 'from the CLI', '--runtime-dir', runtime()]);
    expect(r).toMatchObject({ code: 0 });
    expect(r.stdout).toMatch(/^started vm-\d{8}T\d{6}Z-[0-9a-f]{6}\n/);
    expect(await waitUntil(() => complete().length === 2)).toBe(true);
    // The id physcap trigger printed is the capture's directory.
    expect(complete()).toContain(r.stdout.split(' ')[1]!.trim());
    expect(complete().map((c) => record(c).triggers[0]!.reason)).toContain('from the CLI');
  });

  test('SIGUSR2 fires the signal trigger', async () => {
    agent.kill('SIGUSR2');
    expect(await waitUntil(() => complete().length === 3)).toBe(true);
    expect(
      complete()
        .map((c) => record(c).triggers[0]!.kind)
        .sort(),
    ).toEqual(['control', 'file', 'signal']);
  });

  test('physcap status and the list op show the profile; an unknown profile is refused with exit 1', async () => {
    const s = await physcap(['status', '--json', '--runtime-dir', runtime()]);
    expect(JSON.parse(s.stdout)).toMatchObject({ ok: true, profiles: [{ name: 'vm', triggers: ['file', 'control', 'signal'] }] });
    expect(await request(path.join(runtime(), 'control.sock'), { op: 'list' })).toEqual({
      ok: true,
      profiles: [{ name: 'vm', file: path.join(dir, 'profiles', 'vm.yaml'), enabled: true, triggers: ['file', 'control', 'signal'] }],
    });
    const r = await physcap(['trigger', 'nope', '--runtime-dir', runtime()]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/refused: unknown-profile/);
  });

  test('a user other than root or the agent is refused on the control socket', async () => {
    // Let the other user reach the socket at all: file modes alone must not be what protects it.
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(runtime(), 0o755);
    fs.chmodSync(path.join(runtime(), 'control.sock'), 0o666);
    try {
      // A client inline (the checkout may not be readable by that user): one request, print the answer.
      const client = `const c = require('net').connect(process.argv[1]);
c.on('connect', () => c.write(JSON.stringify({ op: 'trigger', profile: 'vm' }) + '\\n'));
c.on('data', (d) => { process.stdout.write(d); c.end(); });
c.on('error', (e) => { console.error(e.code); process.exit(2); });`;
      const { stdout: answer } = await exec(process.execPath, ['-e', client, path.join(runtime(), 'control.sock')], {
        uid: 65534,
        gid: 65534,
        timeout: 10_000,
      });
      expect(JSON.parse(answer)).toEqual({ ok: false, error: 'not allowed' });
      expect(log).toMatch(/"uid":65534.*"msg":"control connection refused: user not allowed"/);
      expect(complete()).toHaveLength(3); // nothing was captured for it
    } finally {
      fs.chmodSync(path.join(runtime(), 'control.sock'), 0o600);
      fs.chmodSync(runtime(), 0o750);
      fs.chmodSync(dir, 0o700);
    }
  });

  test('a bad profile dropped in is reported with its position; the agent keeps serving', async () => {
    fs.writeFileSync(path.join(dir, 'profiles', 'bad.yaml'), 'apiVersion: physcap.dev/v1\nkind: CaptureProfile\nname: bad\nregions: 7\n');
    expect(await waitUntil(() => /bad\.yaml:4:10 {2}\/regions {2}wrong type/.test(log))).toBe(true);
    const r = await physcap(['trigger', 'vm', '--runtime-dir', runtime()]);
    expect(r.code).toBe(0);
    expect(await waitUntil(() => complete().length === 4)).toBe(true);
  });

  test('SIGTERM: the agent stops and exits 0; the control socket is gone', async () => {
    const exited = new Promise<number | null>((r) => agent.once('exit', (code) => r(code)));
    agent.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(fs.existsSync(path.join(runtime(), 'control.sock'))).toBe(false);
    expect(fs.readdirSync(out()).filter((d) => d.endsWith('.partial'))).toEqual([]);
  });
});

test('an invalid agent.yaml: exit 78 with the positioned error', async () => {
  await withTempDir('agentcfg', async (dir) => {
    const cfg = path.join(dir, 'agent.yaml');
    fs.writeFileSync(cfg, 'apiVersion: physcap.dev/v1\nkind: AgentConfig\nlog_level: loud\n');
    const r = await physcap(['run', '--config', cfg, '--runtime-dir', path.join(dir, 'run')]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/agent\.yaml:3:12 {2}\/log_level {2}not one of the allowed values/);
  });
});

describe('physcap run during a long capture', () => {
  let dir: string;
  let image: string;
  let agent: ChildProcess;
  let log = '';
  const out = () => path.join(dir, 'out');
  const runtime = () => path.join(dir, 'run');

  beforeAll(async () => {
    dir = tempDir('long');
    image = path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : dir, `physcap-long-${process.pid}`);
    const fd = fs.openSync(image, 'w');
    const chunk = crypto.randomBytes(16 * MiB);
    for (let i = 0; i < 64; i++) fs.writeSync(fd, chunk); // 1 GiB
    fs.closeSync(fd);
    writeAgentProfile(dir, {
      name: 'big',
      region: ['all', '0x0', '1GiB'],
      triggers: ['kind: control'],
      image,
      extra: 'hash:\n  readback: always\ncooldown: 0\n',
    });
    agent = runAgent(dir, { extra: ['--grace', '0'] });
    agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    expect(await waitUntil(() => log.includes('"agent ready"'))).toBe(true);
  }, 60_000);

  afterAll(async () => {
    if (agent.exitCode === null) {
      agent.kill('SIGKILL');
      await new Promise((r) => agent.once('exit', r));
    }
    fs.rmSync(image, { force: true });
    removeDir(dir);
  });

  test('SIGHUP while a capture runs: the profiles reload, the capture is undisturbed and completes', async () => {
    expect((await physcap(['trigger', 'big', '--runtime-dir', runtime()])).stdout).toMatch(/^started/);
    expect(await waitUntil(() => fs.existsSync(out()) && fs.readdirSync(out()).some((d) => d.endsWith('.partial')))).toBe(true);
    const reloads = (log.match(/RELOADING|"SIGHUP: reloading profiles"/g) ?? []).length;
    agent.kill('SIGHUP');
    expect(await waitUntil(() => (log.match(/"SIGHUP: reloading profiles"/g) ?? []).length > reloads)).toBe(true);
    expect(await waitUntil(() => fs.readdirSync(out()).some((d) => !d.includes('.')), 30_000)).toBe(true);
    const done = fs.readdirSync(out()).find((d) => !d.includes('.'))!;
    expect(JSON.parse(fs.readFileSync(path.join(out(), done, 'manifest.json'), 'utf8'))).toMatchObject({ status: 'complete' });
    fs.rmSync(path.join(out(), done), { recursive: true });
  }, 60_000);

  test('SIGTERM mid-capture with no grace: aborted, left as .failed, never looking complete; exit 0', async () => {
    expect((await physcap(['trigger', 'big', '--runtime-dir', runtime()])).stdout).toMatch(/^started/);
    expect(await waitUntil(() => fs.existsSync(out()) && fs.readdirSync(out()).some((d) => d.endsWith('.partial')))).toBe(true);
    const exited = new Promise<number | null>((r) => agent.once('exit', (code) => r(code)));
    agent.kill('SIGTERM');
    expect(await exited).toBe(0);
    const left = fs.readdirSync(out()).filter((d) => d !== 'index.jsonl');
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/\.failed$/);
    const record = JSON.parse(fs.readFileSync(path.join(out(), left[0]!, 'manifest.json'), 'utf8')) as { status: string; error: { code: string } };
    expect(record).toMatchObject({ status: 'failed', error: { code: 'ABORT_ERR' } });
    // The index says so too, as the last link of its chain.
    const lines = fs.readFileSync(path.join(out(), 'index.jsonl'), 'utf8').trim().split('\n');
    expect(JSON.parse(lines[lines.length - 1]!)).toMatchObject({ status: 'failed', location: left[0], error: expect.stringMatching(/^ABORT_ERR/) });
  }, 60_000);
});

test('systemd: READY, WATCHDOG pings, RELOADING with MONOTONIC_USEC on SIGHUP, STOPPING', async () => {
  const dir = tempDir('notify');
  const sock = path.join(dir, 'notify.sock');
  // Node has no unix datagram sockets: a python3 listener stands in for systemd.
  const listener = spawn('python3', [
    '-u',
    '-c',
    `import json,socket,sys
s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); print('"ready"')
while True: print(json.dumps(s.recv(4096).decode()))`,
    sock,
  ]);
  const messages: string[] = [];
  let partial = '';
  listener.stdout.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    messages.push(...lines.filter(Boolean).map((l) => JSON.parse(l) as string));
  });
  fs.mkdirSync(path.join(dir, 'profiles'));
  fs.copyFileSync(path.join(__dirname, '..', 'config', 'fixtures', 'good', 'minimal.yaml'), path.join(dir, 'profiles', 'minimal.yaml'));
  let agent: ChildProcess | undefined;
  try {
    expect(await waitUntil(() => messages.includes('ready'))).toBe(true);
    agent = runAgent(dir, { env: { ...process.env, NOTIFY_SOCKET: sock, WATCHDOG_USEC: '200000' } });
    expect(await waitUntil(() => messages.some((m) => m.startsWith('READY=1')))).toBe(true);
    expect(messages.find((m) => m.startsWith('READY=1'))).toBe('READY=1\nSTATUS=1 profiles active');
    expect(await waitUntil(() => messages.filter((m) => m === 'WATCHDOG=1').length >= 2)).toBe(true);
    agent.kill('SIGHUP');
    expect(await waitUntil(() => messages.some((m) => m.startsWith('RELOADING=1')))).toBe(true);
    const i = messages.findIndex((m) => m.startsWith('RELOADING=1'));
    expect(messages[i]).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+$/);
    expect(await waitUntil(() => messages.slice(i + 1).some((m) => m.startsWith('READY=1')))).toBe(true);
    const exited = new Promise((r) => agent!.once('exit', r));
    agent.kill('SIGTERM');
    await exited;
    expect(await waitUntil(() => messages.includes('STOPPING=1'))).toBe(true);
  } finally {
    if (agent && agent.exitCode === null) agent.kill('SIGKILL');
    listener.kill();
    await new Promise((r) => listener.once('exit', r));
    removeDir(dir);
  }
}, 30_000);

test('a storm of 1000 trigger files and 1000 signals: the agent stays up, memory bounded, every event accounted once', async () => {
  const dir = tempDir('storm');
  const image = path.join(dir, 'image');
  fs.writeFileSync(image, crypto.randomBytes(MiB));
  const spool = path.join(dir, 'run', 'triggers');
  for (const name of ['a', 'b']) {
    writeAgentProfile(dir, {
      name,
      region: ['r', '0x0', '256KiB'],
      triggers: ['kind: file', ...(name === 'a' ? ['kind: signal'] : [])],
      extra: 'cooldown: 1s\n',
    });
  }
  let log = '';
  const agent = runAgent(dir);
  agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  try {
    expect(await waitUntil(() => log.includes('"agent ready"'))).toBe(true);
    const started = Date.now();
    for (let i = 0; i < 1000; i++) {
      const name = i % 2 ? 'a' : 'b';
      fs.writeFileSync(path.join(spool, `.${name}.${i}`), `reason: storm ${i}\n`);
      fs.renameSync(path.join(spool, `.${name}.${i}`), path.join(spool, name));
      agent.kill('SIGUSR2');
    }
    expect(Date.now() - started).toBeLessThan(5000);
    await new Promise((r) => setTimeout(r, 1500));
    const rss = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${agent.pid}/status`, 'utf8'))![1]) / 1024;
    expect(rss).toBeLessThan(150);
    const fates = new Map<string, number>();
    for (const line of log.split('\n').filter((l) => l.includes('"event":"ev-'))) {
      const ev = (JSON.parse(line) as { event: string }).event;
      fates.set(ev, (fates.get(ev) ?? 0) + 1);
    }
    expect(fates.size).toBeGreaterThan(2);
    expect([...fates.values()].every((n) => n === 1)).toBe(true);
    expect(log).toMatch(/"status":"captured"/);
    expect(log).toMatch(/"status":"coalesced"|"reason":"cooldown"/);
    const s = await physcap(['status', '--json', '--runtime-dir', path.join(dir, 'run')]);
    expect(JSON.parse(s.stdout)).toMatchObject({ ok: true });
  } finally {
    await stopAgent(agent);
    removeDir(dir);
  }
}, 60_000);

test('Prometheus metrics: captures by result, bytes, trigger fates', async () => {
  const dir = tempDir('metrics');
  const image = path.join(dir, 'image');
  fs.writeFileSync(image, crypto.randomBytes(MiB));
  writeAgentProfile(dir, { name: 'm', region: ['r', '0x0', '256KiB'], triggers: ['kind: control'], extra: 'cooldown: 1h\n' });
  fs.writeFileSync(path.join(dir, 'agent.yaml'), 'apiVersion: physcap.dev/v1\nkind: AgentConfig\nmetrics_listen: "127.0.0.1:0"\n');
  let log = '';
  const runtime = path.join(dir, 'run');
  const agent = runAgent(dir, { extra: ['--config', path.join(dir, 'agent.yaml')] });
  agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  try {
    expect(await waitUntil(() => log.includes('"agent ready"'))).toBe(true);
    const port = (JSON.parse(log.split('\n').find((l) => l.includes('"metrics listening"'))!) as { port: number }).port;
    expect((await physcap(['trigger', 'm', '--runtime-dir', runtime])).code).toBe(0);
    expect(await waitUntil(() => log.includes('"capture complete"'))).toBe(true);
    expect((await physcap(['trigger', 'm', '--runtime-dir', runtime])).stdout).toMatch(/refused: cooldown/);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/^physcap_captures_total\{profile="m",result="complete"\} 1$/m);
    expect(text).toMatch(/^physcap_capture_bytes_total\{profile="m"\} 262144$/m);
    expect(text).toMatch(/^physcap_trigger_events_total\{kind="control",fate="captured"\} 1$/m);
    expect(text).toMatch(/^physcap_trigger_events_total\{kind="control",fate="refused"\} 1$/m);
    expect(text).toMatch(/^physcap_last_success_timestamp_seconds\{profile="m"\} \d+/m);
  } finally {
    await stopAgent(agent);
    removeDir(dir);
  }
}, 30_000);

test('an interval trigger fires captures on its own, end to end', async () => {
  const dir = tempDir('interval');
  const image = path.join(dir, 'image');
  fs.writeFileSync(image, crypto.randomBytes(MiB));
  writeAgentProfile(dir, {
    name: 'tick',
    region: ['r', '0x0', '64KiB'],
    triggers: ['kind: interval\n    every: 300ms\n    at_start: true'],
    extra: 'cooldown: 0\n',
  });
  const agent = runAgent(dir);
  try {
    const out = path.join(dir, 'out');
    expect(await waitUntil(() => fs.existsSync(out) && fs.readdirSync(out).filter((d) => !d.includes('.')).length >= 3)).toBe(true);
    const reasons = fs
      .readdirSync(out)
      .filter((d) => !d.includes('.'))
      .map(
        (d) => (JSON.parse(fs.readFileSync(path.join(out, d, 'manifest.json'), 'utf8')) as { triggers: Array<{ kind: string; reason: string }> }).triggers[0]!,
      )
      .map((e) => `${e.kind}: ${e.reason}`);
    expect(reasons).toContain('interval: at start');
    expect(reasons).toContain('interval: every 0.3 s');
  } finally {
    await stopAgent(agent);
    removeDir(dir);
  }
}, 30_000);
