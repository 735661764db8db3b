/** Fires when the agent receives its signal (SIGUSR2 by default). */
import { eventId } from './event';
import { Trigger, TriggerContext } from './trigger';

export function signalTrigger(profile: string, spec: { signal: string }, ctx: TriggerContext): Trigger {
  const signal = spec.signal as NodeJS.Signals;
  const handler = () =>
    ctx.emit({ id: eventId(), kind: 'signal', profile, time: ctx.clock.now(), reason: `received ${signal}`, detail: { signal } });
  return {
    kind: 'signal',
    profile,
    async start() {
      process.on(signal, handler);
    },
    async stop() {
      process.off(signal, handler);
    },
  };
}
