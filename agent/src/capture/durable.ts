/**
 * Captures a crash left durable but not digested: every byte was on the
 * disk (the record says so, CaptureRun.durableNow) when the process died
 * with its digests still running.  Nothing of such a capture is lost, so
 * start-up finishes it instead of recording it failed: its data is read
 * back from the disk and hashed (the same DigestPipe as verify), the
 * manifest is made from the durable note and those digests, and the
 * capture is published like any other, its index entry saying it was
 * finished after a restart.
 */
import type { Profile } from '../config/profile';
import type { Logger } from '../core/logger';
import type { CaptureStore } from '../destinations/types';
import { CaptureResult, hashStored } from '../native/binding';
import type { TriggerEvent } from '../triggers/event';
import { Capture, CaptureOutcome, DurableNote } from './pipeline';
import type { CapturePlan, PlannedRegion } from './plan';

const RECOVERED = 'finished after a restart: its data was durable, its digests were not; they were made from the disk';

interface DurableIntent {
  id: string;
  profile: string;
  started: string;
  durable: DurableNote;
}

function parseDurable(intent: Buffer): DurableIntent | undefined {
  try {
    const o = JSON.parse(intent.toString('utf8')) as Partial<DurableIntent>;
    const d = o.durable;
    const complete = d && Array.isArray(d.regions) && Array.isArray(d.files) && Array.isArray(d.triggers) && typeof d.chunkSize === 'number';
    return typeof o.id === 'string' && typeof o.profile === 'string' && typeof o.started === 'string' && complete ? (o as DurableIntent) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Finishes every durable capture in `store` whose profile is known
 * (`profileOf`); returns their outcomes.  What it cannot finish (no such
 * profile, a note too short, a record another process holds) it leaves to
 * recovery, which records it failed with its data kept.
 */
export async function finishDurable(store: CaptureStore, profileOf: (name: string) => Profile | undefined, log: Logger): Promise<CaptureOutcome[]> {
  const out: CaptureOutcome[] = [];
  for (const u of store.unfinished()) {
    const intent = parseDurable(u.intent);
    if (!intent) continue;
    const profile = profileOf(intent.profile);
    if (!profile) {
      log.warn({ capture: u.id, profile: intent.profile }, 'a durable capture whose profile is not loaded: recovery records it failed, its data kept');
      continue;
    }
    let resumed: ReturnType<CaptureStore['resume']>;
    try {
      resumed = store.resume(u.id);
    } catch (err) {
      // Another process may still be finishing it (EBUSY): recovery leaves that one alone too.
      log.warn({ capture: u.id, err: (err as Error).message }, 'a durable capture could not be reopened to be finished');
      continue;
    }
    out.push(await finishOne(intent, profile, store, resumed, log));
  }
  return out;
}

async function finishOne(
  intent: DurableIntent,
  profile: Profile,
  store: CaptureStore,
  resumed: ReturnType<CaptureStore['resume']>,
  log: Logger,
): Promise<CaptureOutcome> {
  const note = intent.durable;
  const regions: PlannedRegion[] = note.regions.map((r) => ({
    name: r.name,
    start: BigInt(r.phys),
    size: BigInt(r.size),
    live: r.memory === 'live',
    allowDevice: r.allowDevice === true,
  }));
  const plan: CapturePlan = {
    id: intent.id,
    profile,
    regions,
    source: note.source,
    format: note.format,
    started: new Date(intent.started),
    dataBytes: 0n,
    smallBytes: 0,
  };
  const capture = Capture.resume(plan, store, resumed.sink, { log });
  capture.run.byteOrder = note.byteOrder;
  capture.run.firedBy(
    note.triggers.map((t, i): TriggerEvent => ({
      id: `recovered-${i}`,
      kind: t.kind as TriggerEvent['kind'],
      profile: profile.name,
      time: Date.parse(t.time),
      reason: t.reason,
      detail: t.detail,
    })),
  );
  try {
    for (const f of note.files) {
      const data = resumed.data(f.name);
      const inFile = note.regions.map((r, i) => ({ r, planned: regions[i]! })).filter(({ r }) => r.file === f.name);
      inFile.sort((a, b) => a.r.offset - b.r.offset);
      const elf = note.format === 'elf';
      // As the capture would have: an ELF core's regions by their chunks and the gaps, a raw region by its file's digest.
      const covered = elf && note.chunkSize > 0;
      const digests = await hashStored({
        path: data.dest.path,
        base: data.base,
        size: BigInt(f.size),
        nofollow: true,
        gaps: covered,
        regions: inFile.map(({ r }) => ({ offset: BigInt(r.offset), length: BigInt(r.size), chunkSize: note.chunkSize, whole: elf && note.chunkSize === 0 })),
      });
      if (digests.size !== f.size) throw Object.assign(new Error(`${f.name}: ${digests.size} of its ${f.size} bytes are on the disk`), { code: 'EIO' });
      inFile.forEach(({ r, planned }, i) => {
        const d = digests.regions[i]!;
        capture.run.record(planned, resultOf(r, elf ? d : { ...d, sha256: digests.sha256 }), f.name, BigInt(r.offset));
      });
      capture.run.addFile({ name: f.name, size: f.size, sha256: digests.sha256, ...(covered ? { gapsSha256: digests.gapsSha256 } : {}) });
    }
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return capture.fail({ code: e.code, message: `finishing a durable capture after a restart: ${e.message ?? String(err)}` }, { recovered: RECOVERED });
  }
  // Regions in the plan's order, as a capture records them.
  capture.run.regions.sort((a, b) => note.regions.findIndex((r) => r.name === a.name) - note.regions.findIndex((r) => r.name === b.name));
  capture.run.reached(new Date(note.at), new Date());
  return capture.complete({ recovered: RECOVERED, message: 'capture finished after a restart' });
}

function resultOf(r: DurableNote['regions'][number], d: { sha256: string; chunkSha256: string[] }): CaptureResult {
  return {
    source: r.source,
    mode: r.mode === 'zero-copy' ? 'zero-copy' : 'copy',
    bytesWritten: r.size,
    bytesZeroCopy: r.bytesZeroCopy,
    bytesCopied: r.bytesCopied,
    bytesBounced: r.bytesBounced,
    bytesPoisoned: r.bytesPoisoned,
    // From the disk now, whatever the capture meant to hash.
    hashMode: 'readback',
    ...(d.sha256 ? { sha256: d.sha256 } : {}),
    chunkSha256: d.chunkSha256,
    seconds: 0,
    writeSeconds: 0,
    hashSeconds: 0,
    durableSeconds: 0,
    digestSeconds: 0,
  };
}
