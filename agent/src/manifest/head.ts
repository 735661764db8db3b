/**
 * A witness for the end of the index.  The hash chain shows an entry
 * removed from the middle, but not the newest entry removed together with
 * its capture: what is left is still a valid chain.  So when captures are
 * signed, every append also writes index.head beside the index: the last
 * entry's seq and hash, signed by the same key.  And the agent logs the
 * same seq and hash to its journal with every capture ("capture
 * complete"), outside the destination.
 *
 * What it proves: with the key pinned (`verify --key`), no one without the
 * key can cut the index back below the last signed head and leave a
 * consistent destination.  What it does not: someone who kept an older
 * index.head can put it back after removing newer captures; comparing
 * with a head kept elsewhere (`verify --head SEQ:HASH`, from the journal
 * or a log collector) catches that too.
 */
import * as crypto from 'node:crypto';

import type { IndexEntry } from './index-entry';
import { entryHash, serializeEntry } from './chain';
import { keyId, parsePublicKeyField, publicKeyField } from './sign';

export const HEAD_FILE = 'index.head';

export interface HeadClaim {
  seq: number;
  /** entryHash of entry `seq`'s stored text. */
  head: string;
  id: string;
}

interface SignedHead extends HeadClaim {
  apiVersion: 'physcap.dev/v1';
  kind: 'IndexHead';
  time: string;
  algorithm: 'ed25519';
  keyId: string;
  publicKey: string;
  signature: string;
}

/** The bytes the signature covers: the claim in a fixed field order. */
function signedText(h: Omit<SignedHead, 'signature' | 'publicKey' | 'keyId' | 'algorithm'>): Buffer {
  return Buffer.from(JSON.stringify({ apiVersion: h.apiVersion, kind: h.kind, seq: h.seq, head: h.head, id: h.id, time: h.time }));
}

export function headOf(entry: IndexEntry): HeadClaim {
  return { seq: entry.seq, head: entryHash(serializeEntry(entry)), id: entry.id };
}

export function signHead(entry: IndexEntry, key: crypto.KeyObject, now = new Date()): Buffer {
  const claim = { apiVersion: 'physcap.dev/v1' as const, kind: 'IndexHead' as const, ...headOf(entry), time: now.toISOString() };
  const pub = crypto.createPublicKey(key);
  const out: SignedHead = {
    ...claim,
    algorithm: 'ed25519',
    keyId: keyId(pub),
    publicKey: publicKeyField(pub),
    signature: crypto.sign(null, signedText(claim), key).toString('base64'),
  };
  return Buffer.from(`${JSON.stringify(out, null, 2)}\n`);
}

/** "SEQ:HASH", as the journal's capture lines give it. */
export function parseHeadArg(text: string): HeadClaim | Error {
  const m = /^([1-9][0-9]{0,15}):([0-9a-f]{64})$/.exec(text.trim());
  if (!m) return new Error(`"${text}" is not a head (expected SEQ:SHA256, as logged with each capture)`);
  return { seq: Number(m[1]), head: m[2]!, id: '' };
}

/** Does the index still hold the entry a head vouches for?  The problem, or null. */
export function checkClaim(claim: HeadClaim, entries: readonly IndexEntry[], from: string): string | null {
  const e = entries.find((x) => x.seq === claim.seq);
  const last = entries.reduce((m, x) => Math.max(m, x.seq), 0);
  if (!e)
    return `${from} vouches for entry ${claim.seq}${claim.id ? ` (${claim.id})` : ''}, but the index ends at entry ${last}: newer captures and their index lines were removed`;
  if (headOf(e).head !== claim.head) return `${from} vouches for a different entry ${claim.seq} than the index holds: the index was rewritten`;
  return null;
}

/** Checks index.head: its signature (by the pinned key, if any) and that the index still reaches it. */
export function checkSignedHead(text: Buffer, entries: readonly IndexEntry[], pinned?: crypto.KeyObject): { problem: string | null; claim?: HeadClaim } {
  let h: SignedHead;
  try {
    h = JSON.parse(text.toString('utf8')) as SignedHead;
  } catch {
    return { problem: `${HEAD_FILE} is not valid JSON` };
  }
  if (
    h.kind !== 'IndexHead' ||
    h.algorithm !== 'ed25519' ||
    !Number.isInteger(h.seq) ||
    typeof h.head !== 'string' ||
    typeof h.signature !== 'string' ||
    typeof h.publicKey !== 'string'
  ) {
    return { problem: `${HEAD_FILE}: not a signed index head` };
  }
  const pub = parsePublicKeyField(h.publicKey);
  if (!pub) return { problem: `${HEAD_FILE}: the public key does not parse` };
  if (pinned && keyId(pinned) !== keyId(pub)) return { problem: `${HEAD_FILE} is signed by key ${keyId(pub)}, not by the pinned key` };
  if (!crypto.verify(null, signedText(h), pub, Buffer.from(h.signature, 'base64'))) return { problem: `${HEAD_FILE}: the signature does not match` };
  const claim = { seq: h.seq, head: h.head, id: String(h.id ?? '') };
  return { problem: checkClaim(claim, entries, `${HEAD_FILE} (signed ${h.time})`), claim };
}
