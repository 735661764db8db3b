/**
 * What a trigger kind is.  A kind is one module that owns its schema
 * fragment (schemas/triggers/), its typed spec, the checks the schema
 * cannot express, the names it claims, and its construction; one line in
 * registry.ts adds it.  What a kind needs from the agent (the kernel log,
 * physcap.ko, the control socket, armed captures) comes through the
 * context, so the daemon is never edited to add one.
 */
import type { Clock } from '../core/clock';
import type { Logger } from '../core/logger';
import type { PhyscapEvent } from '../native/binding';
import type { TriggerEvent } from './event';
import type { KmsgRecord } from './kmsg-record';

/** What every trigger gets: where to send events, and the agent's basics. */
export interface TriggerContext {
  log: Logger;
  clock: Clock;
  /** Hands an event to the scheduler; returns its decision (what a control request answers with). */
  emit(event: TriggerEvent): unknown;
  /** Where trigger files are dropped. */
  spoolDir: string;
  /** Who may own a trigger file besides root. */
  agentUid: number;
}

/** The kernel log, read once for the whole agent and shared by every trigger that reads it. */
export interface KernelLogFeed {
  /** Starts the reader on first use; returns the unsubscribe. */
  subscribe(listener: (record: KmsgRecord) => void): () => void;
}

/** physcap.ko's device, opened once for the whole agent. */
export interface PhyscapService {
  /** The module's pretimeout governor is registered: captures can be armed in the kernel. */
  governorAvailable(): boolean;
  /** Every event record the module keeps now (what happened while no agent ran); throws if unreadable. */
  pastEvents(): PhyscapEvent[];
  /** New event records as they come; opens the device on first use. */
  subscribe(listener: (event: PhyscapEvent) => void): () => void;
}

/** A capture prepared ahead of time and handed to physcap.ko (capture/armed.ts). */
export interface ArmedCaptureHandle {
  /** The arm's cookie while one is armed: the events that are about it carry it. */
  readonly cookie: bigint | undefined;
  /** Prepares and arms the next capture; throws, leaving nothing behind, if it cannot. */
  arm(): void;
  /** Finishes the capture an event is about (and arms the next). */
  onEvent(event: PhyscapEvent): Promise<void>;
  /** Disarms; the prepared capture is removed. */
  stop(): void;
}

/** Armed captures of this context's profile. */
export interface ArmedCaptures {
  create(o: { watchdogId: number; selectGovernor: boolean; thenPanic: boolean }): ArmedCaptureHandle;
  /** Finishes what the kernel wrote for the profile while no agent ran (start-up, before recovery). */
  resume(events: PhyscapEvent[]): Promise<void>;
}

/** What the agent gives a trigger of one profile. */
export interface AgentTriggerContext extends TriggerContext {
  /** The profile the trigger belongs to. */
  profile: string;
  kmsg: KernelLogFeed;
  physcap: PhyscapService;
  /** Requests from `physcap trigger <profile>`: the handler answers them until the returned function is called. */
  acceptRequests(handler: (reason: string | undefined) => unknown): () => void;
  armed: ArmedCaptures;
}

export interface Trigger {
  readonly kind: string;
  readonly profile: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A trigger as the schema accepted it (YAML keys, units unresolved). */
export type TriggerDoc = Record<string, unknown>;

/** Reports a finding about one field of the trigger (`field` below /triggers/N, "" for the trigger). */
export type TriggerReport = (severity: 'error' | 'warning', field: string, message: string, expected?: string) => void;

/** What check() may look at besides the trigger itself. */
export interface TriggerCheckContext {
  /** The profile's other triggers, as written, and this one's index among them. */
  triggers: readonly TriggerDoc[];
  index: number;
  /** The profile's cooldown, if it resolved. */
  cooldownMs?: number;
}

export interface TriggerKind<S extends { kind: string }> {
  readonly kind: S['kind'];
  /** Its schema's $id below https://physcap.dev/schemas/v1/ (listed in profile.schema.json's trigger oneOf). */
  readonly schema: string;
  /** Lines for `physcap agent --help`, after the kind's name. */
  readonly help: readonly string[];
  /** Answers `physcap trigger <profile>` requests. */
  readonly takesRequests?: boolean;
  /** The typed spec of a trigger the schema and check() accepted. */
  parse(doc: TriggerDoc, profileName: string): S;
  /** What the schema cannot say; run before parse(). */
  check?(doc: TriggerDoc, report: TriggerReport, ctx: TriggerCheckContext): void;
  /** A name only one profile may hold (a trigger file, a signal), and how to say it. */
  claim?(spec: S): { key: string; what: string } | undefined;
  create(spec: S, ctx: AgentTriggerContext): Trigger;
  /** Start-up, before the destination's recovery: finish what this kind left while no agent ran. */
  resume?(ctx: AgentTriggerContext): Promise<void>;
}
