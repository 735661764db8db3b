/**
 * The kernel log as a stream of parsed records, for the kmsg triggers of
 * every profile at once: one reader for the agent, whatever the number of
 * profiles.  Overruns are logged with their count, never fatal.
 */
import { Logger } from '../core/logger';
import { openKmsg } from '../native/binding';
import { KmsgRecord, parseKmsgRecord } from './kmsg-record';

export class KmsgSource {
  private handle?: { close(): void };
  private ended?: Promise<void>;
  private readonly listeners = new Set<(r: KmsgRecord) => void>();

  constructor(
    private readonly log: Logger,
    private readonly path = '/dev/kmsg',
  ) {}

  subscribe(listener: (r: KmsgRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    if (this.handle) return;
    let resolveEnd!: () => void;
    this.ended = new Promise((r) => (resolveEnd = r));
    this.handle = openKmsg(
      {
        record: (raw) => {
          const rec = parseKmsgRecord(raw);
          if (!rec) return void this.log.warn({ raw: raw.slice(0, 200) }, 'kernel log record not understood; skipped');
          for (const l of this.listeners) l(rec);
        },
        gap: (overruns) => this.log.warn({ overruns }, 'kernel log overran: records were lost before they were read'),
        end: (err) => {
          if (err) this.log.error({ code: err.code, err: err.message }, 'kernel log reader stopped');
          resolveEnd();
        },
      },
      this.path,
    );
  }

  async stop(): Promise<void> {
    this.handle?.close();
    this.handle = undefined;
    await this.ended;
  }
}
