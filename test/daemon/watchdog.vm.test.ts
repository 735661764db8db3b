/**
 * A real watchdog pretimeout on the emulated board, caught by the agent
 * from the kernel log: softdog (soft_noboot=1, so the board survives),
 * the noop pretimeout governor, a pretimeout set through the watchdog
 * ioctls, the device left unfed.  The agent runs inside the guest (node and
 * this checkout over 9p); the captured bytes must be the host's pattern.
 */
import * as path from 'node:path';

import type { Manifest } from '../../agent/src/manifest/types';
import { BoardRun, bootBoard } from '../../harness/board';
import { jobHead } from '../../harness/job';
import { BOARD_RANGES, hex } from '../../harness/layout';
import { KernelSpec, loadKernels } from '../../harness/paths';
import { readelf, scratchCopyFile } from '../support/board';
import { sha256File } from '../support/hash';
import { withTempDir } from '../support/tmp';

const trace = BOARD_RANGES.find((r) => r.name === 'trace')!;

function job(kernel: KernelSpec): string {
  return `${jobHead(kernel)}W=$TMPDIR/agent
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
# The watchdog core first: physcap.ko binds to its governor API at load time.
modprobe softdog soft_noboot=1 || exit 11
modprobe pretimeout_noop || exit 12
insmod $MOD || exit 10
echo "@@governor - {\\"value\\":\\"$(cat /sys/class/watchdog/watchdog0/pretimeout_governor)\\"}"
node $CLI run --config $W/none.yaml --profiles-dir $W/profiles --state-dir $W/state \\
	--runtime-dir $W/run --spool-dir $W/run/triggers 2> $W/agent.log &
agent=$!
for i in $(seq 300); do grep -q '"agent ready"' $W/agent.log && break; sleep 0.1; done
t0=$(date +%s%N)
$S watchdog-arm --timeout 10 --pretimeout 8 --hold 15 > $W/arm.json &
for i in $(seq 300); do grep -qs '"status":"complete"' $D/captures/index.jsonl && break; sleep 0.1; done
t1=$(date +%s%N)
kill -TERM $agent; wait $agent; rc=$?
echo "@@agent - {\\"rc\\":$rc,\\"ms_to_capture\\":$(( (t1 - t0) / 1000000 ))}"
echo "@@arm - $(cat $W/arm.json)"
for f in $D/captures/*/manifest.json; do echo "@@capture $(basename $(dirname $f)) $(tr -d '\\n' < $f)"; done
grep -h '"capture complete"' $W/agent.log | sed 's/^/@@log - /'
wait

# --- Armed in the kernel: the physcap governor, the agent frozen (SIGSTOP).
A=$TMPDIR/armed
mkdir -p $A/profiles
cat > $A/profiles/armed.yaml <<'YAML'
apiVersion: physcap.dev/v1
kind: CaptureProfile
name: armed
regions:
${ARMED_RANGES.map((r) => `  - name: ${r.name}\n    start: "${hex(r.start)}"\n    size: ${r.size}`).join('\n')}
triggers:
  - kind: watchdog
    device: /dev/watchdog0
destination:
  kind: dir
  path: /run/physcap-board/disk/armed
  retention: { keep_free: 0 }
hash:
  chunk_size: 1MiB
YAML
start_agent() {
	node $CLI run --config $A/none.yaml --profiles-dir $A/profiles --state-dir $A/state \\
		--runtime-dir $A/run --spool-dir $A/run/triggers 2>> $A/agent.log &
	agent=$!
}
armed_at_least() { [ "$(grep -c '"capture armed in the kernel"' $A/agent.log)" -ge $1 ]; }
done_at_least() { [ "$($C events | grep -c '"event":"capture_done"')" -ge $1 ]; }
completes() { cat $D/armed/index.jsonl 2>/dev/null | grep -c '"status":"complete"'; }
complete_at_least() { [ "$(completes)" -ge $1 ]; }
frozen() {
	echo "@@frozen $1 {\\"state\\":\\"$(awk '{print $3}' /proc/$agent/stat)\\",\\"partial\\":$(ls $D/armed | grep -c '\\.partial$'),\\"complete\\":$(completes)}"
}
report() {
	echo "@@armedagent - {\\"rc\\":\\"$1\\",\\"step\\":\\"$2\\"}"
	$C events | sed 's/^/@@event - /'
	for f in $D/armed/*/manifest.json; do [ -f $f ] && echo "@@armed $(basename $(dirname $f)) $(tr -d '\\n' < $f)"; done
	[ -f $D/armed/index.jsonl ] && sed 's/^/@@index - /' $D/armed/index.jsonl
	echo "@@leftover - {\\"entries\\":\\"$(ls $D/armed 2>/dev/null | tr '\\n' ' ')\\"}"
	if [ "$1" = failed ]; then tail -40 $A/agent.log | grep '^{' | sed 's/^/@@armedlog - /'; else grep -h '"level":[456]0' $A/agent.log | sed 's/^/@@armedlog - /'; fi
	echo "@@armedlog - {\\"lines\\":$(wc -l < $A/agent.log),\\"profiles\\":\\"$(ls $A/profiles | tr '\\n' ' ')\\"}"
	# Anything that is not a JSON log line (a crash's stack) too.
	grep -hv '^{' $A/agent.log | head -40 | sed 's/\\\\/\\\\\\\\/g; s/"/\\\\"/g; s/^/@@armedlog - {"text":"/; s/$/"}/'
}
fail() { kill -CONT $agent 2>/dev/null; kill -KILL $agent 2>/dev/null; report failed "$1"; exit 0; }

start_agent
wait_for 120 armed_at_least 1 || fail "first arm"
echo "@@governor armed {\\"value\\":\\"$(cat /sys/class/watchdog/watchdog0/pretimeout_governor)\\"}"

# A: frozen while the kernel captures; SIGCONT, and the agent finishes it.
kill -STOP $agent
$S watchdog-arm --timeout 10 --pretimeout 8 --hold 11 > $A/arm-a.json &
holder=$!
wait_for 60 done_at_least 1 || fail "kernel capture A"
frozen a
kill -CONT $agent
wait_for 120 complete_at_least 1 || fail "agent finishing A"
wait_for 60 armed_at_least 2 || fail "re-arm after A"
wait $holder

# B: frozen while the kernel captures, then killed; a new agent finishes it.
kill -STOP $agent
$S watchdog-arm --timeout 10 --pretimeout 8 --hold 11 > $A/arm-b.json &
holder=$!
wait_for 60 done_at_least 2 || fail "kernel capture B"
frozen b
kill -KILL $agent; wait $agent 2>/dev/null
start_agent
wait_for 120 complete_at_least 2 || fail "restarted agent finishing B"
wait_for 60 armed_at_least 3 || fail "re-arm after restart"
kill -TERM $agent; wait $agent; rc=$?
wait $holder
report $rc done
exit 0
`;
}

const ARMED_RANGES = BOARD_RANGES.filter((r) => r.name === 'crashlog' || r.name === 'trace');

const kernel = loadKernels()[0]!;

describe(`a watchdog pretimeout on the board (kernel ${kernel.series})`, () => {
  let run: BoardRun;
  beforeAll(async () => {
    run = await bootBoard({ kernel, job: job(kernel), reserved: BOARD_RANGES });
  }, 15 * 60_000);
  afterAll(() => run?.cleanup());

  const one = <T>(key: string) => {
    const r = run.records<T>(key);
    if (r.length !== 1) throw new Error(`expected one @@${key}, got ${r.length}\n${run.output}`);
    return r[0]!;
  };

  test('the noop governor is the pretimeout governor; the watchdog was armed', () => {
    expect(run.exitCode).toBe(0);
    expect(run.records<{ value: string }>('governor').find((r) => r.label === '-')?.value.value).toBe('noop');
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
      sha256: '',
      chunks: run.memoryChunks('trace', region.chunkSize),
      mode: 'zero-copy',
      bytesZeroCopy: trace.size,
      source: 'kernel',
      file: 'core.elf',
    });
    // The bytes on disk, read on the host from the scratch image: the
    // region's slice of core.elf, and the PT_LOAD that points at it.
    withTempDir('watchdog', (tmp) => {
      const core = scratchCopyFile(run, `/captures/${c.label}/core.elf`, path.join(tmp, 'core.elf'));
      expect(sha256File(core, region.offset, trace.size)).toBe(run.truth('trace').sha256);
      const elf = readelf(core);
      expect(elf.type).toBe('CORE');
      expect(elf.loads).toEqual([expect.objectContaining({ offset: BigInt(region.offset), paddr: BigInt(trace.start), filesz: BigInt(trace.size) })]);
    });
  });

  describe('armed in the kernel (the physcap governor) while the agent is frozen', () => {
    const armed = () => run.records<Manifest>('armed').sort((a, b) => a.value.timing.started.localeCompare(b.value.timing.started));
    const index = () => run.records<Record<string, unknown>>('index').map((r) => r.value);

    test('the agent armed a capture and selected the physcap governor', () => {
      const step = one<{ rc: string; step: string }>('armedagent').value;
      if (step.rc === 'failed')
        throw new Error(
          `the armed job stopped at: ${step.step}\n${run.output
            .split('\n')
            .filter((l) => l.includes('@@armedlog'))
            .join('\n')}`,
        );
      const g = run.records<{ value: string }>('governor').find((r) => r.label === 'armed');
      expect(g?.value.value).toBe('physcap');
    });

    test('the kernel captured while the agent was stopped: nothing published until it ran again', () => {
      for (const label of ['a', 'b']) {
        const f = run.records<{ state: string; partial: number; complete: number }>('frozen').find((r) => r.label === label);
        expect({ label, ...f?.value }).toEqual({ label, state: 'T', partial: 1, complete: label === 'a' ? 0 : 1 });
      }
      const done = run
        .records<{ event: string; cookie: string; bytes_written: number; bytes_zero_copy: number; first_byte_latency_ns: number }>('event')
        .filter((e) => e.value.event === 'capture_done');
      expect(done).toHaveLength(2);
      const total = ARMED_RANGES.reduce((a, r) => a + r.size, 0);
      for (const e of done) expect(e.value).toMatchObject({ bytes_written: total, bytes_zero_copy: total });
    });

    test('both captures are complete, read back and exact; the second was finished by the restarted agent', () => {
      const caps = armed();
      expect(caps.map((c) => c.value.status)).toEqual(['complete', 'complete']);
      for (const c of caps) {
        expect(c.value.triggers).toEqual([expect.objectContaining({ kind: 'watchdog', reason: 'watchdog0 pretimeout: captured by physcap.ko' })]);
        for (const r of ARMED_RANGES) {
          expect(c.value.regions.find((x) => x.name === r.name)).toMatchObject({
            phys: hex(r.start),
            size: r.size,
            source: 'kernel',
            mode: 'zero-copy',
            bytesZeroCopy: r.size,
            digest: 'read-back',
            sha256: '',
            chunks: run.memoryChunks(r.name, 2 ** 20),
          });
        }
      }
      expect(caps[0]!.value.triggers[0]!.detail).not.toHaveProperty('finalized');
      expect(caps[1]!.value.triggers[0]!.detail).toMatchObject({ finalized: expect.stringMatching(/^finalized after a restart/) });
      const idx = index();
      expect(idx.map((e) => [e.status, e.recovered ?? null])).toEqual([
        ['complete', null],
        ['complete', expect.stringMatching(/^finalized after a restart/)],
      ]);
      // The third arm (after the restart) was disarmed and removed at SIGTERM: nothing half-made is left.
      expect(one<{ entries: string }>('leftover').value.entries.trim().split(' ').sort()).toEqual([...caps.map((c) => c.label), 'index.jsonl'].sort());
      expect(one<{ rc: string; step: string }>('armedagent').value).toEqual({ rc: '0', step: 'done' });
    });

    test('the bytes on disk, read on the host, are the ground truth', () => {
      expect(armed()).toHaveLength(2);
      withTempDir('armed', (tmp) => {
        for (const c of armed()) {
          const core = scratchCopyFile(run, `/armed/${c.label}/core.elf`, path.join(tmp, `${c.label}.elf`));
          for (const r of c.value.regions) expect(sha256File(core, r.offset, r.size)).toBe(run.truth(r.name).sha256);
        }
      });
    });

    test('dmesg is clean', () => {
      expect(run.dmesg).not.toMatch(/WARNING:|BUG:|Oops|general protection|circular locking/);
    });
  });

  test('the agent stopped cleanly on SIGTERM', () => {
    const a = one<{ rc: number; ms_to_capture: number }>('agent').value;
    expect(a.rc).toBe(0);
    // The pretimeout fires 2 s after the last feed; the capture follows at once.
    expect(a.ms_to_capture).toBeLessThan(20_000);
  });
});
