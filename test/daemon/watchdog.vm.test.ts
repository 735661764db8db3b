/**
 * A real watchdog pretimeout on the emulated board, caught by the agent
 * from the kernel log: softdog (soft_noboot=1, so the board survives),
 * the noop pretimeout governor, a pretimeout set through the watchdog
 * ioctls, the device left unfed.  The agent runs inside the guest (node and
 * this checkout over 9p); the captured bytes must be the host's pattern.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { readelf, scratchCopyFile, sha256File } from '../capture/board-host';
import type { Manifest } from '../../agent/src/manifest/types';
import { BoardRun, bootBoard } from '../vm/board';
import { BOARD_RANGES, hex } from '../vm/layout';
import { artifacts, loadKernels, repoRoot } from '../vm/paths';

const trace = BOARD_RANGES.find((r) => r.name === 'trace')!;

function job(module: string, client: string): string {
  const cli = path.join(repoRoot(), 'agent', 'bin', 'physcap.js');
  return `#!/bin/bash
D=$PHYSCAP_BOARD_DISK
W=$TMPDIR/agent
mkdir -p $W/profiles
cat > $W/profiles/board.yaml <<'YAML'
apiVersion: physcap.dev/v1
kind: CaptureProfile
name: board
regions:
  - name: trace
    start: "${hex(trace.start)}"
    size: ${trace.size}
triggers:
  - kind: kmsg
    presets: [watchdog_pretimeout]
destination:
  kind: dir
  path: /run/physcap-board/disk/captures
  retention: { keep_free: 0 }
YAML
insmod ${module} || exit 10
modprobe softdog soft_noboot=1 || exit 11
modprobe pretimeout_noop || exit 12
echo "@@governor - {\\"value\\":\\"$(cat /sys/class/watchdog/watchdog0/pretimeout_governor)\\"}"
node ${cli} run --config $W/none.yaml --profiles-dir $W/profiles --state-dir $W/state \\
	--runtime-dir $W/run --spool-dir $W/run/triggers 2> $W/agent.log &
agent=$!
for i in $(seq 300); do grep -q '"agent ready"' $W/agent.log && break; sleep 0.1; done
t0=$(date +%s%N)
${client} watchdog-arm --timeout 10 --pretimeout 8 --hold 15 > $W/arm.json &
for i in $(seq 300); do grep -qs '"status":"complete"' $D/captures/index.jsonl && break; sleep 0.1; done
t1=$(date +%s%N)
kill -TERM $agent; wait $agent; rc=$?
echo "@@agent - {\\"rc\\":$rc,\\"ms_to_capture\\":$(( (t1 - t0) / 1000000 ))}"
echo "@@arm - $(cat $W/arm.json)"
for f in $D/captures/*/manifest.json; do echo "@@capture $(basename $(dirname $f)) $(tr -d '\\n' < $f)"; done
grep -h '"capture complete"' $W/agent.log | sed 's/^/@@log - /'
wait
exit 0
`;
}

const kernel = loadKernels()[0]!;

describe(`a watchdog pretimeout on the board (kernel ${kernel.series})`, () => {
  let run: BoardRun;
  beforeAll(async () => {
    const { module, client } = artifacts(kernel);
    run = await bootBoard({ kernel, job: job(module, client), reserved: BOARD_RANGES });
  }, 15 * 60_000);
  afterAll(() => run?.cleanup());

  const one = <T>(key: string) => {
    const r = run.records<T>(key);
    if (r.length !== 1) throw new Error(`expected one @@${key}, got ${r.length}\n${run.output}`);
    return r[0]!;
  };

  test('the noop governor is the pretimeout governor; the watchdog was armed', () => {
    expect(run.exitCode).toBe(0);
    expect(one<{ value: string }>('governor').value.value).toBe('noop');
    expect(one<{ ok: boolean; pretimeout: number }>('arm').value).toMatchObject({ ok: true, pretimeout: 8 });
    expect(run.dmesg).toMatch(/watchdog0: pretimeout event/);
  });

  test('the kmsg trigger fired and the capture is complete and exact', () => {
    const c = one<Manifest>('capture');
    expect(c.value).toMatchObject({ id: c.label, status: 'complete', format: 'elf', triggers: [{ kind: 'kmsg', reason: 'watchdog0: pretimeout event' }] });
    expect(c.value.regions).toHaveLength(1);
    const region = c.value.regions[0]!;
    expect(region).toMatchObject({
      name: 'trace',
      phys: hex(trace.start),
      size: trace.size,
      sha256: run.truth('trace').sha256,
      mode: 'zero-copy',
      bytesZeroCopy: trace.size,
      source: 'kernel',
      file: 'core.elf',
    });
    // The bytes on disk, read on the host from the scratch image: the
    // region's slice of core.elf, and the PT_LOAD that points at it.
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'physcap-watchdog-'));
    try {
      const core = scratchCopyFile(run, `/captures/${c.label}/core.elf`, path.join(tmp, 'core.elf'));
      expect(sha256File(core, region.offset, trace.size)).toBe(run.truth('trace').sha256);
      const elf = readelf(core);
      expect(elf.type).toBe('CORE');
      expect(elf.loads).toEqual([expect.objectContaining({ offset: BigInt(region.offset), paddr: BigInt(trace.start), filesz: BigInt(trace.size) })]);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('the agent stopped cleanly on SIGTERM', () => {
    const a = one<{ rc: number; ms_to_capture: number }>('agent').value;
    expect(a.rc).toBe(0);
    // The pretimeout fires 2 s after the last feed; the capture follows at once.
    expect(a.ms_to_capture).toBeLessThan(20_000);
  });
});
