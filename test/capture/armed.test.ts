/**
 * The host-side pieces of armed captures that need no kernel: naming the
 * watchdog, switching its governor through sysfs (a tree of real files
 * standing in for /sys), and the profile checks made before anything is
 * armed.  Arming, firing and finishing are tested on the emulated board
 * (test/daemon/watchdog.vm.test.ts, test/kernel/watchdog-governor.vm.test.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { ArmedCapture, setGovernor } from '../../agent/src/capture/armed';
import { openBlockdevStore } from '../../agent/src/destinations/blockdev/store';
import { watchdogId } from '../../agent/src/triggers/watchdog';
import { memoryLogger } from '../../agent/src/core/logger';
import type { PhyscapDevice } from '../../agent/src/native/binding';
import { writeProfile } from '../support/capture';
import { removeDir, tempDir } from '../support/tmp';

let work: string;
beforeAll(() => {
  work = tempDir('armed');
});
afterAll(() => removeDir(work));

test('watchdogN names: /dev/watchdog is watchdog0', () => {
  expect(watchdogId('/dev/watchdog')).toBe(0);
  expect(watchdogId('/dev/watchdog0')).toBe(0);
  expect(watchdogId('/dev/watchdog12')).toBe(12);
  expect(() => watchdogId('/dev/null')).toThrow(/not a watchdog device/);
});

test('setGovernor writes the governor, returns the one it replaced, and checks it took', () => {
  const sys = path.join(work, 'sys');
  const dir = path.join(sys, 'class', 'watchdog', 'watchdog1');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'pretimeout_governor'), 'noop\n');
  expect(setGovernor(1, 'physcap', sys)).toBe('noop');
  expect(fs.readFileSync(path.join(dir, 'pretimeout_governor'), 'utf8')).toBe('physcap\n');
  expect(setGovernor(1, 'physcap', sys)).toBe('physcap');
  expect(() => setGovernor(2, 'physcap', sys)).toThrow(/ENOENT/);
});

describe('profiles that cannot be armed are refused before anything is touched', () => {
  // Never used: every refusal happens before the device is.
  const untouchable = new Proxy(
    {},
    {
      get: () => {
        throw new Error('the device was used');
      },
    },
  ) as PhyscapDevice;
  const armedProfile = (name: string, extra: string, dest = `destination:\n  kind: dir\n  path: ${path.join(work, name)}\n`) =>
    writeProfile(work, name, `regions:\n  - name: a\n    start: "0x20000000"\n    size: 1MiB\ntriggers:\n  - kind: watchdog\n${dest}${extra}`);
  const arm = (p: ReturnType<typeof armedProfile>) =>
    new ArmedCapture({
      profile: p,
      device: untouchable,
      watchdogId: 0,
      trigger: 'watchdog',
      selectGovernor: false,
      thenPanic: false,
      log: memoryLogger(),
    }).arm();

  test('raw output', () => {
    expect(() => arm(armedProfile('rawfmt', 'output:\n  format: raw\n'))).toThrow(/one ELF container; output.format raw is not supported/);
  });
  test('a blockdev destination is taken (it can hold an armed record); an arm that fails leaves no record behind', () => {
    const img = path.join(work, 'dump.img');
    fs.writeFileSync(img, Buffer.alloc(4 << 20));
    // Everything up to the module: the ring's record begun, core.elf's header written; then the arm fails.
    expect(() => arm(armedProfile('blk', 'source:\n  kind: kernel\n', `destination:\n  kind: blockdev\n  device: ${img}\n`))).toThrow(/the device was used/);
    const store = openBlockdevStore(img, { init: 'never' });
    try {
      expect(store.unfinished()).toEqual([]);
      expect(store.index().entries).toEqual([]);
    } finally {
      store.close();
    }
  });
  test('a source other than the kernel', () => {
    expect(() => arm(armedProfile('img', `source:\n  kind: image\n  image_path: ${path.join(work, 'x.img')}\n`))).toThrow(
      /written by physcap.ko; source image cannot be armed/,
    );
    expect(fs.existsSync(path.join(work, 'img'))).toBe(false); // nothing begun
  });
});
