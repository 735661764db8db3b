/**
 * The kernel log for every trigger that reads it: one reader for the
 * agent, started by the first subscriber.  If it cannot start, that is
 * logged, and tried again by the next subscriber (a reload).
 */
import type { Logger } from '../core/logger';
import type { KernelLogFeed } from '../triggers/kind';
import type { KmsgRecord } from '../triggers/kmsg-record';
import { KmsgSource } from '../triggers/kmsg-source';

export class SharedKernelLog implements KernelLogFeed {
  private readonly source: KmsgSource;
  private started = false;

  constructor(
    private readonly log: Logger,
    kmsgPath?: string,
  ) {
    this.source = new KmsgSource(log, kmsgPath);
  }

  subscribe(listener: (record: KmsgRecord) => void): () => void {
    const unsubscribe = this.source.subscribe(listener);
    if (!this.started) {
      try {
        this.source.start();
        this.started = true;
      } catch (err) {
        this.log.error({ err: String(err) }, 'cannot read the kernel log: kmsg triggers will not fire');
      }
    }
    return unsubscribe;
  }

  async stop(): Promise<void> {
    if (this.started) await this.source.stop();
    this.started = false;
  }
}
