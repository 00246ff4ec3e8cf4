/**
 * The keyring of field encryption: key ids → 32-byte AES-256 keys, read once at start from the
 * environment (SYNCLINE_ENCRYPTION_KEYS by default) and/or a file, never from the config file itself.
 *
 * Text form (variable or file): entries `<id>=<key>` separated by commas or new lines; `#` starts a
 * comment line. A key is 64 hex digits or base64 (standard or url-safe) of exactly 32 bytes. Ids are
 * 1–32 characters of letters, digits, `_` and `-` (they are written into every ciphertext).
 *
 *   SYNCLINE_ENCRYPTION_KEYS="k2026a=0f1e…(64 hex),k2026b=q83vEjRWeJ…(base64)"
 *
 * One key is active (new values are encrypted under it); every other key still decrypts. The hash
 * key (HMAC of plaintext for delta detection) is a separate choice so that rotating the active key
 * does not change any row hash.
 */
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fatal } from '../../core/errors.js';

export const KEY_ID_RE = /^[A-Za-z0-9_-]{1,32}$/;

export interface KeyringSource {
  /** Environment variable holding entries (default SYNCLINE_ENCRYPTION_KEYS). */
  keysEnv?: string;
  /** File holding entries (read at start). */
  keysFile?: string;
  activeKey: string;
  /** Key whose HKDF-derived subkeys make the row-hash HMACs (default: activeKey). */
  hashKey?: string;
}

export class Keyring {
  private readonly checks = new Map<string, Buffer>();
  constructor(
    private readonly keys: ReadonlyMap<string, Buffer>,
    readonly activeId: string,
    readonly hashId: string,
  ) {
    for (const [id, k] of keys) this.checks.set(id, keyCheck(k));
    if (!keys.has(activeId)) throw fatal('ENCRYPTION_KEY_MISSING', `encryption: active key '${activeId}' is not in the keyring (have: ${[...keys.keys()].join(', ') || 'none'})`);
    if (!keys.has(hashId)) throw fatal('ENCRYPTION_KEY_MISSING', `encryption: hash key '${hashId}' is not in the keyring (have: ${[...keys.keys()].join(', ') || 'none'})`);
  }

  get ids(): string[] {
    return [...this.keys.keys()];
  }

  /** The key of an id; a fatal error naming the id when the keyring lacks it. */
  key(id: string): Buffer {
    const k = this.keys.get(id);
    if (!k) throw fatal('ENCRYPTION_KEY_MISSING', `encryption: key '${id}' is not in the keyring (have: ${this.ids.join(', ')}); a value encrypted under it cannot be decrypted: add the key back (keys stay in the keyring as long as messages written under them are kept)`);
    return k;
  }

  /** 4-byte check value of a key (in every ciphertext: a wrong key is told from a tampered value). */
  check(id: string): Buffer {
    this.key(id);
    return this.checks.get(id)!;
  }
}

/** First 4 bytes of HMAC-SHA256(key, 'syncline key check'): identifies a key without revealing it. */
export function keyCheck(key: Buffer): Buffer {
  return crypto.createHmac('sha256', key).update('syncline key check').digest().subarray(0, 4);
}

/** Parse keyring text (see the module comment); `where` names its origin in errors. */
export function parseKeyring(text: string, where: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const entries = text.split(/[,\n]/).map((s) => s.trim()).filter((s) => s !== '' && !s.startsWith('#'));
  for (const [i, e] of entries.entries()) {
    const eq = e.indexOf('=');
    if (eq <= 0) throw fatal('ENCRYPTION_KEYRING_INVALID', `${where}: entry ${i + 1} is not <id>=<key>`);
    const id = e.slice(0, eq).trim();
    const raw = e.slice(eq + 1).trim();
    if (!KEY_ID_RE.test(id)) throw fatal('ENCRYPTION_KEYRING_INVALID', `${where}: key id '${id}' (entry ${i + 1}) must be 1-32 letters, digits, _ or -`);
    let key: Buffer;
    if (/^[0-9a-fA-F]{64}$/.test(raw)) key = Buffer.from(raw, 'hex');
    else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(raw)) key = Buffer.from(raw.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    else throw fatal('ENCRYPTION_KEYRING_INVALID', `${where}: key '${id}' is neither 64 hex digits nor base64`);
    if (key.length !== 32) throw fatal('ENCRYPTION_KEYRING_INVALID', `${where}: key '${id}' is ${key.length} bytes; AES-256 needs exactly 32 (64 hex digits, or 44 base64 characters)`);
    if (out.has(id)) throw fatal('ENCRYPTION_KEYRING_INVALID', `${where}: key id '${id}' appears twice`);
    out.set(id, key);
  }
  return out;
}

/** The keyring of a config's encryption section, from its variable and/or file. */
export function loadKeyring(src: KeyringSource, env: NodeJS.ProcessEnv = process.env): Keyring {
  const keys = new Map<string, Buffer>();
  const add = (m: Map<string, Buffer>, where: string) => {
    for (const [id, k] of m) {
      if (keys.has(id) && !keys.get(id)!.equals(k)) throw fatal('ENCRYPTION_KEYRING_INVALID', `${where}: key '${id}' differs from the key of the same id given elsewhere`);
      keys.set(id, k);
    }
  };
  const varName = src.keysEnv ?? 'SYNCLINE_ENCRYPTION_KEYS';
  const fromEnv = env[varName];
  if (fromEnv !== undefined && fromEnv.trim() !== '') add(parseKeyring(fromEnv, `environment variable ${varName}`), `environment variable ${varName}`);
  if (src.keysFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(src.keysFile, 'utf8');
    } catch (err) {
      throw fatal('ENCRYPTION_KEYRING_INVALID', `encryption.keysFile ${src.keysFile}: cannot be read (${(err as Error).message})`, err);
    }
    add(parseKeyring(text, `key file ${src.keysFile}`), `key file ${src.keysFile}`);
  }
  if (keys.size === 0) {
    throw fatal('ENCRYPTION_KEYRING_EMPTY', `encryption: no keys: set ${varName} (entries <id>=<64 hex digits or base64 of 32 bytes>, comma-separated)${src.keysFile ? ` or fill ${src.keysFile}` : ' or encryption.keysFile'}`);
  }
  return new Keyring(keys, src.activeKey, src.hashKey ?? src.activeKey);
}
