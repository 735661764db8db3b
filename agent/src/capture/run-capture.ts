/**
 * The seam between the scheduler and the native engine, until captures
 * are planned and finished properly (ELF container, manifest, retention:
 * the captures-on-disk work).  For a `dir` destination it writes one raw
 * file per region into <dir>/<capture>.partial/, then a result record, and
 * renames the directory to <capture> only when every region was written;
 * a failure is renamed to <capture>.failed, never presented as complete.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Profile } from '../config/profile';
import { Logger } from '../core/logger';
import { capture, closeDestination, openDestination, preallocate, SourceKind } from '../native/binding';
import { ScheduledCapture } from '../scheduler/scheduler';
import { resolveIomem } from './iomem';

export interface CaptureRecord {
  capture: string;
  profile: string;
  status: 'complete' | 'failed';
  error?: { code?: string; message: string };
  events: ScheduledCapture['events'];
  regions: Array<{ name: string; phys: string; size: number; file: string; sha256?: string; mode?: string; source?: string }>;
  startedAt: string;
  seconds: number;
}

function chooseSource(p: Profile): SourceKind {
  if (p.source.kind !== 'auto') return p.source.kind;
  return fs.existsSync('/dev/physcap') ? 'kernel' : 'devmem';
}

function regionsOf(p: Profile): Array<{ name: string; start: bigint; size: bigint; live: boolean }> {
  return p.regions.flatMap((r) =>
    r.kind === 'range'
      ? [{ name: r.name, start: r.start, size: r.size, live: r.memory === 'live' }]
      : resolveIomem(r.iomem).map((x, i) => ({ name: `${r.name}-${i}`, start: x.start, size: x.size, live: r.memory === 'live' })),
  );
}

export async function runCapture(p: Profile, job: ScheduledCapture, signal: AbortSignal, log: Logger): Promise<CaptureRecord> {
  const t0 = Date.now();
  if (p.destination.kind !== 'dir') throw new Error(`${p.destination.kind} destinations are not written yet`);
  fs.mkdirSync(p.destination.path, { recursive: true, mode: 0o750 });
  const final = path.join(p.destination.path, `${p.name}-${new Date(t0).toISOString().replace(/[:.]/g, '-')}-${job.id}`);
  const partial = `${final}.partial`;
  fs.mkdirSync(partial, { mode: 0o750 }); // fails if it exists: nothing is overwritten
  const record: CaptureRecord = {
    capture: job.id,
    profile: p.name,
    status: 'failed',
    events: job.events,
    regions: [],
    startedAt: new Date(t0).toISOString(),
    seconds: 0,
  };
  const source = chooseSource(p);
  try {
    for (const r of regionsOf(p)) {
      const file = `${r.name}.bin`;
      const dest = openDestination(path.join(partial, file), 'create');
      try {
        preallocate(dest, r.size);
        const res = await capture({
          source,
          sourcePath: source === 'image' ? p.source.imagePath : undefined,
          imageBase: p.source.imageBase,
          phys: r.start,
          length: r.size,
          dest,
          truncate: true,
          hash: p.hash.readback === 'always' || (p.hash.readback === 'auto' && r.live) ? 'readback' : 'source',
          chunkSize: Number(p.hash.chunkSize),
          signal,
        });
        record.regions.push({ name: r.name, phys: `0x${r.start.toString(16)}`, size: Number(r.size), file, sha256: res.sha256, mode: res.mode, source: res.source });
      } finally {
        closeDestination(dest);
      }
    }
    record.status = 'complete';
  } catch (err) {
    const e = err as { code?: string; message?: string };
    record.error = { code: e.code, message: e.message ?? String(err) };
  }
  record.seconds = (Date.now() - t0) / 1000;
  const recordFile = path.join(partial, 'capture.json');
  fs.writeFileSync(recordFile, `${JSON.stringify(record, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
  const fd = fs.openSync(recordFile, 'r');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  const target = record.status === 'complete' ? final : `${final}.failed`;
  fs.renameSync(partial, target);
  const dirFd = fs.openSync(p.destination.path, 'r');
  fs.fsyncSync(dirFd);
  fs.closeSync(dirFd);
  const fields = { capture: job.id, profile: p.name, dir: target, seconds: record.seconds, regions: record.regions.length };
  if (record.status === 'complete') log.info(fields, 'capture complete');
  else log.error({ ...fields, error: record.error }, 'capture failed');
  return record;
}
