/**
 * Durations past Node's timer limit (2^31 - 1 ms, about 24.8 days) behave
 * as written: `every: 30d` fires every 30 days, not every millisecond.
 */
import { parseDuration } from '../../agent/src/core/units';
import { systemClock } from '../../agent/src/core/clock';
import { memoryLogger } from '../../agent/src/core/logger';
import { longInterval, longTimeout, MAX_TIMER_MS } from '../../agent/src/core/long-timer';
import type { TriggerEvent } from '../../agent/src/triggers/event';
import { intervalTrigger } from '../../agent/src/triggers/interval';

const DAY = 86_400_000;

describe('long timers (fake clock)', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  test('longTimeout waits the whole delay past 2^31 ms, in steps Node keeps', () => {
    const spy = jest.spyOn(global, 'setTimeout');
    const fn = jest.fn();
    longTimeout(fn, 60 * DAY);
    jest.advanceTimersByTime(59 * DAY);
    expect(fn).not.toHaveBeenCalled();
    jest.advanceTimersByTime(DAY);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(Math.max(...spy.mock.calls.map((c) => Number(c[1])))).toBeLessThanOrEqual(MAX_TIMER_MS);
    spy.mockRestore();
  });

  test('cancel stops it', () => {
    const fn = jest.fn();
    longTimeout(fn, 40 * DAY).cancel();
    jest.advanceTimersByTime(41 * DAY);
    expect(fn).not.toHaveBeenCalled();
  });

  test('the interval trigger with every: 30d fires once in 30 days, twice in 60, and never in between', async () => {
    const events: TriggerEvent[] = [];
    const t = intervalTrigger(
      'p',
      { everyMs: 30 * DAY, atStart: false },
      { log: memoryLogger(), clock: systemClock, emit: (e) => events.push(e), spoolDir: '/nonexistent', agentUid: 0 },
    );
    await t.start();
    jest.advanceTimersByTime(30 * DAY - 1);
    expect(events).toHaveLength(0);
    jest.advanceTimersByTime(1);
    expect(events).toHaveLength(1);
    jest.advanceTimersByTime(30 * DAY);
    expect(events).toHaveLength(2);
    await t.stop();
    jest.advanceTimersByTime(90 * DAY);
    expect(events).toHaveLength(2);
  });

  test('longInterval keeps to start + k * period and skips beats it missed instead of bursting', () => {
    const fn = jest.fn();
    const timer = longInterval(fn, 1000);
    jest.advanceTimersByTime(3000);
    expect(fn).toHaveBeenCalledTimes(3);
    timer.cancel();
    expect(() => longInterval(fn, 0)).toThrow(/not a positive finite period/);
  });
});

test('durations: exact far past the timer limit; too long for a double is an error, not a surprise', () => {
  expect(parseDuration('30d')).toBe(30 * DAY);
  expect(parseDuration('36500d')).toBe(36_500 * DAY);
  expect(parseDuration(`${'9'.repeat(400)}d`)).toBeInstanceOf(Error);
  expect((parseDuration('999999999999d') as Error).message).toMatch(/is too long a duration \(at most \d+d\)/);
  expect(parseDuration(1e300)).toBeInstanceOf(Error);
});
