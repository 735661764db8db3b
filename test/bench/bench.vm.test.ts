/**
 * The benchmark cannot rot: npm test runs all of it in its short form
 * (bench/run.ts --short: one round, small sizes, the board booted once),
 * and a benchmark that no longer runs, or that stops writing a case's
 * figures, fails CI.  No figure is judged here: speed is the benchmark's
 * own report (npm run bench), never a timed test.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { repoRoot } from '../../harness/paths';

const out = path.join(repoRoot(), 'build', 'bench-short.json');

test(
  'npm run bench, short: every suite runs to the end and writes every case with its figures',
  () => {
    fs.rmSync(out, { force: true });
    const r = spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'bench', 'run.js'), '--short', '--suite', 'all', '--out', out], {
      cwd: repoRoot(),
      encoding: 'utf8',
      timeout: 40 * 60_000,
      maxBuffer: 64 << 20,
    });
    expect({ status: r.status, tail: r.status === 0 ? '' : `${r.stdout}\n${r.stderr}`.slice(-4000) }).toEqual({ status: 0, tail: '' });
    const cases = JSON.parse(fs.readFileSync(out, 'utf8')) as Array<Record<string, unknown>>;
    for (const c of cases) {
      expect(c).toMatchObject({
        name: expect.any(String),
        bytes: expect.any(Number),
        wall_s: expect.any(Number),
        cpu_s: expect.any(Number),
        max_rss_mb: expect.any(Number),
      });
    }
    const names = cases.map((c) => String(c.name));
    // Each suite is there: the host engine and its limits, the agent's triggers, the fleet's copies, the board's ways and its armed captures.
    for (const expected of [
      'host/physcap',
      'host/capture-elf',
      'host/verify',
      'host/verify-full',
      'host/read-direct',
      'host/openssl-sha256',
      'agent/latency-file',
      'agent/latency-kmsg',
      'agent/idle',
      'fleet/sdk-upload',
      'fleet/sdk-upload-when-required',
      'fleet/physcap-copy',
      'fleet/end-to-end',
      'fleet/resume-kill9',
    ]) {
      expect(names).toContain(expected);
    }
    // The board's ways side by side (module, the question's, dd, the engine's two sources), on a file and the raw partition.
    expect(names.filter((n) => /^(module|question|dd|engine-kernel|engine-devmem)\/(file|raw)@/.test(n)).length).toBeGreaterThanOrEqual(5);
    expect(names.some((n) => /^board\/.*armed/.test(n))).toBe(true);
    // The digests' cases: the engine hashing read back and the agent, on the range; all System RAM beside LiME.
    const byName = new Map(cases.map((c) => [String(c.name), c]));
    for (const n of ['engine-readback/file', 'agent/file', 'ram/agent-ram']) {
      const c = [...byName.entries()].find(([k]) => k.startsWith(`${n}@`))?.[1];
      expect({ n, durable: c?.durable_s, digested: c?.digested_s }).toEqual({ n, durable: expect.any(Number), digested: expect.any(Number) });
    }
    for (const n of ['ram/ram-client', 'ram/lime-raw', 'ram/lime-sha256']) expect(names.some((x) => x.startsWith(`${n}@`))).toBe(true);
    // The C client with its digest, beside its bare capture.
    const clientDigest = [...byName.entries()].find(([k]) => k.startsWith('ram/ram-client-digest@'))?.[1];
    expect(clientDigest).toMatchObject({ durable_s: expect.any(Number), digested_s: expect.any(Number), lime_sha256_vs_digested: expect.any(Number) });
    // The e500 board: the module, the client bare and with digests (AF_ALG and the portable code), armed by a real pretimeout.
    for (const n of ['e500/module', 'e500/client'])
      expect(byName.get(n)).toMatchObject({ durable_s: expect.any(Number), durable_vs_client: expect.any(Number) });
    for (const n of ['e500/client-digest', 'e500/client-builtin', 'e500/armed'])
      expect(byName.get(n)).toMatchObject({ durable_s: expect.any(Number), digested_s: expect.any(Number), digest_driver: expect.any(String) });
    expect(byName.get('e500/client-digest')?.digest_driver).toBe('sha256-ppc-spe');
    expect(byName.get('e500/client-builtin')?.digest_driver).toBe('physcap-sha256-c');
    expect(byName.get('host/capture-elf')).toMatchObject({ durable_s: expect.any(Number), digested_s: expect.any(Number), ratio_vs_limit: expect.any(Number) });
    // The fleet: physcap's copy beside the SDK's Upload of the same file, and the resume after SIGKILL at half way.
    expect(byName.get('fleet/physcap-copy')).toMatchObject({ throughput_vs_sdk: expect.any(Number), rss_vs_sdk: expect.any(Number) });
    expect(byName.get('fleet/resume-kill9')).toMatchObject({
      parts_total: expect.any(Number),
      parts_recorded_at_kill: expect.any(Number),
      parts_resent: expect.any(Number),
    });
  },
  45 * 60_000,
);
