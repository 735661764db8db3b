/**
 * The `sftp` destination kind: a directory on an SSH server (OpenSSH's
 * internal-sftp, say, behind a `restrict` key).  A capture lands in the
 * local spool and is then copied to sftp://user@host/path/<host>/<id>/
 * (remote/ship.ts, sftp/target.ts).  The server's host key is pinned in
 * the profile; the private key is a 0600 file the profile names.
 */
import * as fs from 'node:fs';

import type { DestinationDoc, DestinationKind, RemoteAccess } from '../kind';
import { checkCopySpec, copyOf, CopySpec, openSpool, parseCopySpec } from '../remote/copy-spec';
import { secretFileProblem } from '../remote/secret-file';
import { parseSftpUrl, SftpLocation, SftpTarget, sftpUrl } from './target';

export interface SftpSpec extends CopySpec {
  kind: 'sftp';
  where: SftpLocation;
  /** SHA256:... */
  hostKey: string;
  /** The private key file. */
  identity: string;
}

function target(spec: Pick<SftpSpec, 'where' | 'hostKey' | 'identity'>): SftpTarget {
  const problem = secretFileProblem(spec.identity, 'private key');
  if (problem) throw new Error(`identity: ${problem}`);
  return new SftpTarget(spec.where, { privateKey: fs.readFileSync(spec.identity), hostKey: spec.hostKey });
}

export const sftpKind: DestinationKind<SftpSpec> = {
  kind: 'sftp',
  schema: 'destinations/sftp.schema.json',
  summary: 'a directory on an SSH server over SFTP, through a local spool: resumable copies, the host key pinned',
  can: { arm: false, spool: false },

  parse(d: DestinationDoc): SftpSpec {
    return {
      kind: 'sftp',
      where: parseSftpUrl(String(d.url))!,
      hostKey: String(d.host_key),
      identity: String(d.identity),
      ...parseCopySpec(d),
    };
  },

  check(d, report) {
    checkCopySpec(d, report);
    const problem = secretFileProblem(String(d.identity), 'private key');
    if (problem) report('warning', '/identity', `the agent will not use this file: ${problem}`);
  },

  where: (spec) => spec.spool.path,
  keepInterrupted: (spec) => spec.spool.onInterrupted === 'keep',
  open: (spec) => openSpool(spec),
  // The spool opens as the dir it is; the server through remote.targetAt().
  openAt: () => undefined,
  specOf() {
    throw new Error('an sftp destination is written through its spool: import into the spool directory, then `physcap upload`');
  },

  remote: {
    url: (spec) => sftpUrl(spec.where),
    spool: openSpool,
    target,
    targetAt(location: string, access: RemoteAccess) {
      const where = parseSftpUrl(location);
      if (!where) return undefined;
      if (!access.identity || !access.hostKey)
        throw new Error(`${location}: --identity (a private key file) and --host-key (SHA256:...) are needed to read it`);
      return target({ where, identity: access.identity, hostKey: access.hostKey });
    },
    copy: copyOf,
  },
};
