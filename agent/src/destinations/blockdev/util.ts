/**
 * Small helpers every blockdev module shares: errors that carry a Node-style
 * code (callers tell ENOSPC from EBUSY by it, not by the text),
 * and the clock used for the times written into index entries.
 */
export function coded(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

export const now = () => new Date().toISOString();
