/**
 * The active profiles, kept current: start-up is a reload from empty, a
 * change in a drop-in directory or SIGHUP is another reload, and a reload
 * applies only the difference.  A file that turns bad keeps its last good
 * profile active (and the log says why); an unchanged file keeps its very
 * Profile object, so nothing built on it is disturbed.
 */
import * as path from 'node:path';

import { FSWatcher, watch } from 'chokidar';

import { Logger } from '../core/logger';
import { formatDiagnostic, hasErrors } from './diagnostics';
import { checkFiles, listDropIns } from './load';
import { Profile } from './profile';
import { SemanticContext } from './semantic';

export interface ProfileChange {
  added: Profile[];
  removed: Profile[];
  changed: Array<{ before: Profile; after: Profile }>;
  /** Files that are bad now, whose last good profile stays active. */
  kept: Profile[];
  unchanged: number;
}

export interface ProfileSetOptions {
  dirs: readonly string[];
  log: Logger;
  ctx?: SemanticContext;
  /** Quiet time after the last change before one reload (default 200 ms). */
  debounceMs?: number;
  onChange?: (change: ProfileChange) => void;
  /** Called as a reload begins (not for the first load): the daemon tells systemd. */
  onReloading?: () => void;
}

/** Editors' swap, backup and temporary files never trigger a reload. */
function isNoise(file: string): boolean {
  const base = path.basename(file);
  return base.startsWith('.') || base.endsWith('~') || /\.(swp|swx|tmp|bak|dpkg-[a-z]+)$/.test(base) || /^#.*#$/.test(base);
}

export class ProfileSet {
  /** By drop-in file name: the unit that overrides, masks and keeps its last good version. */
  private byFile = new Map<string, Profile>();
  private loaded = false;
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;
  private readonly onSighup = () => {
    this.opts.log.info({}, 'SIGHUP: reloading profiles');
    this.reload();
  };

  constructor(private readonly opts: ProfileSetOptions) {}

  /** The active profiles by name. */
  active(): ReadonlyMap<string, Profile> {
    return new Map([...this.byFile.values()].map((p) => [p.name, p]));
  }

  reload(): ProfileChange {
    const { log } = this.opts;
    if (this.loaded) this.opts.onReloading?.();
    this.loaded = true;
    const { files, masked, refused } = listDropIns(this.opts.dirs);
    const result = checkFiles(files, this.opts.ctx ?? {}, masked, refused);
    const next = new Map<string, Profile>();
    const kept: Profile[] = [];
    for (const f of result.files) {
      const key = path.basename(f.file);
      const before = this.byFile.get(key);
      if (f.profile) {
        // The same text: keep the same object.
        next.set(key, before && before.textSha256 === f.profile.textSha256 && before.file === f.profile.file ? before : f.profile);
        for (const d of f.diagnostics) log.warn({ file: f.file, diagnostic: formatDiagnostic(d) }, 'profile warning');
        continue;
      }
      const problems = f.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
      if (before) {
        next.set(key, before);
        kept.push(before);
        log.warn({ file: f.file, profile: before.name, problems }, 'profile is invalid; its last good version stays active');
      } else if (hasErrors(f.diagnostics)) {
        log.warn({ file: f.file, problems }, 'profile is invalid; not activated');
      }
    }
    for (const name of masked) log.info({ file: name }, 'profile masked');

    const change = this.diff(this.active(), next, kept);
    this.byFile = next;
    if (change.added.length || change.removed.length || change.changed.length) {
      log.info(
        {
          added: change.added.map((p) => p.name),
          removed: change.removed.map((p) => p.name),
          changed: change.changed.map((c) => c.after.name),
          unchanged: change.unchanged,
        },
        'profiles reloaded',
      );
    }
    this.opts.onChange?.(change);
    return change;
  }

  private diff(before: ReadonlyMap<string, Profile>, nextByFile: Map<string, Profile>, kept: Profile[]): ProfileChange {
    const after = new Map([...nextByFile.values()].map((p) => [p.name, p]));
    const change: ProfileChange = { added: [], removed: [], changed: [], kept, unchanged: 0 };
    for (const [name, p] of after) {
      const old = before.get(name);
      if (!old) change.added.push(p);
      else if (old === p) change.unchanged++;
      else change.changed.push({ before: old, after: p });
    }
    for (const [name, p] of before) if (!after.has(name)) change.removed.push(p);
    return change;
  }

  /**
   * Start-up: a reload from empty, then watch the directories (and SIGHUP).
   * Resolves once the watcher is ready.
   */
  async start(options: { sighup?: boolean } = {}): Promise<ProfileChange> {
    const first = this.reload();
    const dirs = [...this.opts.dirs];
    this.watcher = watch(dirs, {
      ignoreInitial: true,
      depth: 0,
      atomic: true,
      ignored: (file: string) => !dirs.includes(file) && isNoise(file),
    });
    this.watcher.on('all', () => this.schedule());
    this.watcher.on('error', (err) => this.opts.log.error({ err: String(err) }, 'watching the profile directories failed'));
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
    if (options.sighup) process.on('SIGHUP', this.onSighup);
    return first;
  }

  /** A burst of changes (an editor's save, a package upgrade) becomes one reload. */
  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reload();
    }, this.opts.debounceMs ?? 200);
  }

  async stop(): Promise<void> {
    process.off('SIGHUP', this.onSighup);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.watcher?.close();
    this.watcher = undefined;
  }
}
