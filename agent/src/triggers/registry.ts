/** Trigger kinds by name: the one line to add a kind. */
import { Profile, TriggerSpec } from '../config/profile';
import { fileTrigger } from './file';
import { intervalTrigger } from './interval';
import { signalTrigger } from './signal';
import { Trigger, TriggerContext } from './trigger';

type Factory = (profile: Profile, spec: TriggerSpec, ctx: TriggerContext) => Trigger | undefined;

/**
 * The kinds that run on their own.  kmsg triggers share the agent's one
 * KmsgSource, control triggers are answered by the control socket and
 * watchdog triggers arm the kernel: the daemon wires those.
 */
export const TRIGGER_KINDS: Partial<Record<TriggerSpec['kind'], Factory>> = {
  file: (p, s, ctx) => (s.kind === 'file' ? fileTrigger(p.name, s, ctx) : undefined),
  signal: (p, s, ctx) => (s.kind === 'signal' ? signalTrigger(p.name, s, ctx) : undefined),
  interval: (p, s, ctx) => (s.kind === 'interval' ? intervalTrigger(p.name, s, ctx) : undefined),
};
