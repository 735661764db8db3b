/**
 * One small interface for every trigger kind: start, stop, and emit
 * TriggerEvents through the context.  Kinds are added in the registry
 * (registry.ts); nothing else changes to add one.
 */
import { Clock } from '../core/clock';
import { Logger } from '../core/logger';
import { TriggerEvent } from './event';

export interface TriggerContext {
  log: Logger;
  clock: Clock;
  emit(event: TriggerEvent): void;
  /** Where trigger files are dropped. */
  spoolDir: string;
  /** Who may own a trigger file besides root. */
  agentUid: number;
}

export interface Trigger {
  readonly kind: TriggerEvent['kind'];
  readonly profile: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}
