/**
 * PostgreSQL's side of the pipeline's type system (src/core/types.ts): column type → `ColumnType`, PostgreSQL TEXT output →
 * canonical `Value`, canonical `Value` → node-postgres parameter. Every conversion is exact; a value that
 * cannot be represented exactly is a poison error, never a silent approximation.
 *
 * Canonical values (the `Value` of src/core/envelope.ts) by kind:
 *   int        number                     (int2, int4)
 *   long       bigint                     (int8)
 *   decimal    string as PostgreSQL printed it, e.g. '12.50', 'NaN'  (numeric(p,s))
 *   vdecimal   string as printed, e.g. '0.000000000000000000000000000001', 'NaN', 'Infinity'  (numeric)
 *   float      number, the exact float4 value (Math.fround of the printed text), NaN/±Infinity/-0 kept
 *   double     number, the exact float8 value, NaN/±Infinity/-0 kept
 *   string     string (text, varchar(n), char(n) with its blank padding, name, citext)
 *   bool       boolean
 *   date       'YYYY-MM-DD', 'YYYY-MM-DD BC', years above 9999 with more digits, 'infinity', '-infinity'
 *   timestamp  'YYYY-MM-DDTHH:MM:SS.ffffff' (always 6 fractional digits), ' BC' suffix, 'infinity', '-infinity'
 *   timestamptz 'YYYY-MM-DDTHH:MM:SS.ffffffZ' in UTC (always 6 digits), ' BC' suffix, 'infinity', '-infinity'
 *   uuid       lower-case string
 *   json       string exactly as printed (json keeps the input text, jsonb PostgreSQL's normal form)
 *   bytes      Buffer
 *   array      Value[] (multi-dimensional arrays as nested Value[]); elements by the item type
 *   enum       string (the label)
 *   text       string: PostgreSQL's text form of any other type (interval, inet, money, time, point,
 *              ranges, composites, …); written back through the type's input function, so it round-trips.
 *
 * The text parser expects the session settings DateStyle=ISO and extra_float_digits>=1 (PostgreSQL 12+
 * then prints the shortest exact representation of floats; 3 also works) and TimeZone=UTC is
 * recommended; timestamptz text with any UTC offset (also LMT offsets like '+00:19:32') is accepted and
 * normalised to UTC. For logical replication set them on the replication connection, e.g.
 * `options: '-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3'`.
 */
import type pg from 'pg';
import type { Value } from '../../src/core/envelope.js';
import { fatal, poison } from '../../src/core/errors.js';
import { canonicalTimestamp, DATE_RE, type ColumnKind, type ColumnType } from '../../src/core/types.js';

export type { ColumnKind, ColumnType };

export interface PgTypeInfo {
  oid: number;
  /** pg_type.typname, e.g. 'int4', '_text', 'mood'. */
  name: string;
  /** b base, c composite, d domain, e enum, p pseudo, r range, m multirange. */
  typtype: string;
  /** pg_type.typelem: element type of an array type (0 otherwise). */
  elemOid: number;
  /** pg_type.typcategory: 'A' array, 'N' numeric, 'S' string, … */
  category: string;
  /** Schema of the type (pg_namespace.nspname). */
  schema: string;
  /** pg_type.typdelim: delimiter between array elements of this type (',' for all but box). */
  delim: string;
  /** Domains: base type and its typmod (0 / -1 otherwise). */
  baseOid: number;
  baseTypmod: number;
}

export class TypeCatalog {
  private types = new Map<number, PgTypeInfo>();

  constructor(types: Iterable<PgTypeInfo> = []) {
    for (const t of types) this.types.set(t.oid, t);
  }

  static async load(client: pg.ClientBase): Promise<TypeCatalog> {
    const c = new TypeCatalog();
    await c.reload(client);
    return c;
  }

  private async reload(client: pg.ClientBase): Promise<void> {
    // Everything as text: works whatever type parsers the client has installed.
    const res = await client.query<string[]>({
      text: `select t.oid::text, t.typname::text, t.typtype::text, t.typelem::text, t.typcategory::text,
                    n.nspname::text, t.typdelim::text, t.typbasetype::text, t.typtypmod::text
               from pg_catalog.pg_type t join pg_catalog.pg_namespace n on n.oid = t.typnamespace`,
      rowMode: 'array',
    } as pg.QueryArrayConfig);
    const types = new Map<number, PgTypeInfo>();
    for (const r of res.rows as unknown as string[][]) {
      const oid = Number(r[0]);
      types.set(oid, {
        oid,
        name: r[1],
        typtype: r[2],
        elemOid: Number(r[3]),
        category: r[4],
        schema: r[5],
        delim: r[6],
        baseOid: Number(r[7]),
        baseTypmod: Number(r[8]),
      });
    }
    this.types = types;
  }

  get(oid: number): PgTypeInfo | undefined {
    return this.types.get(oid);
  }

  has(oid: number): boolean {
    return this.types.has(oid);
  }

  /** Reload the catalog when one of `oids` is unknown (a type created after the last load). */
  async ensure(client: pg.ClientBase, oids: Iterable<number>): Promise<void> {
    for (const oid of oids) {
      if (!this.types.has(oid)) {
        await this.reload(client);
        return;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Column types

/** PostgreSQL reserved key words (cannot be used as an unquoted schema or type name). */
const RESERVED = new Set(
  ('all analyse analyze and any array as asc asymmetric authorization binary both case cast check collate collation ' +
    'column concurrently constraint create cross current_catalog current_date current_role current_schema current_time ' +
    'current_timestamp current_user default deferrable desc distinct do else end except false fetch for foreign freeze ' +
    'from full grant group having ilike in initially inner intersect into is isnull join lateral leading left like limit ' +
    'localtime localtimestamp natural not notnull null offset on only or order outer overlaps placing primary references ' +
    'returning right select session_user similar some symmetric system_user table tablesample then to trailing true union ' +
    'unique user using variadic verbose when where window with').split(' '),
);

export function quoteIdent(name: string): string {
  if (/^[a-z_][a-z0-9_$]*$/.test(name) && !RESERVED.has(name)) return name;
  return '"' + name.replace(/"/g, '""') + '"';
}

const INTERVAL_FIELDS: Record<number, string> = {
  4: 'year',
  2: 'month',
  8: 'day',
  1024: 'hour',
  2048: 'minute',
  4096: 'second',
  6: 'year to month',
  1032: 'day to hour',
  3080: 'day to minute',
  7176: 'day to second',
  3072: 'hour to minute',
  7168: 'hour to second',
  6144: 'minute to second',
};

/** Decode a numeric typmod into precision and scale (scale may be negative or above precision since PG 15). */
export function numericTypmod(typmod: number): { precision: number; scale: number } | null {
  if (typmod < 4) return null;
  const t = typmod - 4;
  return { precision: (t >> 16) & 0xffff, scale: ((t & 0x7ff) ^ 1024) - 1024 };
}

/** SQL name of a (non-array) type with its modifier. */
function sqlTypeName(info: PgTypeInfo, typmod: number): string {
  if (info.schema !== 'pg_catalog') return `${quoteIdent(info.schema)}.${quoteIdent(info.name)}`;
  const name = info.name;
  if (name === 'char') return '"char"';
  if (typmod < 0) return name;
  switch (name) {
    case 'bpchar':
      return `char(${typmod - 4})`;
    case 'varchar':
      return `varchar(${typmod - 4})`;
    case 'numeric': {
      const n = numericTypmod(typmod)!;
      return `numeric(${n.precision},${n.scale})`;
    }
    case 'timestamp':
    case 'timestamptz':
    case 'time':
    case 'timetz':
      return `${name}(${typmod})`;
    case 'bit':
    case 'varbit':
      return `${name}(${typmod})`;
    case 'interval': {
      const precision = typmod & 0xffff;
      const fields = (typmod >> 16) & 0x7fff;
      let s = 'interval';
      if (fields !== 0x7fff && INTERVAL_FIELDS[fields]) s += ' ' + INTERVAL_FIELDS[fields];
      if (precision !== 0xffff) s += `(${precision})`;
      return s;
    }
    default:
      return name;
  }
}

function isArrayType(info: PgTypeInfo): boolean {
  // int2vector and oidvector have category 'A' but print space-separated lists, not array literals.
  return info.category === 'A' && info.elemOid !== 0 && info.name.startsWith('_');
}

/**
 * Map a column (type oid + typmod, as in pgoutput Relation messages or a result's field description)
 * to its ColumnType. Throws fatal PG_TYPE_UNKNOWN when the oid is not in the catalog (call
 * `catalog.ensure(client, oids)` first).
 */
export function columnType(typeOid: number, typeMod: number, catalog: TypeCatalog): ColumnType {
  const info = catalog.get(typeOid);
  if (!info) throw fatal('PG_TYPE_UNKNOWN', `type oid ${typeOid} is not in the type catalog (reload it with TypeCatalog.ensure)`);

  if (info.typtype === 'd') {
    // Domain: values behave as the base type; the column's SQL type is the domain.
    const base = columnType(info.baseOid, info.baseTypmod, catalog);
    return { ...base, pgType: sqlTypeName(info, -1) };
  }

  if (isArrayType(info)) {
    const elem = catalog.get(info.elemOid);
    if (!elem) throw fatal('PG_TYPE_UNKNOWN', `element type oid ${info.elemOid} of ${info.name} is not in the type catalog`);
    const items = columnType(info.elemOid, typeMod, catalog); // an array column's typmod applies to its elements
    const pgType = items.pgType + '[]';
    // Only ',' delimited arrays are parsed (all types but box): others round-trip as text.
    if (elem.delim !== ',') return { kind: 'text', pgType };
    return { kind: 'array', pgType, items };
  }

  if (info.typtype === 'e') return { kind: 'enum', pgType: sqlTypeName(info, -1) };

  const pgType = sqlTypeName(info, typeMod);
  if (info.schema === 'pg_catalog') {
    switch (info.name) {
      case 'int2':
      case 'int4':
        return { kind: 'int', pgType };
      case 'int8':
        return { kind: 'long', pgType };
      case 'numeric': {
        const n = numericTypmod(typeMod);
        // Avro decimals need 0 <= scale <= precision; PG 15 also allows negative scales and scales above
        // the precision, which stay exact as variable-scale decimal strings.
        if (n && n.precision >= 1 && n.scale >= 0 && n.scale <= n.precision) {
          return { kind: 'decimal', pgType, precision: n.precision, scale: n.scale };
        }
        return { kind: 'vdecimal', pgType };
      }
      case 'float4':
        return { kind: 'float', pgType };
      case 'float8':
        return { kind: 'double', pgType };
      case 'text':
      case 'varchar':
      case 'bpchar':
      case 'name':
        return { kind: 'string', pgType };
      case 'bool':
        return { kind: 'bool', pgType };
      case 'date':
        return { kind: 'date', pgType };
      case 'timestamp':
        return { kind: 'timestamp', pgType };
      case 'timestamptz':
        return { kind: 'timestamptz', pgType };
      case 'uuid':
        return { kind: 'uuid', pgType };
      case 'json':
      case 'jsonb':
        return { kind: 'json', pgType };
      case 'bytea':
        return { kind: 'bytes', pgType };
    }
  } else if (info.name === 'citext' && info.typtype === 'b') {
    return { kind: 'string', pgType };
  }
  return { kind: 'text', pgType };
}

// ---------------------------------------------------------------------------------------------------
// Text format → canonical values

function parseBytea(text: string): Buffer {
  if (text.startsWith('\\x')) {
    const hex = text.slice(2);
    if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw poison('BAD_BYTEA', `invalid bytea hex text '${text.slice(0, 40)}'`);
    return Buffer.from(hex, 'hex');
  }
  // bytea_output = escape: printable bytes as is, '\\' for a backslash, '\ooo' octal for the rest.
  const out: number[] = [];
  const raw = Buffer.from(text, 'latin1');
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i];
    if (b !== 0x5c) {
      out.push(b);
    } else if (raw[i + 1] === 0x5c) {
      out.push(0x5c);
      i++;
    } else {
      const oct = text.slice(i + 1, i + 4);
      if (!/^[0-3][0-7]{2}$/.test(oct)) throw poison('BAD_BYTEA', `invalid bytea escape text '${text.slice(0, 40)}'`);
      out.push(parseInt(oct, 8));
      i += 3;
    }
  }
  return Buffer.from(out);
}

function parseFloatText(text: string): number {
  switch (text) {
    case 'NaN':
      return NaN;
    case 'Infinity':
      return Infinity;
    case '-Infinity':
      return -Infinity;
  }
  const n = Number(text);
  if (text.trim() === '' || Number.isNaN(n)) throw poison('BAD_FLOAT', `'${text}' is not a floating point number`);
  return n;
}

const INT_RE = /^[+-]?\d+$/;

/**
 * Parse one value of PostgreSQL's TEXT output format into its canonical value.
 * Throws poison for text that does not fit the column type.
 */
export function parsePgText(text: string | null, t: ColumnType): Value {
  if (text === null) return null;
  switch (t.kind) {
    case 'int': {
      if (!INT_RE.test(text)) throw poison('BAD_INT', `'${text}' is not an integer (${t.pgType})`);
      return Number(text);
    }
    case 'long':
      if (!INT_RE.test(text)) throw poison('BAD_INT', `'${text}' is not an integer (${t.pgType})`);
      return BigInt(text);
    case 'decimal':
    case 'vdecimal':
      return text;
    case 'float':
      return Math.fround(parseFloatText(text));
    case 'double':
      return parseFloatText(text);
    case 'string':
    case 'enum':
    case 'text':
    case 'json':
      return text;
    case 'uuid':
      return text.toLowerCase();
    case 'bool':
      if (text === 't' || text === 'true') return true;
      if (text === 'f' || text === 'false') return false;
      throw poison('BAD_BOOL', `'${text}' is not a boolean`);
    case 'date':
      if (text === 'infinity' || text === '-infinity') return text;
      if (!DATE_RE.test(text)) throw poison('BAD_DATE', `'${text}' is not an ISO date (is DateStyle ISO?)`);
      return text;
    case 'timestamp':
      return canonicalTimestamp(text, false);
    case 'timestamptz':
      return canonicalTimestamp(text, true);
    case 'bytes':
      return parseBytea(text);
    case 'array':
      return parseArrayLiteral(text, t.items ?? { kind: 'text', pgType: 'text' });
  }
}

/** Parse a PostgreSQL array literal ('{1,2,NULL}', '{"a b","q\\"x"}', '{{1,2},{3,4}}', '{}'). */
export function parseArrayLiteral(text: string, item: ColumnType, delim = ','): Value[] {
  if (text[0] !== '{') {
    // '[0:2]={…}': lower bounds other than 1 cannot be represented as a plain list.
    throw poison('PG_ARRAY_BOUNDS', `array '${text.slice(0, 40)}' has non-default bounds, which cannot be represented`);
  }
  let pos = 0;
  const n = text.length;
  const isSpace = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\v' || c === '\f';
  const bad = (why: string) => poison('BAD_ARRAY', `malformed array literal (${why}) at ${pos}: '${text.slice(0, 60)}'`);

  const level = (): Value[] => {
    // text[pos] === '{'
    pos++;
    const out: Value[] = [];
    while (pos < n && isSpace(text[pos])) pos++;
    if (text[pos] === '}') {
      pos++;
      return out;
    }
    for (;;) {
      while (pos < n && isSpace(text[pos])) pos++;
      if (pos >= n) throw bad('unterminated');
      const c = text[pos];
      if (c === '{') {
        out.push(level());
      } else if (c === '"') {
        pos++;
        let s = '';
        let start = pos;
        for (;;) {
          if (pos >= n) throw bad('unterminated quoted element');
          const ch = text[pos];
          if (ch === '"') break;
          if (ch === '\\') {
            s += text.slice(start, pos);
            pos++;
            if (pos >= n) throw bad('dangling backslash');
            s += text[pos];
            pos++;
            start = pos;
          } else {
            pos++;
          }
        }
        s += text.slice(start, pos);
        pos++; // closing quote
        out.push(parsePgText(s, item));
      } else {
        let s = '';
        let hadEscape = false;
        while (pos < n) {
          const ch = text[pos];
          if (ch === delim || ch === '}') break;
          if (ch === '{' || ch === '"') throw bad('unexpected character');
          if (ch === '\\') {
            pos++;
            if (pos >= n) throw bad('dangling backslash');
            s += text[pos++];
            hadEscape = true;
            continue;
          }
          s += ch;
          pos++;
        }
        s = s.replace(/[ \t\n\r\v\f]+$/, '');
        if (s === '') throw bad('empty element');
        out.push(!hadEscape && s.toUpperCase() === 'NULL' ? null : parsePgText(s, item));
      }
      while (pos < n && isSpace(text[pos])) pos++;
      const sep = text[pos];
      if (sep === delim) {
        pos++;
        continue;
      }
      if (sep === '}') {
        pos++;
        return out;
      }
      throw bad('expected delimiter or }');
    }
  };

  const result = level();
  while (pos < n && isSpace(text[pos])) pos++;
  if (pos !== n) throw bad('trailing characters');
  return result;
}

// ---------------------------------------------------------------------------------------------------
// Canonical values → node-postgres parameters

/** Text of a float that reads back into the same float4/float8 (keeps -0, NaN, ±Infinity). */
export function floatText(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  if (v === 0 && 1 / v < 0) return '-0';
  return String(v);
}

function quoteArrayElement(s: string): string {
  return '"' + s.replace(/[\\"]/g, '\\$&') + '"';
}

function elementText(v: Exclude<Value, null | Value[]>, item: ColumnType | undefined): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return floatText(v);
  if (typeof v === 'boolean') return v ? 't' : 'f';
  if (Buffer.isBuffer(v)) return '\\x' + v.toString('hex');
  throw poison('BAD_VALUE', `cannot write ${typeof v} as an element of ${item?.pgType ?? 'an array'}`);
}

/** Build a PostgreSQL array literal; every non-NULL element is quoted and escaped. */
export function arrayLiteral(v: Value[], item?: ColumnType): string {
  let s = '{';
  for (let i = 0; i < v.length; i++) {
    if (i > 0) s += ',';
    const e = v[i];
    if (e === null) s += 'NULL';
    else if (Array.isArray(e)) s += arrayLiteral(e, item);
    else s += quoteArrayElement(elementText(e, item));
  }
  return s + '}';
}

const ARRAY_ESCAPE = /[\\"]/;

/**
 * One column of `rows` (parameters as toPgParamUntyped makes them: strings, booleans, Buffers,
 * null) as the array literal node-postgres would send for it (its arrayString: every element
 * quoted, `\` and `"` escaped, bytea as `\\x…`), without its two regular-expression replaces
 * and conversions per element: the unnest upserts' parameters, a column of a batch each.
 */
export function columnArrayLiteral(rows: unknown[][], col: number): string {
  let s = '{';
  for (let i = 0; i < rows.length; i++) {
    if (i > 0) s += ',';
    const v = rows[i]![col];
    if (v === null || v === undefined) s += 'NULL';
    else if (typeof v === 'string') s += ARRAY_ESCAPE.test(v) ? quoteArrayElement(v) : '"' + v + '"';
    else if (typeof v === 'boolean') s += v ? '"true"' : '"false"';
    else if (Buffer.isBuffer(v)) s += '\\\\x' + v.toString('hex');
    else s += quoteArrayElement(String(v));
  }
  return s + '}';
}

/** The node-postgres parameter that writes `v` back exactly into a column of type `t.pgType`. */
export function toPgParam(v: Value, t: ColumnType): unknown {
  if (v === null || v === undefined) return null;
  switch (t.kind) {
    case 'array':
      if (!Array.isArray(v)) throw poison('BAD_VALUE', `expected an array for ${t.pgType}, got ${typeof v}`);
      return arrayLiteral(v, t.items);
    case 'bytes':
      if (typeof v === 'string') return v; // already text form ('\x..')
      if (!Buffer.isBuffer(v)) throw poison('BAD_VALUE', `expected a Buffer for ${t.pgType}, got ${typeof v}`);
      return v;
    case 'bool':
      if (typeof v === 'boolean') return v;
      return toPgParamUntyped(v);
    case 'int':
      if (typeof v === 'number' && Number.isInteger(v)) return v;
      return toPgParamUntyped(v);
    default:
      return toPgParamUntyped(v);
  }
}

/** Parameter for a value whose column type is not known: the same rules guessed from the JS value. */
export function toPgParamUntyped(v: Value): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return floatText(v);
  if (Buffer.isBuffer(v)) return v;
  if (Array.isArray(v)) return arrayLiteral(v);
  throw poison('BAD_VALUE', `cannot write a value of type ${typeof v} to PostgreSQL`);
}
