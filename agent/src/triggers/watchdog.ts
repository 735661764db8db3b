/**
 * Captures on a watchdog's pretimeout.  Where physcap.ko has registered
 * its pretimeout governor, the trigger keeps one capture armed in the
 * kernel (capture/armed.ts, through the context): the kernel writes it
 * itself when the pretimeout fires, even if user space (this agent
 * included) is what is wedged.  Where it has not (no module, an older
 * one), or the capture cannot be armed, the trigger falls back to the
 * kernel log's "watchdogN: pretimeout event" line, which the noop governor
 * prints: a capture by the agent, if the agent can still run.
 */
import type { PhyscapEvent } from '../native/binding';
import type { AgentTriggerContext, ArmedCaptureHandle, Trigger, TriggerKind } from './kind';
import { watchKernelLog } from './kmsg';
import { KmsgMatcher } from './kmsg-record';

export interface WatchdogTriggerSpec {
  kind: 'watchdog';
  device: string;
  selectGovernor: boolean;
  then: 'none' | 'panic';
}

/** N of /dev/watchdogN (/dev/watchdog is watchdog0). */
export function watchdogId(device: string): number {
  const m = /watchdog(\d*)$/.exec(device);
  if (!m) throw Object.assign(new Error(`${device} is not a watchdog device (expected /dev/watchdogN)`), { code: 'EINVAL' });
  return m[1] ? Number(m[1]) : 0;
}

function watchdogTrigger(spec: WatchdogTriggerSpec, ctx: AgentTriggerContext): Trigger {
  let armed: ArmedCaptureHandle | undefined;
  let unsubscribe: (() => void) | undefined;

  const fallBack = (id: number) => {
    unsubscribe = watchKernelLog(ctx, new KmsgMatcher([], [`^watchdog${id}: pretimeout event$`], 7));
  };
  const onEvent = (e: PhyscapEvent) => {
    if (!armed || armed.cookie === undefined || e.cookie !== armed.cookie) return;
    armed.onEvent(e).catch((err: unknown) => ctx.log.error({ profile: ctx.profile, err: (err as Error).message }, 'finishing an armed capture failed'));
  };

  return {
    kind: 'watchdog',
    profile: ctx.profile,
    async start() {
      const id = watchdogId(spec.device);
      if (!ctx.physcap.governorAvailable()) {
        ctx.log.warn(
          { profile: ctx.profile, watchdog: spec.device },
          "physcap.ko's pretimeout governor is not available: falling back to the kernel log's pretimeout line",
        );
        return fallBack(id);
      }
      const a = ctx.armed.create({ watchdogId: id, selectGovernor: spec.selectGovernor, thenPanic: spec.then === 'panic' });
      try {
        unsubscribe = ctx.physcap.subscribe(onEvent);
        a.arm();
        armed = a;
      } catch (err) {
        unsubscribe?.();
        ctx.log.error(
          { profile: ctx.profile, watchdog: spec.device, err: (err as Error).message },
          "could not arm the capture: falling back to the kernel log's pretimeout line",
        );
        fallBack(id);
      }
    },
    async stop() {
      armed?.stop();
      armed = undefined;
      unsubscribe?.();
      unsubscribe = undefined;
    },
  };
}

export const watchdogKind: TriggerKind<WatchdogTriggerSpec> = {
  kind: 'watchdog',
  schema: 'triggers/watchdog.schema.json',
  help: [
    'a capture armed in physcap.ko, written by the kernel on the',
    "watchdog's pretimeout even if the agent is wedged (docs/watchdog.md);",
    "without the module's governor, the kernel log's pretimeout line",
  ],
  parse: (t) => ({
    kind: 'watchdog',
    device: (t.device as string) ?? '/dev/watchdog0',
    selectGovernor: t.select_governor !== false,
    then: (t.then as 'none' | 'panic') ?? 'none',
  }),
  create: watchdogTrigger,

  /** Before recovery and before arming: finishes what the kernel wrote for this profile while no agent was there to see it. */
  async resume(ctx) {
    if (!ctx.physcap.governorAvailable()) return;
    let events: PhyscapEvent[];
    try {
      events = ctx.physcap.pastEvents();
    } catch (err) {
      ctx.log.error({ profile: ctx.profile, err: (err as Error).message }, 'cannot read physcap.ko events: unfinished armed captures are left to recovery');
      return;
    }
    try {
      await ctx.armed.resume(events);
    } catch (err) {
      ctx.log.error({ profile: ctx.profile, err: (err as Error).message }, 'finishing armed captures at start-up failed; recovery records them');
    }
  },
};
