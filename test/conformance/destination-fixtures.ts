/**
 * How the destination conformance suite makes a destination of each kind.
 * Typed by the registry's kind names: a kind added to
 * destinations/registry.ts without a fixture here does not compile, so no
 * kind skips the suite.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

import type { DestinationKindName } from '../../agent/src/destinations/registry';
import { CephCluster, startCeph } from '../../harness/ceph';
import { SftpServer, startSshd } from '../../harness/sshd';

export interface DestinationFixture {
  /** The lines under `destination:` for a fresh destination of this kind, made in `dir`. */
  fresh(dir: string): string;
  /** Ways a careless or hostile setup makes it unsafe: each must be refused before a byte is written. */
  unsafe(dir: string): Array<{ what: string; yaml: string }>;
  /** A remote kind's real server, started before fresh() and stopped after the suite. */
  server?: { start(dir: string): Promise<void>; stop(): Promise<void> };
}

/** The s3 fixture's server: a single-node Ceph with radosgw, a bucket, and a 0600 credentials file. */
const s3: { ceph?: CephCluster; credentials?: string } = {};

/** The spool cases of a remote kind are a dir's: its spool is one. */
function spoolCases(dir: string, remote: (spoolPath: string) => string): Array<{ what: string; yaml: string }> {
  return DESTINATION_FIXTURES.dir.unsafe(dir).map((c) => ({ what: `a spool ${c.what}`, yaml: remote(/path: (.*)\n/.exec(c.yaml)![1]!) }));
}

/** The sftp fixture's server: a throwaway sshd on 127.0.0.1 with its own host key and a `restrict` key. */
const sftp: { sshd?: SftpServer } = {};

function sftpYaml(spool: string): string {
  const d = sftp.sshd!;
  return `  kind: sftp\n  url: sftp://${d.username}@${d.host}:${d.port}/conformance\n  host_key: "${d.hostKeyFingerprint}"\n  identity: ${d.privateKeyPath}\n  spool:\n    path: ${spool}\n    retention: { count: 2, keep_free: 0 }\n`;
}

function s3Yaml(spool: string): string {
  return `  kind: s3\n  url: s3://conformance/fleet\n  endpoint: ${s3.ceph!.endpoint}\n  credentials: { file: ${s3.credentials} }\n  spool:\n    path: ${spool}\n    retention: { count: 2, keep_free: 0 }\n`;
}

const NOBODY = 65534;

/** A sparse file of `size` bytes. */
function sparse(file: string, size: number): string {
  fs.closeSync(fs.openSync(file, 'w', 0o600));
  fs.truncateSync(file, size);
  return file;
}

export const DESTINATION_FIXTURES: Record<DestinationKindName, DestinationFixture> = {
  dir: {
    fresh: (dir) => `  kind: dir\n  path: ${path.join(dir, 'captures')}\n  retention: { count: 2, keep_free: 0 }\n`,
    unsafe(dir) {
      const real = path.join(dir, 'real');
      fs.mkdirSync(real, { mode: 0o750 });
      fs.symlinkSync(real, path.join(dir, 'link'));
      fs.mkdirSync(path.join(dir, 'open'));
      fs.chmodSync(path.join(dir, 'open'), 0o777);
      fs.mkdirSync(path.join(dir, 'theirs'));
      fs.chownSync(path.join(dir, 'theirs'), NOBODY, NOBODY);
      return [
        { what: 'named through a symbolic link', yaml: `  kind: dir\n  path: ${path.join(dir, 'link')}\n` },
        { what: 'world-writable (mode 0777)', yaml: `  kind: dir\n  path: ${path.join(dir, 'open')}\n` },
        { what: "another user's directory", yaml: `  kind: dir\n  path: ${path.join(dir, 'theirs')}\n` },
      ];
    },
  },
  blockdev: {
    fresh: (dir) => `  kind: blockdev\n  device: ${sparse(path.join(dir, 'dump.img'), 512 * 2 ** 20)}\n`,
    unsafe(dir) {
      const open = sparse(path.join(dir, 'open.img'), 64 * 2 ** 20);
      fs.chmodSync(open, 0o666);
      const theirs = sparse(path.join(dir, 'theirs.img'), 64 * 2 ** 20);
      fs.chownSync(theirs, NOBODY, NOBODY);
      const target = sparse(path.join(dir, 'target.img'), 64 * 2 ** 20);
      const link = path.join(dir, 'their-link.img');
      fs.symlinkSync(target, link);
      fs.lchownSync(link, NOBODY, NOBODY);
      return [
        { what: 'a symbolic link another user owns (and could point elsewhere)', yaml: `  kind: blockdev\n  device: ${link}\n` },
        { what: 'a world-writable image (mode 0666)', yaml: `  kind: blockdev\n  device: ${open}\n` },
        { what: "another user's image", yaml: `  kind: blockdev\n  device: ${theirs}\n` },
      ];
    },
  },
  s3: {
    fresh: (dir) => s3Yaml(path.join(dir, 'spool')),
    unsafe: (dir) => spoolCases(dir, s3Yaml),
    server: {
      async start(dir) {
        s3.ceph = await startCeph();
        s3.credentials = path.join(dir, 's3.credentials');
        const { accessKeyId, secretAccessKey } = s3.ceph.credentials;
        fs.writeFileSync(s3.credentials, `[default]\naws_access_key_id = ${accessKeyId}\naws_secret_access_key = ${secretAccessKey}\n`, { mode: 0o600 });
        const client = new S3Client({ endpoint: s3.ceph.endpoint, region: s3.ceph.region, forcePathStyle: true, credentials: s3.ceph.credentials });
        await client.send(new CreateBucketCommand({ Bucket: 'conformance' }));
        client.destroy();
      },
      async stop() {
        await s3.ceph?.stop();
      },
    },
  },
  sftp: {
    fresh: (dir) => sftpYaml(path.join(dir, 'spool')),
    unsafe: (dir) => spoolCases(dir, sftpYaml),
    server: {
      async start() {
        sftp.sshd = await startSshd();
      },
      async stop() {
        await sftp.sshd?.stop();
      },
    },
  },
};
