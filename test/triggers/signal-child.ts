/**
 * A real process for the signal trigger test: SIGUSR2 fires profile "p";
 * each event is printed as a JSON line after "ready".
 */
import { systemClock } from '../../agent/src/core/clock';
import { memoryLogger } from '../../agent/src/core/logger';
import { signalTrigger } from '../../agent/src/triggers/signal';

const t = signalTrigger(
  'p',
  { signal: 'SIGUSR2' },
  {
    log: memoryLogger(),
    clock: systemClock,
    emit: (e) => console.log(JSON.stringify(e)),
    spoolDir: '/nonexistent',
    agentUid: process.getuid!(),
  },
);
void t.start().then(() => console.log('ready'));
process.on('SIGTERM', () => void t.stop().then(() => process.exit(0)));
setInterval(() => undefined, 1 << 30); // stay alive until told
