/**
 * Captures on the host with the image source: memory images with known
 * bytes, profiles written as real YAML files and loaded the way the agent
 * loads them, a capture taken at once, and what a dir destination holds
 * (its index, a capture's manifest, whether a capture verifies).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { runCapture, CaptureOptions, CaptureOutcome } from '../../agent/src/capture/pipeline';
import { checkFile } from '../../agent/src/config/load';
import type { Profile } from '../../agent/src/config/profile';
import { DirStore } from '../../agent/src/destinations/dir/store';
import type { Manifest } from '../../agent/src/manifest/types';
import { verifyCapture } from '../../agent/src/postmortem/verify';
import { eventId } from '../../agent/src/triggers/event';

export const MiB = 2 ** 20;

/** A memory image of random bytes (the image source's "physical memory", based at 0). */
export function makeImage(dir: string, size: number, name = 'memory.img'): { file: string; bytes: Buffer; range(start: number, size: number): Buffer } {
  const bytes = crypto.randomBytes(size);
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return { file, bytes, range: (s, n) => bytes.subarray(s, s + n) };
}

/** Writes a profile file and loads it as the agent would; fails the test on any error. */
export function writeProfile(dir: string, name: string, body: string): Profile {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, `apiVersion: physcap.dev/v1\nkind: CaptureProfile\nname: ${name}\n${body}`);
  const checked = checkFile(file);
  const errors = checked.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length || !checked.profile) throw new Error(`profile ${file}: ${JSON.stringify(errors)}`);
  return checked.profile;
}

/** A profile body: regions of the image, a dir destination, the image source. */
export function imageProfile(o: {
  image: string;
  dest: string;
  regions: Array<[string, number, number]>;
  extra?: string;
  format?: 'elf' | 'raw';
  chunk?: string;
  readback?: 'auto' | 'always' | 'never';
}): string {
  return `regions:
${o.regions.map(([n, s, z]) => `  - name: ${n}\n    start: "0x${s.toString(16)}"\n    size: ${z}`).join('\n')}
triggers:
  - kind: control
destination:
  kind: dir
  path: ${o.dest}
  retention: { count: 0, keep_free: 0 }
source:
  kind: image
  image_path: ${o.image}
output:
  format: ${o.format ?? 'elf'}
hash:
  chunk_size: ${o.chunk ?? '64KiB'}
${o.readback ? `  readback: ${o.readback}\n` : ''}${o.extra ?? ''}`;
}

/** The profile's capture, taken now as a control trigger would start it. */
export function captureNow(p: Profile, o: CaptureOptions = {}, reason = 'test'): Promise<CaptureOutcome> {
  return runCapture({ profile: p, events: [{ id: eventId(), kind: 'control', profile: p.name, time: Date.now(), reason }] }, o);
}

/** Index lines of a dir destination, parsed. */
export function indexOf(dest: string): Array<Record<string, unknown>> {
  const file = path.join(dest, 'index.jsonl');
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A capture directory's manifest.json. */
export const manifestOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;

/** Whether capture `id` of a dir destination verifies (physcap verify's check, in process). */
export async function verifies(dest: string, id: string): Promise<boolean> {
  const store = new DirStore(dest);
  try {
    return (await verifyCapture(store, id)).ok;
  } finally {
    store.close();
  }
}
