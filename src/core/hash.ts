/**
 * Content hashes of rows (canonical values, see src/core/pgtypes.ts): same content ⇒ same hash,
 * whatever the key order.
 *
 * canonicalJson is valid JSON. Plain JSON covers null, booleans, finite numbers and strings; the
 * canonical values JSON cannot express are tagged as one-key objects, which are unambiguous because a
 * canonical Value is never an object:
 *   bigint       {"$n":"123"}
 *   Buffer       {"$b":"<base64>"}
 *   NaN/±Inf     {"$f":"NaN"} / {"$f":"Infinity"} / {"$f":"-Infinity"}
 * -0 is written as 0 (the two compare equal in PostgreSQL). Arrays are recursive; object keys are
 * sorted by UTF-16 code unit order.
 */
import crypto from 'node:crypto';
import type { Row, Value } from './envelope.js';

function valueJson(v: Value): string {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (Number.isFinite(v)) return v === 0 ? '0' : JSON.stringify(v);
      return Number.isNaN(v) ? '{"$f":"NaN"}' : v > 0 ? '{"$f":"Infinity"}' : '{"$f":"-Infinity"}';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      return '{"$n":"' + v.toString() + '"}';
  }
  if (Array.isArray(v)) {
    let s = '[';
    for (let i = 0; i < v.length; i++) s += (i ? ',' : '') + valueJson(v[i]);
    return s + ']';
  }
  if (Buffer.isBuffer(v)) return '{"$b":"' + v.toString('base64') + '"}';
  throw new TypeError(`canonicalJson: unsupported value of type ${typeof v}`);
}

function sortedKeys(row: Row): string[] {
  const keys = Object.keys(row);
  // Rows usually arrive with the same key order; skip the sort when already sorted.
  for (let i = 1; i < keys.length; i++) {
    if (keys[i - 1] > keys[i]) return keys.sort();
  }
  return keys;
}

export function canonicalJson(row: Row): string {
  const keys = sortedKeys(row);
  let s = '{';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    const v = row[k];
    if (v === undefined) continue;
    if (s.length > 1) s += ',';
    s += JSON.stringify(k) + ':' + valueJson(v);
  }
  return s + '}';
}

type OneShotHash = (algorithm: string, data: string, encoding: 'hex') => string;
const oneShot: OneShotHash | undefined = (crypto as unknown as { hash?: OneShotHash }).hash;

/** sha1 hex of canonicalJson(row). */
export function rowHash(row: Row): string {
  const json = canonicalJson(row);
  return oneShot ? oneShot('sha1', json, 'hex') : crypto.createHash('sha1').update(json).digest('hex');
}
