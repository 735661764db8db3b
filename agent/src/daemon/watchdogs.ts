/**
 * The agent's watchdog triggers.  Where physcap.ko has registered its
 * pretimeout governor, each watchdog profile keeps one capture armed in
 * the kernel (capture/armed.ts) and this class routes the device's event
 * records to it.  Where it has not (no module, an older one), the trigger
 * falls back to the kernel log's "watchdogN: pretimeout event" line, which
 * the noop governor prints: a capture by the agent, if the agent can still
 * run.
 */
import type { Profile, TriggerSpec } from '../config/profile';
import type { Logger } from '../core/logger';
import { ArmedCapture, resumeArmed, watchdogId } from '../capture/armed';
import type { CaptureOutcome } from '../capture/pipeline';
import { deviceInfo, openPhyscapDevice, PhyscapDevice, PhyscapEvent, readPhyscapEvents } from '../native/binding';

/** PHYSCAP_FEAT_PRETIMEOUT_GOV in kernel/physcap_uapi.h. */
const FEAT_PRETIMEOUT_GOV = 1n << 8n;

type WatchdogSpec = Extract<TriggerSpec, { kind: 'watchdog' }>;

export interface WatchdogsOptions {
  log: Logger;
  onOutcome: (profile: string, o: CaptureOutcome) => void;
  /** Called when a profile must fall back to the kernel log's pretimeout line. */
  fallback: (profile: Profile, watchdogId: number) => void;
  devicePath?: string;
  sysRoot?: string;
}

export class Watchdogs {
  private device?: PhyscapDevice;
  private readonly armed = new Map<string, ArmedCapture>();
  private governor?: boolean;

  constructor(private readonly o: WatchdogsOptions) {}

  /** physcap.ko is loaded and its pretimeout governor registered. */
  private governorAvailable(): boolean {
    if (this.governor === undefined) {
      try {
        this.governor = (deviceInfo().features & FEAT_PRETIMEOUT_GOV) !== 0n;
      } catch {
        this.governor = false;
      }
    }
    return this.governor;
  }

  private openDevice(): PhyscapDevice {
    this.device ??= openPhyscapDevice(
      {
        event: (e) => this.onEvent(e),
        end: (err) => {
          if (err) this.o.log.error({ err: err.message }, 'reading physcap.ko events stopped: armed captures will land but not be finished until the next start');
        },
      },
      this.o.devicePath,
    );
    return this.device;
  }

  private onEvent(e: PhyscapEvent): void {
    if (e.type === 'pretimeout') {
      this.o.log.warn({ watchdog: `watchdog${e.watchdogId}`, seq: String(e.seq), time: new Date(Number(e.timeRealNs / 1_000_000n)).toISOString() }, 'watchdog pretimeout');
      return;
    }
    for (const [name, a] of this.armed) {
      if (a.cookie !== e.cookie) continue;
      a.onEvent(e).catch((err: unknown) => this.o.log.error({ profile: name, err: (err as Error).message }, 'finishing an armed capture failed'));
    }
  }

  /**
   * Before recovery and before arming: finishes what the kernel wrote for
   * this profile while no agent was there to see it.
   */
  async resume(p: Profile): Promise<void> {
    if (!p.triggers.some((t) => t.kind === 'watchdog') || !this.governorAvailable()) return;
    let events: PhyscapEvent[];
    try {
      events = readPhyscapEvents(this.o.devicePath);
    } catch (err) {
      this.o.log.error({ profile: p.name, err: (err as Error).message }, 'cannot read physcap.ko events: unfinished armed captures are left to recovery');
      return;
    }
    try {
      for (const outcome of await resumeArmed(p, events, this.o.log)) this.o.onOutcome(p.name, outcome);
    } catch (err) {
      this.o.log.error({ profile: p.name, err: (err as Error).message }, 'finishing armed captures at start-up failed; recovery records them');
    }
  }

  start(p: Profile, spec: WatchdogSpec): void {
    const id = watchdogId(spec.device);
    if (!this.governorAvailable()) {
      this.o.log.warn({ profile: p.name, watchdog: spec.device }, "physcap.ko's pretimeout governor is not available: falling back to the kernel log's pretimeout line");
      this.o.fallback(p, id);
      return;
    }
    const a = new ArmedCapture({
      profile: p,
      device: this.openDevice(),
      watchdogDevice: spec.device,
      selectGovernor: spec.selectGovernor,
      thenPanic: spec.then === 'panic',
      log: this.o.log,
      sysRoot: this.o.sysRoot,
      onOutcome: (outcome) => this.o.onOutcome(p.name, outcome),
    });
    try {
      a.arm();
      this.armed.set(p.name, a);
    } catch (err) {
      this.o.log.error({ profile: p.name, watchdog: spec.device, err: (err as Error).message }, "could not arm the capture: falling back to the kernel log's pretimeout line");
      this.o.fallback(p, id);
    }
  }

  stop(name: string): void {
    this.armed.get(name)?.stop();
    this.armed.delete(name);
  }

  close(): void {
    for (const name of [...this.armed.keys()]) this.stop(name);
    this.device?.close();
    this.device = undefined;
  }
}
