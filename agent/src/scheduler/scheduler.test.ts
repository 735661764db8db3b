import { manualClock } from '../core/clock';
import { memoryLogger } from '../core/logger';
import { TriggerEvent } from '../triggers/event';
import { ProfilePolicy, ScheduledCapture, Scheduler } from './scheduler';

interface Run {
  capture: ScheduledCapture;
  signal: AbortSignal;
  finish: () => void;
}

function setup(opts: { concurrency?: number; maxQueue?: number; policies?: Record<string, Partial<ProfilePolicy>> } = {}) {
  const clock = manualClock(1_000_000);
  const log = memoryLogger();
  const runs: Run[] = [];
  const policies: Record<string, ProfilePolicy> = {};
  for (const [name, p] of Object.entries(opts.policies ?? { a: {}, b: {}, c: {} })) {
    policies[name] = { priority: 50, cooldownMs: 60_000, enabled: true, ...p };
  }
  const scheduler = new Scheduler({
    clock,
    log,
    policy: (name) => policies[name],
    concurrency: opts.concurrency,
    maxQueue: opts.maxQueue,
    run: (capture, signal) =>
      new Promise<void>((resolve) => {
        runs.push({ capture, signal, finish: resolve });
        signal.addEventListener('abort', () => resolve());
      }),
  });
  let n = 0;
  const event = (profile: string, kind: TriggerEvent['kind'] = 'control'): TriggerEvent => ({
    id: `e${++n}`,
    kind,
    profile,
    time: clock.now(),
  });
  const fates = () => log.records.filter((r) => r.event).map((r) => `${String(r.event)}:${String(r.status)}`);
  const settle = () => new Promise((r) => setImmediate(r));
  return { clock, log, runs, scheduler, event, fates, settle };
}

test('an event starts a capture; one arriving while it runs is coalesced into it', () => {
  const { scheduler, event, runs, fates } = setup();
  const first = scheduler.submit(event('a'));
  expect(first).toMatchObject({ status: 'started' });
  expect(scheduler.submit(event('a', 'signal'))).toEqual({ status: 'coalesced', capture: (first as { capture: string }).capture });
  expect(runs).toHaveLength(1);
  expect(runs[0]!.capture.events.map((e) => e.id)).toEqual(['e1', 'e2']);
  expect(fates()).toEqual(['e1:captured', 'e2:coalesced']);
});

test('cooldown: refused with the time left, accepted once it has passed', async () => {
  const { scheduler, event, runs, clock, settle } = setup();
  scheduler.submit(event('a'));
  runs[0]!.finish();
  await settle();
  clock.advance(20_000);
  expect(scheduler.submit(event('a'))).toEqual({ status: 'refused', reason: 'cooldown', detail: '40 s left' });
  clock.advance(40_000);
  expect(scheduler.submit(event('a'))).toMatchObject({ status: 'started' });
});

test('the concurrency limit queues; the queue starts highest priority first; events coalesce into queued captures', async () => {
  const { scheduler, event, runs, fates, settle } = setup({ policies: { a: {}, low: { priority: 10 }, high: { priority: 90 } } });
  scheduler.submit(event('a'));
  expect(scheduler.submit(event('low'))).toMatchObject({ status: 'queued' });
  expect(scheduler.submit(event('high'))).toMatchObject({ status: 'queued' });
  expect(scheduler.submit(event('low'))).toMatchObject({ status: 'coalesced' });
  expect(fates()).toEqual(['e1:captured']); // the queued ones' fates are not decided yet
  runs[0]!.finish();
  await settle();
  expect(runs.map((r) => r.capture.profile)).toEqual(['a', 'high']);
  runs[1]!.finish();
  await settle();
  expect(runs.map((r) => r.capture.profile)).toEqual(['a', 'high', 'low']);
  expect(runs[2]!.capture.events.map((e) => e.id)).toEqual(['e2', 'e4']);
  expect(fates()).toEqual(['e1:captured', 'e3:captured', 'e2:captured', 'e4:coalesced']);
});

test('a full queue refuses, or displaces a less important capture', () => {
  const { scheduler, event, fates } = setup({
    maxQueue: 2,
    policies: { run: {}, q1: { priority: 10 }, q2: { priority: 20 }, same: { priority: 10 }, vip: { priority: 99 } },
  });
  scheduler.submit(event('run'));
  scheduler.submit(event('q1'));
  scheduler.submit(event('q2'));
  scheduler.submit(event('q1')); // coalesced into the queued q1
  expect(scheduler.submit(event('same'))).toEqual({ status: 'refused', reason: 'queue-full' });
  expect(scheduler.submit(event('vip'))).toMatchObject({ status: 'queued' });
  expect(
    scheduler
      .status()
      .queued.map((c) => c.profile)
      .sort(),
  ).toEqual(['q2', 'vip']);
  expect(fates()).toEqual(['e1:captured', 'e5:refused', 'e2:refused', 'e4:refused']);
});

test('unknown and disabled profiles are refused', () => {
  const { scheduler, event } = setup({ policies: { off: { enabled: false } } });
  expect(scheduler.submit(event('nope'))).toEqual({ status: 'refused', reason: 'unknown-profile' });
  expect(scheduler.submit(event('off'))).toEqual({ status: 'refused', reason: 'disabled' });
});

test('a storm of 1000 events: every event accounted for exactly once, the queue bounded', async () => {
  const { scheduler, event, runs, log, settle } = setup({
    maxQueue: 4,
    policies: Object.fromEntries([...Array(10).keys()].map((i) => [`p${i}`, { priority: i * 10 }])),
  });
  const ids: string[] = [];
  for (let i = 0; i < 1000; i++) {
    const e = event(`p${i % 10}`);
    ids.push(e.id);
    scheduler.submit(e);
    expect(scheduler.status().queued.length).toBeLessThanOrEqual(4);
  }
  while (scheduler.status().running.length) {
    runs.at(-1)!.finish();
    await settle();
  }
  const perEvent = new Map<string, number>();
  for (const r of log.records) if (r.event) perEvent.set(String(r.event), (perEvent.get(String(r.event)) ?? 0) + 1);
  expect(ids.filter((id) => perEvent.get(id) !== 1)).toEqual([]);
  expect(perEvent.size).toBe(1000);
});

test('stop: new events refused, the queue dropped with reasons, running captures aborted after the grace time', async () => {
  const { scheduler, event, runs, fates } = setup();
  scheduler.submit(event('a'));
  scheduler.submit(event('b'));
  const stopped = scheduler.stop(50);
  expect(scheduler.submit(event('c'))).toEqual({ status: 'refused', reason: 'stopping' });
  await stopped;
  expect(runs[0]!.signal.aborted).toBe(true);
  expect(fates()).toEqual(['e1:captured', 'e2:refused', 'e3:refused']);
});
