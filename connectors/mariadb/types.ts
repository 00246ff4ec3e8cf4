/**
 * The MariaDB sink's type system, as pure functions: which MariaDB type a source (PostgreSQL) column
 * type becomes (autoCreate/autoEvolve), how a canonical value (src/core/types.ts) is written as an
 * SQL literal, and how a value read back is turned into the same canonical value again, so that a row
 * written and read back hashes the same (conflict detection and state rebuilds compare hashes).
 *
 * The one mapping table is TYPE_MAP below (also in README.md, "Types"). Each target column created by
 * this sink remembers its source type in its comment (`pg:timestamptz`), because several source types
 * share one MariaDB type (timestamp and timestamptz are both DATETIME(6); arrays, json and jsonb are
 * all JSON) and readRows must give back the source's canonical form. A column without such a comment
 * (a table the user created) is read by its MariaDB type (inferKind).
 */
import type { Value } from '../../src/core/envelope.js';
import { canonicalTimestamp } from '../../src/core/types.js';
import { poison } from '../../src/core/errors.js';
import type { ColumnKind } from '../../src/core/types.js';

/** How a column's values are read back into canonical values (the source's ColumnKind, time split out of 'text'). */
export type Kind = Exclude<ColumnKind, 'enum'> | 'time';

export interface ReadType {
  kind: Kind;
  /** Arrays: the element type. */
  items?: ReadType;
}

/** A source type as the changes print it: `varchar(20)`, `numeric(12,2)`, `int8[]`, `public.mood`. */
interface PgType {
  base: string;
  mods: number[];
  array: boolean;
  qualified: boolean;
}

export function parsePgType(t: string): PgType {
  const s = t.trim();
  const array = s.endsWith('[]');
  const noArr = s.replace(/(\[\])+$/, '');
  const m = /^(.*?)\s*\(([\d\s,-]*)\)$/.exec(noArr);
  const base = (m ? m[1]! : noArr).toLowerCase();
  const mods = m ? m[2]!.split(',').map((x) => Number(x.trim())) : [];
  return { base, mods, array, qualified: /^[^(]*\./.test(noArr) };
}

/** MariaDB's DECIMAL limits: 65 digits, scale at most 38. */
const MAX_PRECISION = 65;
const MAX_SCALE = 38;
/** Longest VARCHAR kept as VARCHAR (utf8mb4: 4 bytes a character, 65,535 bytes a row). */
const MAX_VARCHAR = 255;
/** A text key column: InnoDB keys are at most 3,072 bytes, 768 utf8mb4 characters. */
const KEY_VARCHAR = 255;
const MAX_KEY_VARCHAR = 768;

interface Mapping {
  /** Source type names (base, without modifier) this row maps. */
  pg: string[];
  kind: (t: PgType) => Kind;
  /** MariaDB type of a plain column and of a key column (keys need a bounded length). */
  maria: (t: PgType, key: boolean) => string;
}

const same = (k: Kind) => () => k;
const textish = (_t: PgType, key: boolean) => (key ? `VARCHAR(${KEY_VARCHAR})` : 'LONGTEXT');

/**
 * Source type → MariaDB type. Anything not listed (interval, inet, money, timetz, enums, domains,
 * extension types) is kept as its PostgreSQL text form in LONGTEXT (kind 'text').
 */
export const TYPE_MAP: Mapping[] = [
  { pg: ['int2', 'smallint'], kind: same('int'), maria: () => 'SMALLINT' },
  { pg: ['int4', 'integer', 'int'], kind: same('int'), maria: () => 'INT' },
  { pg: ['int8', 'bigint'], kind: same('long'), maria: () => 'BIGINT' },
  {
    pg: ['numeric', 'decimal'],
    kind: (t) => (exactDecimal(t) ? 'decimal' : 'vdecimal'),
    maria: (t) => (exactDecimal(t) ? `DECIMAL(${t.mods[0]},${t.mods[1] ?? 0})` : 'DECIMAL(65,30)'),
  },
  { pg: ['float4', 'real'], kind: same('float'), maria: () => 'FLOAT' },
  { pg: ['float8', 'double precision'], kind: same('double'), maria: () => 'DOUBLE' },
  { pg: ['bool', 'boolean'], kind: same('bool'), maria: () => 'BOOLEAN' },
  {
    // char(n) keeps its blank padding in the canonical value; MariaDB CHAR would strip it on read.
    pg: ['varchar', 'character varying', 'char', 'bpchar', 'character'],
    kind: same('string'),
    maria: (t, key) => {
      const n = t.mods[0];
      if (n === undefined || !Number.isInteger(n) || n < 1) return textish(t, key);
      if (key) return `VARCHAR(${Math.min(n, MAX_KEY_VARCHAR)})`;
      return n <= MAX_VARCHAR ? `VARCHAR(${n})` : 'LONGTEXT';
    },
  },
  { pg: ['text', 'name', 'citext'], kind: same('string'), maria: textish },
  { pg: ['bytea'], kind: same('bytes'), maria: (_t, key) => (key ? `VARBINARY(${KEY_VARCHAR})` : 'LONGBLOB') },
  { pg: ['date'], kind: same('date'), maria: () => 'DATE' },
  { pg: ['time', 'time without time zone'], kind: same('time'), maria: () => 'TIME(6)' },
  { pg: ['timestamp', 'timestamp without time zone'], kind: same('timestamp'), maria: () => 'DATETIME(6)' },
  // DATETIME, not TIMESTAMP: TIMESTAMP ends in 2038. Written and read in UTC.
  { pg: ['timestamptz', 'timestamp with time zone'], kind: same('timestamptz'), maria: () => 'DATETIME(6)' },
  // Not MariaDB's UUID type: it refuses UUIDs whose variant bits are not RFC 4122's, PostgreSQL takes any 128 bits.
  { pg: ['uuid'], kind: same('uuid'), maria: () => 'CHAR(36) CHARACTER SET ascii' },
  { pg: ['json', 'jsonb'], kind: same('json'), maria: (_t, key) => (key ? `VARCHAR(${KEY_VARCHAR})` : 'JSON') },
];

function exactDecimal(t: PgType): boolean {
  const [p, s = 0] = t.mods;
  return p !== undefined && p >= 1 && p <= MAX_PRECISION && s >= 0 && s <= Math.min(p, MAX_SCALE);
}

function mappingOf(t: PgType): Mapping | undefined {
  if (t.qualified) return t.base.endsWith('.citext') ? TYPE_MAP.find((m) => m.pg.includes('citext')) : undefined;
  return TYPE_MAP.find((m) => m.pg.includes(t.base));
}

/** The read type of a source type (`int8[]` → array of long). */
export function readTypeOf(pgType: string): ReadType {
  const t = parsePgType(pgType);
  const m = mappingOf({ ...t, array: false });
  const item: ReadType = { kind: m ? m.kind(t) : 'text' };
  return t.array ? { kind: 'array', items: item } : item;
}

/** The MariaDB column type for a source type (undefined: the change carries none → LONGTEXT). */
export function mariaTypeOf(pgType: string | undefined, key: boolean): string {
  if (pgType === undefined) return key ? `VARCHAR(${KEY_VARCHAR})` : 'LONGTEXT';
  const t = parsePgType(pgType);
  if (t.array) return key ? `VARCHAR(${KEY_VARCHAR})` : 'JSON';
  const m = mappingOf(t);
  return m ? m.maria(t, key) : textish(t, key);
}

/** The read type of a column without a `pg:` comment, by its MariaDB type (information_schema DATA_TYPE, COLUMN_TYPE). */
export function inferKind(dataType: string, columnType: string): ReadType {
  const d = dataType.toLowerCase();
  const c = columnType.toLowerCase();
  switch (d) {
    case 'tinyint':
      return { kind: /^tinyint\(1\)/.test(c) ? 'bool' : 'int' };
    case 'smallint':
    case 'mediumint':
    case 'year':
      return { kind: 'int' };
    case 'int':
      return { kind: c.includes('unsigned') ? 'long' : 'int' };
    case 'bigint':
      return { kind: 'long' };
    case 'decimal':
      return { kind: 'decimal' };
    case 'float':
      return { kind: 'float' };
    case 'double':
      return { kind: 'double' };
    case 'date':
      return { kind: 'date' };
    case 'time':
      return { kind: 'time' };
    case 'datetime':
      return { kind: 'timestamp' };
    case 'timestamp':
      return { kind: 'timestamptz' };
    case 'uuid':
      return { kind: 'uuid' };
    case 'binary':
    case 'varbinary':
    case 'tinyblob':
    case 'blob':
    case 'mediumblob':
    case 'longblob':
      return { kind: 'bytes' };
    default:
      return { kind: 'string' };
  }
}

/** The comment a created column carries: its source type (readTypeOf reads it back). */
export const commentOf = (pgType: string): string => `pg:${pgType}`;
export function pgTypeOfComment(comment: string | null | undefined): string | undefined {
  return comment?.startsWith('pg:') ? comment.slice(3) : undefined;
}

// ---------------------------------------------------------------------------------------------------
// Canonical values → SQL literals

/** A column as the writer needs it: its MariaDB DATA_TYPE and read type. */
export interface ColumnInfo {
  name: string;
  dataType: string;
  read: ReadType;
}

/** A string literal; the sessions run with NO_BACKSLASH_ESCAPES, so only the quote is doubled. */
export function quoteString(s: string): string {
  return "'" + s.replace(/'/g, "''") + "'";
}

const NUMERIC_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
export const TEMPORAL_TYPES = new Set(['datetime', 'timestamp']);
const NUMBER_TYPES = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'bigint', 'decimal', 'float', 'double', 'year']);

function unrepresentable(col: ColumnInfo, v: string, why: string) {
  const e = poison('MARIADB_UNREPRESENTABLE', `column ${col.name}: ${why}: ${v.length > 80 ? v.slice(0, 80) + '…' : v}`);
  e.column = col.name;
  return e;
}

/**
 * The SQL literal that writes canonical value `v` exactly into column `col`. Numbers travel as
 * numeric literals, never quoted: MariaDB compares a quoted string with a BIGINT or DECIMAL key as a
 * double, which loses digits beyond 2^53. Throws a poison error for what MariaDB cannot hold (NaN,
 * infinities, BC dates and timestamps, years above 9999).
 */
export function literal(v: Value | undefined, col: ColumnInfo): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'boolean') return v ? '1' : '0';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw unrepresentable(col, String(v), 'MariaDB has no NaN or infinity');
    return String(v);
  }
  if (Buffer.isBuffer(v)) return v.length === 0 ? "''" : "X'" + v.toString('hex') + "'";
  if (Array.isArray(v)) return quoteString(arrayJson(v, col));
  const d = col.dataType;
  if (TEMPORAL_TYPES.has(d)) return quoteString(mariaTimestamp(v, col));
  if (d === 'date') {
    if (!/^\d{4}-\d\d-\d\d$/.test(v)) throw unrepresentable(col, v, 'MariaDB dates are years 0000-9999, not BC or infinity');
    return quoteString(v);
  }
  if (NUMBER_TYPES.has(d)) {
    if (!NUMERIC_RE.test(v)) throw unrepresentable(col, v, 'not a number MariaDB can hold (NaN and infinities are not)');
    return v;
  }
  return quoteString(v);
}

/** Canonical timestamp (with or without Z, any offset) → 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC for timestamptz). */
export function mariaTimestamp(v: string, col: ColumnInfo): string {
  if (v === 'infinity' || v === '-infinity' || v.endsWith(' BC')) throw unrepresentable(col, v, 'MariaDB has no infinite or BC timestamps');
  const zoned = /(Z|[+-]\d\d(:?\d\d(:?\d\d)?)?)$/.test(v.slice(19));
  let c: string;
  try {
    c = canonicalTimestamp(v, zoned);
  } catch {
    throw unrepresentable(col, v, 'not a timestamp');
  }
  if (!/^\d{4}-/.test(c) || c.length < 26) throw unrepresentable(col, v, 'MariaDB timestamps end at year 9999');
  return c.slice(0, 10) + ' ' + c.slice(11, 26);
}

/** An array as JSON: bigints and decimals as strings (JSON numbers lose digits in readers), bytes as base64. */
export function arrayJson(v: Value[], col: ColumnInfo): string {
  const el = (x: Value): unknown => {
    if (x === null || x === undefined) return null;
    if (Array.isArray(x)) return x.map(el);
    if (typeof x === 'bigint') return x.toString();
    if (Buffer.isBuffer(x)) return x.toString('base64');
    if (typeof x === 'number' && !Number.isFinite(x)) throw unrepresentable(col, String(x), 'JSON has no NaN or infinity');
    return x;
  };
  return JSON.stringify(v.map(el));
}

// ---------------------------------------------------------------------------------------------------
// MariaDB → canonical values

/**
 * The canonical value of a column value read as raw bytes (every column is read as bytes: see the
 * sink's typeCast), by its read type. FLOAT columns must be selected as CAST(... AS DOUBLE), which
 * MariaDB prints exactly (FLOAT text is rounded to 6 digits).
 */
export function fromMaria(raw: Buffer | null, t: ReadType): Value {
  if (raw === null) return null;
  if (t.kind === 'bytes') return Buffer.from(raw);
  const s = raw.toString('utf8');
  switch (t.kind) {
    case 'int':
    case 'double':
      return Number(s);
    case 'float':
      return Math.fround(Number(s));
    case 'long':
      return BigInt(s);
    case 'bool':
      return s !== '0';
    case 'vdecimal':
      return trimFraction(s);
    case 'time':
      return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
    case 'timestamp':
    case 'timestamptz':
      return canonicalFromMaria(s, t.kind === 'timestamptz');
    case 'uuid':
      return s.toLowerCase();
    case 'array':
      return fromJsonArray(JSON.parse(s) as unknown[], t.items ?? { kind: 'text' });
    default:
      return s;
  }
}

/** '1.500' → '1.5', '2.000' → '2' (DECIMAL(65,30) pads unconstrained numerics; README: lossy cases). */
function trimFraction(s: string): string {
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
}

/** 'YYYY-MM-DD HH:MM:SS[.f]' → 'YYYY-MM-DDTHH:MM:SS.ffffff' (+ 'Z'). */
function canonicalFromMaria(s: string, zoned: boolean): string {
  const frac = s.length > 19 ? s.slice(20) : '';
  return s.slice(0, 10) + 'T' + s.slice(11, 19) + '.' + (frac + '000000').slice(0, 6) + (zoned ? 'Z' : '');
}

function fromJsonArray(a: unknown[], item: ReadType): Value[] {
  return a.map((x): Value => {
    if (x === null || x === undefined) return null;
    if (Array.isArray(x)) return fromJsonArray(x, item);
    switch (item.kind) {
      case 'long':
        return BigInt(String(x));
      case 'float':
        return Math.fround(Number(x));
      case 'int':
      case 'double':
        return Number(x);
      case 'bool':
        return x === true;
      case 'bytes':
        return Buffer.from(String(x), 'base64');
      default:
        return typeof x === 'string' ? x : JSON.stringify(x);
    }
  });
}
