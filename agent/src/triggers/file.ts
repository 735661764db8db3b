/**
 * Fires when a file with the trigger's name appears in the spool
 * directory.  Producers write a temporary (dot-)name and rename it into
 * place; the file may carry YAML or JSON with a `reason`.  The file is
 * consumed (removed) after it fired.  The spool must pass the trusted-
 * directory rule (core/trusted-path: not a system directory, not a link,
 * writable only by root or the agent): the trigger does not start on one
 * that fails, and says why.  A file is refused, with a log line saying
 * why, unless it is a regular file with one name owned by root or the
 * agent's user: anyone else who could put one there could otherwise make
 * the agent dump memory, or have it delete a file it links to.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { parse } from 'yaml';

import { assertTrustedDir, trustedDirProblem } from '../core/trusted-path';
import { eventId } from './event';
import type { Trigger, TriggerContext, TriggerKind } from './kind';

const MAX_BODY = 64 * 1024;

function reasonOf(text: string): string | undefined {
  if (!text.trim()) return undefined;
  try {
    const doc = parse(text, { maxAliasCount: 10 }) as unknown;
    if (doc && typeof doc === 'object' && typeof (doc as { reason?: unknown }).reason === 'string') {
      return (doc as { reason: string }).reason.slice(0, 1000);
    }
    return typeof doc === 'string' ? doc.slice(0, 1000) : undefined;
  } catch {
    return text.trim().slice(0, 1000);
  }
}

export function fileTrigger(profile: string, spec: { name: string }, ctx: TriggerContext): Trigger {
  const target = path.join(ctx.spoolDir, spec.name);
  let watcher: fs.FSWatcher | undefined;

  const refuse = (why: string, fields: Record<string, unknown> = {}) =>
    ctx.log.warn({ profile, trigger: 'file', file: target, why, ...fields }, 'trigger file refused');

  const consume = () => {
    let fd: number;
    try {
      fd = fs.openSync(target, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') refuse(`cannot open it: ${code}`);
      return;
    }
    try {
      // Checked at every file, not only at start: the spool can change under a running agent.
      const untrusted = trustedDirProblem(ctx.spoolDir, 'spool', { euid: ctx.agentUid });
      if (untrusted) return refuse(untrusted);
      const st = fs.fstatSync(fd);
      if (!st.isFile()) return refuse('not a regular file');
      if (st.nlink !== 1) return refuse(`it has ${st.nlink} names (a hard link to a file elsewhere): not consumed`);
      if (st.uid !== 0 && st.uid !== ctx.agentUid) return refuse('owned by neither root nor the agent', { uid: st.uid });
      const buf = Buffer.alloc(Math.min(st.size, MAX_BODY));
      const n = fs.readSync(fd, buf, 0, buf.length, 0);
      fs.rmSync(target, { force: true });
      ctx.emit({
        id: eventId(),
        kind: 'file',
        profile,
        time: ctx.clock.now(),
        reason: reasonOf(buf.subarray(0, n).toString('utf8')) ?? `trigger file ${spec.name}`,
        detail: { file: target, uid: st.uid },
      });
    } finally {
      fs.closeSync(fd);
    }
  };

  return {
    kind: 'file',
    profile,
    async start() {
      assertTrustedDir(ctx.spoolDir, 'spool', { euid: ctx.agentUid });
      fs.mkdirSync(ctx.spoolDir, { recursive: true, mode: 0o700 });
      assertTrustedDir(ctx.spoolDir, 'spool', { euid: ctx.agentUid });
      // inotify through fs.watch, not chokidar: chokidar holds events back
      // and folds quick unlink/add pairs, and a name dropped again right
      // after it was consumed could go unnoticed.  Any event naming our file
      // means: look, and consume it if it is there.
      watcher = fs.watch(ctx.spoolDir, { persistent: true }, (_type, name) => {
        if (name === spec.name) consume();
      });
      watcher.on('error', (err) => ctx.log.error({ profile, dir: ctx.spoolDir, err: String(err) }, 'watching the spool failed'));
      // A file dropped while the agent was not running fires now.
      consume();
    },
    async stop() {
      watcher?.close();
      watcher = undefined;
    },
  };
}

export interface FileTriggerSpec {
  kind: 'file';
  /** The file's name in the spool directory (default: the profile's name). */
  name: string;
}

export const fileKind: TriggerKind<FileTriggerSpec> = {
  kind: 'file',
  schema: 'triggers/file.schema.json',
  help: ['a file named after the profile renamed into the spool directory', "(printf 'reason: repair hook\\n' > SPOOL/.p && mv SPOOL/.p SPOOL/p)"],
  parse: (t, profileName) => ({ kind: 'file', name: (t.name as string) || profileName }),
  claim: (spec) => ({ key: `file:${spec.name}`, what: `trigger file "${spec.name}"` }),
  create: (spec, ctx) => fileTrigger(ctx.profile, spec, ctx),
};
