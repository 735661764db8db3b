/**
 * The agent's copies to remote destinations: one queue per spool, drained
 * in the background after each capture and at start-up (what a crash or a
 * reboot left unsent), and tried again later while anything is left.  A
 * capture never waits for a copy: it is durable in the spool first.
 */
import type { Profile } from '../config/profile';
import type { Logger } from '../core/logger';
import { destinationKey, destinationKind } from '../destinations/registry';
import type { SpoolStore } from '../destinations/remote/spool';
import { probeRemote, uploadPending } from '../destinations/remote/upload';
import type { Metrics } from './metrics';

/** How long a spool with copies left waits before trying them again. */
const AGAIN_MS = 60_000;

interface Queue {
  profile: Profile;
  running?: Promise<void>;
  /** Another pass was asked for while one ran. */
  again: boolean;
  timer?: NodeJS.Timeout;
}

export class Uploads {
  private readonly queues = new Map<string, Queue>();
  private readonly abort = new AbortController();

  constructor(
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly againMs = AGAIN_MS,
  ) {}

  /** A profile loaded or changed: its remote side is tested now (logged), and what its spool holds unsent is sent. */
  loaded(p: Profile): void {
    const remote = destinationKind(p.destination.kind).remote;
    if (!remote) return;
    probeRemote(remote, p.destination, this.abort.signal).then(
      () => this.log.info({ profile: p.name, remote: remote.url(p.destination) }, 'remote destination passed its pre-flight check'),
      (err: Error) =>
        this.log.error(
          { profile: p.name, remote: remote.url(p.destination), err: err.message },
          'remote destination failed its pre-flight check: captures will be kept in the spool until it can be reached',
        ),
    );
    this.kick(p);
  }

  /** Sends what the profile's spool holds unsent (after a capture; again while anything is left). */
  kick(p: Profile): void {
    const remote = destinationKind(p.destination.kind).remote;
    if (!remote || this.abort.signal.aborted) return;
    const key = destinationKey(p.destination);
    const q = this.queues.get(key) ?? { profile: p, again: false };
    q.profile = p;
    this.queues.set(key, q);
    clearTimeout(q.timer);
    if (q.running) {
      q.again = true;
      return;
    }
    q.running = this.drain(q).finally(() => {
      q.running = undefined;
      if (q.again) {
        q.again = false;
        this.kick(q.profile);
      }
    });
  }

  private async drain(q: Queue): Promise<void> {
    const p = q.profile;
    const remote = destinationKind(p.destination.kind).remote!;
    const destination = remote.url(p.destination);
    let spool: SpoolStore;
    try {
      spool = remote.spool(p.destination);
    } catch (err) {
      this.log.error({ profile: p.name, err: (err as Error).message }, 'spool cannot be opened; copies wait');
      return;
    }
    let left = false;
    try {
      const outcomes = await uploadPending(remote, p.destination, spool, {
        signal: this.abort.signal,
        log: this.log,
        onEvent: (what, n) => {
          if (what === 'bytes') this.metrics.uploadBytes.inc({ destination }, n);
          else if (what === 'part') this.metrics.uploadParts.inc({ destination }, n);
          else this.metrics.uploadRetries.inc({ destination }, n);
        },
      });
      for (const o of outcomes) {
        if (o.result) {
          this.metrics.uploads.inc({ destination, result: 'verified' });
          this.log.info(
            {
              capture: o.id,
              remote: o.result.remote,
              bytes: o.result.bytes,
              seconds: o.result.seconds,
              partsSent: o.result.partsSent,
              partsResumed: o.result.partsJournaled + o.result.partsFound,
              retries: o.result.retries,
            },
            'capture copied and verified',
          );
        } else if (!this.abort.signal.aborted) {
          left = true;
          this.metrics.uploads.inc({ destination, result: 'failed' });
          this.log.error(
            { capture: o.id, remote: destination, spool: spool.location, err: o.error },
            'copy failed; the capture is kept in the spool and the copy will be tried again',
          );
        }
      }
    } finally {
      spool.close();
    }
    if (left && !this.abort.signal.aborted) q.timer = setTimeout(() => this.kick(q.profile), this.againMs);
  }

  /** Stops: copies in flight are cut (their journals resume them next time). */
  async stop(): Promise<void> {
    this.abort.abort(new Error('the agent is stopping'));
    for (const q of this.queues.values()) {
      clearTimeout(q.timer);
      await q.running?.catch(() => undefined);
    }
  }
}
