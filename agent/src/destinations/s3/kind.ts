/**
 * The `s3` destination kind: any S3-compatible object store.  A capture
 * lands in the local spool (a dir store, spool.ts) and is then copied to
 * s3://bucket/prefix/<host>/<id>/ (remote/ship.ts).  The profile names
 * where the keys are, never the keys.
 */
import type { DestinationDoc, DestinationKind, RemoteAccess } from '../kind';
import { checkCopySpec, copyOf, CopySpec, openSpool, parseCopySpec } from '../remote/copy-spec';
import { secretFileProblem } from '../remote/secret-file';
import { CredentialSource, loadKeys } from './credentials';
import { parseS3Url, S3Location, s3Url, S3Target } from './target';

export interface S3Spec extends CopySpec {
  kind: 's3';
  where: S3Location;
  endpoint?: string;
  region: string;
  pathStyle: boolean;
  credentials: CredentialSource;
}

function credentialsOf(v: unknown): CredentialSource {
  if (v === 'env' || v === 'chain') return v;
  const o = v as { file: string; profile?: string };
  return { file: o.file, profile: o.profile ?? 'default' };
}

function target(spec: Pick<S3Spec, 'where' | 'endpoint' | 'region' | 'pathStyle' | 'credentials'>): S3Target {
  return new S3Target(spec.where, { endpoint: spec.endpoint, region: spec.region, pathStyle: spec.pathStyle, credentials: loadKeys(spec.credentials) });
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
    if (typeof c === 'object') {
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
