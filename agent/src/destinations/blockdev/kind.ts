/**
 * The `blockdev` destination kind: a dump partition (or an image file of
 * one) holding a ring of capture records and an index (blockdev/store.ts).
 */
import * as fs from 'node:fs';

import { trustedDeviceProblem } from '../../core/trusted-path';
import type { DestinationKind } from '../kind';
import { statOrWarn, warnUnlessWritable } from '../local-path';
import { initBlockdev, InitMode, openBlockdevStore } from './store';

export interface BlockdevSpec {
  kind: 'blockdev';
  device: string;
  init: Exclude<InitMode, 'force'>;
}

export const blockdevKind: DestinationKind<BlockdevSpec> = {
  kind: 'blockdev',
  schema: 'destinations/blockdev.schema.json',
  summary: 'a dump partition (or a partition image): a ring of capture records with an index',
  // An armed capture's record is a reservation (Sink.reserve): it holds
  // its place in the ring without the writer's lock, so other captures go
  // on around it while it waits, for hours, for a pretimeout.
  // Not a spool yet: its ring would overwrite a record not yet copied (retain's pinned is not honoured).
  can: { arm: true, spool: false },

  parse: (d) => ({ kind: 'blockdev', device: String(d.device), init: (d.init as BlockdevSpec['init']) ?? 'if-blank' }),

  check(d, report) {
    const p = String(d.device);
    const warn = (m: string, e?: string) => report('warning', '/device', m, e);
    const st = statOrWarn(p, 'the dump partition', warn);
    if (!st) return;
    if (!st.isBlockDevice() && !st.isFile()) return warn(`${p} is neither a block device nor a partition image file`);
    const untrusted = trustedDeviceProblem(p);
    if (untrusted) return warn(`the agent will refuse this destination: ${untrusted}`);
    warnUnlessWritable(p, warn);
  },

  where: (spec) => spec.device,
  // A record is data in place on the device: recovery cannot delete it, only mark it failed.
  keepInterrupted: () => true,
  open(spec) {
    // What it writes its evidence to: the trusted-path rule, for a device.
    const problem = trustedDeviceProblem(spec.device);
    if (problem) throw Object.assign(new Error(`EACCES: untrusted destination: ${problem}`), { code: 'EACCES' });
    return openBlockdevStore(spec.device, { init: spec.init });
  },

  openAt(location) {
    let st: fs.Stats;
    try {
      st = fs.statSync(location);
    } catch {
      return undefined;
    }
    return st.isDirectory() ? undefined : openBlockdevStore(location, { init: 'never' });
  },

  specOf: (store) => ({ kind: 'blockdev', device: store.location, init: 'never' }),

  commands(program, out) {
    program
      .command('blockdev')
      .description('dump partitions')
      .command('init')
      .description('initialize a dump partition (or a partition image) for the blockdev destination; erases its index')
      .argument('<device>', 'the block device or image file')
      .action((device: string) => {
        initBlockdev(device);
        out(`${device}: initialized as a physcap dump area\n`);
      });
  },
};
