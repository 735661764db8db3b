/**
 * packaging/physcap.service: systemd accepts it (systemd-analyze verify,
 * with ExecStart pointed at this checkout's CLI), and it keeps the promises
 * the agent relies on: Type=notify (the agent sends READY/RELOADING/
 * STOPPING), SIGHUP reloads, exit 78 is not restarted, a watchdog the agent
 * pings, and hardening that still lets it reach /dev/physcap, /dev/kmsg,
 * dump partitions and the example profiles' capture directories.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { withTempDir } from '../support/tmp';

const root = path.join(__dirname, '..', '..');
const unitFile = path.join(root, 'packaging', 'physcap.service');
const text = fs.readFileSync(unitFile, 'utf8');

/** Every value of a key in the unit (keys may repeat). */
function values(key: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1).trim());
}

test('systemd-analyze verify accepts the unit', () => {
  withTempDir('unit', (dir) => {
    const unit = path.join(dir, 'physcap.service');
    fs.writeFileSync(unit, text.replace('/usr/bin/physcap', path.join(root, 'agent', 'bin', 'physcap.js')));
    execFileSync('systemd-analyze', ['verify', unit], { stdio: 'pipe' });
  });
});

test('notify, reload by SIGHUP, no restart on a bad agent.yaml (78), a watchdog', () => {
  expect(values('Type')).toEqual(['notify']);
  expect(values('ExecStart')[0]).toMatch(/^\/usr\/bin\/physcap run --config \/etc\/physcap\/agent\.yaml$/);
  expect(values('ExecReload')[0]).toMatch(/kill -HUP \$MAINPID/);
  expect(values('RestartPreventExitStatus')).toEqual(['78']);
  expect(values('WatchdogSec')[0]).toMatch(/^\d+s$/);
});

test('hardening still allows the devices and places physcap uses', () => {
  const devices = values('DeviceAllow');
  expect(values('DevicePolicy')).toEqual(['closed']);
  expect(devices).toEqual(expect.arrayContaining(['/dev/physcap rw', '/dev/kmsg r', '/dev/mem r', 'block-* rw']));
  expect(values('CapabilityBoundingSet')[0]!.split(/\s+/)).toEqual(expect.arrayContaining(['CAP_SYS_RAWIO', 'CAP_SYSLOG']));
  expect(values('ProtectKernelLogs')).toEqual([]); // it would hide /dev/kmsg
  expect(values('ProtectKernelTunables')).toEqual([]); // /sys/class/watchdog must stay writable

  // Every directory destination of the example profiles is writable.
  const writable = values('ReadWritePaths')
    .flatMap((v) => v.split(/\s+/))
    .map((p) => p.replace(/^-/, ''));
  const configs = path.join(root, 'configs');
  const dirs = fs
    .readdirSync(configs)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => [...fs.readFileSync(path.join(configs, f), 'utf8').matchAll(/^\s+path:\s*(\S+)/gm)].map((m) => m[1]!));
  expect(dirs.length).toBeGreaterThan(0);
  for (const d of dirs) expect(writable.some((w) => d === w || d.startsWith(`${w}/`))).toBe(true);
});

test('the module loads at boot, after the watchdog core', () => {
  expect(fs.readFileSync(path.join(root, 'packaging', 'modules-load.d', 'physcap.conf'), 'utf8')).toMatch(/^physcap$/m);
  expect(fs.readFileSync(path.join(root, 'packaging', 'modprobe.d', 'physcap.conf'), 'utf8')).toMatch(/^softdep physcap pre: watchdog$/m);
});
