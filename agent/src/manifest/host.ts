/** Who and what made a capture: the host and the versions, for the manifest. */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';

import { VERSION } from '../core/version';
import { addonPath, deviceInfo } from '../native/binding';
import type { Manifest } from './types';

function readTrimmed(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').trim() || null;
  } catch {
    return null;
  }
}

export function hostInfo(): Manifest['host'] {
  return {
    hostname: os.hostname(),
    machineId: readTrimmed('/etc/machine-id'),
    bootId: readTrimmed('/proc/sys/kernel/random/boot_id'),
    kernelRelease: os.release(),
    arch: process.arch,
  };
}

let addonVersion: string | null | undefined;

/** The addon is built from the same tree: its version plus its binary's digest says exactly which build. */
function addon(): string | null {
  if (addonVersion !== undefined) return addonVersion;
  try {
    const digest = crypto.createHash('sha256').update(fs.readFileSync(addonPath())).digest('hex');
    addonVersion = `${VERSION}+sha256.${digest.slice(0, 12)}`;
  } catch {
    addonVersion = null;
  }
  return addonVersion;
}

export function versions(kernelSource: boolean): Manifest['versions'] {
  let moduleAbi: number | null = null;
  if (kernelSource) {
    try {
      moduleAbi = deviceInfo().abiVersion;
    } catch {
      moduleAbi = null;
    }
  }
  return { agent: VERSION, addon: addon(), moduleAbi };
}
