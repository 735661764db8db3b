/**
 * The one place that decides what a trigger event becomes: a capture, part
 * of a capture already running or queued for that profile (coalesced), or
 * nothing, with the reason (cooldown, a full queue, a profile that is not
 * active, the agent stopping).  Every event gets exactly one outcome, and
 * every capture carries the events it answers.
 */
import { Clock } from '../core/clock';
import { Logger } from '../core/logger';
import { TriggerEvent } from '../triggers/event';

export type RefusalReason = 'cooldown' | 'queue-full' | 'displaced' | 'unknown-profile' | 'disabled' | 'stopping';

export type Outcome =
  | { status: 'started'; capture: string }
  | { status: 'queued'; capture: string }
  | { status: 'coalesced'; capture: string }
  | { status: 'refused'; reason: RefusalReason; detail?: string };

export interface ScheduledCapture {
  id: string;
  profile: string;
  priority: number;
  /** The event that caused it first, then those coalesced into it. */
  events: TriggerEvent[];
  queuedAt: number;
  startedAt?: number;
}

export interface ProfilePolicy {
  priority: number;
  cooldownMs: number;
  enabled: boolean;
}

export interface SchedulerOptions {
  clock: Clock;
  log: Logger;
  /** The policy of an active profile, or undefined. */
  policy: (profile: string) => ProfilePolicy | undefined;
  /** Runs one capture; resolves when it is over, whatever the result. */
  run: (capture: ScheduledCapture, signal: AbortSignal) => Promise<unknown>;
  /** Captures at once (default 1: captures compete for the same disk). */
  concurrency?: number;
  /** Captures waiting at most (default 16). */
  maxQueue?: number;
  /** The id a new capture gets (default cap-<time>-<n>); the agent uses the capture's on-disk id. */
  captureId?: (profile: string, now: number) => string;
  /** Each event's final fate, once (for metrics). */
  onFate?: (event: TriggerEvent, fate: 'captured' | 'coalesced' | 'refused') => void;
}

export class Scheduler {
  private readonly running = new Map<string, { capture: ScheduledCapture; abort: AbortController; done: Promise<void> }>();
  private readonly queue: ScheduledCapture[] = [];
  private readonly lastFinished = new Map<string, number>();
  private stopping = false;
  private seq = 0;

  constructor(private readonly o: SchedulerOptions) {}

  /**
   * Decides at once.  The log gets one line per event with its final fate
   * (captured, coalesced or refused): a queued event's line is written when
   * its capture starts, or when it is refused after all.
   */
  submit(event: TriggerEvent): Outcome {
    const outcome = this.decide(event);
    if (outcome.status === 'refused') this.account(event, 'refused', { reason: outcome.reason, detail: outcome.detail });
    // Into a running capture: final now.  Into a queued one: decided when it starts or is dropped.
    else if (outcome.status === 'coalesced' && this.running.get(event.profile)?.capture.id === outcome.capture) {
      this.account(event, 'coalesced', { capture: outcome.capture });
    }
    return outcome;
  }

  private account(event: TriggerEvent, status: 'captured' | 'coalesced' | 'refused', fields: Record<string, unknown>): void {
    this.o.onFate?.(event, status);
    const line = { event: event.id, trigger: event.kind, profile: event.profile, why: event.reason, status, ...fields };
    if (status === 'refused') this.o.log.warn(line, 'trigger refused');
    else this.o.log.info(line, `trigger ${status}`);
  }

  private decide(event: TriggerEvent): Outcome {
    if (this.stopping) return { status: 'refused', reason: 'stopping' };
    const policy = this.o.policy(event.profile);
    if (!policy) return { status: 'refused', reason: 'unknown-profile' };
    if (!policy.enabled) return { status: 'refused', reason: 'disabled' };

    const active = this.running.get(event.profile)?.capture ?? this.queue.find((c) => c.profile === event.profile);
    if (active) {
      active.events.push(event);
      return { status: 'coalesced', capture: active.id };
    }
    const last = this.lastFinished.get(event.profile);
    const now = this.o.clock.now();
    if (last !== undefined && now - last < policy.cooldownMs) {
      return { status: 'refused', reason: 'cooldown', detail: `${Math.ceil((policy.cooldownMs - (now - last)) / 1000)} s left` };
    }

    const capture: ScheduledCapture = {
      id: this.o.captureId?.(event.profile, now) ?? `cap-${this.o.clock.now().toString(36)}-${++this.seq}`,
      profile: event.profile,
      priority: policy.priority,
      events: [event],
      queuedAt: now,
    };
    if (this.running.size < (this.o.concurrency ?? 1)) {
      this.start(capture);
      return { status: 'started', capture: capture.id };
    }
    const max = this.o.maxQueue ?? 16;
    if (this.queue.length >= max) {
      // A full queue makes room only for something more important.
      const lowest = this.queue.reduce((a, b) => (b.priority < a.priority || (b.priority === a.priority && b.queuedAt > a.queuedAt) ? b : a));
      if (lowest.priority >= capture.priority) return { status: 'refused', reason: 'queue-full' };
      this.queue.splice(this.queue.indexOf(lowest), 1);
      for (const e of lowest.events) this.account(e, 'refused', { reason: 'displaced', by: capture.id });
    }
    this.queue.push(capture);
    return { status: 'queued', capture: capture.id };
  }

  private start(capture: ScheduledCapture): void {
    capture.startedAt = this.o.clock.now();
    capture.events.forEach((e, i) => this.account(e, i ? 'coalesced' : 'captured', { capture: capture.id }));
    const abort = new AbortController();
    const done = this.o
      .run(capture, abort.signal)
      .catch((err: unknown) => this.o.log.error({ capture: capture.id, err: String(err) }, 'capture runner failed'))
      .then(() => {
        this.running.delete(capture.profile);
        this.lastFinished.set(capture.profile, this.o.clock.now());
        this.next();
      });
    this.running.set(capture.profile, { capture, abort, done });
  }

  /** Highest priority first; among equals, the oldest. */
  private next(): void {
    while (!this.stopping && this.queue.length && this.running.size < (this.o.concurrency ?? 1)) {
      this.queue.sort((a, b) => b.priority - a.priority || a.queuedAt - b.queuedAt);
      this.start(this.queue.shift()!);
    }
  }

  status(): { running: ScheduledCapture[]; queued: ScheduledCapture[] } {
    return { running: [...this.running.values()].map((r) => r.capture), queued: [...this.queue] };
  }

  /**
   * Stop: refuse new events, drop the queue (each event refused), give the
   * running captures graceMs to finish, then abort them.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    for (const c of this.queue.splice(0)) for (const e of c.events) this.account(e, 'refused', { reason: 'stopping' });
    const all = Promise.all([...this.running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), graceMs);
    });
    if ((await Promise.race([all, grace])) === 'timeout') {
      for (const r of this.running.values()) r.abort.abort();
      await all;
    }
    clearTimeout(timer);
  }
}
