/**
 * Content hashes of rows (canonical values, see src/core/types.ts): same content ⇒ same hash,
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
import { RecentLists } from './recent-lists.js';

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

/**
 * The sorted order of a row's key list and the JSON of each sorted key (`"name":`), for the key
 * lists seen last: rows of a table mostly come with one or two key orders (that of their schema),
 * usually not sorted; sorting each row's keys and quoting each key anew were most of the hash's
 * garbage.
 */
interface KeyOrder {
  sorted: string[];
  /** JSON.stringify(sorted[i]) + ':' */
  names: string[];
}
const orders = new RecentLists<KeyOrder>(16);

function orderOf(keys: string[]): KeyOrder {
  let o = orders.get(keys);
  if (!o) {
    const sorted = [...keys].sort();
    o = { sorted, names: sorted.map((k) => JSON.stringify(k) + ':') };
    orders.set(keys, o);
  }
  return o;
}

export function canonicalJson(row: Row): string {
  const { sorted, names } = orderOf(Object.keys(row));
  let s = '{';
  let first = true;
  for (let i = 0; i < sorted.length; i++) {
    const v = row[sorted[i]!];
    if (v === undefined) continue;
    s += first ? names[i]! + valueJson(v) : ',' + names[i]! + valueJson(v);
    first = false;
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
