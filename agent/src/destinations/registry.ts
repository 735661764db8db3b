/**
 * Destination kinds by name.  The pipeline and the post-mortem verbs ask
 * here for a CaptureStore and never see which kind it is.
 */
import * as fs from 'node:fs';

import type { DestinationSpec } from '../config/profile';
import { openBlockdevStore } from './blockdev/store';
import { DirStore } from './dir/store';
import type { CaptureStore } from './types';

/** A profile's destination, for writing (a dir is created if missing). */
export function openStore(spec: DestinationSpec): CaptureStore {
  switch (spec.kind) {
    case 'dir':
      return new DirStore(spec.path, { retention: spec.retention }, true);
    case 'blockdev':
      return openBlockdevStore(spec.device, { init: spec.init });
  }
}

/** A destination named on the command line: a directory of captures, or a dump partition (device or image). */
export function openStoreAt(location: string): CaptureStore {
  let st: fs.Stats;
  try {
    st = fs.statSync(location);
  } catch (err) {
    throw Object.assign(new Error(`${location}: ${(err as NodeJS.ErrnoException).code ?? 'cannot stat'}: no such destination`), { code: 'ENOENT' });
  }
  if (st.isDirectory()) return new DirStore(location);
  return openBlockdevStore(location, { init: 'never' });
}

/** Where a destination is, for grouping captures by destination. */
export function destinationKey(spec: DestinationSpec): string {
  return spec.kind === 'dir' ? spec.path : spec.device;
}
