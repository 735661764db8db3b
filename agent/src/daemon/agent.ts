/**
 * The long-running agent: profiles (kept current by ProfileSet), their
 * triggers, the scheduler, the control socket, the kernel log.  Start-up is
 * a reload from empty; every reload applies only the difference; stop
 * refuses new triggers, lets running captures finish within a bound, then
 * aborts them (an aborted capture ends as <capture>.failed, never as a
 * complete one).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

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
import { destinationKey, openStore } from '../destinations/registry';
import { sdNotify } from '../native/binding';
import { Scheduler } from '../scheduler/scheduler';
import { Metrics } from './metrics';
import { Watchdogs } from './watchdogs';
import { eventId, TriggerEvent } from '../triggers/event';
import { KmsgMatcher } from '../triggers/kmsg-record';
import { KmsgSource } from '../triggers/kmsg-source';
import { TRIGGER_KINDS } from '../triggers/registry';
import { Trigger, TriggerContext } from '../triggers/trigger';

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
  private readonly kmsg: KmsgSource;
  private readonly triggers = new Map<string, Trigger[]>();
  private readonly kmsgMatchers = new Map<string, KmsgMatcher>();
  private kmsgStarted = false;
  private unsubscribeKmsg?: () => void;
  private readonly metrics = new Metrics();
  private readonly watchdogs: Watchdogs;
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
        }
      },
      captureId: (profile, now) => captureId(profile, new Date(now)),
      onFate: (event, fate) => this.metrics.triggers.inc({ kind: event.kind, fate }),
    });
    this.watchdogs = new Watchdogs({
      log,
      devicePath: o.physcapDevice,
      sysRoot: o.sysRoot,
      onOutcome: (profile, outcome) => {
        this.metrics.captures.inc({ profile, result: outcome.status });
        this.metrics.duration.observe({ profile }, outcome.seconds);
        this.metrics.triggers.inc({ kind: 'watchdog', fate: 'captured' });
        if (outcome.status === 'complete') {
          this.metrics.bytes.inc({ profile }, outcome.bytes);
          this.metrics.lastSuccess.set({ profile }, Date.now() / 1000);
        }
      },
      // Without the governor: the noop governor's kernel log line, captured by the agent.
      fallback: (p, id) => {
        if (!this.kmsgMatchers.has(p.name)) this.kmsgMatchers.set(p.name, new KmsgMatcher([], [`^watchdog${id}: pretimeout event$`], 7));
      },
    });
    this.control = new ControlServer(path.join(config.runtimeDir, CONTROL_SOCKET), (req) => this.onControl(req), log);
    this.kmsg = new KmsgSource(log, o.kmsgPath);
  }

  private get triggerContext(): TriggerContext {
    return {
      log: this.o.log,
      clock: this.o.clock,
      emit: (e) => this.submit(e),
      spoolDir: this.o.config.spoolDir,
      agentUid: process.getuid?.() ?? 0,
    };
  }

  private submit(e: TriggerEvent): void {
    this.scheduler.submit(e);
  }

  private async startTriggers(p: Profile): Promise<void> {
    const started: Trigger[] = [];
    for (const spec of p.triggers) {
      if (spec.kind === 'kmsg') {
        this.kmsgMatchers.set(p.name, new KmsgMatcher(spec.presets, spec.patterns, spec.maxPriority));
        continue;
      }
      if (spec.kind === 'watchdog') {
        this.watchdogs.start(p, spec);
        continue;
      }
      const t = TRIGGER_KINDS[spec.kind]?.(p, spec, this.triggerContext);
      if (!t) continue; // control: answered by the socket
      try {
        await t.start();
        started.push(t);
      } catch (err) {
        this.o.log.error({ profile: p.name, trigger: spec.kind, err: String(err) }, 'trigger could not start');
      }
    }
    this.triggers.set(p.name, started);
    if (this.kmsgMatchers.size && !this.kmsgStarted) this.startKmsg();
  }

  private async stopTriggers(name: string): Promise<void> {
    for (const t of this.triggers.get(name) ?? []) await t.stop();
    this.triggers.delete(name);
    this.kmsgMatchers.delete(name);
    this.watchdogs.stop(name);
  }

  private startKmsg(): void {
    try {
      this.kmsg.start();
      this.kmsgStarted = true;
      this.unsubscribeKmsg = this.kmsg.subscribe((rec) => {
        for (const [profile, m] of this.kmsgMatchers) {
          const hit = m.match(rec);
          if (hit) {
            this.submit({
              id: eventId(),
              kind: 'kmsg',
              profile,
              time: this.o.clock.now(),
              reason: hit.message,
              detail: { rule: hit.rule, seq: rec.seq, level: rec.level, usec: rec.usec },
            });
          }
        }
      });
    } catch (err) {
      this.o.log.error({ err: String(err) }, 'cannot read the kernel log: kmsg triggers will not fire');
    }
  }

  private readonly recovered = new Set<string>();

  /**
   * Once per destination per agent run, before its profile's triggers
   * start: captures a crash or power loss left unfinished are recorded as
   * failed in the index (and kept or removed as the profile says).
   */
  private recoverDestination(p: Profile): void {
    const key = destinationKey(p.destination);
    if (this.recovered.has(key)) return;
    this.recovered.add(key);
    try {
      const store = openStore(p.destination);
      try {
        const keep = p.destination.kind === 'dir' ? p.destination.onInterrupted === 'keep' : true;
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
    for (const p of [...c.added, ...c.changed.map((x) => x.after)]) await this.watchdogs.resume(p);
    for (const p of [...c.added, ...c.changed.map((x) => x.after)]) this.recoverDestination(p);
    for (const p of [...c.added, ...c.changed.map((x) => x.after)]) await this.startTriggers(p);
    // READY=1 also ends a RELOADING=1.
    this.notify(`READY=1\nSTATUS=${this.profiles.active().size} profiles active`);
  }

  private onControl(req: ControlRequest): ControlResponse {
    if (req.op === 'trigger') {
      const p = this.profiles.active().get(req.profile);
      if (p && !p.triggers.some((t) => t.kind === 'control')) {
        return { ok: false, error: `profile ${req.profile} has no control trigger` };
      }
      const outcome = this.scheduler.submit({
        id: eventId(),
        kind: 'control',
        profile: req.profile,
        time: this.o.clock.now(),
        reason: req.reason ?? 'physcap trigger',
      });
      return { ok: true, outcome };
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
    await this.metrics.close();
    this.watchdogs.close();
    this.unsubscribeKmsg?.();
    if (this.kmsgStarted) await this.kmsg.stop();
    this.o.log.info({}, 'agent stopped');
  }
}
