/**
 * What a destination kind is: everything the rest of the agent may know
 * about one.  A kind owns its schema fragment (schemas/destinations/), the
 * typed spec parsed from it, the checks the schema cannot express, its
 * capabilities, and how its stores are opened; one line in registry.ts
 * adds it.  The pipeline, armed captures, import, the daemon and the CLI
 * ask the kind (or the CaptureStore it opens) and never test its name.
 */
import type { Command } from 'commander';

import type { RetryPolicy } from './remote/retry';
import type { SpoolStore } from './remote/spool';
import type { RemoteTarget } from './remote/target';
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
  /**
   * A kind whose captures are kept elsewhere (object storage, a server):
   * they land in the local spool open() returns, and are then copied
   * there (destinations/remote/).
   */
  readonly remote?: RemoteKind<S>;
  /** Verbs of its own (`physcap blockdev init`), added to the CLI. */
  commands?(program: Command, out: (text: string) => void): void;
}

/** How the post-mortem verbs reach a remote destination named on the command line. */
export interface RemoteAccess {
  /** The service's URL, where the kind needs one (an S3-compatible endpoint). */
  endpoint?: string;
  region?: string;
  /** A credentials file (0600); otherwise the environment or the platform's chain. */
  credentialsFile?: string;
  /** A private key file (0600), where the kind logs in with one (SFTP). */
  identity?: string;
  /** The server's pinned host key (SHA256:...), where the kind checks one (SFTP). */
  hostKey?: string;
}

export interface RemoteKind<S> {
  /** How a user names the remote side: s3://bucket/prefix. */
  url(spec: S): string;
  /** The local spool a spec's captures land in (what open() returns). */
  spool(spec: S): SpoolStore;
  /** The remote side of a spec: for the copy, the pre-flight check and the verbs. */
  target(spec: S): RemoteTarget;
  /** A remote location named on the command line: this kind's target, if it is one of this kind's. */
  targetAt(location: string, access: RemoteAccess): RemoteTarget | undefined;
  /** How the copy runs. */
  copy(spec: S): { parallel: number; retry: RetryPolicy; bandwidth: number };
}
