/**
 * Trigger kinds by name: the one line that adds a kind.  The daemon, the
 * profile loader and the CLI reach a kind only through here.
 */
import { controlKind } from './control';
import { fileKind } from './file';
import { intervalKind } from './interval';
import type { TriggerKind } from './kind';
import { kmsgKind } from './kmsg';
import { signalKind } from './signal';
import { watchdogKind } from './watchdog';

export const TRIGGER_KINDS = [fileKind, signalKind, kmsgKind, intervalKind, controlKind, watchdogKind] as const;

/** A profile's trigger, typed: the union of every kind's spec. */
export type TriggerSpec = ReturnType<(typeof TRIGGER_KINDS)[number]['parse']>;
export type TriggerKindName = TriggerSpec['kind'];

const byName = new Map<string, TriggerKind<TriggerSpec>>(TRIGGER_KINDS.map((k) => [k.kind, k as unknown as TriggerKind<TriggerSpec>]));

export function triggerKind(kind: string): TriggerKind<TriggerSpec> {
  const k = byName.get(kind);
  if (!k) throw new Error(`internal error: no trigger kind "${kind}" is registered (the schema and triggers/registry.ts disagree)`);
  return k;
}

/** The kinds that answer `physcap trigger <profile>`. */
export function requestKinds(): string[] {
  return TRIGGER_KINDS.filter((k) => (k as TriggerKind<TriggerSpec>).takesRequests).map((k) => k.kind);
}
