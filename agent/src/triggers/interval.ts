/** Fires every `every`, and once at start with `at_start`; any period the schema takes, days or years. */
import { longInterval, LongTimer } from '../core/long-timer';
import { eventId } from './event';
import { Trigger, TriggerContext } from './trigger';

export function intervalTrigger(profile: string, spec: { everyMs: number; atStart: boolean }, ctx: TriggerContext): Trigger {
  let timer: LongTimer | undefined;
  const fire = (why: string) =>
    ctx.emit({ id: eventId(), kind: 'interval', profile, time: ctx.clock.now(), reason: why, detail: { everyMs: spec.everyMs } });
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
