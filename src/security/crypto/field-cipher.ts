/**
 * Field encryption: one column value ⇄ one ciphertext string (AES-256-GCM), and the keyed HMAC of a
 * value that stands in for it in row hashes.
 *
 * Ciphertext format, version 1 (text, ASCII, safe in any text column, JSON and Avro string):
 *
 *   sl1:<key id>:<base64url( check(4) ‖ nonce(12) ‖ ciphertext(n) ‖ tag(16) )>
 *
 *   check       first 4 bytes of HMAC-SHA256(key, 'syncline key check'): tells "wrong key for this
 *               id" (fatal) from "value moved or altered" (poison); reveals nothing about the key.
 *   nonce       96 bits from crypto.randomBytes, fresh per value.
 *   ciphertext  AES-256-GCM of the plaintext: the value as tagged JSON (src/core/tagged-json.ts),
 *               so bigints, bytes, NaN/±Infinity, arrays and every other canonical value come back
 *               with their type.
 *   tag         the 128-bit GCM tag.
 *   AAD         'sl1' NUL scope (change-topic prefix) NUL schema.table NUL column NUL key id NUL canonicalJson(key row)
 *               (the source's names): a ciphertext copied to another row, column, table or source
 *               database's topics, or relabelled with another key id, fails its tag.
 *
 * The prefix makes later versions possible (sl2: …): decryptors dispatch on it.
 */
import crypto from 'node:crypto';
import type { Row, Value } from '../../core/envelope.js';
import { fatal, poison, SynclineError } from '../../core/errors.js';
import { canonicalJson } from '../../core/hash.js';
import { parseTagged, stringifyTagged } from '../../core/tagged-json.js';
import type { Keyring } from './keyring.js';

export const CIPHER_PREFIX = 'sl1:';
const NONCE = 12;
const TAG = 16;
const CHECK = 4;

/** Where a value belongs: what the AAD binds it to. */
export interface FieldContext {
  /**
   * The change-topic namespace the value was captured into: the pipeline's changeTopicPrefix (else
   * topicPrefix), one per source database. Not the pipeline name: pipelines reading one database
   * share its change topics, and each must decrypt what the other captured.
   */
  scope: string;
  /** Source table, canonical 'schema.table'. */
  table: string;
  /** Source column name. */
  column: string;
  /** The row's key columns and values (source names). */
  key: Row;
}

/** stringifyTagged(v), without the replacer's cost for the common scalars (same text). */
function plainJson(v: Value): string {
  return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v)) ? JSON.stringify(v) : stringifyTagged(v);
}

/** parseTagged(text), without the reviver's cost when the text holds no tag. */
function fromPlainJson(text: string): Value {
  return (text.includes('"$') ? parseTagged(text) : JSON.parse(text)) as Value;
}

export const isCiphertext = (v: unknown): v is string => typeof v === 'string' && v.startsWith(CIPHER_PREFIX);

function aad(ctx: FieldContext, keyId: string): Buffer {
  return Buffer.from(`sl1\0${ctx.scope}\0${ctx.table}\0${ctx.column}\0${keyId}\0${canonicalJson(ctx.key)}`, 'utf8');
}

/** Where a failure is about, without the value: table, column and key. */
export function describeField(ctx: FieldContext): string {
  return `topics ${ctx.scope}, table ${ctx.table}, column ${ctx.column}, key ${canonicalJson(ctx.key)}`;
}

/** Random nonces drawn from a pool refilled by the CSPRNG (one randomFillSync per 4 KiB, not one call per value). */
const pool = Buffer.alloc(NONCE * 341);
let poolAt = pool.length;
function nextNonce(): Buffer {
  if (poolAt + NONCE > pool.length) {
    crypto.randomFillSync(pool);
    poolAt = 0;
  }
  const n = Buffer.from(pool.subarray(poolAt, poolAt + NONCE));
  poolAt += NONCE;
  return n;
}

/** Encrypt one non-null value under the keyring's active key. */
export function encryptValue(ring: Keyring, ctx: FieldContext, value: Value): string {
  const id = ring.activeId;
  const nonce = nextNonce();
  const c = crypto.createCipheriv('aes-256-gcm', ring.key(id), nonce);
  c.setAAD(aad(ctx, id));
  const body = Buffer.concat([c.update(plainJson(value), 'utf8'), c.final()]);
  return CIPHER_PREFIX + id + ':' + Buffer.concat([ring.check(id), nonce, body, c.getAuthTag()]).toString('base64url');
}

/**
 * Decrypt one ciphertext. Errors (never with the value):
 *  - ENCRYPTION_KEY_MISSING (fatal): the key id is not in the keyring;
 *  - ENCRYPTION_KEY_WRONG (fatal): the keyring's key of that id is not the one that encrypted it;
 *  - DECRYPT_FAILED (poison): the tag does not verify: the value was moved to another row, column or
 *    table, or altered; DECRYPT_MALFORMED (poison): not a ciphertext of a known version.
 */
export function decryptValue(ring: Keyring, ctx: FieldContext, token: string): Value {
  if (!token.startsWith(CIPHER_PREFIX)) throw withColumn(poison('DECRYPT_MALFORMED', `encrypted column holds no sl1 ciphertext (${describeField(ctx)})`), ctx);
  const colon = token.indexOf(':', CIPHER_PREFIX.length);
  const id = colon < 0 ? '' : token.slice(CIPHER_PREFIX.length, colon);
  const raw = colon < 0 ? Buffer.alloc(0) : Buffer.from(token.slice(colon + 1), 'base64url');
  if (id === '' || raw.length < CHECK + NONCE + TAG) throw withColumn(poison('DECRYPT_MALFORMED', `malformed ciphertext (${describeField(ctx)})`), ctx);
  const key = ring.key(id);
  if (!raw.subarray(0, CHECK).equals(ring.check(id))) {
    throw fatal('ENCRYPTION_KEY_WRONG', `encryption: key '${id}' in the keyring is not the key this value was encrypted with (its check value differs): restore the original key '${id}' (${describeField(ctx)})`);
  }
  const nonce = raw.subarray(CHECK, CHECK + NONCE);
  const tag = raw.subarray(raw.length - TAG);
  const d = crypto.createDecipheriv('aes-256-gcm', key, nonce);
  d.setAAD(aad(ctx, id));
  d.setAuthTag(tag);
  let text: string;
  try {
    text = Buffer.concat([d.update(raw.subarray(CHECK + NONCE, raw.length - TAG)), d.final()]).toString('utf8');
  } catch (err) {
    throw withColumn(poison('DECRYPT_FAILED', `ciphertext does not belong here: it fails authentication for ${describeField(ctx)} (moved from another row, column or table, or altered)`, err), ctx);
  }
  return fromPlainJson(text);
}

function withColumn(err: SynclineError, ctx: FieldContext): SynclineError {
  err.column = ctx.column;
  return err;
}

/**
 * Keys of the row-hash HMACs: HKDF-SHA256 of the hash key, per pipeline, table and column, so the
 * same plaintext hashes differently in two columns (no equality leaks across them) and equally
 * under any nonce or active key.
 */
export class ValueHasher {
  private readonly keys = new Map<string, Buffer>();
  constructor(private readonly ring: Keyring) {}

  private keyFor(pipeline: string, table: string, column: string): Buffer {
    const id = `${pipeline}\0${table}\0${column}`;
    let k = this.keys.get(id);
    if (!k) {
      k = Buffer.from(crypto.hkdfSync('sha256', this.ring.key(this.ring.hashId), 'syncline row hash v1', id, 32));
      this.keys.set(id, k);
    }
    return k;
  }

  /** 'h1:' + base64url HMAC-SHA256 of the value's tagged JSON. */
  hmac(pipeline: string, table: string, column: string, value: Value): string {
    return 'h1:' + crypto.createHmac('sha256', this.keyFor(pipeline, table, column)).update(plainJson(value)).digest('base64url');
  }
}
