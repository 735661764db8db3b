/**
 * Timers for any delay a profile can ask for.  Node's setTimeout and
 * setInterval take at most 2^31 - 1 ms (about 24.8 days): past that they
 * warn (TimeoutOverflowWarning) and fire after 1 ms, so `every: 30d`
 * would fire a thousand times a second.  These wait in steps Node can
 * time, against the monotonic clock (globalThis.performance, looked up at
 * each call), and fire once the whole delay has passed.
 */
/** The longest delay Node's timers keep. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LongTimer {
  cancel(): void;
}

/** Calls fn once, ms from now (any finite ms >= 0). */
export function longTimeout(fn: () => void, ms: number): LongTimer {
  const due = performance.now() + ms;
  let timer: NodeJS.Timeout | undefined;
  const step = () => {
    const left = due - performance.now();
    if (left <= 0) {
      timer = undefined;
      fn();
      return;
    }
    timer = setTimeout(step, Math.min(Math.ceil(left), MAX_TIMER_MS));
  };
  step();
  return {
    cancel() {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}

/**
 * Calls fn every ms (any finite ms > 0), the k-th time at start + k * ms:
 * no drift from the time fn takes, and no catch-up burst after a stall
 * (missed beats are skipped, not fired together).
 */
export function longInterval(fn: () => void, ms: number): LongTimer {
  if (!(ms > 0) || !Number.isFinite(ms)) throw new RangeError(`longInterval: ${ms} ms is not a positive finite period`);
  const start = performance.now();
  let beats = 0;
  let current: LongTimer | undefined;
  let cancelled = false;
  const next = () => {
    beats = Math.max(beats + 1, Math.floor((performance.now() - start) / ms) + 1);
    current = longTimeout(
      () => {
        if (cancelled) return;
        fn();
        if (!cancelled) next();
      },
      start + beats * ms - performance.now(),
    );
  };
  next();
  return {
    cancel() {
      cancelled = true;
      current?.cancel();
    },
  };
}
