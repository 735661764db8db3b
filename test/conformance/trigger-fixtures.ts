/**
 * How the trigger conformance suite makes each kind fire.  Typed by the
 * registry's kind names: a kind added to triggers/registry.ts without a
 * fixture here does not compile, so no kind skips the suite.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { TriggerKindName } from '../../agent/src/triggers/registry';
import { KmsgRecord, parseKmsgRecord } from '../../agent/src/triggers/kmsg-record';

/** What a fixture can do to the world the trigger watches. */
export interface TriggerWorld {
  spoolDir: string;
  /** A kernel log record, as if the kernel had printed it. */
  printk(text: string): void;
  /** A `physcap trigger <profile>` request, as the control socket hands it over; undefined if nobody takes it. */
  request(reason: string): unknown;
}

export interface TriggerFixture {
  /** The trigger's YAML (one list item's fields, indented by four). */
  yaml: string;
  /** Makes it fire once. */
  fire(world: TriggerWorld): Promise<void>;
  /** How long a firing may take to arrive. */
  withinMs: number;
}

let fileSeq = 0;

export const TRIGGER_FIXTURES: Record<TriggerKindName, TriggerFixture> = {
  file: {
    yaml: '    name: conformance\n',
    async fire(w) {
      const tmp = path.join(w.spoolDir, `.conformance-${++fileSeq}`);
      fs.writeFileSync(tmp, 'reason: conformance\n');
      fs.renameSync(tmp, path.join(w.spoolDir, 'conformance'));
    },
    withinMs: 2000,
  },
  signal: {
    yaml: '    signal: SIGUSR2\n',
    // Delivered to the agent's process object as Node delivers a signal.  Inside
    // jest that object is the test environment's, which a real kill() would
    // not reach; test/triggers/signal-child.ts sends real ones to a real process.
    async fire() {
      process.emit('SIGUSR2', 'SIGUSR2');
    },
    withinMs: 2000,
  },
  kmsg: {
    yaml: '    patterns: ["^conformance: fire$"]\n',
    async fire(w) {
      w.printk('conformance: fire');
    },
    withinMs: 500,
  },
  interval: {
    yaml: '    every: 300ms\n',
    async fire() {
      /* it fires by itself */
    },
    withinMs: 1000,
  },
  control: {
    yaml: '',
    async fire(w) {
      w.request('conformance');
    },
    withinMs: 500,
  },
  // On the host there is no physcap.ko: the trigger falls back to the kernel log's pretimeout line.
  watchdog: {
    yaml: '    device: /dev/watchdog3\n',
    async fire(w) {
      w.printk('watchdog3: pretimeout event');
    },
    withinMs: 500,
  },
};

/** A kernel log record of `text`, through the agent's own parser of /dev/kmsg's format. */
export function record(seq: number, text: string): KmsgRecord {
  const rec = parseKmsgRecord(`2,${seq},${seq * 1000},-;${text}`);
  if (!rec) throw new Error(`not a kmsg record: ${text}`);
  return rec;
}
