/**
 * The `dir` destination kind: each capture in its own directory under
 * `path` (dir/store.ts), written as <id>.partial and renamed into place
 * once its index line is committed.
 */
import * as fs from 'node:fs';

import { systemDirProblem, trustedDirProblem } from '../../core/trusted-path';
import { parseSize } from '../../core/units';
import type { DestinationDoc, DestinationKind } from '../kind';
import { statOrWarn, warnUnlessWritable } from '../local-path';
import type { CaptureStore } from '../types';
import { DirStore } from './store';

export interface DirSpec {
  kind: 'dir';
  path: string;
  retention: { count: number; bytes: bigint; keepFree: bigint };
  onInterrupted: 'keep' | 'delete';
}

function size(v: unknown): bigint {
  const n = parseSize(v);
  if (n instanceof Error) throw n; // check() said so first
  return n;
}

export const dirKind: DestinationKind<DirSpec> = {
  kind: 'dir',
  schema: 'destinations/dir.schema.json',
  summary: 'a directory of captures, one directory each, with a hash-chained index',
  can: { arm: true, spool: true },

  parse(d: DestinationDoc): DirSpec {
    const r = (d.retention as DestinationDoc | undefined) ?? {};
    return {
      kind: 'dir',
      path: String(d.path),
      retention: {
        count: (r.count as number) ?? 10,
        bytes: size(r.bytes ?? 0),
        keepFree: size(r.keep_free ?? '1GiB'),
      },
      onInterrupted: (d.on_interrupted as 'keep' | 'delete') ?? 'keep',
    };
  },

  check(d, report) {
    const retention = (d.retention as DestinationDoc | undefined) ?? {};
    for (const k of ['bytes', 'keep_free']) {
      if (retention[k] === undefined) continue;
      const v = parseSize(retention[k]);
      if (v instanceof Error) report('error', `/retention/${k}`, v.message);
    }
    const p = String(d.path);
    const sys = systemDirProblem(p, 'destination');
    if (sys) return report('error', '/path', sys);
    const warn = (m: string, e?: string) => report('warning', '/path', m, e);
    const st = statOrWarn(p, 'the agent creates it, if it may', warn);
    if (!st) return;
    // What the agent will refuse when it writes there (a link, other writers), said now.
    const untrusted = trustedDirProblem(p, 'destination');
    if (untrusted) return warn(`the agent will refuse this destination: ${untrusted}`);
    if (!st.isDirectory()) return warn(`${p} is not a directory`);
    warnUnlessWritable(p, warn);
  },

  where: (spec) => spec.path,
  keepInterrupted: (spec) => spec.onInterrupted === 'keep',
  open: (spec) => new DirStore(spec.path, { retention: spec.retention }, true),

  openAt(location: string): CaptureStore | undefined {
    let st: fs.Stats;
    try {
      st = fs.statSync(location);
    } catch {
      return undefined;
    }
    return st.isDirectory() ? new DirStore(location) : undefined;
  },

  specOf: (store) => ({ kind: 'dir', path: store.location, retention: { count: 0, bytes: 0n, keepFree: 0n }, onInterrupted: 'keep' }),
};
