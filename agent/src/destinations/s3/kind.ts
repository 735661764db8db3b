/**
 * The `s3` destination kind: any S3-compatible object store.  A capture
 * lands in the local spool (a dir store, spool.ts) and is then copied to
 * s3://bucket/prefix/<host>/<id>/ (remote/ship.ts).  The profile names
 * where the keys are, never the keys; or, with `credentials: { broker,
 * token_file }`, a credentials broker and this host's token: then the host
 * holds no keys at all (broker-target.ts, broker/server.ts).
 */
import type { DestinationDoc, DestinationKind, RemoteAccess } from '../kind';
import { checkCopySpec, copyOf, CopySpec, openSpool, parseCopySpec } from '../remote/copy-spec';
import { secretFileProblem } from '../remote/secret-file';
import type { RemoteTarget } from '../remote/target';
import { BrokerTarget } from './broker-target';
import { readToken } from './broker/hosts';
import { isLoopback } from './broker/protocol';
import { CredentialSource, loadKeys } from './credentials';
import { parseS3Url, S3Location, s3Url, S3Target } from './target';

export interface S3Spec extends CopySpec {
  kind: 's3';
  where: S3Location;
  endpoint?: string;
  region: string;
  pathStyle: boolean;
  credentials: CredentialSource | BrokerSource;
}

/** A credentials broker's URL and the file with this host's token. */
export interface BrokerSource {
  broker: string;
  tokenFile: string;
}

const isBroker = (c: CredentialSource | BrokerSource): c is BrokerSource => typeof c === 'object' && 'broker' in c;

function credentialsOf(v: unknown): CredentialSource | BrokerSource {
  if (v === 'env' || v === 'chain') return v;
  const o = v as { file?: string; profile?: string; broker?: string; token_file?: string };
  if (o.broker !== undefined) return { broker: o.broker.replace(/\/+$/, ''), tokenFile: o.token_file! };
  return { file: o.file!, profile: o.profile ?? 'default' };
}

/** Whether a broker URL's host is this machine (plain HTTP is refused for any other: the token would cross the network in clear). */
function loopback(url: string): boolean {
  try {
    return isLoopback(new URL(url).hostname);
  } catch {
    return false;
  }
}

function target(spec: Pick<S3Spec, 'where' | 'endpoint' | 'region' | 'pathStyle' | 'credentials'>): RemoteTarget {
  const c = spec.credentials;
  if (isBroker(c)) return new BrokerTarget(spec.where, { broker: c.broker, token: readToken(c.tokenFile) });
  return new S3Target(spec.where, { endpoint: spec.endpoint, region: spec.region, pathStyle: spec.pathStyle, credentials: loadKeys(c) });
}

export const s3Kind: DestinationKind<S3Spec> = {
  kind: 's3',
  schema: 'destinations/s3.schema.json',
  summary: 'an S3-compatible bucket, through a local spool: resumable multipart copies checked against the manifest',
  can: { arm: false, spool: false },

  parse(d: DestinationDoc): S3Spec {
    return {
      kind: 's3',
      where: parseS3Url(String(d.url))!,
      ...(d.endpoint ? { endpoint: String(d.endpoint).replace(/\/$/, '') } : {}),
      region: (d.region as string | undefined) ?? 'us-east-1',
      pathStyle: (d.path_style as boolean | undefined) ?? true,
      credentials: credentialsOf(d.credentials),
      ...parseCopySpec(d),
    };
  },

  check(d, report) {
    checkCopySpec(d, report);
    const c = credentialsOf(d.credentials);
    if (isBroker(c)) {
      const problem = secretFileProblem(c.tokenFile, 'token file');
      if (problem) report('warning', '/credentials/token_file', `the agent will not use this file: ${problem}`);
      if (/^http:/i.test(c.broker) && !loopback(c.broker))
        report('error', '/credentials/broker', 'plain http to another machine would send the token in clear', 'https://..., or http:// to 127.0.0.1 or ::1');
    } else if (typeof c === 'object') {
      const problem = secretFileProblem(c.file, 'credentials file');
      if (problem) report('warning', '/credentials/file', `the agent will not use this file: ${problem}`);
    }
  },

  where: (spec) => spec.spool.path,
  keepInterrupted: (spec) => spec.spool.onInterrupted === 'keep',
  open: (spec) => openSpool(spec),
  // The spool opens as the dir it is; the bucket through remote.targetAt().
  openAt: () => undefined,
  specOf() {
    throw new Error('an s3 destination is written through its spool: import into the spool directory, then `physcap upload`');
  },

  remote: {
    url: (spec) => s3Url(spec.where),
    spool: openSpool,
    target,
    targetAt(location: string, access: RemoteAccess) {
      const where = parseS3Url(location);
      if (!where) return undefined;
      const credentials: CredentialSource = access.credentialsFile
        ? { file: access.credentialsFile, profile: 'default' }
        : process.env.AWS_ACCESS_KEY_ID
          ? 'env'
          : 'chain';
      return target({
        where,
        endpoint: access.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL,
        region: access.region ?? 'us-east-1',
        pathStyle: true,
        credentials,
      });
    },
    copy: copyOf,
  },
};
