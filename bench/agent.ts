/**
 * The agent's reaction time and idle cost, on the host with the image
 * source: trigger → the capture complete (its entry in the destination's
 * index, read through the store), for file, signal, kmsg and control
 * triggers (p50/p99 over many triggers), then the idle agent's CPU and RSS.
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { request } from '../agent/src/control/client';
import { openStoreAt } from '../agent/src/destinations/registry';
import { runAgent, stopAgent, writeAgentProfile } from '../harness/agent';
import { HostCase } from './host';

const MiB = 2 ** 20;

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** /proc/PID/stat utime + stime, in seconds. */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  return (Number(fields[11]) + Number(fields[12])) / ticks;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setImmediate(r));
  }
  return true;
}

export async function benchAgent(triggersPerKind: number, idleSeconds: number): Promise<HostCase[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'physcap-bench-agent-'));
  const image = path.join(dir, 'image');
  fs.writeFileSync(image, crypto.randomBytes(MiB));
  const out = path.join(dir, 'out');
  const runtime = path.join(dir, 'run');
  const tag = `physcap-bench-${crypto.randomBytes(4).toString('hex')}`;
  writeAgentProfile(dir, {
    name: 'bench',
    region: ['r', '0x0', '64KiB'],
    triggers: ['kind: file', 'kind: signal', 'kind: control', `kind: kmsg\n    patterns: ["^${tag}$"]`],
    extra: 'hash:\n  chunk_size: 0\ncooldown: 0\n',
  });
  let log = '';
  const agent = runAgent(dir);
  agent.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-65536)));
  try {
    if (!(await until(() => log.includes('"agent ready"'), 20_000))) throw new Error(`the agent did not start:\n${log}`);
    const fire: Record<string, () => void> = {
      file: () => {
        const tmp = path.join(runtime, 'triggers', '.bench');
        fs.writeFileSync(tmp, '');
        fs.renameSync(tmp, path.join(runtime, 'triggers', 'bench'));
      },
      signal: () => agent.kill('SIGUSR2'),
      kmsg: () => fs.writeFileSync('/dev/kmsg', `<6>${tag}\n`),
      control: () => void request(path.join(runtime, 'control.sock'), { op: 'trigger', profile: 'bench' }),
    };
    /** Complete captures in the destination's index so far. */
    /** The destination as the verbs read it: complete captures, and whether one is still being finished. */
    const look = (): { complete: number; unfinished: number } => {
      if (!fs.existsSync(out)) return { complete: 0, unfinished: 0 };
      const store = openStoreAt(out);
      try {
        return { complete: store.index().entries.filter((e) => e.status === 'complete').length, unfinished: store.unfinished().length };
      } finally {
        store.close();
      }
    };
    const cases: HostCase[] = [];
    for (const [kind, trigger] of Object.entries(fire)) {
      const latencies: number[] = [];
      for (let i = 0; i < triggersPerKind; i++) {
        const before = look().complete;
        const t0 = process.hrtime.bigint();
        trigger();
        // Done when the capture is published: a new complete entry in the
        // destination's index, read through the store as the verbs read it.
        if (!(await until(() => look().complete > before, 5000))) throw new Error(`${kind}: no capture complete within 5 s\n${log.slice(-2000)}`);
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        // Published (the index line is the commit) but maybe not yet renamed into place: let it settle first.
        await until(() => look().unfinished === 0, 5000);
      }
      cases.push({
        name: `agent/latency-${kind}`,
        bytes: 64 * 1024,
        wall_s: r3(latencies.reduce((a, b) => a + b, 0) / 1000),
        cpu_s: 0,
        max_rss_mb: r3(rssMb(agent.pid!)),
        rounds: latencies.length,
        latency_p50_ms: r3(percentile(latencies, 50)),
        latency_p99_ms: r3(percentile(latencies, 99)),
      });
    }
    const cpu0 = cpuSeconds(agent.pid!);
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idleCpu = cpuSeconds(agent.pid!) - cpu0;
    cases.push({
      name: 'agent/idle',
      bytes: 0,
      wall_s: idleSeconds,
      cpu_s: r3(idleCpu),
      max_rss_mb: r3(rssMb(agent.pid!)),
      rounds: 1,
      idle_cpu_percent: r3((idleCpu / idleSeconds) * 100),
    });
    return cases;
  } finally {
    await stopAgent(agent);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
