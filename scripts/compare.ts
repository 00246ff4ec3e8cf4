/**
 * The demo's source/target comparison (`npm run demo`, scripts/demo.ts), the same for every table
 * whatever system holds its target: PostgreSQL → PostgreSQL and PostgreSQL → MariaDB alike.
 *
 * Each side's rows are read with that side's own client (pg, mysql2) as the text each server prints
 * (no driver parsing: a Date would drop microseconds, a float would round a decimal), each value is
 * brought to its canonical form by canonicalValue below, keyed by the source column's PostgreSQL type
 * (the meaning of a column is the source's: the MariaDB sink keeps it in each column's comment), and
 * each row is hashed as canonical JSON (rowHash of src/core/hash.ts, sorted column names). Per table
 * and side: the row count and a checksum (sha1 of the sorted `key<TAB>row hash` lines); across the
 * sides: the rows that differ (a key on one side only, or the same key with another row hash).
 *
 * Only the source's columns are compared (a target may have more). Not covered, because the demo has
 * none and a comparison would call them different (never equal by accident): multi-dimensional
 * arrays, and `real` (float4) columns on MariaDB, whose FLOAT prints rounded to 6 digits.
 */
import { createHash } from 'node:crypto';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { Row, Value } from '../src/core/envelope.js';
import { canonicalJson, rowHash } from '../src/core/hash.js';

/** Where a side of a table lives: a PostgreSQL database or a MariaDB server (tables `database.table`). */
export type Endpoint =
  | { system: 'postgres'; connection: pg.ClientConfig }
  | { system: 'mariadb'; connection: mysql.ConnectionOptions };

/** One side of a table: its rows, its checksum, and each row's hash by canonical key. */
export interface TableSide {
  rows: number;
  checksum: string;
  hashes: Map<string, string>;
}

/**
 * The canonical value of one column value, given as the text (or bytes) its server printed and the
 * source column's PostgreSQL type name (information_schema `udt_name`: `int4`, `numeric`,
 * `timestamptz`, `_text` for text[] …). The one place where text forms that mean the same value are
 * made equal; anything it does not name stays the text as printed:
 *
 * - booleans: PostgreSQL `t`/`f`, MariaDB `BOOLEAN` (TINYINT(1)) `1`/`0` → true / false
 * - integers and decimals: the digits without a `+`, leading zeros or trailing fractional zeros, and
 *   `-0` as `0`, as a string (never a float): `010.50` and `10.5` are `"10.5"`
 * - float4/float8: the JavaScript number of the text
 * - timestamptz: the instant in UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`; PostgreSQL prints an offset
 *   (`2026-01-01 10:00:00.5+00`), MariaDB's `DATETIME(6)` holds UTC without one
 *   (`2026-01-01 10:00:00.500000`); `timestamp`: the same without the `Z`, no offset applied
 * - time: fractional seconds to six digits (`12:00:00.25` and `12:00:00.250000`)
 * - uuid: lower case
 * - json/jsonb: the parsed document printed with sorted object keys and no blanks (PostgreSQL's
 *   jsonb prints `{"a": 1}`, MariaDB keeps the text the source sent)
 * - bytea: the bytes (PostgreSQL prints `\x…` hex, MariaDB returns the bytes)
 * - one-dimensional arrays: PostgreSQL's `{a,"b c",NULL}` and MariaDB's JSON array alike, each
 *   element canonical by the element type (bytea elements are base64 in MariaDB's JSON)
 * - NULL: null
 */
export function canonicalValue(kind: string, value: string | Buffer | null): Value {
  if (value === null) return null;
  if (Buffer.isBuffer(value)) {
    if (kind === 'bytea') return value;
    value = value.toString('utf8');
  }
  const v = value;
  if (kind.startsWith('_')) return canonicalArray(kind.slice(1), v);
  switch (kind) {
    case 'bool':
      return /^(t|true|1)$/i.test(v) ? true : /^(f|false|0)$/i.test(v) ? false : v;
    case 'int2':
    case 'int4':
    case 'int8':
    case 'oid':
    case 'numeric':
      return decimal(v);
    case 'float4':
    case 'float8':
      return Number(v);
    case 'timestamptz':
      return instant(v, true);
    case 'timestamp':
      return instant(v, false);
    case 'time':
      return clock(v);
    case 'uuid':
      return v.toLowerCase();
    case 'json':
    case 'jsonb':
      return sortedJson(JSON.parse(v));
    case 'bytea':
      return v.startsWith('\\x') ? Buffer.from(v.slice(2), 'hex') : Buffer.from(v, 'utf8');
    default:
      return v;
  }
}

function decimal(v: string): string {
  const m = /^([+-])?(\d*)(?:\.(\d*))?$/.exec(v.trim());
  if (!m || m[2]! + (m[3] ?? '') === '') return v; // NaN, Infinity, …: as printed
  const whole = m[2]!.replace(/^0+/, '') || '0';
  const fraction = (m[3] ?? '').replace(/0+$/, '');
  const digits = fraction ? `${whole}.${fraction}` : whole;
  return m[1] === '-' && digits !== '0' ? `-${digits}` : digits;
}

const two = (n: number) => String(n).padStart(2, '0');

function instant(v: string, utc: boolean): string {
  const m = /^(\d{4,})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?\s*(Z|[+-]\d\d(?::?\d\d)?(?::?\d\d)?)?$/.exec(v.trim());
  if (!m) return v; // infinity, BC dates: as printed
  const fraction = (m[7] ?? '').padEnd(6, '0');
  let t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  if (m[1]!.length === 4 && Number(m[1]) < 100) t = new Date(t).setUTCFullYear(Number(m[1])); // Date.UTC maps years 0–99 to 19xx
  if (utc && m[8] && m[8] !== 'Z') {
    const [hh, mm = '0', ss = '0'] = m[8].slice(1).match(/\d\d/g)!;
    t -= (m[8][0] === '-' ? -1 : 1) * ((Number(hh) * 60 + Number(mm)) * 60 + Number(ss)) * 1000;
  }
  const d = new Date(t);
  const text = `${String(d.getUTCFullYear()).padStart(4, '0')}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}T${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}.${fraction}`;
  return utc ? `${text}Z` : text;
}

function clock(v: string): string {
  const m = /^(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?$/.exec(v.trim());
  return m ? `${m[1]}:${m[2]}:${m[3]}.${(m[4] ?? '').padEnd(6, '0')}` : v;
}

/** JSON with object keys sorted at every level, no blanks. */
function sortedJson(x: unknown): string {
  if (x === null || typeof x !== 'object') return JSON.stringify(x);
  if (Array.isArray(x)) return `[${x.map(sortedJson).join(',')}]`;
  const o = x as Record<string, unknown>;
  return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${sortedJson(o[k])}`).join(',')}}`;
}

function canonicalArray(element: string, v: string): Value {
  if (v.startsWith('[')) {
    // MariaDB: a JSON array (bigints and decimals as JSON strings, bytea as base64).
    return (JSON.parse(v) as unknown[]).map((e): Value => {
      if (e === null) return null;
      if (element === 'json' || element === 'jsonb') return sortedJson(e);
      if (element === 'bytea' && typeof e === 'string') return Buffer.from(e, 'base64');
      return canonicalValue(element, typeof e === 'string' ? e : JSON.stringify(e));
    });
  }
  const items = pgArray(v);
  return items ? items.map((e) => canonicalValue(element, e)) : v;
}

/** The elements of a one-dimensional PostgreSQL array literal (`{a,"b,c",NULL}`); null if it is not one. */
function pgArray(v: string): (string | null)[] | null {
  if (!v.startsWith('{') || v.startsWith('{{') || !v.endsWith('}')) return null;
  if (v === '{}') return [];
  const out: (string | null)[] = [];
  let i = 1;
  while (i < v.length) {
    if (v[i] === '"') {
      let s = '';
      i++;
      while (i < v.length && v[i] !== '"') {
        if (v[i] === '\\') i++;
        s += v[i++];
      }
      i++;
      out.push(s);
    } else {
      const start = i;
      while (i < v.length && v[i] !== ',' && v[i] !== '}') i++;
      const raw = v.slice(start, i);
      out.push(raw === 'NULL' ? null : raw);
    }
    i++; // the ',' or the closing '}'
  }
  return out;
}

/** The source's columns of a table and their PostgreSQL type names, in table order. */
export async function columnKinds(source: pg.ClientConfig, table: string): Promise<Map<string, string>> {
  const [schema, name] = table.split('.') as [string, string];
  const c = new pg.Client(source);
  await c.connect();
  try {
    const r = await c.query(`select column_name, udt_name from information_schema.columns where table_schema = $1 and table_name = $2 order by ordinal_position`, [schema, name]);
    return new Map(r.rows.map((x: { column_name: string; udt_name: string }) => [x.column_name, x.udt_name]));
  } finally {
    await c.end();
  }
}

type RawRow = Record<string, string | Buffer | null>;

/** Every row of `table` (`schema.table`; on MariaDB `database.table`) as printed by its server; [] if the table does not exist (yet). */
async function readAll(at: Endpoint, table: string): Promise<RawRow[]> {
  const [schema, name] = table.split('.') as [string, string];
  if (at.system === 'postgres') {
    // Every value as the server's text: no type parser runs.
    const c = new pg.Client({ ...at.connection, types: { getTypeParser: () => (text: string) => text } as unknown as pg.CustomTypesConfig });
    await c.connect();
    try {
      await c.query(`set time zone 'UTC'`);
      return (await c.query(`select * from ${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(name)}`)).rows as RawRow[];
    } catch (err) {
      if ((err as { code?: string }).code === '42P01') return [];
      throw err;
    } finally {
      await c.end();
    }
  }
  // Every value as the bytes the server sent (text columns are utf8mb4); canonicalValue decodes them.
  const c = await mysql.createConnection({ ...at.connection, typeCast: (field) => field.buffer() });
  try {
    await c.query(`SET time_zone = '+00:00'`);
    const q = (s: string) => '`' + s.replace(/`/g, '``') + '`';
    const [rows] = await c.query(`SELECT * FROM ${q(schema)}.${q(name)}`);
    return rows as RawRow[];
  } catch (err) {
    if ([1146, 1049].includes((err as { errno?: number }).errno ?? 0)) return [];
    throw err;
  } finally {
    await c.end();
  }
}

/** One side of a table: every row canonical (canonicalValue by the source's column types) and hashed. */
export async function tableSide(at: Endpoint, table: string, key: string[], kinds: Map<string, string>): Promise<TableSide> {
  const hashes = new Map<string, string>();
  for (const raw of await readAll(at, table)) {
    const row: Row = {};
    for (const [col, kind] of kinds) if (col in raw) row[col] = canonicalValue(kind, raw[col] ?? null);
    const k = canonicalJson(Object.fromEntries(key.map((c) => [c, row[c] ?? null])));
    hashes.set(k, rowHash(row));
  }
  const lines = [...hashes].map(([k, h]) => `${k}\t${h}`).sort();
  return { rows: hashes.size, checksum: createHash('sha1').update(lines.join('\n')).digest('hex'), hashes };
}

/** Rows that differ between two sides: keys on one side only, and keys whose rows hash differently. */
export function differing(a: TableSide, b: TableSide): number {
  let n = 0;
  for (const [k, h] of a.hashes) if (b.hashes.get(k) !== h) n++;
  for (const k of b.hashes.keys()) if (!a.hashes.has(k)) n++;
  return n;
}
