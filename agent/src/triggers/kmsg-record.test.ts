import { KMSG_PRESETS, KmsgMatcher, parseKmsgRecord } from './kmsg-record';

const rec = (prio: number, msg: string, seq = 1) => parseKmsgRecord(`${prio},${seq},123456,-;${msg}\n`)!;

test('a record: priority split into facility and level, escapes undone, dictionary kept', () => {
  expect(parseKmsgRecord('6,1234,5000000,-;usb 1-1: new device\\x0a\n SUBSYSTEM=usb\n DEVICE=c189:1\n')).toEqual({
    level: 6,
    facility: 0,
    seq: 1234,
    usec: 5_000_000,
    continued: false,
    message: 'usb 1-1: new device\n',
    dict: { SUBSYSTEM: 'usb', DEVICE: 'c189:1' },
  });
  expect(parseKmsgRecord('30,7,1,c;systemd: hi')).toMatchObject({ facility: 3, level: 6, continued: true });
});

test.each(['', 'no semicolon', 'x,1,2,-;msg', '6,1;msg', '6,a,2,-;msg'])('malformed %p is skipped, not thrown', (raw) => {
  expect(parseKmsgRecord(raw)).toBeUndefined();
});

test.each([
  ['watchdog_pretimeout', 'watchdog0: pretimeout event'],
  ['soft_lockup', 'watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [kworker/1:1:42]'],
  ['hard_lockup', 'NMI watchdog: Watchdog detected hard LOCKUP on cpu 3'],
  ['hung_task', 'INFO: task jbd2/vda-8:123 blocked for more than 120 seconds.'],
  ['rcu_stall', 'rcu: INFO: rcu_preempt self-detected stall on CPU'],
  ['rcu_stall', 'rcu: INFO: rcu_sched detected stalls on CPUs/tasks:'],
  ['oops', 'Oops: 0000 [#1] PREEMPT SMP NOPTI'],
  ['bug', 'BUG: kernel NULL pointer dereference, address: 0000000000000008'],
  ['bug', 'kernel BUG at mm/slub.c:4123!'],
])('preset %s matches %p', (preset, message) => {
  expect(new KmsgMatcher([preset], []).match(rec(0, message))).toEqual({ rule: preset, message });
});

test('presets do not fire on look-alikes, and only at or above the level asked for', () => {
  const all = new KmsgMatcher(['watchdog_pretimeout', 'soft_lockup', 'oops', 'bug', 'hung_task'], []);
  for (const m of ['watchdog0: pretimeout set to 5', 'softdog: initialized', 'no Oops here', 'DEBUG: BUG: lol', 'INFO: task done'])
    expect(all.match(rec(4, m))).toBeUndefined();
  const warnOrWorse = new KmsgMatcher([], ['disk failure'], 4);
  expect(warnOrWorse.match(rec(3, 'disk failure on sda'))).toEqual({ rule: 'pattern:0', message: 'disk failure on sda' });
  expect(warnOrWorse.match(rec(6, 'disk failure on sda'))).toBeUndefined();
});

test("the schema's preset names are exactly the presets here", () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const schema = require('../../../schemas/triggers/kmsg.schema.json') as {
    properties: { presets: { items: { enum: string[] } } };
  };
  expect([...schema.properties.presets.items.enum].sort()).toEqual(Object.keys(KMSG_PRESETS).sort());
});

test("a profile's pattern that backtracks catastrophically still answers at once: kernel lines of any length are matched in linear time", () => {
  const m = new KmsgMatcher([], ['^(a+)+$', '(x+x+)+y']);
  // With a backtracking engine each of these would take longer than the universe has left.
  expect(m.match(parseKmsgRecord(`3,1,1,-;${'a'.repeat(100_000)}!`)!)).toBeUndefined();
  expect(m.match(parseKmsgRecord(`3,2,1,-;${'x'.repeat(100_000)}`)!)).toBeUndefined();
  expect(m.match(parseKmsgRecord(`3,3,1,-;${'a'.repeat(40)}`)!)).toMatchObject({ rule: 'pattern:0' });
});

test('a pattern that needs backtracking is refused with the reason', () => {
  expect(() => new KmsgMatcher([], ['(a)\\1'])).toThrow(/needs backtracking \(a backreference or a lookaround\)/);
  expect(() => new KmsgMatcher([], ['(?<=x)y'])).toThrow(/needs backtracking/);
});
