/**
 * The conformance suite every destination kind passes, unchanged: a kind
 * added to destinations/registry.ts runs it with its fixture
 * (destination-fixtures.ts).  Each case goes through the real pipeline,
 * the real store and the real post-mortem verbs, on the host.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { CaptureOutcome } from '../../agent/src/capture/pipeline';
import { checkFile } from '../../agent/src/config/load';
import type { Profile } from '../../agent/src/config/profile';
import { DESTINATION_KINDS, destinationKind, openStore, openStoreAt } from '../../agent/src/destinations/registry';
import type { CaptureStore } from '../../agent/src/destinations/types';
import type { Manifest } from '../../agent/src/manifest/types';
import { exportCapture } from '../../agent/src/postmortem/export';
import { uploadCapture } from '../../agent/src/destinations/remote/upload';
import { findRemote, listRemote, verifyRemote } from '../../agent/src/postmortem/remote';
import { verifyCapture } from '../../agent/src/postmortem/verify';
import { physcapCli as cli } from '../../harness/agent';
import { captureNow, imageProfile, makeImage, MiB, writeProfile } from '../support/capture';
import { waitUntil } from '../support/wait';
import { DESTINATION_FIXTURES } from './destination-fixtures';

let work: string;
let img: ReturnType<typeof makeImage>;
let big: string;

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'physcap-conformance-dest-'));
  img = makeImage(work, 4 * MiB);
  // Long enough to be caught mid-write (read back after the write, too).
  big = path.join(work, 'big.img');
  fs.closeSync(fs.openSync(big, 'w'));
  fs.truncateSync(big, 384 * MiB);
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** A profile of the image's two regions to `destination` (the fixture's YAML). */
function profileTo(dir: string, name: string, destination: string, extra = ''): Profile {
  const body = imageProfile({
    image: img.file,
    dest: '/unused',
    regions: [
      ['low', 0, MiB],
      ['high', 2 * MiB, MiB],
    ],
    extra: `cooldown: 0\n${extra}`,
  });
  return writeProfile(dir, name, body.replace(/destination:\n(?: {2}.*\n)+/, `destination:\n${destination}`));
}

/** fn with the profile's store open; closed when fn (or the promise it returns) is done. */
function withStore<T>(p: Profile, fn: (s: CaptureStore) => T): T {
  const s = openStore(p.destination);
  let result: T;
  try {
    result = fn(s);
  } catch (err) {
    s.close();
    throw err;
  }
  if (result instanceof Promise) return result.finally(() => s.close()) as T;
  s.close();
  return result;
}

describe.each(DESTINATION_KINDS.map((k) => [k.kind]))('destination kind %s', (kindName) => {
  const fixture = DESTINATION_FIXTURES[kindName as keyof typeof DESTINATION_FIXTURES];
  const kind = destinationKind(kindName);
  let dir: string;
  let destYaml: string;
  let earlierId: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(work, `${kindName}-`));
    await fixture.server?.start(dir);
    destYaml = fixture.fresh(dir);
  }, 180_000);
  afterAll(() => fixture.server?.stop(), 60_000);

  test('begin, write, publish; list, show, verify and export read back the bytes that were captured', async () => {
    const p = profileTo(dir, 'first', destYaml);
    expect(p.destination.kind).toBe(kindName);
    const o = await captureNow(p);
    expect(o).toMatchObject({ status: 'complete', bytes: 2 * MiB });
    earlierId = o.id;
    // The location is the store's own word for it, and the destination opens by where() as the CLI opens it.
    const store = openStoreAt(kind.where(p.destination));
    try {
      expect(o.location).toBe(store.where(o.entry!));
      const ids = store.index().entries.map((e) => [e.id, e.status]);
      expect(ids).toEqual([[o.id, 'complete']]);
      const reader = store.open(o.id.slice(0, -2)); // a unique prefix opens it too
      expect(reader.files().map((f) => f.name)).toEqual(expect.arrayContaining(['manifest.json', 'core.elf', 'SHA256SUMS']));
      const manifest = JSON.parse(reader.readFile('manifest.json').toString('utf8')) as Manifest;
      // The record read back is the one written: every region's digests with it.
      expect(manifest.regions).toEqual(o.manifest!.regions);
      expect(manifest.files).toEqual(o.manifest!.files);
      const report = await verifyCapture(store, o.id);
      expect(report.problems).toEqual([]);
      expect(report.ok).toBe(true);
      const out = path.join(dir, 'high.raw');
      await exportCapture({ reader, manifest, format: 'raw', region: 'high', out });
      expect(fs.readFileSync(out).equals(img.range(2 * MiB, MiB))).toBe(true);
      reader.close();
    } finally {
      store.close();
    }
  });

  test('a capture that fails is recorded failed with its reason, and the one before is intact', async () => {
    const p = profileTo(dir, 'failing', destYaml);
    const abort = new AbortController();
    abort.abort();
    const o = await captureNow(p, { signal: abort.signal });
    expect(o.status).toBe('failed');
    expect(o.entry).toMatchObject({ status: 'failed', error: expect.any(String) });
    await withStore(p, async (store) => {
      expect(store.index().problems).toEqual([]);
      const failed = await verifyCapture(store, o.id);
      expect(failed.ok).toBe(false);
      expect(failed.problems.join('\n')).toMatch(/failed/);
      expect((await verifyCapture(store, earlierId)).ok).toBe(true);
      expect(store.unfinished()).toEqual([]);
    });
  });

  test('kill -9 mid-capture: nothing claims it complete; recovery records it failed and the chain and the earlier capture hold', async () => {
    const p = writeProfile(
      dir,
      'killed',
      `regions:\n  - name: all\n    start: "0x0"\n    size: 384MiB\ntriggers:\n  - kind: control\ndestination:\n${destYaml}source:\n  kind: image\n  image_path: ${big}\nhash:\n  readback: always\ncooldown: 0\n`,
    );
    const child = spawn(process.execPath, [cli, 'capture', p.file, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const unfinished = () => withStore(p, (s) => s.unfinished().length > 0);
    try {
      expect(
        await waitUntil(() => {
          try {
            return unfinished();
          } catch {
            return false;
          }
        }, 30_000),
      ).toBe(true);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    const before = withStore(p, (s) => s.index().entries.length);
    const recovered = withStore(p, (s) => s.recover({ keep: kind.keepInterrupted(p.destination), reason: 'interrupted: conformance kill -9' }));
    expect(recovered).toHaveLength(1);
    expect(recovered[0]).toMatchObject({ status: 'failed', recovered: expect.stringMatching(/conformance kill -9/) });
    await withStore(p, async (s) => {
      expect(s.index().entries).toHaveLength(before + 1);
      expect(s.index().problems).toEqual([]);
      expect(s.unfinished()).toEqual([]);
      expect((await verifyCapture(s, earlierId)).ok).toBe(true);
      // A second recovery finds nothing more to do.
      expect(s.recover({ keep: true, reason: 'again' })).toEqual([]);
    });
  }, 60_000);

  test('retention never removes the capture just written, and what it removed is no longer listed as there', async () => {
    const p = profileTo(dir, 'kept', destYaml);
    const outcomes: CaptureOutcome[] = [];
    for (let i = 0; i < 3; i++) outcomes.push(await captureNow(p));
    const last = outcomes[outcomes.length - 1]!;
    await withStore(p, async (s) => {
      const removed = s.retain(last.entry!.location);
      expect(removed).not.toContain(last.id);
      expect((await verifyCapture(s, last.id)).ok).toBe(true);
      for (const id of [...removed, ...outcomes.flatMap((o) => o.removed)]) expect(() => s.open(id).close()).toThrow();
    });
  });

  test('a capture begun and discarded leaves nothing: no entry, nothing unfinished', () => {
    const p = profileTo(dir, 'discarded', destYaml);
    withStore(p, (s) => {
      const n = s.index().entries.length;
      const sink = s.begin({
        id: 'discarded-1',
        profile: p.name,
        started: new Date().toISOString(),
        dataBytes: BigInt(MiB),
        smallBytes: 4096,
        intent: Buffer.from('{}\n'),
      });
      sink.openData('core.elf', BigInt(MiB));
      sink.discard();
      expect(s.index().entries).toHaveLength(n);
      expect(s.unfinished()).toEqual([]);
    });
  });

  test('can.arm: a record held for an armed capture lets other captures begin and publish meanwhile, then ends itself', async () => {
    if (!kind.can.arm) return; // the capability says it cannot: armed captures refuse it (capture/armed.ts)
    const p = profileTo(dir, 'reserving', destYaml);
    const armed = openStore(p.destination);
    try {
      const started = new Date().toISOString();
      const sink = armed.begin({
        id: 'reserved-1',
        profile: p.name,
        started,
        dataBytes: BigInt(MiB),
        smallBytes: 64 * 1024,
        intent: Buffer.from(JSON.stringify({ id: 'reserved-1', profile: p.name, started, armed: { cookie: '1', watchdogId: 0, bootId: null } })),
      });
      sink.openData('core.elf', BigInt(MiB));
      sink.reserve?.();
      // Meanwhile: a whole capture through the pipeline, from another store.
      const other = await captureNow(profileTo(dir, 'meanwhile', destYaml));
      expect(other.status).toBe('complete');
      // Recovery in another store leaves the live record alone.
      withStore(p, (s) => {
        s.recover({ keep: true, reason: 'conformance' });
        expect(s.unfinished().map((u) => u.id)).toContain('reserved-1');
      });
      await sink.writable?.();
      sink.discard();
      withStore(p, (s) => expect(s.unfinished().map((u) => u.id)).not.toContain('reserved-1'));
    } finally {
      armed.close();
    }
  });

  test('remote: a capture is copied from the spool and verified there; the spool keeps it until then; a second copy sends nothing', async () => {
    const remote = kind.remote;
    if (!remote) return; // a local kind: its captures are where they were written
    const p = profileTo(dir, 'remote', destYaml);
    const o = await captureNow(p);
    expect(o.status).toBe('complete');
    const spool = remote.spool(p.destination);
    const target = remote.target(p.destination);
    try {
      expect(spool.pending().map((e) => e.id)).toContain(o.id);
      const r = await uploadCapture(remote, p.destination, spool, o.id);
      expect(r).toMatchObject({ id: o.id, bytes: expect.any(Number), partsJournaled: 0, partsFound: 0 });
      expect(spool.pending().map((e) => e.id)).not.toContain(o.id);
      const listed = await listRemote(target);
      expect(listed).toContainEqual(expect.objectContaining({ id: o.id, complete: true }));
      const c = await findRemote(target, o.id);
      for (const full of [false, true]) {
        const report = await verifyRemote(target, c, { full });
        expect({ full, problems: report.problems }).toEqual({ full, problems: [] });
      }
      // The remote core is the local one, byte for byte.
      const reader = spool.open(o.id);
      const local = reader.read('core.elf', 0, reader.files().find((f) => f.name === 'core.elf')!.size);
      reader.close();
      expect((await target.get(target.key(c.host, c.id, 'core.elf'))).equals(local)).toBe(true);
      const again = await uploadCapture(remote, p.destination, spool, o.id);
      expect(again.partsSent).toBe(0);
    } finally {
      target.close();
      spool.close();
    }
  }, 120_000);

  test('unsafe destinations (links others control, modes that let others write) are refused before a byte is written', async () => {
    const cases = fixture.unsafe(fs.mkdtempSync(path.join(dir, 'unsafe-')));
    expect(cases.length).toBeGreaterThanOrEqual(2);
    for (const c of cases) {
      const file = path.join(dir, `unsafe-${cases.indexOf(c)}.yaml`);
      const body = imageProfile({ image: img.file, dest: '/unused', regions: [['low', 0, MiB]] }).replace(
        /destination:\n(?: {2}.*\n)+/,
        `destination:\n${c.yaml}`,
      );
      fs.writeFileSync(file, `apiVersion: physcap.dev/v1\nkind: CaptureProfile\nname: unsafe${cases.indexOf(c)}\n${body}`);
      const checked = checkFile(file);
      // validate says so at the destination (an error, or a warning that the agent will refuse it)...
      expect({
        what: c.what,
        said: checked.diagnostics.some((d) => d.pointer.startsWith('/destination') && /refuse|link|writable|owned/.test(d.message)),
      }).toEqual({ what: c.what, said: true });
      // ...and the capture is refused with EACCES, nothing begun.
      const p = checked.profile!;
      await expect(captureNow(p)).rejects.toMatchObject({ code: 'EACCES' });
    }
  });
});
