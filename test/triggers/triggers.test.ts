/** Triggers on real directories, timers and signals. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { systemClock } from '../../agent/src/core/clock';
import { memoryLogger } from '../../agent/src/core/logger';
import { TriggerEvent } from '../../agent/src/triggers/event';
import { fileTrigger } from '../../agent/src/triggers/file';
import { intervalTrigger } from '../../agent/src/triggers/interval';
import { TriggerContext } from '../../agent/src/triggers/kind';
import { removeDir, tempDir } from '../support/tmp';
import { waiter } from '../support/wait';

const waitUntil = waiter({ ms: 5000, everyMs: 10 });

function context(spoolDir: string): TriggerContext & { events: TriggerEvent[]; log: ReturnType<typeof memoryLogger> } {
  const events: TriggerEvent[] = [];
  return { log: memoryLogger(), clock: systemClock, emit: (e) => events.push(e), spoolDir, agentUid: process.getuid!(), events };
}

test('interval: at start, then every period; nothing after stop', async () => {
  const ctx = context('/nonexistent');
  const t = intervalTrigger('p', { everyMs: 50, atStart: true }, ctx);
  await t.start();
  expect(ctx.events.map((e) => e.reason)).toEqual(['at start']);
  expect(await waitUntil(() => ctx.events.length >= 3)).toBe(true);
  await t.stop();
  const n = ctx.events.length;
  await new Promise((r) => setTimeout(r, 150));
  expect(ctx.events.length).toBe(n);
  expect(ctx.events[1]).toMatchObject({ kind: 'interval', profile: 'p', reason: 'every 0.05 s' });
});

describe('file trigger', () => {
  let spool: string;
  let ctx: ReturnType<typeof context>;
  const drop = (name: string, body: string) => {
    const tmp = path.join(spool, `.${name}.tmp`);
    fs.writeFileSync(tmp, body);
    fs.renameSync(tmp, path.join(spool, name));
  };
  beforeEach(() => {
    spool = path.join(tempDir('spool'), 'triggers');
    ctx = context(spool);
  });
  afterEach(() => removeDir(path.dirname(spool)));

  test('a dropped file fires with its reason and is consumed; other names do nothing', async () => {
    const t = fileTrigger('board', { name: 'board' }, ctx);
    await t.start();
    try {
      expect(fs.statSync(spool).mode & 0o777).toBe(0o700);
      drop('other', 'reason: not mine');
      drop('board', 'reason: watchdog repair hook\n');
      expect(await waitUntil(() => ctx.events.length > 0)).toBe(true);
      expect(ctx.events).toEqual([expect.objectContaining({ kind: 'file', profile: 'board', reason: 'watchdog repair hook' })]);
      expect(await waitUntil(() => !fs.existsSync(path.join(spool, 'board')))).toBe(true);
      expect(fs.existsSync(path.join(spool, 'other'))).toBe(true);
      drop('board', '');
      expect(await waitUntil(() => ctx.events.length === 2)).toBe(true);
      expect(ctx.events[1]!.reason).toBe('trigger file board');
    } finally {
      await t.stop();
    }
  });

  test('refused, with the reason logged, when the spool is world-writable or the file is not ours', async () => {
    const t = fileTrigger('board', { name: 'board' }, ctx);
    await t.start();
    try {
      fs.chmodSync(spool, 0o777);
      drop('board', 'reason: from anyone');
      expect(await waitUntil(() => ctx.log.records.length > 0)).toBe(true);
      expect(ctx.log.records[0]).toMatchObject({
        why: expect.stringMatching(/triggers is writable by every user \(mode 0777\); a spool must be writable only by root/),
      });
      fs.rmSync(path.join(spool, 'board'));
      fs.chmodSync(spool, 0o700);
      const tmp = path.join(spool, '.board.tmp');
      fs.writeFileSync(tmp, 'x');
      fs.chownSync(tmp, 12345, 12345);
      fs.renameSync(tmp, path.join(spool, 'board'));
      expect(await waitUntil(() => ctx.log.records.length > 1)).toBe(true);
      expect(ctx.log.records[1]).toMatchObject({ why: 'owned by neither root nor the agent', uid: 12345 });
      expect(ctx.events).toEqual([]);
    } finally {
      await t.stop();
    }
  });
});

test('signal trigger: a real signal to a real process fires it, each time', async () => {
  const child = spawn(process.execPath, [path.join(__dirname, '..', '..', 'dist', 'test', 'triggers', 'signal-child.js')]);
  const lines: string[] = [];
  child.stdout.on('data', (d: Buffer) => lines.push(...d.toString().trim().split('\n')));
  try {
    expect(await waitUntil(() => lines.includes('ready'))).toBe(true);
    child.kill('SIGUSR2');
    expect(await waitUntil(() => lines.length >= 2)).toBe(true);
    child.kill('SIGUSR2');
    expect(await waitUntil(() => lines.length >= 3)).toBe(true);
    const events = lines.slice(1).map((l) => JSON.parse(l) as TriggerEvent);
    expect(events.map((e) => [e.kind, e.profile, e.reason])).toEqual([
      ['signal', 'p', 'received SIGUSR2'],
      ['signal', 'p', 'received SIGUSR2'],
    ]);
    expect(child.exitCode).toBeNull();
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
});
