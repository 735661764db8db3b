/**
 * Polling for something a test waits on (a log line, a file, an event):
 * true as soon as it holds, false if it still does not at the deadline.
 */
export async function waitUntil(cond: () => boolean, ms = 20_000, everyMs = 20): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, everyMs));
  return cond();
}

/** waitUntil with a file's own default deadline and poll interval. */
export function waiter(defaults: { ms: number; everyMs?: number }): (cond: () => boolean, ms?: number) => Promise<boolean> {
  return (cond, ms = defaults.ms) => waitUntil(cond, ms, defaults.everyMs);
}
