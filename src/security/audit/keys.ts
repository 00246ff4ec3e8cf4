/**
 * The checkpoint signing key (Ed25519) named by config `audit.signingKey` / `audit.publicKey`: a
 * file or an environment variable holding PEM (PKCS#8 private, SPKI public) or its base64 DER.
 * A key that is missing or not Ed25519 is a fatal error naming where it was looked for.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AuditConfig } from '../../core/config/schema.js';
import { fatal } from '../../core/errors.js';

type KeyRef = { file?: string; env?: string };

function keyText(ref: KeyRef, what: string, env: NodeJS.ProcessEnv): { text: string; where: string } {
  if (ref.file !== undefined) {
    const where = `${what}.file ${ref.file}`;
    try {
      return { text: readFileSync(ref.file, 'utf8'), where };
    } catch (err) {
      throw fatal('AUDIT_KEY_UNREADABLE', `cannot read the audit key (${where}): ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message}`, err);
    }
  }
  const where = `${what}.env ${ref.env}`;
  const text = env[ref.env!];
  if (!text) throw fatal('AUDIT_KEY_MISSING', `the audit key (${where}): environment variable ${ref.env} is not set`);
  return { text, where };
}

function parse(text: string, kind: 'private' | 'public', where: string): KeyObject {
  let key: KeyObject;
  try {
    const t = text.trim();
    if (t.startsWith('-----BEGIN')) key = kind === 'private' ? createPrivateKey(t) : createPublicKey(t);
    else {
      const der = Buffer.from(t, 'base64');
      key = kind === 'private' ? createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }) : createPublicKey({ key: der, format: 'der', type: 'spki' });
    }
  } catch (err) {
    throw fatal('AUDIT_KEY_INVALID', `the audit key (${where}) is not a ${kind === 'private' ? 'PKCS#8' : 'SPKI'} ${kind} key in PEM or base64 DER: ${(err as Error).message}`, err);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw fatal('AUDIT_KEY_INVALID', `the audit key (${where}) is ${key.asymmetricKeyType}, not Ed25519`);
  return key;
}

export interface AuditKeys {
  privateKey?: KeyObject;
  publicKey?: KeyObject;
}

/** The keys the config names (either may be absent). */
export function loadAuditKeys(c: Pick<AuditConfig, 'signingKey' | 'publicKey'>, env: NodeJS.ProcessEnv = process.env): AuditKeys {
  const out: AuditKeys = {};
  if (c.signingKey) {
    const { text, where } = keyText(c.signingKey, 'audit.signingKey', env);
    out.privateKey = parse(text, 'private', where);
    out.publicKey = createPublicKey(out.privateKey);
  }
  if (c.publicKey) {
    const { text, where } = keyText(c.publicKey, 'audit.publicKey', env);
    const pub = parse(text, 'public', where);
    if (out.publicKey && !out.publicKey.equals(pub)) throw fatal('AUDIT_KEY_MISMATCH', `audit.publicKey (${where}) is not the public half of audit.signingKey`);
    out.publicKey = pub;
  }
  return out;
}

/** A new key pair as PEM (`syncline audit keygen`). */
export function generateAuditKeys(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}
