/** Errors a test expects. */
import type { NativeError } from '../../agent/src/native/binding';

/** The error fn throws (by default typed as the addon's); fails the test if it returns. */
export function thrown<E = NativeError>(fn: () => unknown): E {
  try {
    fn();
  } catch (e) {
    return e as E;
  }
  throw new Error('it did not throw');
}
