import type { TriggerKindName } from './registry';

/** What every trigger emits: one event, for one profile. */
export interface TriggerEvent {
  /** Unique per agent run, e.g. "ev-42". */
  id: string;
  /** The trigger kind that emitted it, or "import" (physcap import). */
  kind: TriggerKindName | 'import';
  profile: string;
  /** Milliseconds since the epoch. */
  time: number;
  /** Why, in the trigger's words (the kernel message, the trigger file's reason). */
  reason?: string;
  detail?: Record<string, unknown>;
}

let next = 0;

export function eventId(): string {
  next += 1;
  return `ev-${process.pid}-${next}`;
}
