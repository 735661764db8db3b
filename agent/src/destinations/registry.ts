/**
 * Destination kinds by name: the one line that adds a kind.  Everything
 * else reaches a kind through here (its spec, checks and capabilities) or
 * through the CaptureStore it opens, never by testing its name.
 */
import * as fs from 'node:fs';

import { blockdevKind } from './blockdev/kind';
import { dirKind } from './dir/kind';
import { s3Kind } from './s3/kind';
import { sftpKind } from './sftp/kind';
import type { DestinationCapabilities, DestinationKind } from './kind';
import type { CaptureStore } from './types';

/** Every kind.  openAt() asks them in this order. */
export const DESTINATION_KINDS = [dirKind, blockdevKind, s3Kind, sftpKind] as const;

/** A profile's destination, typed: the union of every kind's spec. */
export type DestinationSpec = ReturnType<(typeof DESTINATION_KINDS)[number]['parse']>;
export type DestinationKindName = DestinationSpec['kind'];

const byName = new Map<string, DestinationKind<DestinationSpec>>(DESTINATION_KINDS.map((k) => [k.kind, k as unknown as DestinationKind<DestinationSpec>]));

/** The kind of a spec (or a kind name the schema accepted). */
export function destinationKind(kind: string): DestinationKind<DestinationSpec> {
  const k = byName.get(kind);
  if (!k) throw new Error(`internal error: no destination kind "${kind}" is registered (the schema and destinations/registry.ts disagree)`);
  return k;
}

/** The kinds that can do something, by name (for messages). */
export function kindsThat(capability: keyof DestinationCapabilities): string[] {
  return DESTINATION_KINDS.filter((k) => k.can[capability]).map((k) => k.kind);
}

/** A profile's destination, for writing (a dir is created if missing). */
export function openStore(spec: DestinationSpec): CaptureStore {
  return destinationKind(spec.kind).open(spec);
}

/** A destination named on the command line: whichever kind recognizes what is there. */
export function openStoreAt(location: string): CaptureStore {
  for (const k of DESTINATION_KINDS) {
    const store = k.openAt(location);
    if (store) return store;
  }
  let code = 'ENOENT';
  try {
    fs.statSync(location);
  } catch (err) {
    code = (err as NodeJS.ErrnoException).code ?? 'cannot stat';
  }
  throw Object.assign(new Error(`${location}: ${code}: no such destination`), { code: 'ENOENT' });
}

/** Where a destination is, for grouping captures by destination. */
export function destinationKey(spec: DestinationSpec): string {
  return destinationKind(spec.kind).where(spec);
}
