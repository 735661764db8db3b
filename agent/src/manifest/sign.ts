/**
 * Detached ed25519 signatures of manifest.json (Node's crypto, no extra
 * dependency).  The signature file carries the public key so any copy of
 * the capture can be checked for integrity; pinning the key (`verify
 * --key`) is what proves who signed it.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

export const SIGNATURE_FILE = 'manifest.json.sig';

export interface SignatureFile {
  algorithm: 'ed25519';
  keyId: string;
  /** The public key, SPKI DER, base64. */
  publicKey: string;
  /** The signature of manifest.json's bytes, base64. */
  signature: string;
}

export function keyId(publicKey: crypto.KeyObject): string {
  return crypto
    .createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

export function loadPrivateKey(file: string): crypto.KeyObject {
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`signing key ${file}: ${(err as Error).message}`, { cause: err });
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(pem);
  } catch (err) {
    throw new Error(`signing key ${file}: not a PEM private key (${(err as Error).message})`, { cause: err });
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new Error(`signing key ${file}: an ${key.asymmetricKeyType} key; physcap signs with ed25519 (make one with physcap keygen)`);
  return key;
}

export function loadPublicKey(file: string): crypto.KeyObject {
  const pem = fs.readFileSync(file, 'utf8');
  const key = crypto.createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${file}: an ${key.asymmetricKeyType} key, not ed25519`);
  return key;
}

/** A public key as signed files carry it: SPKI DER, base64. */
export function publicKeyField(pub: crypto.KeyObject): string {
  return pub.export({ type: 'spki', format: 'der' }).toString('base64');
}

/** The public key a signed file carries, or undefined if it does not parse. */
export function parsePublicKeyField(field: string): crypto.KeyObject | undefined {
  try {
    return crypto.createPublicKey({ key: Buffer.from(field, 'base64'), format: 'der', type: 'spki' });
  } catch {
    return undefined;
  }
}

/** The key's id, to put in the manifest before it is signed. */
export function signerId(privateKey: crypto.KeyObject): string {
  return keyId(crypto.createPublicKey(privateKey));
}

export function sign(manifest: Buffer, privateKey: crypto.KeyObject): Buffer {
  const pub = crypto.createPublicKey(privateKey);
  const file: SignatureFile = {
    algorithm: 'ed25519',
    keyId: keyId(pub),
    publicKey: publicKeyField(pub),
    signature: crypto.sign(null, manifest, privateKey).toString('base64'),
  };
  return Buffer.from(`${JSON.stringify(file, null, 2)}\n`);
}

/** Checks a signature file against manifest.json; returns the problem, or null when it holds. */
export function checkSignature(manifest: Buffer, sigFile: Buffer, pinned?: crypto.KeyObject): { problem: string | null; keyId?: string } {
  let s: SignatureFile;
  try {
    s = JSON.parse(sigFile.toString('utf8')) as SignatureFile;
  } catch {
    return { problem: `${SIGNATURE_FILE} is not valid JSON` };
  }
  if (s.algorithm !== 'ed25519' || typeof s.publicKey !== 'string' || typeof s.signature !== 'string') {
    return { problem: `${SIGNATURE_FILE}: unknown algorithm or missing fields` };
  }
  const pub = parsePublicKeyField(s.publicKey);
  if (!pub) return { problem: `${SIGNATURE_FILE}: the public key does not parse` };
  const id = keyId(pub);
  if (id !== s.keyId) return { problem: `${SIGNATURE_FILE}: keyId does not match its public key`, keyId: id };
  if (pinned && keyId(pinned) !== id) return { problem: `signed by key ${id}, not by the pinned key ${keyId(pinned)}`, keyId: id };
  const ok = crypto.verify(null, manifest, pub, Buffer.from(s.signature, 'base64'));
  return { problem: ok ? null : `${SIGNATURE_FILE}: the signature does not match manifest.json`, keyId: id };
}

/** physcap keygen: a new key pair, written exclusively (never over an existing key). */
export function generateKeyPair(privateFile: string, publicFile: string): string {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  fs.writeFileSync(publicFile, publicKey.export({ type: 'spki', format: 'pem' }), { flag: 'wx', mode: 0o644 });
  try {
    fs.writeFileSync(privateFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { flag: 'wx', mode: 0o600 });
  } catch (err) {
    fs.unlinkSync(publicFile);
    throw err;
  }
  return keyId(publicKey);
}
