# Run by test/postmortem/tools.ts as `drgn -c CORE -s VMLINUX drgn-check.py [TGID]`:
# what drgn reads from a dump, as one JSON line, then the kernel log as
# drgn formats it (dmesg's format).  TGID, if given, is the capturing
# process: its threads come and go while memory is read, so they are left
# out of the task list.
import json
import sys

from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.printk import get_dmesg

exclude = int(sys.argv[1]) if len(sys.argv) > 1 else -1
tasks = sorted((t.pid.value_(), t.comm.string_().decode(errors="replace"))
               for t in for_each_task(prog) if t.tgid.value_() != exclude)
print(json.dumps({
    "comm": prog["init_task"].comm.string_().decode(),
    "release": prog["init_uts_ns"].name.release.string_().decode(),
    "totalram_pages": prog["_totalram_pages"].counter.value_(),
    "pids": [pid for pid, _ in tasks],
    "comms": [comm for _, comm in tasks],
}))
sys.stdout.flush()
sys.stdout.buffer.write(get_dmesg(prog))
