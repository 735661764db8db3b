/**
 * Fires on request: `physcap trigger <profile>` through the agent's
 * control socket.  `physcap capture` on the command line asks the same
 * way, without an agent, and its event says so too.
 */
import { eventId, TriggerEvent } from './event';
import type { Trigger, TriggerKind } from './kind';

export interface ControlTriggerSpec {
  kind: 'control';
}

/** The event of a capture someone asked for. */
export function requestEvent(profile: string, time: number, reason: string): TriggerEvent {
  return { id: eventId(), kind: 'control', profile, time, reason };
}

export const controlKind: TriggerKind<ControlTriggerSpec> = {
  kind: 'control',
  schema: 'triggers/control.schema.json',
  help: ['physcap trigger <profile> [--reason TEXT]'],
  takesRequests: true,
  parse: () => ({ kind: 'control' }),
  create(_spec, ctx): Trigger {
    let stopAccepting: (() => void) | undefined;
    return {
      kind: 'control',
      profile: ctx.profile,
      async start() {
        // The answer is the scheduler's decision (captured, coalesced, refused and why).
        stopAccepting ??= ctx.acceptRequests((reason) => ctx.emit(requestEvent(ctx.profile, ctx.clock.now(), reason ?? 'physcap trigger')));
      },
      async stop() {
        stopAccepting?.();
        stopAccepting = undefined;
      },
    };
  },
};
