/**
 * The conformance suite every trigger kind passes, unchanged: a kind added
 * to triggers/registry.ts runs it with its fixture (trigger-fixtures.ts).
 * Each kind is parsed from a real profile file, built by the registry and
 * run with the context the agent gives it: start, stop, reload, and one
 * event per firing, with the kind's name, the profile and a unique id.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { systemClock } from '../../agent/src/core/clock';
import { memoryLogger } from '../../agent/src/core/logger';
import { PhyscapDeviceService } from '../../agent/src/daemon/physcap-service';
import type { TriggerEvent } from '../../agent/src/triggers/event';
import type { AgentTriggerContext, KernelLogFeed } from '../../agent/src/triggers/kind';
import type { KmsgRecord } from '../../agent/src/triggers/kmsg-record';
import { TRIGGER_KINDS, triggerKind, TriggerSpec } from '../../agent/src/triggers/registry';
import { writeProfile } from '../support/capture';
import { waitUntil } from '../support/wait';
import { record, TRIGGER_FIXTURES, TriggerWorld } from './trigger-fixtures';

/** The kernel log as the agent shares it, fed by the test; counts its subscribers. */
class TestKernelLog implements KernelLogFeed {
  private readonly listeners = new Set<(r: KmsgRecord) => void>();
  private seq = 0;
  subscribe(listener: (r: KmsgRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  get subscribers(): number {
    return this.listeners.size;
  }
  printk(text: string): void {
    const r = record(++this.seq, text);
    for (const l of [...this.listeners]) l(r);
  }
}

let work: string;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'physcap-conformance-trig-'));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe.each(TRIGGER_KINDS.map((k) => [k.kind]))('trigger kind %s', (kindName) => {
  const fixture = TRIGGER_FIXTURES[kindName as keyof typeof TRIGGER_FIXTURES];
  const kind = triggerKind(kindName);
  let spec: TriggerSpec;
  let spoolDir: string;
  const kmsg = new TestKernelLog();
  const handlers = new Map<string, (reason: string | undefined) => unknown>();
  const events: TriggerEvent[] = [];
  const log = memoryLogger();
  const physcap = new PhyscapDeviceService(log, path.join(os.tmpdir(), 'no-physcap-device'));
  const world = (): TriggerWorld => ({ spoolDir, printk: (t) => kmsg.printk(t), request: (r) => handlers.get('conformance')?.(r) });

  const context = (): AgentTriggerContext => ({
    log,
    clock: systemClock,
    emit: (e) => events.push(e),
    spoolDir,
    agentUid: process.getuid!(),
    profile: 'conformance',
    kmsg,
    physcap,
    acceptRequests: (h) => {
      handlers.set('conformance', h);
      return () => {
        if (handlers.get('conformance') === h) handlers.delete('conformance');
      };
    },
    armed: {
      create: () => {
        throw new Error('no armed captures on the host');
      },
      resume: async () => {},
    },
  });

  /** Fires once and waits for what arrives within the fixture's time. */
  const fireAndCount = async (): Promise<number> => {
    const n = events.length;
    await fixture.fire(world());
    await waitUntil(() => events.length > n, fixture.withinMs);
    await new Promise((r) => setTimeout(r, 50));
    return events.length - n;
  };

  beforeAll(() => {
    spoolDir = fs.mkdtempSync(path.join(work, `${kindName}-spool-`));
    const dir = fs.mkdtempSync(path.join(work, `${kindName}-`));
    const p = writeProfile(
      dir,
      'conformance',
      `regions:\n  - name: a\n    start: "0x20000000"\n    size: 4096\ntriggers:\n  - kind: ${kindName}\n${fixture.yaml}destination:\n  kind: dir\n  path: ${path.join(dir, 'captures')}\ncooldown: 0\n`,
    );
    spec = p.triggers[0]!;
  });
  afterAll(() => physcap.close());

  test('its schema fragment, checks and parse accept a profile that uses it, and the spec carries its kind', () => {
    expect(spec.kind).toBe(kindName);
    expect(kind.kind).toBe(kindName);
    expect(kind.help.length).toBeGreaterThan(0);
  });

  test('start: a firing is one event, of this kind, for this profile, with a time and a reason', async () => {
    const t = kind.create(spec, context());
    expect(t).toMatchObject({ kind: kindName, profile: 'conformance' });
    events.length = 0;
    await t.start();
    try {
      expect(await fireAndCount()).toBeGreaterThanOrEqual(1);
      const e = events[events.length - 1]!;
      expect(e).toMatchObject({ profile: 'conformance', id: expect.any(String), time: expect.any(Number), reason: expect.any(String) });
      // What it says it is: its own kind, or the kernel log's when that is how it heard.
      expect([kindName, 'kmsg']).toContain(e.kind);
    } finally {
      await t.stop();
    }
  });

  test('event accounting: two firings are two events with distinct ids', async () => {
    const t = kind.create(spec, context());
    events.length = 0;
    await t.start();
    try {
      await fireAndCount();
      await fireAndCount();
      expect(events.length).toBeGreaterThanOrEqual(2);
      expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    } finally {
      await t.stop();
    }
  });

  test('stop: nothing fires after it, and nothing it subscribed to is left behind', async () => {
    const signals = process.listenerCount('SIGUSR2');
    const t = kind.create(spec, context());
    await t.start();
    await t.stop();
    expect(await fireAndCount()).toBe(0);
    expect(kmsg.subscribers).toBe(0);
    expect(handlers.size).toBe(0);
    expect(process.listenerCount('SIGUSR2')).toBe(signals);
  });

  test('reload: stopped and started again (a changed profile), it fires once per firing, not twice', async () => {
    const before = kind.create(spec, context());
    await before.start();
    await before.stop();
    const after = kind.create(spec, context());
    await after.start();
    try {
      events.length = 0;
      const n = await fireAndCount();
      // An interval fires on its own schedule: at most one period's worth; every other kind exactly once.
      expect(n).toBe(1);
    } finally {
      await after.stop();
    }
    expect(kmsg.subscribers).toBe(0);
  });
});
