/**
 * Fires on kernel log records that match a preset or a pattern.  Every
 * kmsg trigger reads the agent's one kernel-log reader (the context's
 * feed); patterns run on a linear-time engine, so no line a user writes
 * into the kernel log can stall the agent.
 */
import { compileLinear } from '../core/linear-regexp';
import { eventId } from './event';
import type { AgentTriggerContext, Trigger, TriggerKind } from './kind';
import { KmsgMatcher } from './kmsg-record';

export interface KmsgTriggerSpec {
  kind: 'kmsg';
  presets: string[];
  patterns: string[];
  maxPriority: number;
}

/**
 * Emits a kmsg event for every record `matcher` matches, until the
 * returned function is called.  Also what a watchdog trigger falls back
 * to without physcap.ko's governor.
 */
export function watchKernelLog(ctx: AgentTriggerContext, matcher: KmsgMatcher): () => void {
  return ctx.kmsg.subscribe((rec) => {
    const hit = matcher.match(rec);
    if (!hit) return;
    ctx.emit({
      id: eventId(),
      kind: 'kmsg',
      profile: ctx.profile,
      time: ctx.clock.now(),
      reason: hit.message,
      detail: { rule: hit.rule, seq: rec.seq, level: rec.level, usec: rec.usec },
    });
  });
}

export const kmsgKind: TriggerKind<KmsgTriggerSpec> = {
  kind: 'kmsg',
  schema: 'triggers/kmsg.schema.json',
  help: ['kernel log records: presets watchdog_pretimeout, soft_lockup,', 'hard_lockup, hung_task, rcu_stall, oops, bug; or patterns'],
  parse: (t) => ({
    kind: 'kmsg',
    presets: (t.presets as string[]) ?? [],
    patterns: (t.patterns as string[]) ?? [],
    maxPriority: (t.max_priority as number) ?? 7,
  }),
  check(t, report) {
    const patterns = (t.patterns as string[]) ?? [];
    if (!patterns.length && !((t.presets as string[]) ?? []).length) report('error', '', 'a kmsg trigger needs "presets" or "patterns"');
    patterns.forEach((pat, j) => {
      try {
        new RegExp(pat);
      } catch (e) {
        return void report('error', `/patterns/${j}`, `not a regular expression: ${(e as Error).message}`);
      }
      try {
        compileLinear(pat);
      } catch (e) {
        report('error', `/patterns/${j}`, `not usable: ${(e as Error).message}`);
      }
    });
  },
  create(spec, ctx): Trigger {
    let unsubscribe: (() => void) | undefined;
    return {
      kind: 'kmsg',
      profile: ctx.profile,
      async start() {
        unsubscribe ??= watchKernelLog(ctx, new KmsgMatcher(spec.presets, spec.patterns, spec.maxPriority));
      },
      async stop() {
        unsubscribe?.();
        unsubscribe = undefined;
      },
    };
  },
};
