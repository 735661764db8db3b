/**
 * A real process for the SIGHUP test: watches one profile directory with
 * SIGHUP handling on, prints "ready", then one line per reload.
 *   node dist/test/config/sighup-child.js DIR
 */
import { ProfileSet } from '../../agent/src/config/profile-set';
import { memoryLogger } from '../../agent/src/core/logger';

const dir = process.argv[2]!;
const set = new ProfileSet({
  dirs: [dir],
  log: memoryLogger(),
  onChange: (c) => console.log(`reloaded ${JSON.stringify({ active: [...set.active().keys()], unchanged: c.unchanged })}`),
});
set.start({ sighup: true }).then(
  () => console.log('ready'),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
process.on('SIGTERM', () => {
  void set.stop().then(() => process.exit(0));
});
