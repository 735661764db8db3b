/**
 * A bandwidth limit for a copy: each part reserves its time on the wire
 * before it is sent, so the copy's average rate stays at the limit however
 * many parts are in flight.  A fleet's uplink is shared with production
 * traffic; the limit is what the capture may take of it.
 */
export class Pace {
  private free = 0;

  /** bytesPerSecond 0: no limit. */
  constructor(private readonly bytesPerSecond: number) {}

  /** Resolves when `bytes` may go out. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (!this.bytesPerSecond) return;
    const now = Date.now();
    const start = Math.max(now, this.free);
    this.free = start + (bytes / this.bytesPerSecond) * 1000;
    if (start <= now) return;
    signal?.throwIfAborted();
    await new Promise<void>((resolve, reject) => {
      // The listener goes with the wait: one signal serves every copy the agent makes.
      const onAbort = () => {
        clearTimeout(t);
        reject(signal!.reason as Error);
      };
      const t = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, start - now);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
