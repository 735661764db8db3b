/**
 * The adversarial suite's own shared parts (the rest is test/support/).
 * Every case is named "[area] what is tried: what must happen", so the
 * per-area counts in the session note come from the test names
 * (scripts/adversarial-counts.js).
 */
import { main } from '../../agent/src/cli/main';
import { removeDir, tempDir } from '../support/tmp';

/** The physcap CLI in-process (what bin/physcap.js runs): exit code and output. */
export async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(
    ['node', 'physcap', ...args],
    (s) => void (out += s),
    (s) => void (err += s),
  );
  return { code, out, err };
}

/** A scratch directory of the test's own (0700, root's), removed after the file's tests. */
export function scratch(prefix: string): { dir: string; done(): void } {
  const dir = tempDir(`adv-${prefix}`);
  return { dir, done: () => removeDir(dir) };
}

/** A profile's YAML around the fields a case changes. */
export function profileYaml(o: { name?: string; regions?: string; triggers?: string; destination?: string; extra?: string } = {}): string {
  return `apiVersion: physcap.dev/v1
kind: CaptureProfile
name: ${o.name ?? 'adversary'}
regions:
${o.regions ?? '  - name: crashlog\n    start: "0x20000000"\n    size: 4096'}
triggers:
${o.triggers ?? '  - kind: control'}
destination:
${o.destination ?? '  kind: dir\n  path: /tmp/physcap-fixture-captures'}
${o.extra ?? ''}`;
}

/** The uid/gid of "nobody", who owns nothing here. */
export const NOBODY = 65534;
