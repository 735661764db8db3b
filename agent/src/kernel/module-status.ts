import * as fs from 'node:fs';
import * as path from 'node:path';

/** What /sys/class/misc/physcap says about the loaded module. */
export interface ModuleStatus {
  loaded: boolean;
  device: string;
  abiVersion?: number;
  counters: Record<string, number>;
}

const COUNTERS = [
  'bytes_zero_copy',
  'bytes_bounced',
  'bytes_poisoned',
  'bytes_buffered',
  'bytes_adopted',
  'writes_done',
  'writes_failed',
  'writes_interrupted',
] as const;

/**
 * Reads the module's sysfs directory.  sysRoot is "/" on a real system; the
 * tests point it at a directory laid out the same way.
 */
export function readModuleStatus(sysRoot = '/'): ModuleStatus {
  const dir = path.join(sysRoot, 'sys', 'class', 'misc', 'physcap');
  const device = path.join(sysRoot, 'dev', 'physcap');
  if (!fs.existsSync(dir)) return { loaded: false, device, counters: {} };

  const readNumber = (name: string): number => {
    const text = fs.readFileSync(path.join(dir, name), 'utf8').trim();
    const value = Number(text);
    if (!Number.isSafeInteger(value)) throw new Error(`${path.join(dir, name)}: not a number: ${text}`);
    return value;
  };
  const counters: Record<string, number> = {};
  for (const name of COUNTERS) {
    if (fs.existsSync(path.join(dir, name))) counters[name] = readNumber(name);
  }
  return { loaded: true, device, abiVersion: readNumber('abi_version'), counters };
}
