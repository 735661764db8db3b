/**
 * configs/demo/: the profiles `npm run demo` starts the agent with are
 * valid as shipped (their destination is the demo board's disk, so only a
 * "does not exist on this machine" warning is allowed), and name the board's
 * reserved ranges (harness/layout.ts) exactly.
 */
import * as path from 'node:path';

import { checkFile } from '../../agent/src/config/load';
import { BOARD_RANGES } from '../../harness/layout';

const dir = path.join(__dirname, '..', '..', 'configs', 'demo');
const RANGE_OF: Record<string, string> = { crashlog: 'crashlog', trace: 'trace', dump: 'big' };

test.each(['watchdog-hook', 'pretimeout', 'on-demand'])('configs/demo/%s.yaml is valid and matches the board', (name) => {
  const checked = checkFile(path.join(dir, `${name}.yaml`));
  expect(checked.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  expect(checked.diagnostics.every((d) => /does not exist on this machine/.test(d.message))).toBe(true);
  const p = checked.profile!;
  expect(p.name).toBe(name);
  for (const r of p.regions) {
    const board = BOARD_RANGES.find((b) => b.name === RANGE_OF[r.name]);
    expect(board).toBeDefined();
    expect(r.kind === 'range' && [Number(r.start), Number(r.size)]).toEqual([board!.start, board!.size]);
  }
});
