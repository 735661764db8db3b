/** Fires when the agent receives its signal (SIGUSR2 by default). */
import { eventId } from './event';
import type { Trigger, TriggerContext, TriggerKind } from './kind';

export function signalTrigger(profile: string, spec: { signal: string }, ctx: TriggerContext): Trigger {
  const signal = spec.signal as NodeJS.Signals;
  const handler = () => ctx.emit({ id: eventId(), kind: 'signal', profile, time: ctx.clock.now(), reason: `received ${signal}`, detail: { signal } });
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

export interface SignalTriggerSpec {
  kind: 'signal';
  signal: string;
}

const DEFAULT_SIGNAL = 'SIGUSR2';

export const signalKind: TriggerKind<SignalTriggerSpec> = {
  kind: 'signal',
  schema: 'triggers/signal.schema.json',
  help: ['SIGUSR2 (default) or SIGPWR to the agent (kill -USR2 <pid>)'],
  parse: (t) => ({ kind: 'signal', signal: (t.signal as string) ?? DEFAULT_SIGNAL }),
  check(t, report, { triggers, index }) {
    const sig = String(t.signal ?? DEFAULT_SIGNAL);
    const earlier = triggers.slice(0, index).some((o) => o.kind === t.kind && String(o.signal ?? DEFAULT_SIGNAL) === sig);
    if (earlier) report('error', '/signal', `${sig} is already a trigger of this profile`);
  },
  claim: (spec) => ({ key: `signal:${spec.signal}`, what: `signal ${spec.signal}` }),
  create: (spec, ctx) => signalTrigger(ctx.profile, spec, ctx),
};
