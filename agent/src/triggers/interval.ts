/** Fires every `every`, and once at start with `at_start`; any period the schema takes, days or years. */
import { longInterval, LongTimer } from '../core/long-timer';
import { eventId } from './event';
import { parseDuration } from '../core/units';
import type { Trigger, TriggerContext, TriggerKind } from './kind';

export function intervalTrigger(profile: string, spec: { everyMs: number; atStart: boolean }, ctx: TriggerContext): Trigger {
  let timer: LongTimer | undefined;
  const fire = (why: string) => ctx.emit({ id: eventId(), kind: 'interval', profile, time: ctx.clock.now(), reason: why, detail: { everyMs: spec.everyMs } });
  return {
    kind: 'interval',
    profile,
    async start() {
      timer = longInterval(() => fire(`every ${spec.everyMs / 1000} s`), spec.everyMs);
      if (spec.atStart) fire('at start');
    },
    async stop() {
      timer?.cancel();
      timer = undefined;
    },
  };
}

export interface IntervalTriggerSpec {
  kind: 'interval';
  everyMs: number;
  atStart: boolean;
}

export const intervalKind: TriggerKind<IntervalTriggerSpec> = {
  kind: 'interval',
  schema: 'triggers/interval.schema.json',
  help: ['every: 1h (at_start: true fires once at start too)'],
  parse(t) {
    const every = parseDuration(t.every);
    if (every instanceof Error) throw every; // check() said so first
    return { kind: 'interval', everyMs: every, atStart: t.at_start === true };
  },
  check(t, report, { cooldownMs }) {
    const every = parseDuration(t.every);
    if (every instanceof Error) return report('error', '/every', every.message);
    if (every === 0) return report('error', '/every', 'an interval of zero');
    if (cooldownMs !== undefined && every < cooldownMs) {
      report(
        'warning',
        '/every',
        `every ${every / 1000} s is shorter than the cooldown (${cooldownMs / 1000} s): most firings would be refused`,
        'a longer interval or a shorter cooldown',
      );
    }
  },
  create: (spec, ctx) => intervalTrigger(ctx.profile, spec, ctx),
};
