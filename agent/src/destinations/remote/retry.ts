/**
 * Retries of one remote step: exponential backoff with jitter, for as
 * long as the copy's retry budget lasts, only for failures a wait can
 * mend (RemoteError.retryable).  A server that is down for minutes is
 * waited out; refused credentials end the copy at once.
 */
import { RemoteError } from './target';

export interface RetryPolicy {
  /** The copy gives up when a step still fails this long after its first failure. */
  forMs: number;
  /** First wait; doubled each time up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { forMs: 15 * 60_000, baseDelayMs: 250, maxDelayMs: 15_000 };

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export async function withRetry<T>(
  what: string,
  step: () => Promise<T>,
  o: { policy: RetryPolicy; signal?: AbortSignal; onRetry?: (err: RemoteError, attempt: number, delayMs: number) => void },
): Promise<T> {
  let first: number | undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      if (o.signal?.aborted) throw err;
      if (!(err instanceof RemoteError) || !err.retryable) throw err;
      first ??= Date.now();
      if (Date.now() - first > o.policy.forMs)
        throw new RemoteError(`${what}: still failing after ${Math.round((Date.now() - first) / 1000)} s: ${err.message}`, err.code, false, err.serverCode);
      const delay = Math.min(o.policy.maxDelayMs, o.policy.baseDelayMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      o.onRetry?.(err, attempt, delay);
      await sleep(delay, o.signal);
    }
  }
}
