/**
 * physcap.ko's device, shared by the whole agent: one open file for the
 * event records, fanned out to whoever subscribes (the triggers that arm
 * captures), and the module's features, read once.
 */
import type { Logger } from '../core/logger';
import { deviceInfo, openPhyscapDevice, PhyscapDevice, PhyscapEvent, readPhyscapEvents, uapi } from '../native/binding';
import type { PhyscapService } from '../triggers/kind';

export class PhyscapDeviceService implements PhyscapService {
  private device?: PhyscapDevice;
  private governor?: boolean;
  private readonly listeners = new Set<(e: PhyscapEvent) => void>();

  constructor(
    private readonly log: Logger,
    private readonly devicePath?: string,
  ) {}

  governorAvailable(): boolean {
    if (this.governor === undefined) {
      try {
        this.governor = (deviceInfo().features & uapi().FEAT_PRETIMEOUT_GOV) !== 0n;
      } catch {
        this.governor = false;
      }
    }
    return this.governor;
  }

  pastEvents(): PhyscapEvent[] {
    return readPhyscapEvents(this.devicePath);
  }

  /** The open device (arming needs it); opened on first use. */
  open(): PhyscapDevice {
    this.device ??= openPhyscapDevice(
      {
        event: (e) => this.onEvent(e),
        end: (err) => {
          if (err) this.log.error({ err: err.message }, 'reading physcap.ko events stopped: armed captures will land but not be finished until the next start');
        },
      },
      this.devicePath,
    );
    return this.device;
  }

  subscribe(listener: (e: PhyscapEvent) => void): () => void {
    this.open();
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private onEvent(e: PhyscapEvent): void {
    if (e.type === 'pretimeout') {
      this.log.warn(
        { watchdog: `watchdog${e.watchdogId}`, seq: String(e.seq), time: new Date(Number(e.timeRealNs / 1_000_000n)).toISOString() },
        'watchdog pretimeout',
      );
      return;
    }
    for (const l of this.listeners) l(e);
  }

  close(): void {
    this.listeners.clear();
    this.device?.close();
    this.device = undefined;
  }
}
