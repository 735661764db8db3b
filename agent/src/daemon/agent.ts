/**
 * The long-running agent: profiles (kept current by ProfileSet), their
 * triggers, the scheduler, the control socket, the kernel log.  Start-up is
 * a reload from empty; every reload applies only the difference; stop
 * refuses new triggers, lets running captures finish within a bound, then
 * aborts them (an aborted capture ends recorded as failed, never as a
 * complete one).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { ArmedCapture, resumeArmed } from '../capture/armed';
import { finishDurable } from '../capture/durable';
import type { CaptureOutcome } from '../capture/pipeline';
import { runCapture } from '../capture/pipeline';
import { captureId } from '../capture/plan';
import { AgentConfig } from '../config/agent-config';
import { Profile } from '../config/profile';
import { ProfileChange, ProfileSet } from '../config/profile-set';
import { readIomemNames } from '../config/semantic';
import { ControlServer } from '../control/server';
import { CONTROL_SOCKET, ControlRequest, ControlResponse } from '../control/protocol';
import { Clock } from '../core/clock';
import { Logger } from '../core/logger';
import { destinationKey, destinationKind, openStore } from '../destinations/registry';
import { sdNotify } from '../native/binding';
import { Scheduler } from '../scheduler/scheduler';
import { SharedKernelLog } from './kernel-log-feed';
import { Metrics } from './metrics';
import { PhyscapDeviceService } from './physcap-service';
import { Uploads } from './uploads';
import type { TriggerEvent } from '../triggers/event';
import type { AgentTriggerContext, Trigger } from '../triggers/kind';
import { requestKinds, triggerKind, TriggerKindName } from '../triggers/registry';

export interface AgentOptions {
  config: AgentConfig;
  log: Logger;
  clock: Clock;
  /** Where /dev/kmsg is (tests and the board may point elsewhere). */
  kmsgPath?: string;
  /** Where /dev/physcap is (default /dev/physcap). */
  physcapDevice?: string;
  /** Where sysfs is (default /sys): the watchdogs' pretimeout_governor files. */
  sysRoot?: string;
}

export class Agent {
  private readonly profiles: ProfileSet;
  private readonly scheduler: Scheduler;
  private readonly control: ControlServer;
  private readonly kmsg: SharedKernelLog;
  private readonly physcap: PhyscapDeviceService;
  private readonly triggers = new Map<string, Trigger[]>();
  /** Profiles whose triggers take `physcap trigger` requests, and the handler that answers. */
  private readonly requestHandlers = new Map<string, (reason: string | undefined) => unknown>();
  private readonly metrics = new Metrics();
  /** Copies to remote destinations, in the background. */
  private readonly uploads: Uploads;
  /** Reloads are applied one after another, in order. */
  private applying: Promise<void> = Promise.resolve();

  constructor(private readonly o: AgentOptions) {
    const { config, log, clock } = o;
    this.profiles = new ProfileSet({
      dirs: config.profileDirs,
      log,
      ctx: { iomemNames: readIomemNames() },
      onReloading: () => this.notify(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`),
      onChange: (c) => {
        this.applying = this.applying.then(() => this.apply(c));
      },
    });
    this.scheduler = new Scheduler({
      clock,
      log,
      policy: (name) => {
        const p = this.profiles.active().get(name);
        return p && { priority: p.priority, cooldownMs: p.cooldownMs, enabled: p.enabled };
      },
      run: async (job, signal) => {
        const p = this.profiles.active().get(job.profile);
        if (!p) return log.warn({ capture: job.id, profile: job.profile }, 'profile went away before its capture started');
        const t0 = Date.now();
        let outcome;
        try {
          outcome = await runCapture({ profile: p, events: job.events }, { signal, log, id: job.id });
        } catch (err) {
          // Refused before a byte was written (no space, no destination, a region gone).
          const e = err as { code?: string; message?: string };
          log.error({ capture: job.id, profile: p.name, error: { code: e.code, message: e.message ?? String(err) } }, 'capture not started');
          this.metrics.captures.inc({ profile: p.name, result: 'failed' });
          this.metrics.duration.observe({ profile: p.name }, (Date.now() - t0) / 1000);
          return;
        }
        this.metrics.captures.inc({ profile: p.name, result: outcome.status });
        this.metrics.duration.observe({ profile: p.name }, outcome.seconds);
        if (outcome.status === 'complete') {
          this.metrics.bytes.inc({ profile: p.name }, outcome.bytes);
          this.metrics.lastSuccess.set({ profile: p.name }, Date.now() / 1000);
          this.uploads.kick(p);
        }
      },
      captureId: (profile, now) => captureId(profile, new Date(now)),
      onFate: (event, fate) => this.metrics.triggers.inc({ kind: event.kind, fate }),
    });
    this.control = new ControlServer(path.join(config.runtimeDir, CONTROL_SOCKET), (req) => this.onControl(req), log);
    this.kmsg = new SharedKernelLog(log, o.kmsgPath);
    this.physcap = new PhyscapDeviceService(log, o.physcapDevice);
    this.uploads = new Uploads(log, this.metrics);
  }

  /** A capture a trigger finished itself (an armed one, written by the kernel): counted like the scheduler's. */
  private countOutcome(profile: string, trigger: TriggerKindName, outcome: CaptureOutcome): void {
    this.metrics.captures.inc({ profile, result: outcome.status });
    this.metrics.duration.observe({ profile }, outcome.seconds);
    this.metrics.triggers.inc({ kind: trigger, fate: 'captured' });
    if (outcome.status === 'complete') {
      this.metrics.bytes.inc({ profile }, outcome.bytes);
      this.metrics.lastSuccess.set({ profile }, Date.now() / 1000);
      const p = this.profiles.active().get(profile);
      if (p) this.uploads.kick(p);
    }
  }

  /** What the agent gives the triggers of one profile (triggers/kind.ts). */
  private contextFor(p: Profile, trigger: TriggerKindName): AgentTriggerContext {
    const { log, clock, config, sysRoot } = this.o;
    const onOutcome = (outcome: CaptureOutcome) => this.countOutcome(p.name, trigger, outcome);
    return {
      log,
      clock,
      emit: (e: TriggerEvent) => this.scheduler.submit(e),
      spoolDir: config.spoolDir,
      agentUid: process.getuid?.() ?? 0,
      profile: p.name,
      kmsg: this.kmsg,
      physcap: this.physcap,
      acceptRequests: (handler) => {
        this.requestHandlers.set(p.name, handler);
        return () => {
          if (this.requestHandlers.get(p.name) === handler) this.requestHandlers.delete(p.name);
        };
      },
      armed: {
        create: (a) => new ArmedCapture({ profile: p, device: this.physcap.open(), ...a, trigger, log, sysRoot, onOutcome }),
        resume: async (events) => {
          for (const outcome of await resumeArmed(p, events, trigger, log)) onOutcome(outcome);
        },
      },
    };
  }

  private async startTriggers(p: Profile): Promise<void> {
    const started: Trigger[] = [];
    for (const spec of p.triggers) {
      const t = triggerKind(spec.kind).create(spec, this.contextFor(p, spec.kind));
      try {
        await t.start();
        started.push(t);
      } catch (err) {
        this.o.log.error({ profile: p.name, trigger: spec.kind, err: String(err) }, 'trigger could not start');
      }
    }
    this.triggers.set(p.name, started);
  }

  private async stopTriggers(name: string): Promise<void> {
    for (const t of this.triggers.get(name) ?? []) await t.stop();
    this.triggers.delete(name);
  }

  /** Before recovery and before the triggers start: each kind finishes what it left while no agent ran. */
  private async resumeTriggers(p: Profile): Promise<void> {
    for (const kind of new Set(p.triggers.map((t) => t.kind))) await triggerKind(kind).resume?.(this.contextFor(p, kind));
  }

  private readonly recovered = new Set<string>();

  /**
   * Once per destination per agent run, before its profile's triggers
   * start: captures a crash left durable are finished from their data
   * (capture/durable.ts); the others a crash or power loss left unfinished
   * are recorded as failed in the index (and kept or removed as the
   * profile says).
   */
  private async recoverDestination(p: Profile): Promise<void> {
    const key = destinationKey(p.destination);
    if (this.recovered.has(key)) return;
    this.recovered.add(key);
    try {
      const store = openStore(p.destination);
      try {
        const active = this.profiles.active();
        for (const outcome of await finishDurable(store, (name) => active.get(name), this.o.log)) {
          const profile = outcome.entry?.profile ?? p.name;
          this.metrics.captures.inc({ profile, result: outcome.status });
          if (outcome.status === 'complete') this.metrics.bytes.inc({ profile }, outcome.bytes);
        }
        const keep = destinationKind(p.destination.kind).keepInterrupted(p.destination);
        for (const e of store.recover({ keep, reason: 'interrupted: found unfinished at start-up (the agent was killed or the machine lost power)' })) {
          this.o.log.warn({ destination: key, capture: e.id, status: e.status, location: e.location, why: e.recovered }, 'recovered an unfinished capture');
        }
      } finally {
        store.close();
      }
    } catch (err) {
      this.recovered.delete(key);
      this.o.log.error({ destination: key, profile: p.name, err: (err as Error).message }, 'destination recovery failed; will retry on the next reload');
    }
  }

  /** Applies a reload's difference: only changed profiles' triggers move. */
  private async apply(c: ProfileChange): Promise<void> {
    for (const p of [...c.removed, ...c.changed.map((x) => x.before)]) await this.stopTriggers(p.name);
    // What the kernel wrote while no agent was there is finished first; recovery records the rest.
    for (const p of [...c.added, ...c.changed.map((x) => x.after)]) await this.resumeTriggers(p);
    for (const p of [...c.added, ...c.changed.map((x) => x.after)]) await this.recoverDestination(p);
    for (const p of [...c.added, ...c.changed.map((x) => x.after)]) await this.startTriggers(p);
    // Remote destinations: tested, and what their spools hold unsent goes out (in the background).
    for (const p of [...c.added, ...c.changed.map((x) => x.after)]) this.uploads.loaded(p);
    // READY=1 also ends a RELOADING=1.
    this.notify(`READY=1\nSTATUS=${this.profiles.active().size} profiles active`);
  }

  private onControl(req: ControlRequest): ControlResponse {
    if (req.op === 'trigger') {
      const handler = this.requestHandlers.get(req.profile);
      if (handler) return { ok: true, outcome: handler(req.reason) as Extract<ControlResponse, { outcome: unknown }>['outcome'] };
      if (this.profiles.active().has(req.profile)) {
        return { ok: false, error: `profile ${req.profile} has no trigger that takes requests (${requestKinds().join(', ')})` };
      }
      this.o.log.warn({ profile: req.profile }, 'trigger request refused: no such profile');
      return { ok: true, outcome: { status: 'refused', reason: 'unknown-profile' } };
    }
    if (req.op === 'list') {
      return {
        ok: true,
        profiles: [...this.profiles.active().values()].map((p) => ({
          name: p.name,
          file: p.file,
          enabled: p.enabled,
          triggers: p.triggers.map((t) => t.kind),
        })),
      };
    }
    if (req.op === 'status') {
      const s = this.scheduler.status();
      return {
        ok: true,
        profiles: [...this.profiles.active().values()].map((p) => ({ name: p.name, file: p.file, triggers: p.triggers.map((t) => t.kind) })),
        running: s.running.map((c) => ({ capture: c.id, profile: c.profile, events: c.events.length })),
        queued: s.queued.map((c) => ({ capture: c.id, profile: c.profile, events: c.events.length })),
      };
    }
    return { ok: false, error: `unknown op ${JSON.stringify((req as { op?: unknown }).op)}` };
  }

  private watchdogTimer?: NodeJS.Timeout;

  /** systemd's WatchdogSec=: ping at half the interval it asks for. */
  private startWatchdogPings(): void {
    const usec = Number(process.env.WATCHDOG_USEC);
    const pid = process.env.WATCHDOG_PID;
    if (!usec || (pid && Number(pid) !== process.pid)) return;
    this.watchdogTimer = setInterval(() => this.notify('WATCHDOG=1'), Math.max(1, usec / 2000));
  }

  private notify(message: string): void {
    try {
      sdNotify(message);
    } catch (err) {
      this.o.log.warn({ err: String(err) }, 'sd_notify failed');
    }
  }

  async start(): Promise<void> {
    const { config } = this.o;
    for (const dir of [config.runtimeDir, config.stateDir]) fs.mkdirSync(dir, { recursive: true, mode: 0o750 });
    fs.mkdirSync(config.spoolDir, { recursive: true, mode: 0o700 });
    await this.control.start();
    if (config.metricsListen) {
      const port = await this.metrics.listen(config.metricsListen);
      this.o.log.info({ address: config.metricsListen, port }, 'metrics listening');
    }
    await this.profiles.start({ sighup: true });
    await this.applying;
    this.startWatchdogPings();
    this.o.log.info({ profiles: [...this.profiles.active().keys()] }, 'agent ready');
  }

  async stop(graceMs: number): Promise<void> {
    clearInterval(this.watchdogTimer);
    this.notify('STOPPING=1');
    this.o.log.info({ graceMs }, 'agent stopping');
    await this.profiles.stop();
    await this.applying;
    for (const name of [...this.triggers.keys()]) await this.stopTriggers(name);
    await this.control.stop();
    await this.scheduler.stop(graceMs);
    await this.uploads.stop();
    await this.metrics.close();
    this.physcap.close();
    await this.kmsg.stop();
    this.o.log.info({}, 'agent stopped');
  }
}
