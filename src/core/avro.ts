/**
 * The type system of the pipeline, Avro side: schemas built from column types, the avsc options that make
 * every canonical value (src/core/types.ts) survive Avro exactly, and the envelope's field naming.
 *
 * Decisions (all exact, none lossy):
 *  - long: every plain Avro "long" decodes to a JS bigint (a BigInt-backed avsc long type); on encode
 *    bigints and safe-integer numbers are accepted. This covers int8 columns and the envelope's
 *    ts_ms / tx_id (envelopeToAvro/envelopeFromAvro convert those to/from numbers).
 *  - timestamp (local-timestamp-micros) / timestamptz (timestamp-micros): micros since the epoch, carried
 *    as a bigint underneath (not as a double: micros beyond ±2^53, i.e. before 1685 or after 2255,
 *    would otherwise be rounded or rejected). 'infinity' / '-infinity' are the int64 max / min sentinels
 *    (as PostgreSQL stores them); finite values all fit between them except timestamps after about
 *    294246 AD, which are poison.
 *  - date: days since 1970-01-01 as int; 'infinity' / '-infinity' are the int32 max / min sentinels
 *    (again PostgreSQL's own convention). Every finite PostgreSQL date (4713 BC … 5874897 AD) fits
 *    strictly between them. BC dates use the proleptic Gregorian calendar (as PostgreSQL does).
 *  - decimal(p,s): unscaled two's-complement big-endian bytes; decoded with exactly s fraction digits.
 *    'NaN' (the one special value a numeric(p,s) column can hold; 'Infinity' / '-Infinity' are
 *    accepted too) has no decimal representation. A value column whose table has held one is written
 *    as ["null", decimal, "string"] from then on (valueSchema's `specials`, DecimalOrSpecialType): finite
 *    values in the decimal branch (the same bytes as before, branch index 1), the special ones as the
 *    strings 'NaN', 'Infinity', '-Infinity'; the schema is a BACKWARD-compatible version of the plain one
 *    (see docs/adr/0010-numeric-special-values.md). A plain decimal (every key column, and value columns
 *    that never held one) refuses them: poison AVRO_DECIMAL_NAN. A value with more fraction digits than
 *    the scale (non-zero) or more digits than the precision is poison too. Unconstrained numeric is a
 *    string ("syncline.VariableScaleDecimal"), which carries NaN and ±Infinity as they are.
 *  - float: the canonical value is already the exact float4 value (connectors/postgres/pgtypes.ts parses with Math.fround),
 *    so Avro float round-trips it bit for bit.
 *  - arrays: one-dimensional only ({"type":"array","items":["null",T]}). Multi-dimensional PostgreSQL
 *    arrays cannot be expressed in a fixed Avro schema: envelopeToAvro throws poison (AVRO_MULTIDIM_ARRAY).
 *  - column names must be valid Avro names ([A-Za-z_][A-Za-z0-9_]*). They are NOT rewritten (a rewrite
 *    could collide and would break the column mapping of the targets); a table with such a column
 *    cannot be streamed as Avro and the schema builders throw fatal AVRO_INVALID_NAME naming the table
 *    and the column (exclude the column or rename it).
 *  - pgType: every field carries the attribute "pgType" (the column's SQL type). avsc drops unknown
 *    attributes (a parsed Field keeps only name/type/aliases/doc/order/default, and
 *    type.schema({exportAttrs:true}) exports only logicalType/doc/aliases), so avroOptions' typeHook
 *    records them while parsing: pgTypeOfField(field) works on fields of any type parsed with
 *    avroOptions (e.g. `await registry.getSchema(id)`), columnPgTypes(type) gives the whole map, and
 *    pgTypesFromSchemaJson(text) works on raw schema text.
 */
import avsc from 'avsc';
import type { ChangeEvent, Op, Row, Value } from './envelope.js';
import { fatal, poison } from './errors.js';
import { dateToDays, daysToDate, microsToTimestamp, timestampToMicros, type ColumnType } from './types.js';

// ---------------------------------------------------------------------------------------------------
// Schemas

export interface SchemaNamespace {
  prefix: string;
  schema: string;
  table: string;
}

export interface SchemaColumn {
  name: string;
  type: ColumnType;
}

type AvroSchema = string | AvroSchema[] | { [k: string]: unknown };

const AVRO_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A column name a schema can carry as a field name (others are refused: AVRO_INVALID_NAME). */
export const isAvroName = (name: string): boolean => AVRO_NAME.test(name);

function sanitizeName(part: string): string {
  let s = part.replace(/[^A-Za-z0-9_]/g, '_');
  if (s === '' || /^[0-9]/.test(s)) s = '_' + s;
  return s;
}

/** `<prefix>.<schema>.<table>` with every component made a valid Avro name (invalid characters → '_'). */
export function avroNamespace(ns: SchemaNamespace): string {
  return [...ns.prefix.split('.').filter((p) => p !== ''), ns.schema, ns.table].map(sanitizeName).join('.');
}

/**
 * The special values of numeric as PostgreSQL prints them, which an Avro decimal cannot carry.
 * (numeric(p,s) columns hold only NaN; ±Infinity need unconstrained numeric, PostgreSQL 14+.)
 */
export function isSpecialDecimal(v: unknown): v is 'NaN' | 'Infinity' | '-Infinity' {
  return v === 'NaN' || v === 'Infinity' || v === '-Infinity';
}

/**
 * Avro schema of one column value (non-nullable). `specials`: a decimal (or an array of decimals)
 * that must also carry NaN/±Infinity gets the string branch (see nullable()).
 */
export function avroType(t: ColumnType, specials = false): AvroSchema {
  switch (t.kind) {
    case 'int':
      return 'int';
    case 'long':
      return 'long';
    case 'decimal':
      return { type: 'bytes', logicalType: 'decimal', precision: t.precision, scale: t.scale };
    case 'vdecimal':
      return { type: 'string', 'connect.name': 'syncline.VariableScaleDecimal' };
    case 'float':
      return 'float';
    case 'double':
      return 'double';
    case 'string':
    case 'text':
      return 'string';
    case 'enum':
      return { type: 'string', 'connect.name': 'syncline.Enum' };
    case 'bool':
      return 'boolean';
    case 'date':
      return { type: 'int', logicalType: 'date' };
    case 'timestamp':
      return { type: 'long', logicalType: 'local-timestamp-micros' };
    case 'timestamptz':
      return { type: 'long', logicalType: 'timestamp-micros' };
    case 'uuid':
      return { type: 'string', logicalType: 'uuid' };
    case 'json':
      return { type: 'string', 'connect.name': 'io.debezium.data.Json' };
    case 'bytes':
      return 'bytes';
    case 'array':
      if (!t.items) throw fatal('AVRO_SCHEMA', `array type ${t.pgType} without item type`);
      return { type: 'array', items: nullable(t.items, specials) };
  }
}

/**
 * A nullable value: ["null", T]; for a decimal with `specials`, ["null", decimal, "string"] (null
 * first: the default; the decimal second: its values keep the branch index, hence the bytes, they
 * had in ["null", decimal]).
 */
function nullable(t: ColumnType, specials: boolean): AvroSchema[] {
  const base = avroType(t, specials);
  return specials && t.kind === 'decimal' ? ['null', base, 'string'] : ['null', base];
}

/** The column can carry NaN/±Infinity once given the string branch (a decimal, or an array of them). */
export function canHoldSpecials(t: ColumnType): boolean {
  return t.kind === 'decimal' || (t.kind === 'array' && t.items?.kind === 'decimal');
}

function checkColumnNames(ns: SchemaNamespace, cols: SchemaColumn[]): void {
  for (const c of cols) {
    if (!AVRO_NAME.test(c.name)) {
      throw fatal(
        'AVRO_INVALID_NAME',
        `table ${ns.schema}.${ns.table}: column "${c.name}" is not a valid Avro field name ([A-Za-z_][A-Za-z0-9_]*); ` +
          `rename it or exclude it from the pipeline`,
      );
    }
  }
}

/** Record `Key` of the key columns (fields not nullable). */
export function keySchema(ns: SchemaNamespace, cols: SchemaColumn[]): Record<string, unknown> {
  checkColumnNames(ns, cols);
  return {
    type: 'record',
    name: 'Key',
    namespace: avroNamespace(ns),
    fields: cols.map((c) => ({ name: c.name, type: avroType(c.type), pgType: c.type.pgType })),
  };
}

/**
 * Record `Envelope` {op, source: Source, ts_ms, before, after: ["null", Value], unchanged_toast}.
 * Every column of `Value` is ["null", T] with default null, so adding a column is BACKWARD compatible.
 * Columns in `specials` (decimals that have held NaN/±Infinity) are ["null", decimal, "string"], which
 * reads everything ["null", decimal] wrote: BACKWARD compatible too.
 * `op` and `source` come first so a consumer can read a change's position without decoding its rows
 * (envelopeHead); readers resolve fields by name, so the order is free (earlier versions had the rows first).
 */
export function valueSchema(ns: SchemaNamespace, cols: SchemaColumn[], specials?: ReadonlySet<string>): Record<string, unknown> {
  checkColumnNames(ns, cols);
  return {
    type: 'record',
    name: 'Envelope',
    namespace: avroNamespace(ns),
    fields: [
      { name: 'op', type: 'string' },
      {
        name: 'source',
        type: {
          type: 'record',
          name: 'Source',
          fields: [
            { name: 'connector', type: 'string' },
            { name: 'db', type: 'string' },
            { name: 'schema', type: 'string' },
            { name: 'table', type: 'string' },
            { name: 'lsn', type: 'string' },
            { name: 'commit_lsn', type: 'string' },
            { name: 'tx_id', type: ['null', 'long'], default: null },
            { name: 'ts_ms', type: 'long' },
            { name: 'snapshot', type: 'boolean' },
            { name: 'idx', type: 'int' },
          ],
        },
      },
      { name: 'ts_ms', type: 'long' },
      {
        name: 'before',
        type: [
          'null',
          {
            type: 'record',
            name: 'Value',
            fields: cols.map((c) => ({
              name: c.name,
              type: nullable(c.type, specials?.has(c.name) === true && canHoldSpecials(c.type)),
              default: null,
              pgType: c.type.pgType,
              // Field encryption: the value is an sl1 ciphertext (src/security/crypto/field-cipher.ts) of a value of this source type.
              ...(c.type.encrypted ? { encrypted: { format: 'sl1', pgType: c.type.encrypted.pgType } } : {}),
            })),
          },
        ],
        default: null,
      },
      { name: 'after', type: ['null', 'Value'], default: null },
      { name: 'unchanged_toast', type: { type: 'array', items: 'string' }, default: [] },
    ],
  };
}

/** A change's op and commit position, read from the leading fields of its envelope (see envelopeHead). */
export interface EnvelopeHead {
  op: string;
  commitPos: string;
  idx: number;
}

const headReaders = new WeakMap<avsc.Type, (buf: Buffer, offset: number) => EnvelopeHead>();

/** The Source record of valueSchema(), field by field (the layout envelopeHead reads by hand). */
const SOURCE_LAYOUT = 'connector:string,db:string,schema:string,table:string,lsn:string,commit_lsn:string,tx_id:union,ts_ms:long,snapshot:boolean,idx:int';

/**
 * Read `op` and `source` of an Avro-encoded envelope (body starting at `offset`) without decoding
 * the fields after them: the rows, for envelopes written with this version's field order (older
 * ones, rows first, are decoded up to `source`, which is correct and slower). Throws what the
 * decoder throws for a body that does not match `type`.
 */
export function envelopeHead(type: avsc.Type, buf: Buffer, offset: number): EnvelopeHead {
  return envelopeHeadReader(type)(buf, offset);
}

/** The reader envelopeHead uses for envelopes of `type` (by hand for this version's layout). */
export function envelopeHeadReader(type: avsc.Type): (buf: Buffer, offset: number) => EnvelopeHead {
  let read = headReaders.get(type);
  if (!read) {
    const fields = (type as unknown as { fields?: { name: string; type: avsc.Type }[] }).fields ?? [];
    const opAt = fields.findIndex((f) => f.name === 'op');
    const sourceAt = fields.findIndex((f) => f.name === 'source');
    if (opAt < 0 || sourceAt < 0) throw poison('AVRO_ENVELOPE', `schema ${type.name ?? '(anonymous)'} is not a change envelope (no op or source field)`);
    const sourceFields = (fields[sourceAt]!.type as unknown as { fields?: { name: string; type: { typeName: string } }[] }).fields ?? [];
    // typeName: 'union:unwrapped' for unions, 'abstract:long' for our bigint long.
    const layout = sourceFields.map((f) => `${f.name}:${f.type.typeName.replace(/^union:.*/, 'union').replace(/^abstract:/, '')}`).join(',');
    read = opAt === 0 && sourceAt === 1 && layout === SOURCE_LAYOUT ? readHeadByHand : genericHeadReader(fields, opAt, sourceAt);
    headReaders.set(type, read);
  }
  return read;
}

/** The head of an envelope of this version's layout, read straight from the bytes (nothing else decoded). */
function readHeadByHand(b: Buffer, at: number): EnvelopeHead {
  let pos = at;
  const varint = (): number => {
    if (pos >= b.length) throw poison('DECODE_FAILED', 'envelope truncated in its source');
    let x = b[pos++]!;
    if ((x & 0x80) === 0) return x & 1 ? -((x + 1) >> 1) : x >> 1; // one byte (lengths, idx): zigzag
    let n = x & 0x7f;
    for (let scale = 128; ; scale *= 128) {
      if (pos >= b.length) throw poison('DECODE_FAILED', 'envelope truncated in its source');
      if (scale > 2 ** 63) throw poison('DECODE_FAILED', 'envelope with a malformed varint');
      x = b[pos++]!;
      n += (x & 0x7f) * scale;
      if ((x & 0x80) === 0) break;
    }
    return n % 2 === 1 ? -(n + 1) / 2 : n / 2; // zigzag
  };
  const string = (): string => {
    const len = varint();
    if (len < 0 || pos + len > b.length) throw poison('DECODE_FAILED', 'envelope truncated in its source');
    const s = b.toString('latin1', pos, pos + len);
    pos += len;
    return s;
  };
  const skipString = () => {
    const len = varint();
    if (len < 0 || pos + len > b.length) throw poison('DECODE_FAILED', 'envelope truncated in its source');
    pos += len;
  };
  const op = string();
  for (let i = 0; i < 5; i++) skipString(); // connector, db, schema, table, lsn
  const commitPos = string();
  if (varint() !== 0) varint(); // tx_id: ["null", "long"]
  varint(); // ts_ms
  pos++; // snapshot
  const idx = varint();
  if (pos > b.length) throw poison('DECODE_FAILED', 'envelope truncated in its source');
  return { op, commitPos, idx };
}

function genericHeadReader(fields: { name: string; type: avsc.Type }[], opAt: number, sourceAt: number): (buf: Buffer, offset: number) => EnvelopeHead {
  const leading = fields.slice(0, Math.max(opAt, sourceAt) + 1).map((f) => f.type);
  return (b, at) => {
    let pos = at;
    let op: unknown;
    let source: { commit_lsn?: unknown; idx?: unknown } | undefined;
    for (let i = 0; i < leading.length; i++) {
      const r = leading[i]!.decode(b, pos);
      if (r.offset < 0) throw poison('DECODE_FAILED', `envelope truncated in its field ${fields[i]!.name}`);
      if (i === opAt) op = r.value;
      else if (i === sourceAt) source = r.value as typeof source;
      pos = r.offset;
    }
    if (typeof op !== 'string' || typeof source?.commit_lsn !== 'string' || typeof source.idx !== 'number') {
      throw poison('AVRO_ENVELOPE', 'envelope without op or source position');
    }
    return { op, commitPos: source.commit_lsn, idx: source.idx };
  };
}

// ---------------------------------------------------------------------------------------------------
// avsc types

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

/**
 * The 8 bytes avsc packs a long from. One buffer for every encode: avsc reads it at once (and,
 * for negatives, inverts it in place and back) before toBuffer is called again.
 */
const longScratch = Buffer.alloc(8);

/** Plain Avro long as a JS bigint (accepts safe-integer numbers on encode, written without a bigint). */
const BIGINT_LONG_METHODS = {
  fromBuffer: (buf: Buffer): bigint => buf.readBigInt64LE(0),
  toBuffer: (n: bigint | number): Buffer => {
    if (typeof n === 'bigint') longScratch.writeBigInt64LE(n);
    else {
      longScratch.writeUInt32LE(((n % 0x100000000) + 0x100000000) % 0x100000000, 0);
      longScratch.writeInt32LE(Math.floor(n / 0x100000000), 4);
    }
    return longScratch;
  },
  fromJSON: (v: unknown): bigint => (typeof v === 'bigint' ? v : BigInt(v as number | string)),
  // JSON has no bigint: a number when exact, else its decimal digits (fromJSON reads both back).
  toJSON: (n: bigint | number): number | string => {
    const num = Number(n);
    return Number.isSafeInteger(num) ? num : n.toString();
  },
  isValid: (n: unknown): boolean =>
    (typeof n === 'bigint' && n >= INT64_MIN && n <= INT64_MAX) || (typeof n === 'number' && Number.isSafeInteger(n)),
  compare: (a: bigint | number, b: bigint | number): number => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0),
};

/**
 * Decode of a plain long without avsc's 8-byte buffer per value (its `unpackLongBytes`, a Buffer
 * allocated for every long read: the largest allocation of the processor's decode). Varints of up
 * to 8 bytes whose value is below 2^53 (|n| < 2^52: timestamps in micros, ids, positions) are exact
 * as doubles and read directly; others take avsc's path.
 */
interface AvscTap {
  buf: Buffer;
  pos: number;
}
function readLong(this: { _fromBuffer(b: Buffer): bigint }, tap: AvscTap): bigint | undefined {
  const buf = tap.buf;
  const start = tap.pos;
  let b = buf[start]!;
  let n = b & 0x7f;
  let i = 1;
  for (let scale = 128; b & 0x80 && i < 8; i++, scale *= 128) {
    b = buf[start + i]!;
    n += (b & 0x7f) * scale;
  }
  // Longer, or 8 bytes over 2^53 (the sum of the 7-bit groups is exact below it): avsc's path.
  if (b & 0x80 || n > Number.MAX_SAFE_INTEGER) return readLongBytes.call(this, tap) as bigint | undefined;
  tap.pos = start + i;
  if (tap.pos > buf.length) return undefined;
  // zigzag: even → n / 2, odd → −(n + 1) / 2
  return BigInt(n % 2 === 1 ? -(n + 1) / 2 : n / 2);
}

/**
 * Encode of a plain long without avsc's 8-byte buffer per value (its `_toBuffer` + `packLongBytes`:
 * a bigint written into a buffer, an array of its three parts, ≈ 3 % of capture's CPU and its largest
 * allocation after the row's text): a value within ±2^52, number or bigint, is exact as a double and
 * goes to avsc's own varint writer (tap.writeLong, what plain avsc uses for numbers); others take avsc's path.
 */
const LONG_FAST = 2 ** 52;
const BIG_LONG_FAST = 1n << 52n;
function writeLong(this: { _isValid(v: unknown): boolean }, tap: AvscTap & { writeLong(n: number): void }, val: unknown): void {
  if (typeof val === 'number') {
    if (val > -LONG_FAST && val < LONG_FAST && Number.isInteger(val)) return tap.writeLong(val);
  } else if (typeof val === 'bigint' && val > -BIG_LONG_FAST && val < BIG_LONG_FAST) return tap.writeLong(Number(val));
  writeLongBytes.call(this, tap, val);
}

/**
 * The type: what avsc's LongType.__with builds (its methods under avsc's internal names, frozen),
 * with readLong as its decoder and writeLong as its encoder. __with freezes the instance, so it is built here the same way.
 */
const AbstractLongType = Object.getPrototypeOf(avsc.types.LongType.__with(BIGINT_LONG_METHODS)).constructor as new (noUnpack?: boolean) => Record<string, unknown>;
const readLongBytes = AbstractLongType.prototype._read as (this: unknown, tap: AvscTap) => unknown;
const writeLongBytes = AbstractLongType.prototype._write as (this: unknown, tap: AvscTap, val: unknown) => void;
const BIGINT_LONG = ((): avsc.types.LongType => {
  const t = new AbstractLongType(false);
  const m = BIGINT_LONG_METHODS;
  Object.assign(t, { _toBuffer: m.toBuffer, _fromBuffer: m.fromBuffer, _fromJSON: m.fromJSON, _toJSON: m.toJSON, _isValid: m.isValid, compare: m.compare, _read: readLong, _write: writeLong });
  return Object.freeze(t) as unknown as avsc.types.LongType;
})();

const bigintOnlyHook = (schema: unknown): avsc.Type | undefined =>
  schema === 'long' || (typeof schema === 'object' && schema !== null && (schema as { type?: unknown }).type === 'long')
    ? BIGINT_LONG
    : undefined;

type LogicalSchema = { type: unknown; logicalType: string; precision?: number; scale?: number };

const NOTHING = Symbol('nothing');

/**
 * Our logical types. avsc converts a value twice when it writes it into a union (["null", T]: every
 * nullable column): once to pick the branch (its LogicalType._check calls _toValue) and again to
 * write it. The last conversion is remembered (conversions are pure, values are strings or numbers),
 * so the second is free. A value that does not convert throws from the write, with our message.
 */
abstract class CanonicalType extends avsc.types.LogicalType {
  private lastIn: unknown = NOTHING;
  private lastOut: unknown;

  /** Canonical value → the underlying type's value (throws poison for a bad one). */
  protected abstract toAvro(v: unknown): unknown;

  protected override _toValue(v: unknown): unknown {
    if (v === this.lastIn) return this.lastOut;
    const out = this.toAvro(v);
    this.lastIn = v;
    this.lastOut = out;
    return out;
  }
}

/** decimal: canonical value is the decimal string, Avro value the unscaled two's complement bytes. */
class DecimalType extends CanonicalType {
  readonly precision: number;
  readonly scale: number;
  private readonly fixedSize: number | undefined;

  constructor(schema: LogicalSchema, opts?: unknown) {
    super(schema as never, opts);
    const precision = schema.precision;
    const scale = schema.scale ?? 0;
    if (!Number.isInteger(precision) || precision! < 1 || !Number.isInteger(scale) || scale < 0 || scale > precision!) {
      throw new Error(`invalid decimal precision/scale ${precision}/${scale}`); // avsc falls back to the underlying type
    }
    const u = this.underlyingType as unknown as { typeName: string; size?: number };
    if (u.typeName !== 'bytes' && u.typeName !== 'fixed') throw new Error('decimal must be bytes or fixed');
    this.precision = precision!;
    this.scale = scale;
    this.fixedSize = u.typeName === 'fixed' ? u.size : undefined;
  }

  protected override _fromValue(buf: Buffer): string {
    return formatUnscaled(twosToBigInt(buf), this.scale);
  }

  protected toAvro(v: unknown): Buffer {
    if (typeof v !== 'string') throw poison('AVRO_DECIMAL', `decimal value must be a string, got ${typeof v}`);
    return decimalBytes(v, this.scale, this.precision, this.fixedSize);
  }

  protected override _resolve(type: avsc.Type): ((v: unknown) => unknown) | undefined {
    if (type instanceof DecimalType) {
      if (type.scale === this.scale) return (v) => v;
      return (v) => formatUnscaled(parseUnscaled(v as string, this.scale, Infinity), this.scale);
    }
    const name = (type as unknown as { typeName: string }).typeName;
    if (name === 'bytes' || name === 'fixed') return (v) => this._fromValue(v as Buffer);
    return undefined;
  }

  protected override _export(attrs: avsc.Schema): void {
    const a = attrs as unknown as Record<string, unknown>;
    a.precision = this.precision;
    a.scale = this.scale;
  }
}

/**
 * ["null", decimal, "string"]: a numeric column that also carries NaN/±Infinity. avsc's own unwrapped
 * union cannot write it (a finite decimal string matches both the string and the decimal branch:
 * "ambiguous conversion"), so the branch is picked here: null → "null", 'NaN' / 'Infinity' /
 * '-Infinity' → "string", anything else → the decimal (whose write refuses a bad value with its own
 * message). Reading is avsc's: the branch index, then the branch. No allocation, one typeof and at
 * most a few character compares per value. Built by typeHook for exactly this shape of union.
 */
const UnwrappedUnion = avsc.types.UnwrappedUnionType as unknown as new (schema: unknown, opts: unknown) => avsc.Type;
interface UnionInternals {
  /** avsc's branch index per value bucket ('null', 'string', …); set before the instance is frozen. */
  _bucketIndices: Record<string, number | undefined>;
  /** avsc's logical-type branches (here: the decimal). */
  _dynamicBranches: { index: number; type: avsc.Type }[] | null;
}
class DecimalOrSpecialType extends UnwrappedUnion {
  // avsc freezes the instance in its constructor: no fields of our own, the indices are avsc's.
  _getIndex(v: unknown): number | undefined {
    const self = this as unknown as UnionInternals;
    if (v === null) return self._bucketIndices.null;
    if (typeof v === 'string' && isSpecialDecimal(v)) return self._bucketIndices.string;
    return self._dynamicBranches![0]!.index;
  }
}

/** A union schema ["null"?, decimal bytes, "string"] (in any order), which DecimalOrSpecialType writes. */
function isDecimalOrSpecialSchema(schema: unknown): schema is unknown[] {
  if (!Array.isArray(schema) || schema.length < 2 || schema.length > 3) return false;
  let nulls = 0;
  let decimals = 0;
  let strings = 0;
  for (const b of schema) {
    const o = (typeof b === 'object' && b !== null ? b : { type: b }) as { type?: unknown; logicalType?: unknown };
    if (o.type === 'null') nulls++;
    else if (o.type === 'string' && o.logicalType === undefined) strings++;
    else if (o.type === 'bytes' && o.logicalType === 'decimal') decimals++;
    else return false;
  }
  return nulls <= 1 && decimals === 1 && strings === 1;
}

/** The union type of a ["null", decimal, "string"] schema (undefined: leave it to avsc). */
function decimalOrSpecialType(schema: unknown[], opts: object): avsc.Type | undefined {
  const types = schema.map((b) => avsc.Type.forSchema(b as never, opts as never));
  // An invalid precision/scale makes avsc fall back to plain bytes: then the union is not ours.
  if (!types.some((t) => t instanceof DecimalType)) return undefined;
  return new DecimalOrSpecialType(types, opts);
}

/** The column type (a field's type) carries NaN/±Infinity: ["null", decimal, "string"], or an array of it. */
function holdsSpecials(type: avsc.Type): boolean {
  if (type instanceof DecimalOrSpecialType) return true;
  const t = type as unknown as { types?: avsc.Type[]; itemsType?: avsc.Type };
  if (t.itemsType) return holdsSpecials(t.itemsType);
  return t.types?.some((b) => (b as unknown as { itemsType?: avsc.Type }).itemsType !== undefined && holdsSpecials(b)) ?? false;
}

/**
 * Columns of a parsed Envelope (or Value record) type written with the string branch for NaN/±Infinity:
 * capture keeps them so (a column never goes back to the plain decimal; see Capture.setColumns).
 */
export function specialDecimalColumns(type: avsc.Type): Set<string> {
  let rec = recordOf(type);
  const after = rec?.fields.find((f) => f.name === 'after');
  if (after && rec?.fields.some((f) => f.name === 'source')) rec = recordOf(after.type);
  const out = new Set<string>();
  for (const f of rec?.fields ?? []) if (holdsSpecials(f.type)) out.add(f.name);
  return out;
}

/** A decimal's Avro bytes: the unscaled value in two's complement (decimals of up to 15 digits without a bigint). */
export function decimalBytes(v: string, scale: number, precision: number, fixedSize?: number): Buffer {
  if (fixedSize === undefined) {
    const small = smallUnscaled(v, scale, precision);
    if (small !== undefined) return smallToTwos(small);
  }
  return bigIntToTwos(parseUnscaled(v, scale, precision), fixedSize);
}

const SMALL_DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

/**
 * The unscaled value of a decimal of at most 15 digits as an exact number (what parseUnscaled
 * gives, without a bigint), or undefined for anything else (parseUnscaled decides, or refuses it).
 */
function smallUnscaled(v: string, scale: number, precision: number): number | undefined {
  const m = SMALL_DECIMAL.exec(v);
  if (!m) return undefined;
  const frac = m[3] ?? '';
  if (frac.length > scale) return undefined;
  const digits = (m[2]! + frac.padEnd(scale, '0')).replace(/^0+(?=\d)/, '');
  if (digits.length > 15 || (digits !== '0' && digits.length > precision)) return undefined;
  const n = Number(digits);
  return m[1] === '-' ? -n : n;
}

/** bigIntToTwos for |n| < 2^53: the shortest big-endian two's complement. */
function smallToTwos(n: number): Buffer {
  const neg = n < 0;
  let m = neg ? -n - 1 : n; // -n = ~(n - 1): the bytes of |n| - 1, inverted
  let bytes = 1;
  while (m >= 2 ** (8 * bytes - 1)) bytes++;
  const out = Buffer.allocUnsafe(bytes);
  for (let i = bytes - 1; i >= 0; i--) {
    const b = m % 256;
    out[i] = neg ? 255 - b : b;
    m = Math.floor(m / 256);
  }
  return out;
}

/** Avro decimals cannot carry NaN: poison. */
function parseUnscaled(v: string, scale: number, precision: number): bigint {
  const m = /^([+-])?(\d*)(?:\.(\d*))?$/.exec(v);
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) {
    if (/^[+-]?(NaN|Infinity)$/i.test(v)) {
      throw poison('AVRO_DECIMAL_NAN', `decimal value '${v}' cannot be represented in an Avro decimal`);
    }
    throw poison('AVRO_DECIMAL', `'${v}' is not a decimal number`);
  }
  let frac = m[3] ?? '';
  if (frac.length > scale) {
    if (/[^0]/.test(frac.slice(scale))) {
      throw poison('AVRO_DECIMAL', `decimal value '${v}' has more than ${scale} fraction digits`);
    }
    frac = frac.slice(0, scale);
  }
  frac = frac.padEnd(scale, '0');
  const digits = ((m[2] || '0') + frac).replace(/^0+(?=\d)/, '');
  if (digits !== '0' && digits.length > precision) {
    throw poison('AVRO_DECIMAL', `decimal value '${v}' exceeds precision ${precision}`);
  }
  const u = BigInt(digits);
  return m[1] === '-' ? -u : u;
}

function formatUnscaled(u: bigint, scale: number): string {
  const neg = u < 0n;
  let digits = (neg ? -u : u).toString();
  if (scale > 0) {
    digits = digits.padStart(scale + 1, '0');
    digits = digits.slice(0, digits.length - scale) + '.' + digits.slice(digits.length - scale);
  }
  return neg ? '-' + digits : digits;
}

function bigIntToTwos(n: bigint, fixedSize?: number): Buffer {
  const magnitudeBits = (n < 0n ? -n - 1n : n).toString(2).length; // '0' has length 1
  let bytes = Math.ceil((magnitudeBits + 1) / 8);
  if (fixedSize !== undefined) {
    if (bytes > fixedSize) throw poison('AVRO_DECIMAL', `decimal value does not fit in ${fixedSize} bytes`);
    bytes = fixedSize;
  }
  const v = n < 0n ? (1n << BigInt(bytes * 8)) + n : n;
  return Buffer.from(v.toString(16).padStart(bytes * 2, '0'), 'hex');
}

function twosToBigInt(buf: Buffer): bigint {
  if (buf.length === 0) return 0n;
  const v = BigInt('0x' + buf.toString('hex'));
  return buf[0] & 0x80 ? v - (1n << BigInt(buf.length * 8)) : v;
}

/** date: 'YYYY-MM-DD' ↔ days since 1970-01-01; 'infinity'/'-infinity' ↔ int32 max/min. */
class DateType extends CanonicalType {
  constructor(schema: LogicalSchema, opts?: unknown) {
    super(schema as never, opts);
    if ((this.underlyingType as unknown as { typeName: string }).typeName !== 'int') throw new Error('date must be an int');
  }

  protected override _fromValue(days: number): string {
    if (days === INT32_MAX) return 'infinity';
    if (days === INT32_MIN) return '-infinity';
    return daysToDate(days);
  }

  protected toAvro(v: unknown): number {
    if (v === 'infinity') return INT32_MAX;
    if (v === '-infinity') return INT32_MIN;
    if (typeof v !== 'string') throw poison('AVRO_DATE', `date value must be a string, got ${typeof v}`);
    const days = dateToDays(v);
    if (days <= INT32_MIN || days >= INT32_MAX) throw poison('AVRO_DATE', `date '${v}' is out of range`);
    return days;
  }

  protected override _resolve(type: avsc.Type): ((v: unknown) => unknown) | undefined {
    if (type instanceof DateType) return (v) => v;
    if ((type as unknown as { typeName: string }).typeName === 'int') return (v) => this._fromValue(v as number);
    return undefined;
  }
}

/** timestamp-micros / local-timestamp-micros: canonical string ↔ micros (bigint underneath). */
class TimestampMicrosType extends CanonicalType {
  readonly withZone: boolean;

  constructor(schema: LogicalSchema, opts?: object) {
    // The underlying long must be the bigint long: micros do not all fit in a double.
    super(schema as never, { ...(opts ?? {}), typeHook: bigintOnlyHook });
    if (this.underlyingType !== BIGINT_LONG) throw new Error(`${schema.logicalType} must be a long`);
    this.withZone = schema.logicalType === 'timestamp-micros';
  }

  protected override _fromValue(us: bigint): string {
    if (us === INT64_MAX) return 'infinity';
    if (us === INT64_MIN) return '-infinity';
    return microsToTimestamp(us, this.withZone);
  }

  protected toAvro(v: unknown): bigint {
    if (v === 'infinity') return INT64_MAX;
    if (v === '-infinity') return INT64_MIN;
    if (typeof v !== 'string') throw poison('AVRO_TIMESTAMP', `timestamp value must be a string, got ${typeof v}`);
    const us = timestampToMicros(v, this.withZone);
    if (us <= INT64_MIN || us >= INT64_MAX) throw poison('AVRO_TIMESTAMP', `timestamp '${v}' is out of the range of micros since 1970 in 64 bits`);
    return us;
  }

  protected override _resolve(type: avsc.Type): ((v: unknown) => unknown) | undefined {
    if (type instanceof TimestampMicrosType) {
      if (type.withZone === this.withZone) return (v) => v;
      return (v) => this._fromValue(type._toValue(v) as bigint);
    }
    const name = (type as unknown as { typeName: string }).typeName;
    if (name === 'long' || name === 'abstract:long' || name === 'int') return (v) => this._fromValue(BigInt(v as number | bigint));
    return undefined;
  }
}

// --- pgType attribute retention ------------------------------------------------------------------

const FIELD_PG_TYPES = new WeakMap<object, string>();
/** Field encryption: the source's own SQL type of an encrypted field (its "encrypted": {pgType} attribute). */
const FIELD_PLAIN_PG_TYPES = new WeakMap<object, string>();
const RECORDS_IN_PROGRESS = new WeakSet<object>();

interface RawRecordSchema {
  type: 'record' | 'error';
  fields: { name: string; pgType?: unknown; encrypted?: { pgType?: unknown } }[];
  logicalType?: unknown;
}

/** A record with a field (column) named `__proto__`: see keepProtoField. */
function hasProtoField(schema: unknown): schema is RawRecordSchema {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return false;
  const s = schema as Partial<RawRecordSchema>;
  return (s.type === 'record' || s.type === 'error') && s.logicalType === undefined && Array.isArray(s.fields) && s.fields.some((f) => f && f.name === '__proto__');
}

/**
 * avsc's generated record constructor assigns each field (`this.__proto__ = v`): for a field named
 * `__proto__` that sets the object's prototype (a string is ignored) and the column's value is lost.
 * An accessor on the record class's prototype turns that assignment into an own data property, as
 * every other field is (spreads, JSON and Object.keys then see the column).
 */
function keepProtoField(type: avsc.Type): void {
  const proto = (type as unknown as { recordConstructor: { prototype: object } }).recordConstructor.prototype;
  Object.defineProperty(proto, '__proto__', {
    configurable: true,
    get(): unknown {
      return undefined;
    },
    set(this: object, v: unknown) {
      Object.defineProperty(this, '__proto__', { value: v, writable: true, enumerable: true, configurable: true });
    },
  });
}

function isRecordWithPgTypes(schema: unknown): schema is RawRecordSchema {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return false;
  const s = schema as Partial<RawRecordSchema>;
  return (
    (s.type === 'record' || s.type === 'error') &&
    s.logicalType === undefined &&
    Array.isArray(s.fields) &&
    s.fields.some((f) => f && typeof f.pgType === 'string')
  );
}

const LOGICAL_TYPES: Record<string, new (schema: never, opts?: never) => avsc.types.LogicalType> = {
  decimal: DecimalType as never,
  date: DateType as never,
  'timestamp-micros': TimestampMicrosType as never,
  'local-timestamp-micros': TimestampMicrosType as never,
};

function typeHook(schema: unknown, opts: object): avsc.Type | undefined {
  if (schema === 'long') return BIGINT_LONG;
  if (Array.isArray(schema)) return isDecimalOrSpecialSchema(schema) ? decimalOrSpecialType(schema, opts) : undefined;
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return undefined;
  const s = schema as { type?: unknown; logicalType?: unknown };
  if (s.type === 'long') {
    // Logical longs we implement get their own (bigint) underlying type; any other long is a bigint.
    if (typeof s.logicalType === 'string' && Object.hasOwn(LOGICAL_TYPES, s.logicalType)) return undefined;
    return BIGINT_LONG;
  }
  const hooked = isRecordWithPgTypes(schema) || hasProtoField(schema);
  if (hooked && !RECORDS_IN_PROGRESS.has(schema)) {
    // Build the record ourselves (same options: same registry and namespace) to learn its Field objects.
    RECORDS_IN_PROGRESS.add(schema);
    let type: avsc.Type;
    try {
      type = avsc.Type.forSchema(schema as never, opts as never);
    } finally {
      RECORDS_IN_PROGRESS.delete(schema);
    }
    const fields = (type as avsc.types.RecordType).fields as unknown as { name: string }[];
    if (fields.some((f) => f.name === '__proto__')) keepProtoField(type);
    for (const f of fields) {
      const raw = schema.fields.find((r) => r && r.name === f.name);
      if (raw && typeof raw.pgType === 'string') FIELD_PG_TYPES.set(f, raw.pgType);
      if (raw && typeof raw.encrypted?.pgType === 'string') FIELD_PLAIN_PG_TYPES.set(f, raw.encrypted.pgType);
    }
    return type;
  }
  return undefined;
}

/**
 * avsc forSchema options for the schema registry client:
 * `new SchemaRegistry({ host }, { forSchemaOptions: avroOptions })`. No shared `registry` (named types of
 * different schemas would clash); the client spreads these options for every schema it parses.
 */
export const avroOptions: Partial<avsc.ForSchemaOptions> = {
  logicalTypes: LOGICAL_TYPES as never,
  typeHook: typeHook as never,
};

/** Parse a schema (object or JSON text) with avroOptions. */
export function parseSchema(schema: object | string): avsc.Type {
  return avsc.Type.forSchema((typeof schema === 'string' ? JSON.parse(schema) : schema) as never, { ...avroOptions } as never);
}

/**
 * The "pgType" attribute of a record field: works for fields of types parsed with avroOptions
 * (`type.fields[i]`) and for raw schema JSON field objects. undefined when the field has none.
 */
export function pgTypeOfField(field: object): string | undefined {
  const known = FIELD_PG_TYPES.get(field);
  if (known !== undefined) return known;
  const raw = (field as { pgType?: unknown }).pgType;
  return typeof raw === 'string' ? raw : undefined;
}

function recordOf(type: avsc.Type): avsc.types.RecordType | undefined {
  const t = type as unknown as { typeName: string; types?: avsc.Type[] };
  if (t.typeName === 'record' || t.typeName === 'error') return type as avsc.types.RecordType;
  if (t.types) for (const b of t.types) if ((b as unknown as { typeName: string }).typeName === 'record') return b as avsc.types.RecordType;
  return undefined;
}

/**
 * column → pgType of a parsed Key or Envelope type (for an Envelope: the columns of its Value record).
 * Columns without the attribute are left out.
 */
export function columnPgTypes(type: avsc.Type): Map<string, string> {
  let rec = recordOf(type);
  const after = rec?.fields.find((f) => f.name === 'after');
  if (after && rec?.fields.some((f) => f.name === 'source')) rec = recordOf(after.type);
  const out = new Map<string, string>();
  for (const f of rec?.fields ?? []) {
    const p = pgTypeOfField(f);
    if (p !== undefined) out.set(f.name, p);
  }
  return out;
}

/**
 * Field encryption: column → the source's own SQL type, for the encrypted columns of a parsed
 * Envelope type (their "pgType" is text: they carry ciphertexts). Empty when none is encrypted.
 */
export function encryptedColumnPgTypes(type: avsc.Type): Map<string, string> {
  let rec = recordOf(type);
  const after = rec?.fields.find((f) => f.name === 'after');
  if (after && rec?.fields.some((f) => f.name === 'source')) rec = recordOf(after.type);
  const out = new Map<string, string>();
  for (const f of rec?.fields ?? []) {
    const p = FIELD_PLAIN_PG_TYPES.get(f);
    if (p !== undefined) out.set(f.name, p);
  }
  return out;
}

/** column → pgType from raw schema text (Key or Envelope; for an Envelope the Value record's columns). */
export function pgTypesFromSchemaJson(rawSchemaJson: string): Map<string, string> {
  const s = JSON.parse(rawSchemaJson) as { fields?: { name: string; type: unknown; pgType?: unknown }[] };
  let fields = s.fields ?? [];
  const after = fields.find((f) => f.name === 'before' || f.name === 'after');
  if (after && fields.some((f) => f.name === 'source')) {
    const before = fields.find((f) => f.name === 'before');
    const branches = Array.isArray(before?.type) ? before!.type : [before?.type];
    const rec = branches.find((b) => typeof b === 'object' && b !== null && (b as { type?: unknown }).type === 'record') as
      | { fields: typeof fields }
      | undefined;
    fields = rec?.fields ?? [];
  }
  const out = new Map<string, string>();
  for (const f of fields) if (typeof f.pgType === 'string') out.set(f.name, f.pgType);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Envelope

export interface AvroSource {
  connector: string;
  db: string;
  schema: string;
  table: string;
  lsn: string;
  commit_lsn: string;
  /** Avro longs: bigint when decoded; capture encodes the numbers it has (exact: safe integers). */
  tx_id: bigint | number | null;
  ts_ms: bigint | number;
  snapshot: boolean;
  idx: number;
}

export interface AvroEnvelope {
  before: Row | null;
  after: Row | null;
  op: string;
  source: AvroSource;
  ts_ms: bigint | number;
  unchanged_toast: string[];
}

function hasNestedArray(v: Value[]): boolean {
  for (const e of v) if (Array.isArray(e)) return true;
  return false;
}

/**
 * Whether a table has a column named like a property every object inherits (`constructor`,
 * `toString`, `__proto__`…): the Avro writer reads each field of a row by name, so a column absent
 * from a row (a delete's key-only before image) would read the inherited value, and a column named
 * `__proto__` is only an own property of rows that were built for it. Rows of such tables are
 * written from a copy without a prototype (envelopeToAvro's `ownRows`). Cached per column list.
 */
export function hasInheritedNames(columns: readonly { name: string }[]): boolean {
  let v = INHERITED_NAMES.get(columns);
  if (v === undefined) INHERITED_NAMES.set(columns, (v = columns.some((c) => c.name in Object.prototype)));
  return v;
}
const INHERITED_NAMES = new WeakMap<readonly { name: string }[], boolean>();

/** The row's own columns in an object without a prototype (nothing inherited to read; `__proto__` a plain key). */
function ownRow(row: Row): Row {
  const out = Object.create(null) as Row;
  for (const k of Object.keys(row)) out[k] = row[k]!;
  return out;
}

/** Check a row for values Avro cannot carry (multi-dimensional arrays); returns the row itself (`own`: its prototype-less copy). */
export function rowToAvro(row: Row, source?: { schema: string; table: string }, own = false): Row {
  if (own) row = ownRow(row);
  for (const k in row) {
    const v = row[k];
    if (Array.isArray(v) && hasNestedArray(v)) {
      const where = source ? `${source.schema}.${source.table}` : 'row';
      const err = poison('AVRO_MULTIDIM_ARRAY', `${where}: column "${k}" holds a multi-dimensional array, which the Avro schema (one-dimensional arrays) cannot carry`);
      err.column = k;
      throw err;
    }
  }
  return row;
}

/**
 * Error path only (a value that `type` refused): where in `value` the record type `type` (a Key or an
 * Envelope) fails and why, in the logical type's own words ("decimal value '1.234' has more than 2
 * fraction digits", not avsc's `invalid ["null","bytes"]`). `path` holds the field names from the
 * record down, e.g. ['after', 'price'] or ['grid', '[1]'] (an array element); `path` is empty when no
 * single field fails on its own.
 */
export function encodeFailure(type: avsc.Type, value: unknown): { path: string[]; error: unknown } | undefined {
  return failureOf(type, value, []);
}

function failureOf(type: avsc.Type, v: unknown, path: string[]): { path: string[]; error: unknown } | undefined {
  try {
    type.toBuffer(v as never);
    return undefined;
  } catch (error) {
    const t = type as unknown as { fields?: { name: string; type: avsc.Type }[]; types?: avsc.Type[]; itemsType?: avsc.Type };
    if (t.fields && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const f of t.fields) {
        const inner = failureOf(f.type, (v as Record<string, unknown>)[f.name] ?? null, [...path, f.name]);
        if (inner) return inner;
      }
    } else if (t.types && v !== null) {
      // The branch the value is meant for: ours picks it; a nullable ["null", T] has one.
      const i = type instanceof DecimalOrSpecialType ? type._getIndex(v) : undefined;
      const branches = i !== undefined ? [t.types[i]!] : t.types.filter((b) => (b as unknown as { typeName: string }).typeName !== 'null');
      if (branches.length === 1) return failureOf(branches[0]!, v, path) ?? { path, error };
    } else if (t.itemsType && Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const inner = failureOf(t.itemsType, v[i] ?? null, [...path, `[${i}]`]);
        if (inner) return inner;
      }
    }
    return { path, error };
  }
}

/**
 * Error path only (a body the decoder refused): the field path where decoding `buf` from `offset` with
 * the record type `type` breaks, e.g. ['after', 'price'] (records and unions are followed; an array,
 * map or leaf that fails ends the path). Empty when the record's own first field fails.
 */
export function decodeFailurePath(type: avsc.Type, buf: Buffer, offset: number): string[] {
  const path: string[] = [];
  let t = type as unknown as { fields?: { name: string; type: avsc.Type }[]; types?: avsc.Type[] };
  let pos = offset;
  for (let depth = 0; depth < 32; depth++) {
    if (t.types) {
      // A union: its branch index, then the branch.
      let index: { value: unknown; offset: number };
      try {
        index = UNION_INDEX.decode(buf, pos) as { value: unknown; offset: number };
      } catch {
        return path;
      }
      const branch = index.offset < 0 ? undefined : t.types[Number(index.value)];
      if (!branch) return path;
      t = branch as unknown as typeof t;
      pos = index.offset;
      continue;
    }
    if (!t.fields) return path;
    let failed: { name: string; type: avsc.Type } | undefined;
    for (const f of t.fields) {
      let r: { offset: number } | undefined;
      try {
        r = f.type.decode(buf, pos) as { offset: number };
      } catch {
        r = undefined;
      }
      if (!r || r.offset < 0) {
        failed = f;
        break;
      }
      pos = r.offset;
    }
    if (!failed) return path;
    path.push(failed.name);
    t = failed.type as unknown as typeof t;
  }
  return path;
}

/** A union's branch index (a plain Avro long). */
const UNION_INDEX = avsc.Type.forSchema('long');

/** Decoded Avro record → plain row object. */
export function rowFromAvro(rec: unknown): Row {
  return { ...(rec as Row) };
}

/** `ownRows`: the table has columns named like inherited properties (see hasInheritedNames). */
export function envelopeToAvro(e: ChangeEvent, ownRows = false): AvroEnvelope {
  return {
    before: e.before && rowToAvro(e.before, e.source, ownRows),
    after: e.after && rowToAvro(e.after, e.source, ownRows),
    op: e.op,
    source: {
      connector: 'syncline',
      db: e.source.db,
      schema: e.source.schema,
      table: e.source.table,
      lsn: e.source.pos,
      commit_lsn: e.source.commitPos,
      tx_id: e.source.txId ?? null,
      ts_ms: e.source.tsMs,
      snapshot: e.source.snapshot,
      idx: e.source.idx,
    },
    ts_ms: e.tsMs,
    unchanged_toast: e.unchangedToast,
  };
}

const OPS = new Set<Op>(['c', 'u', 'd', 'r', 't', 'm']);

/**
 * Decoded Envelope → ChangeEvent. Columns listed in unchanged_toast are removed from `after` (Avro
 * wrote them as null; the sinks must keep the target's value). Note that a `before` holding only key
 * columns decodes with the other columns as null (Avro has no "absent").
 */
export function envelopeFromAvro(obj: unknown): ChangeEvent {
  const o = obj as AvroEnvelope;
  if (!o || typeof o !== 'object' || !o.source || !OPS.has(o.op as Op)) {
    throw poison('AVRO_ENVELOPE', `decoded message is not a change envelope (op ${JSON.stringify((o as { op?: unknown })?.op)})`);
  }
  const unchangedToast = [...(o.unchanged_toast ?? [])];
  const after: Row | null = o.after ? rowFromAvro(o.after) : null;
  if (after) for (const c of unchangedToast) delete after[c];
  const s = o.source;
  return {
    op: o.op as Op,
    before: o.before ? rowFromAvro(o.before) : null,
    after,
    source: {
      db: s.db,
      schema: s.schema,
      table: s.table,
      pos: s.lsn,
      commitPos: s.commit_lsn,
      txId: s.tx_id === null || s.tx_id === undefined ? null : Number(s.tx_id),
      tsMs: Number(s.ts_ms),
      snapshot: s.snapshot,
      idx: s.idx,
    },
    tsMs: Number(o.ts_ms),
    unchangedToast,
  };
}
