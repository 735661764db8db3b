import { jobHead } from '../../harness/job';
import { BOARD_RANGES, hex, rawOffsets } from '../../harness/layout';
import { KernelSpec } from '../../harness/paths';

/**
 * The guest side of the kernel tests: one boot runs every check, printing
 * "@@key label {json}" records that the host-side tests assert on.
 */
export function zeroCopyJob(kernel: KernelSpec): string {
  const offsets = rawOffsets(BOARD_RANGES);
  const trace = BOARD_RANGES.find((r) => r.name === 'trace')!;
  const big = BOARD_RANGES.find((r) => r.name === 'big')!;
  const perRange = BOARD_RANGES.map(
    (r) => `
rec file ${r.name} "$($C write ${hex(r.start)} ${r.size} $D/${r.name}.bin)"
rec raw ${r.name} "$($C write ${hex(r.start)} ${r.size} $RAW --existing --offset ${offsets.get(r.name)})"
rec mmap ${r.name} "{\\"sha256\\":\\"$($C mmap-dump ${hex(r.start)} ${r.size} | sha256sum | cut -d' ' -f1)\\"}"`,
  ).join('\n');
  const concurrent = BOARD_RANGES.map((r) => `$C write ${hex(r.start)} ${r.size} $D/concurrent-${r.name}.bin > $T/concurrent-${r.name} &`).join('\n');
  const concurrentRecords = BOARD_RANGES.map((r) => `rec concurrent ${r.name} "$(cat $T/concurrent-${r.name})"`).join('\n');

  return `${jobHead(kernel, 'sh')}stats() {
	s=/sys/class/misc/physcap
	printf '{"zero_copy":%s,"bounced":%s,"poisoned":%s,"buffered":%s,"adopted":%s,"done":%s,"failed":%s,"interrupted":%s}' \\
		$(cat $s/bytes_zero_copy $s/bytes_bounced $s/bytes_poisoned $s/bytes_buffered $s/bytes_adopted \\
		      $s/writes_done $s/writes_failed $s/writes_interrupted)
}

insmod $MOD || { echo "insmod $MOD failed"; exit 10; }
rec info - "$($C info)"
rec question - "$($C devmem ${hex(trace.start)} 4096 $D/question.bin --direct)"
# "Reserved" that the firmware did not report as RAM: the EBDA, the BIOS
# flash, QEMU's reserved window above 1 TiB; read only with ALLOW_MMIO.
rec reserved-ebda - "$($C write 0x9f000 4096 $D/ebda.bin)"
rec reserved-flash - "$($C write 0xfffc0000 4096 $D/flash.bin)"
rec reserved-high - "$($C write 0xfd00000000 4096 $D/high.bin)"
${perRange}

${concurrent}
wait
${concurrentRecords}

# physcap-client capture with a bad range in its list: it fails naming the
# range, and leaves nothing that passes for a core (a file it created is
# removed; an existing device gets its header block zeroed).
magic() { printf '{"magic":"%s"}' "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')"; }
rec client-existing-ok - "$($C capture $SLOW trace ${hex(trace.start)} 4096 --existing)"
rec client-existing-ok-magic - "$(magic $SLOW)"
rec client-existing-hole - "$($C capture $SLOW trace ${hex(trace.start)} 4096 hole 0xf000000000 4096 --existing)"
rec client-existing-hole-magic - "$(magic $SLOW)"
rec client-hole - "$($C capture $D/hole.core trace ${hex(trace.start)} 4096 hole 0xf000000000 4096)"
rec client-hole-left - "{\\"exists\\":$(test -e $D/hole.core && echo true || echo false)}"
rec client-reserved - "$($C capture $D/reserved.core trace ${hex(trace.start)} 4096 high 0xfd00000000 4096)"
rec client-reserved-left - "{\\"exists\\":$(test -e $D/reserved.core && echo true || echo false)}"
rec client-device - "$($C capture $D/device.core trace ${hex(trace.start)} 4096 vga 0xa0000 4096)"
rec client-device-left - "{\\"exists\\":$(test -e $D/device.core && echo true || echo false)}"
$C capture $D/odd.core odd 0x1000 1000 > $T/odd.out 2> $T/odd.err
rec client-odd - "{\\"rc\\":$?,\\"stderr\\":\\"$(tr -d '"\n' < $T/odd.err)\\",\\"exists\\":$(test -e $D/odd.core && echo true || echo false)}"

# The client's digest: the core read back once durable and hashed through
# AF_ALG by the kernel's best SHA-256 driver; the same bytes sha256sum reads.
rec client-digest - "$($C capture $D/digest.core trace ${hex(trace.start)} ${trace.size})"
rec client-digest-sum - "{\\"sha256\\":\\"$(sha256sum $D/digest.core | cut -c1-64)\\",\\"size\\":$(stat -c %s $D/digest.core)}"
rec client-digest-file - "$(cat $D/digest.core.digest)"
# Killed (-9) once durable, before its digest: the core stays whole, no
# digest file passes for one, and the digest verb finishes it.
$C capture $D/killed.core big ${hex(big.start)} ${big.size} --digest-driver builtin > $T/killed.out &
p=$!
for i in $(seq 1200); do grep -q '"seconds"' $T/killed.out && break; sleep 0.05; done
kill -KILL $p
wait $p
rec client-killed - "{\\"durable\\":$(grep -q '"seconds"' $T/killed.out && echo true || echo false),\\"digest_file\\":$(ls $D | grep -c '^killed.core.digest')}"
rec client-recovered - "$($C digest $D/killed.core)"
rec client-recovered-sum - "{\\"sha256\\":\\"$(sha256sum $D/killed.core | cut -c1-64)\\"}"
rm -f $D/killed.core $D/killed.core.digest

$S selftest --phys ${hex(trace.start)} --scratch $D --blockdev $RAW | sed 's/^/@@selftest - /'
rec fuzz - "$($S fuzz --count 5000 --seed 20261125 --phys ${hex(trace.start)} --scratch $D)"
rec poison - "$($S poison-test --scratch $D)"

# A non-fatal signal: the write stops and reports how far it got.
rec alarm - "$($C write ${hex(big.start)} ${64 << 20} $SLOW --existing --alarm-ms 500)"
# A fatal one: the process must die promptly, not after the whole write.
$C write ${hex(big.start)} ${64 << 20} $SLOW --existing > $T/killed &
p=$!
sleep 1
t0=$(date +%s%N)
kill -KILL $p
wait $p
rc=$?
t1=$(date +%s%N)
rec kill - "{\\"rc\\":$rc,\\"ms\\":$(( (t1 - t0) / 1000000 ))}"
rec stats - "$(stats)"
# The agent's CLI, run by the host's node over the 9p root, unchanged.
rec cli - "$(node $CLI module --json)"

# The bounce path: without adoption, the 256 MiB range has no struct pages.
rmmod physcap || exit 11
insmod $MOD adopt=0 || exit 12
rec bounce ${big.name} "$($C write ${hex(big.start)} ${big.size} $D/bounced-${big.name}.bin)"
rmmod physcap && rec unload - '{"ok":true}'

# Kernel lockdown (raised at run time: an unsigned module cannot load under it).
insmod $MOD || exit 13
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
echo integrity > /sys/kernel/security/lockdown
rec lockdown physcap "$($C info)"
rec lockdown devmem "$($C devmem ${hex(trace.start)} 4096 $D/lockdown.bin)"
exit 0
`;
}
