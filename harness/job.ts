/**
 * What jobs for the emulated x86-64 board (harness/board.ts) share: the
 * head a job starts with, and the programs of this checkout it runs in the
 * guest (compiled to dist/harness/, run by the host's node over the 9p
 * root).
 */
import * as path from 'node:path';

import { physcapCli } from './agent';
import { artifacts, KernelSpec, repoRoot } from './paths';

/**
 * The head of a job: the shebang, then the board's places under short
 * names and the shell functions jobs share.  The job's own lines follow.
 *
 *   C     physcap-client                 MOD   physcap.ko built for the kernel
 *   S     physcap-selftest (test tools)
 *   CLI   agent/bin/physcap.js (node)    D     the scratch disk (ext4), mounted
 *   RAW   the raw disk (vdb)             SLOW  the raw disk throttled to 16 MiB/s (vdc)
 *   T     the job's temp directory
 *
 *   rec KEY LABEL JSON         prints "@@KEY LABEL JSON", a record for BoardRun.records()
 *   wait_for SECONDS CMD...    (bash) true once CMD holds; false at the deadline
 */
export function jobHead(kernel: KernelSpec, shell: 'bash' | 'sh' = 'bash'): string {
  const { module, client, selftest } = artifacts(kernel);
  const lines = [
    `#!/bin/${shell}`,
    `C=${client}`,
    `S=${selftest}`,
    `MOD=${module}`,
    `CLI=${physcapCli}`,
    'D=$PHYSCAP_BOARD_DISK',
    'RAW=$PHYSCAP_BOARD_RAW',
    'SLOW=$PHYSCAP_BOARD_SLOW',
    'T=$TMPDIR',
    `rec() { printf '@@%s %s %s\\n' "$1" "$2" "$3"; }`,
  ];
  if (shell === 'bash') {
    lines.push(
      '# wait_for SECONDS COMMAND...: true once COMMAND holds; false at the deadline.',
      'wait_for() {',
      '\tlocal deadline=$((SECONDS + $1)); shift',
      '\tuntil "$@"; do [ $SECONDS -ge $deadline ] && return 1; sleep 0.3; done',
      '}',
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * A program of harness/ the guest runs with node:
 *   guest-capture  JSON capture requests through the native engine, "@@capture LABEL {json}" each;
 *   guest-cli      LABEL physcap-args...: the CLI's outcome as "@@cli LABEL {rc, stdout, stderr}".
 */
export function guestProgram(name: 'guest-capture' | 'guest-cli'): string {
  return path.join(repoRoot(), 'dist', 'harness', `${name}.js`);
}
