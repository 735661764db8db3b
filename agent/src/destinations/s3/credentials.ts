/**
 * Where an S3 destination's keys come from — never the profile itself,
 * which is world-readable configuration: a file only its owner can read
 * (the AWS shared-credentials format, so the same file serves the aws
 * CLI), the environment, or the SDK's own chain (instance roles, SSO).
 */
import * as fs from 'node:fs';

import { secretFileProblem } from '../remote/secret-file';

export type CredentialSource = { file: string; profile: string } | 'env' | 'chain';

export interface Keys {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** The keys of one [profile] section of an AWS shared-credentials file. */
export function parseCredentialsFile(text: string, file: string, profile: string): Keys {
  let section: string | undefined;
  const found = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[\s*(?:profile\s+)?([^\]]+?)\s*\]$/.exec(line);
    if (s) {
      section = s[1];
      continue;
    }
    const kv = /^([A-Za-z_]+)\s*=\s*(.*)$/.exec(line);
    if (kv && section === profile) found.set(kv[1]!.toLowerCase(), kv[2]!.trim());
  }
  const id = found.get('aws_access_key_id');
  const secret = found.get('aws_secret_access_key');
  if (!id || !secret) throw new Error(`${file}: section [${profile}] has no aws_access_key_id and aws_secret_access_key`);
  const token = found.get('aws_session_token');
  return { accessKeyId: id, secretAccessKey: secret, ...(token ? { sessionToken: token } : {}) };
}

/** The keys now; undefined for the SDK's chain.  Throws a message naming the file or the variables. */
export function loadKeys(source: CredentialSource): Keys | undefined {
  if (source === 'chain') return undefined;
  if (source === 'env') {
    const id = process.env.AWS_ACCESS_KEY_ID;
    const secret = process.env.AWS_SECRET_ACCESS_KEY;
    if (!id || !secret) throw new Error('credentials: env: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set');
    return { accessKeyId: id, secretAccessKey: secret, ...(process.env.AWS_SESSION_TOKEN ? { sessionToken: process.env.AWS_SESSION_TOKEN } : {}) };
  }
  const problem = secretFileProblem(source.file, 'credentials file');
  if (problem) throw new Error(`credentials: ${problem}`);
  return parseCredentialsFile(fs.readFileSync(source.file, 'utf8'), source.file, source.profile);
}
