/**
 * What a destination kind is: everything the rest of the agent may know
 * about one.  A kind owns its schema fragment (schemas/destinations/), the
 * typed spec parsed from it, the checks the schema cannot express, its
 * capabilities, and how its stores are opened; one line in registry.ts
 * adds it.  The pipeline, armed captures, import, the daemon and the CLI
 * ask the kind (or the CaptureStore it opens) and never test its name.
 */
import type { Command } from 'commander';

import type { CaptureStore } from './types';

/** A destination as the schema accepted it (YAML keys, units unresolved). */
export type DestinationDoc = Record<string, unknown>;

/**
 * Reports a finding about one field of the destination (`field` is a JSON
 * pointer below /destination, such as "/path"; "" for the destination).
 */
export type DestinationReport = (severity: 'error' | 'warning', field: string, message: string, expected?: string) => void;

export interface DestinationCapabilities {
  /**
   * Can hold an armed capture: a record reserved when the capture is armed
   * and written by the kernel much later, without blocking other captures
   * to the same destination meanwhile.
   */
  readonly arm: boolean;
  /** Is local storage a capture can be written to before a copy is sent elsewhere. */
  readonly spool: boolean;
}

export interface DestinationKind<S extends { kind: string }> {
  readonly kind: S['kind'];
  /** Its schema's $id below https://physcap.dev/schemas/v1/ (listed in profile.schema.json's destination oneOf). */
  readonly schema: string;
  /** One line for help texts. */
  readonly summary: string;
  readonly can: DestinationCapabilities;
  /** The typed spec of a destination the schema and check() accepted: defaults applied, units resolved. */
  parse(doc: DestinationDoc): S;
  /** What the schema cannot say (units, system directories, this machine's view): run before parse(). */
  check(doc: DestinationDoc, report: DestinationReport): void;
  /** Where it is, as a user names it: one destination across profiles, and what openAt() accepts. */
  where(spec: S): string;
  /** Whether start-up recovery keeps the data of captures found unfinished. */
  keepInterrupted(spec: S): boolean;
  /** Opens it for writing (creating or initializing what the spec allows). */
  open(spec: S): CaptureStore;
  /**
   * A destination named on the command line (or by where()): this kind's
   * store, for reading, if `location` is one of this kind; undefined if it
   * is not.  Throws for one of this kind that cannot be opened.
   */
  openAt(location: string): CaptureStore | undefined;
  /** The spec that writes into an open store of this kind without a policy of its own (import). */
  specOf(store: CaptureStore): S;
  /** Verbs of its own (`physcap blockdev init`), added to the CLI. */
  commands?(program: Command, out: (text: string) => void): void;
}
