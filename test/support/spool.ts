/**
 * A remote kind's spool from a test: its captures not yet copied, and the
 * copy of one, run in the test's process (the fleet tests of every remote
 * kind share these).
 */
import type { Profile } from '../../agent/src/config/profile';
import type { RemoteKind } from '../../agent/src/destinations/kind';
import type { SpoolStore } from '../../agent/src/destinations/remote/spool';
import { uploadCapture, UploadOptions } from '../../agent/src/destinations/remote/upload';

export function spoolHelpers<S>(remote: RemoteKind<S>) {
  const spec = (p: Profile) => p.destination as unknown as S;
  /** fn on the profile's spool, closed after. */
  async function withSpool<T>(p: Profile, fn: (spool: SpoolStore) => T | Promise<T>): Promise<T> {
    const spool = remote.spool(spec(p));
    try {
      return await fn(spool);
    } finally {
      spool.close();
    }
  }
  return {
    withSpool,
    /** The profile's captures not yet copied. */
    pendingIds: (p: Profile) => withSpool(p, (s) => s.pending().map((e) => e.id)),
    /** The copy of one capture, in this process. */
    upload: (p: Profile, id: string, o: UploadOptions = {}) => withSpool(p, (s) => uploadCapture(remote, spec(p), s, id, o)),
  };
}
