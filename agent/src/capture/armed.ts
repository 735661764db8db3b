/**
 * Armed captures: a watchdog profile's capture prepared ahead of time and
 * handed to physcap.ko, which writes it itself when the watchdog's
 * pretimeout fires — when user space (this agent included) may be the
 * thing that is wedged.
 *
 * Ahead of time: the capture is planned, its destination record begun
 * (an unfinished record with an intent that carries the arm's cookie), core.elf
 * preallocated and its ELF header written, and the regions armed at their
 * offsets.  When the kernel reports the capture done, the agent reads back
 * what reached the disk (memory cannot be hashed at fire time), writes the
 * manifest and publishes the capture like any other, then arms the next.
 * If the agent was down when it fired, the next start finds the record,
 * the kernel's record of the fire, and finishes it, saying so.  A module
 * of ABI 4 also stamps the capture on its destination (arm-stamp.ts), in a
 * block after the last region: after a reset, when the module's records
 * are gone, that stamp is how the next start knows the kernel wrote it.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

import type { Profile } from '../config/profile';
import type { Logger } from '../core/logger';
import { destinationKind, kindsThat, openStore } from '../destinations/registry';
import type { DataFile } from '../destinations/types';
import { parseElfCore, PT_LOAD } from '../container/elf';
import { hostInfo } from '../manifest/host';
import { CaptureResult, deviceInfo, hashStored, PhyscapDevice, PhyscapEvent, readPhyscapEvents, uapi } from '../native/binding';
import { parseStamp, STAMP_SIZE } from './arm-stamp';
import type { TriggerKindName } from '../triggers/registry';
import { Capture, CaptureOutcome, ELF_FILE } from './pipeline';
import { CapturePlan, captureId, planCapture } from './plan';
import { readVmcoreinfo } from './vmcoreinfo';

/** What an armed capture's intent records, beside the usual id/profile/started. */
export interface ArmedIntent {
  id: string;
  profile: string;
  started: string;
  regions: Array<{ name: string; phys: string; size: number }>;
  armed: {
    cookie: string;
    watchdogId: number;
    bootId: string | null;
    /** The module writes a stamp (ABI 4) in the last block of core.elf, this many bytes. */
    stampPage?: number;
  };
}

/** Sets a watchdog's pretimeout governor (sysfs); returns the one it replaced. */
export function setGovernor(id: number, governor: string, sysRoot = '/sys'): string {
  const file = `${sysRoot}/class/watchdog/watchdog${id}/pretimeout_governor`;
  const before = fs.readFileSync(file, 'utf8').trim();
  if (before !== governor) fs.writeFileSync(file, `${governor}\n`);
  const now = fs.readFileSync(file, 'utf8').trim();
  if (now !== governor) throw Object.assign(new Error(`${file} says "${now}" after writing "${governor}"`), { code: 'EIO' });
  return before;
}

const parseCookie = (hex: string) => BigInt(`0x${hex}`);

/** The regions' places in a core.elf written at arm time, from its own program headers. */
function loadsOf(file: DataFile): Array<{ offset: bigint; size: bigint }> {
  const fd = fs.openSync(file.dest.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const core = parseElfCore((off, len) => {
      const b = Buffer.alloc(len);
      const n = fs.readSync(fd, b, 0, len, Number(file.base) + off);
      return b.subarray(0, n);
    }, Number(file.size));
    return core.segments.filter((seg) => seg.type === PT_LOAD).map((seg) => ({ offset: seg.offset, size: seg.filesz }));
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The per-region byte counts of a capture the kernel wrote.  The event
 * gives totals; per region only the all-zero-copy case is exact, so
 * anything else is recorded conservatively as possibly bounced (never a
 * zero-copy claim that may be false).
 */
function kernelResult(size: bigint, e: PhyscapEvent, digest: { sha256: string; chunkSha256: string[] }, total: bigint): CaptureResult {
  const exact = BigInt(e.bytesZeroCopy) === total;
  return {
    source: 'kernel',
    mode: exact ? 'zero-copy' : 'copy',
    bytesWritten: Number(size),
    bytesZeroCopy: exact ? Number(size) : 0,
    bytesCopied: 0,
    bytesBounced: exact ? 0 : Number(size),
    bytesPoisoned: 0,
    hashMode: 'readback',
    sha256: digest.sha256,
    chunkSha256: digest.chunkSha256,
    seconds: e.durationNs / 1e9,
    writeSeconds: e.durationNs / 1e9,
    hashSeconds: 0,
    durableSeconds: e.durationNs / 1e9,
    digestSeconds: e.durationNs / 1e9,
  };
}

/** One capture waiting in the kernel for a pretimeout: the capture, where its regions are in core.elf, and the arm. */
interface Armed {
  readonly cookie: bigint;
  readonly armId: bigint | undefined;
  readonly capture: Capture;
  readonly data: DataFile;
  readonly layout: ReadonlyArray<{ offset: bigint; size: bigint }>;
}

/**
 * The page size of a module that writes stamps (ABI 4), or undefined: an
 * older module, or none to ask (the arm itself then says why).
 */
function stampPage(): number | undefined {
  try {
    const info = deviceInfo();
    return (info.features & uapi().FEAT_ARM_STAMP) !== 0n ? info.pageSize : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What the stamp at the end of core.elf says, when the kernel wrote one:
 * the capture's end as the module recorded it on the disk.  core.elf ends
 * with the stamp's block when the arm asked for one (after the last
 * region); a file that does not, or a block that holds no valid stamp of
 * this arm, says nothing.
 */
function readStamp(file: DataFile, layout: ReadonlyArray<{ offset: bigint; size: bigint }>, cookie: bigint, page: number): PhyscapEvent | undefined {
  const at = file.size - BigInt(page);
  const end = layout.reduce((m, r) => (r.offset + r.size > m ? r.offset + r.size : m), 0n);
  if (at < end) return undefined;
  const fd = fs.openSync(file.dest.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const b = Buffer.alloc(STAMP_SIZE);
    const n = fs.readSync(fd, b, 0, STAMP_SIZE, Number(file.base + at));
    return n === STAMP_SIZE ? parseStamp(b, cookie) : undefined;
  } finally {
    fs.closeSync(fd);
  }
}

export interface ArmedCaptureOptions {
  profile: Profile;
  device: PhyscapDevice;
  /** N of /dev/watchdogN: whose pretimeout fires it. */
  watchdogId: number;
  selectGovernor: boolean;
  thenPanic: boolean;
  /** The kind of trigger that armed it (its events say so). */
  trigger: TriggerKindName;
  log: Logger;
  /** Every finished capture, complete or failed (metrics, status). */
  onOutcome?: (o: CaptureOutcome) => void;
  sysRoot?: string;
}

/** How often, and how many times, the next arm is tried again while the destination is busy (10 minutes). */
const REARM_MS = 500;
const REARM_TRIES = 1200;

/** A profile's armed capture: arms, finishes what fired, re-arms. */
export class ArmedCapture {
  private current?: Armed;
  private stopped = false;
  private retry?: ReturnType<typeof setTimeout>;
  /** The governor this replaced, put back at stop (without an arm, physcap's only records). */
  private previousGovernor?: string;

  constructor(private readonly o: ArmedCaptureOptions) {}

  get cookie(): bigint | undefined {
    return this.current?.cookie;
  }

  /** Prepares and arms the next capture; throws (nothing left behind) when it cannot. */
  arm(): void {
    const p = this.o.profile;
    if (p.output.format !== 'elf') {
      throw Object.assign(
        new Error(`profile ${p.name}: a watchdog capture is written by the kernel into one ELF container; output.format raw is not supported for it`),
        { code: 'EINVAL' },
      );
    }
    if (!destinationKind(p.destination.kind).can.arm) {
      throw Object.assign(
        new Error(`profile ${p.name}: armed captures need a ${kindsThat('arm').join(' or ')} destination for now (not ${p.destination.kind})`),
        { code: 'ENOTSUP' },
      );
    }
    if (this.o.selectGovernor) {
      const before = setGovernor(this.o.watchdogId, 'physcap', this.o.sysRoot);
      this.previousGovernor ??= before;
    }
    const cookie = crypto.randomBytes(8).readBigUInt64BE();
    const planned = planCapture(p, { id: captureId(p.name, new Date()) });
    // Room for the stamp's block too: it goes after the last region, on the record's alignment.
    const page = stampPage();
    const plan = page ? { ...planned, dataBytes: planned.dataBytes + BigInt(page) + 64n * 1024n } : planned;
    if (plan.source !== 'kernel') {
      throw Object.assign(new Error(`profile ${p.name}: a watchdog capture is written by physcap.ko; source ${plan.source} cannot be armed`), {
        code: 'EINVAL',
      });
    }
    // A module that stamps (ABI 4) gets a block after the last region for
    // it: what tells a restarted agent, after a reset too, that the kernel
    // wrote the capture.
    const armed: ArmedIntent['armed'] = {
      cookie: cookie.toString(16),
      watchdogId: this.o.watchdogId,
      bootId: hostInfo().bootId,
      ...(page ? { stampPage: page } : {}),
    };
    const capture = Capture.begin(plan, { log: this.o.log, intent: { armed } });
    // Making room for an armed record can reclaim a ring's oldest records now, long before any fire: said now.
    for (const w of capture.store.takeWarnings?.() ?? []) this.o.log.warn({ profile: p.name, capture: plan.id }, w);
    let armId: bigint | undefined;
    try {
      // The ELF header goes to disk now: it is also how a restarted agent
      // finds each region in the file.
      const { data, layout, trailerAt } = capture.run.layoutElf(readVmcoreinfo(), page ? { trailer: page } : {});
      const regions = plan.regions.map((r, i) => ({ offset: layout.regionOffsets[i]!, size: r.size }));
      armId = this.o.device.arm({
        watchdogId: this.o.watchdogId,
        dest: data.dest,
        cookie,
        ranges: plan.regions.map((r, i) => ({ phys: r.start, length: r.size, destOffset: data.base + regions[i]!.offset })),
        thenPanic: this.o.thenPanic,
        ...(trailerAt !== undefined ? { stampOffset: data.base + trailerAt } : {}),
      });
      // Armed for as long as it takes: the destination must not make other captures wait meanwhile.
      capture.sink.reserve?.();
      this.current = { cookie, armId, capture, data, layout: regions };
      this.o.log.info(
        { profile: p.name, capture: plan.id, watchdog: `watchdog${this.o.watchdogId}`, armId: String(armId), thenPanic: this.o.thenPanic },
        'capture armed in the kernel',
      );
    } catch (err) {
      try {
        if (armId !== undefined) this.o.device.disarm(armId);
        capture.discard();
      } catch (e) {
        this.o.log.warn({ capture: plan.id, err: (e as Error).message }, 'an arm that failed could not be taken back; start-up recovery records it');
      } finally {
        capture.close();
      }
      throw err;
    }
  }

  /** An event from the device: finishes the capture it is about, then arms the next. */
  async onEvent(e: PhyscapEvent): Promise<void> {
    const a = this.current;
    if (!a || e.cookie !== a.cookie || (e.type !== 'capture-done' && e.type !== 'capture-failed')) return;
    this.current = undefined;
    try {
      this.o.onOutcome?.(await finishArmed(a, e, this.o.trigger, undefined));
    } finally {
      a.capture.close();
    }
    this.rearm(0);
  }

  /**
   * Arms the next capture; while another capture holds the destination
   * (EBUSY: a dump partition's writer lock), tries again shortly rather
   * than leave the watchdog unarmed.
   */
  private rearm(attempt: number): void {
    this.retry = undefined;
    if (this.stopped) return;
    try {
      this.arm();
    } catch (err) {
      if ((err as { code?: string }).code === 'EBUSY' && attempt < REARM_TRIES) {
        if (attempt === 0)
          this.o.log.warn({ profile: this.o.profile.name, err: (err as Error).message }, 'the destination is busy: arming the next capture again shortly');
        this.retry = setTimeout(() => this.rearm(attempt + 1), REARM_MS);
        return;
      }
      this.o.log.error({ profile: this.o.profile.name, err: (err as Error).message }, 'could not arm the next capture');
    }
  }

  /** Disarms and removes the prepared capture (it never happened); gives the watchdog its governor back. */
  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    if (this.previousGovernor && this.previousGovernor !== 'physcap') {
      try {
        setGovernor(this.o.watchdogId, this.previousGovernor, this.o.sysRoot);
      } catch (err) {
        this.o.log.warn(
          { watchdog: `watchdog${this.o.watchdogId}`, governor: this.previousGovernor, err: (err as Error).message },
          'could not restore the pretimeout governor',
        );
      }
    }
    const a = this.current;
    this.current = undefined;
    if (!a) return;
    try {
      if (a.armId !== undefined) this.o.device.disarm(a.armId);
    } catch (err) {
      // Already firing: the kernel finishes it, and the next start's recovery publishes it.
      this.o.log.warn(
        { profile: this.o.profile.name, capture: a.capture.plan.id, err: (err as Error).message },
        'could not disarm; leaving the capture for recovery',
      );
      a.capture.close();
      return;
    }
    try {
      a.capture.discard();
    } catch (err) {
      // Another capture holds the device's writer lock this moment: the record stays, and the next start removes it.
      this.o.log.warn(
        { profile: this.o.profile.name, capture: a.capture.plan.id, err: (err as Error).message },
        'disarmed; its reserved record is left for the next start to remove',
      );
    } finally {
      a.capture.close();
    }
  }
}

/**
 * Reads back what the kernel wrote, then publishes the capture (complete)
 * or its failure, through the same Capture as every other capture.
 * `recovered`: why it is finished now and not when it fired (an agent restart).
 */
async function finishArmed(a: Armed, e: PhyscapEvent, trigger: TriggerKindName, recovered: string | undefined): Promise<CaptureOutcome> {
  const { capture } = a;
  const { plan } = capture;
  const p = plan.profile;
  capture.run.firedBy([
    {
      id: `kernel-${e.seq}`,
      kind: trigger,
      profile: p.name,
      time: Number(e.timeRealNs / 1_000_000n),
      reason: `watchdog${e.watchdogId} pretimeout: captured by physcap.ko`,
      detail: {
        armId: String(e.armId),
        firstByteLatencyNs: e.firstByteLatencyNs,
        durationNs: e.durationNs,
        bytesWritten: e.bytesWritten,
        ...(recovered ? { finalized: recovered } : {}),
      },
    },
  ]);
  const total = a.layout.reduce((s, r) => s + r.size, 0n);
  const figures = { bytes: e.bytesWritten, seconds: e.durationNs / 1e9, recovered };
  if (e.type === 'capture-failed') {
    // A reservation lets other captures write meanwhile; ending it waits for its turn.
    await capture.sink.writable?.();
    plan.regions.forEach((r, i) => capture.run.record(r, undefined, ELF_FILE, a.layout[i]!.offset));
    const error = { code: e.code, message: `the armed capture failed in the kernel${e.code ? ` (${e.code})` : ''} after ${e.bytesWritten} of ${total} bytes` };
    return capture.fail(error, { ...figures, message: 'armed capture failed' });
  }
  // Memory cannot be hashed at fire time: what reached the disk is.
  const covered = p.hash.chunkSize > 0n;
  let digests: Awaited<ReturnType<typeof hashStored>>;
  try {
    digests = await hashStored({
      path: a.data.dest.path,
      base: a.data.base,
      size: a.data.size,
      nofollow: true,
      gaps: covered,
      // As a triggered capture's: the chunk digests and the core's cover each region.
      regions: a.layout.map((r) => ({ offset: r.offset, length: r.size, chunkSize: Number(p.hash.chunkSize), whole: p.hash.chunkSize === 0n })),
    });
  } catch (err) {
    await capture.sink.writable?.();
    plan.regions.forEach((r, i) => capture.run.record(r, undefined, ELF_FILE, a.layout[i]!.offset));
    const why = err as { code?: string; message?: string };
    return capture.fail(
      { code: why.code, message: `reading back what the kernel wrote: ${why.message ?? String(err)}` },
      { ...figures, message: 'armed capture failed' },
    );
  }
  // Hashed without the device's writer lock (the reservation keeps the space); published with it.
  await capture.sink.writable?.();
  // The kernel's record is stamped when its write (and sync) ended.
  capture.run.reached(new Date(Number(e.timeRealNs / 1_000_000n)), new Date());
  plan.regions.forEach((r, i) => capture.run.record(r, kernelResult(r.size, e, digests.regions[i]!, total), ELF_FILE, a.layout[i]!.offset));
  capture.run.addFile({ name: ELF_FILE, size: digests.size, sha256: digests.sha256, ...(covered ? { gapsSha256: digests.gapsSha256 } : {}) });
  return capture.complete({
    ...figures,
    bytes: Number(total),
    message: 'armed capture complete',
    fields: { firstByteLatencyNs: e.firstByteLatencyNs, durationNs: e.durationNs },
  });
}

/** How long a restarted agent waits for a capture the kernel is still writing (a pretimeout fired, no end yet). */
const IN_FLIGHT_MS = 120_000;

/**
 * The capture's plan as it was armed: the profile's own when it still
 * names the same regions, else the regions the intent recorded (the
 * profile changed, or /proc/iomem did across a reboot).
 */
function armedPlan(profile: Profile, intent: ArmedIntent): CapturePlan {
  try {
    const plan = planCapture(profile, { id: intent.id, now: new Date(intent.started) });
    const same =
      plan.regions.length === intent.regions.length &&
      plan.regions.every(
        (r, i) => r.name === intent.regions[i]!.name && r.start === BigInt(intent.regions[i]!.phys) && r.size === BigInt(intent.regions[i]!.size),
      );
    if (same) return plan;
  } catch {
    // planned from the intent below
  }
  return {
    id: intent.id,
    profile,
    regions: intent.regions.map((r) => ({ name: r.name, start: BigInt(r.phys), size: BigInt(r.size), live: true, allowDevice: false })),
    source: 'kernel',
    format: 'elf',
    started: new Date(intent.started),
    dataBytes: 0n,
    smallBytes: 0,
  };
}

/** Whether a pretimeout of the capture's watchdog fired after it was armed (the module's events say). */
function firedSinceArmed(intent: ArmedIntent, events: PhyscapEvent[]): boolean {
  const started = BigInt(Date.parse(intent.started)) * 1_000_000n;
  return events.some((x) => x.type === 'pretimeout' && x.watchdogId === intent.armed.watchdogId && x.timeRealNs >= started);
}

/**
 * The end of an armed capture the kernel may still be writing: a
 * pretimeout of its watchdog fired after it was armed, and neither the
 * module's events nor the disk say it ended yet.  Waits for either,
 * bounded; undefined when neither comes.
 */
async function awaitInFlight(intent: ArmedIntent, cookie: bigint, stampOf: () => PhyscapEvent | undefined, log: Logger): Promise<PhyscapEvent | undefined> {
  log.info({ capture: intent.id }, 'a pretimeout fired after this capture was armed: waiting for the kernel to finish writing it');
  const deadline = Date.now() + IN_FLIGHT_MS;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    let now: PhyscapEvent[] = [];
    try {
      now = readPhyscapEvents();
    } catch {
      // the module went away: only the disk can say
    }
    const e = now.find((x) => x.cookie === cookie && (x.type === 'capture-done' || x.type === 'capture-failed')) ?? stampOf();
    if (e) return e;
  }
  return undefined;
}

/**
 * Start-up: armed captures a previous agent left.  One the kernel reports
 * done (or failed), by its event or by its stamp on the disk, is finished
 * now; one a pretimeout fired for and the kernel is still writing is
 * waited for; one armed in this boot that never fired is removed (its arm
 * died with that agent); one armed in an earlier boot with no stamp is
 * recorded failed, its data kept — whether the kernel got to write it is
 * not known.  Whatever goes wrong with one record ends that record as
 * failed, never the others.
 */
export async function resumeArmed(profile: Profile, events: PhyscapEvent[], trigger: TriggerKindName, log: Logger): Promise<CaptureOutcome[]> {
  const store = openStore(profile.destination);
  const out: CaptureOutcome[] = [];
  try {
    for (const u of store.unfinished()) {
      let intent: ArmedIntent;
      try {
        intent = JSON.parse(u.intent.toString('utf8')) as ArmedIntent;
      } catch {
        continue;
      }
      if (!intent.armed || intent.profile !== profile.name || !Array.isArray(intent.regions)) continue;
      let resumed: ReturnType<typeof store.resume>;
      try {
        resumed = store.resume(u.id);
      } catch (err) {
        // Still armed by a running agent (EBUSY), or not this kind's to finish: left as it is.
        log.warn({ capture: u.id, profile: profile.name, err: (err as Error).message }, 'an armed capture could not be reopened to be finished');
        continue;
      }
      const capture = Capture.resume(armedPlan(profile, intent), store, resumed.sink, { log });
      try {
        const o = await resumeOne(capture, resumed.data, intent, events, trigger, log);
        if (o) out.push(o);
      } catch (err) {
        const e = err as { code?: string; message?: string };
        out.push(capture.fail({ code: e.code, message: `finishing an armed capture after a restart: ${e.message ?? String(err)}` }));
      }
    }
  } finally {
    store.close();
  }
  return out;
}

/** One armed record resumed: finished, failed, or (never fired, this boot) removed (undefined). */
async function resumeOne(
  capture: Capture,
  data: (name: string) => DataFile,
  intent: ArmedIntent,
  events: PhyscapEvent[],
  trigger: TriggerKindName,
  log: Logger,
): Promise<CaptureOutcome | undefined> {
  const cookie = parseCookie(intent.armed.cookie);
  const file = data(ELF_FILE);
  const layout = loadsOf(file);
  const page = intent.armed.stampPage;
  const stampOf = () => (page ? readStamp(file, layout, cookie, page) : undefined);
  // The module's event if it still has it; else the stamp it wrote on the disk (ABI 4), which survives a reset.
  const event = [...events].reverse().find((x) => x.cookie === cookie && (x.type === 'capture-done' || x.type === 'capture-failed'));
  const stamp = event ? undefined : stampOf();
  const thisBoot = intent.armed.bootId !== null && intent.armed.bootId === hostInfo().bootId;
  // A capture the kernel is writing right now must not be removed (its space reused) under it.
  const fired = !event && !stamp && thisBoot && firedSinceArmed(intent, events);
  const inFlight = fired ? await awaitInFlight(intent, cookie, stampOf, log) : undefined;
  const e = event ?? stamp ?? inFlight;
  if (!e && thisBoot) {
    if (fired) {
      return capture.fail({
        code: 'ETIMEDOUT',
        message: 'a pretimeout fired after it was armed, and the kernel did not report it ended in time: its data is kept',
      });
    }
    capture.discard();
    log.info({ capture: intent.id, profile: intent.profile }, 'an armed capture that never fired was removed (its arm ended with the previous agent)');
    return undefined;
  }
  if (!e) {
    // Armed in an earlier boot, and the disk does not say the kernel wrote it.
    return capture.fail({
      code: 'ENODATA',
      message: `armed before the last reboot, and ${page ? 'the kernel left no stamp of it' : 'its module wrote no stamps (ABI < 4)'}: whether the kernel wrote it is not known; its data is kept`,
    });
  }
  if (layout.length !== capture.plan.regions.length) {
    return capture.fail({
      code: 'EINVAL',
      message: `core.elf has ${layout.length} PT_LOAD segments, the capture was armed with ${capture.plan.regions.length} regions: finished as failed`,
    });
  }
  const a: Armed = { cookie, armId: undefined, capture, data: file, layout };
  const why =
    event || inFlight
      ? 'finalized after a restart (the agent was down when the kernel wrote it)'
      : "finalized after a restart, from the kernel's stamp on the destination (its events were gone)";
  return finishArmed(a, e, trigger, why);
}
