/**
 * Regular expressions that run in time linear in the text, whatever the
 * pattern: V8's non-backtracking engine (the `l` flag).  Kernel log lines
 * can be written by any user (a module's printk, /dev/kmsg writes), so a
 * profile's kmsg pattern meets attacker-chosen text: with the ordinary
 * backtracking engine `^(a+)+$` takes seconds per line from about 30
 * characters and doubles with each one more, and the agent would stop
 * answering.  Patterns that need backtracking (backreferences,
 * lookarounds) cannot be compiled this way; compileLinear says so.
 */
import * as v8 from 'node:v8';

let engineEnabled = false;

/** The pattern compiled for the linear-time engine; throws a SyntaxError saying why not. */
export function compileLinear(source: string, flags = ''): RegExp {
  if (!engineEnabled) {
    // A V8 flag, safe to set at run time: it only makes the `l` flag legal.
    v8.setFlagsFromString('--enable-experimental-regexp-engine');
    engineEnabled = true;
  }
  try {
    return new RegExp(source, `${flags}l`);
  } catch (err) {
    const msg = (err as Error).message;
    if (/Cannot be executed in linear time/.test(msg)) {
      throw new SyntaxError(
        'it needs backtracking (a backreference or a lookaround), and kernel log lines are matched in linear time only: rewrite it without',
        { cause: err },
      );
    }
    throw err;
  }
}
