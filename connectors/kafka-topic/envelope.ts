/**
 * Decisions of the Kafka topic source, pure (no I/O): a foreign record (key and value, already
 * parsed from JSON or decoded from Avro) → the change it stands for, with every column converted to
 * syncline's canonical value of its configured type (src/core/types.ts), or a poison error naming
 * what is wrong. ./source.ts does the reading, the registry look-ups and the hand-off.
 *
 * Understood shapes of a value:
 *  - Debezium change event, bare or in Kafka Connect's JSON wrapper `{schema, payload}`:
 *    `{op: c|u|d|r|t, before, after, source: {ts_ms, lsn, …}, ts_ms}`; a tombstone (null value,
 *    Debezium writes one after each delete for log compaction) is skipped: the delete came before it.
 *  - row: the value is the row itself (an upsert); a tombstone deletes the row of the record's key.
 * Semantic types (Debezium's io.debezium.time.*, Kafka Connect's Decimal) are read from the embedded
 * JSON schema or the Avro writer schema when there is one (`hintsFrom*`); otherwise a number in a
 * timestamp column is in `numericTimestamps` units and a number in a date column is days since 1970.
 */
import { stringifyJsonExact } from '../../src/core/json-exact.js';
import { setColumn, type Row, type Value } from '../../src/core/envelope.js';
import { poison, type SynclineError } from '../../src/core/errors.js';
import { canonicalTimestamp, daysToDate, microsToTimestamp, type ColumnType } from '../../src/core/types.js';
import type { SourceColumn } from '../../src/capture/source.js';

/** A column's semantic type from a schema: its name (io.debezium.time.MicroTimestamp, …) and Decimal's scale. */
export interface Hint {
  name?: string;
  scale?: number;
}
export type Hints = Map<string, Hint>;

export interface TopicShape {
  envelope: 'debezium' | 'row';
  key: string[];
  columns: SourceColumn[];
  numericTimestamps: 'micros' | 'millis';
}

/** What a foreign record means: a change, or nothing to do (a Debezium tombstone, a heartbeat). */
export type Decoded =
  | { kind: 'change'; op: 'c' | 'u' | 'd' | 'r' | 't'; before: Row | null; after: Row | null; tsMs: number | null; lsn?: string }
  | { kind: 'skip'; why: string };

/** A PostgreSQL type name (as in CREATE TABLE) → syncline's column type. Unknown names are 'text' (their text form). */
export function columnTypeOf(pgType: string): ColumnType {
  const t = pgType.trim().toLowerCase();
  if (t.endsWith('[]')) return { kind: 'array', pgType: t, items: columnTypeOf(t.slice(0, -2)) };
  const num = /^(?:numeric|decimal)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)$/.exec(t);
  if (num) return { kind: 'decimal', pgType: `numeric(${num[1]},${num[2] ?? '0'})`, precision: Number(num[1]), scale: Number(num[2] ?? 0) };
  const base = t.replace(/\s*\(.*\)$/, '');
  switch (base) {
    case 'int2': case 'smallint': case 'int4': case 'int': case 'integer':
      return { kind: 'int', pgType: base === 'int2' || base === 'smallint' ? 'int2' : 'int4' };
    case 'int8': case 'bigint':
      return { kind: 'long', pgType: 'int8' };
    case 'numeric': case 'decimal':
      return { kind: 'vdecimal', pgType: 'numeric' };
    case 'float4': case 'real':
      return { kind: 'float', pgType: 'float4' };
    case 'float8': case 'double precision':
      return { kind: 'double', pgType: 'float8' };
    case 'text': case 'varchar': case 'character varying': case 'char': case 'character': case 'bpchar': case 'citext': case 'name':
      return { kind: 'string', pgType: t === 'char' || t === 'character' ? 'bpchar' : t };
    case 'bool': case 'boolean':
      return { kind: 'bool', pgType: 'bool' };
    case 'date':
      return { kind: 'date', pgType: 'date' };
    case 'timestamp': case 'timestamp without time zone':
      return { kind: 'timestamp', pgType: 'timestamp' };
    case 'timestamptz': case 'timestamp with time zone':
      return { kind: 'timestamptz', pgType: 'timestamptz' };
    case 'uuid':
      return { kind: 'uuid', pgType: 'uuid' };
    case 'json': case 'jsonb':
      return { kind: 'json', pgType: base };
    case 'bytea':
      return { kind: 'bytes', pgType: 'bytea' };
    default:
      return { kind: 'text', pgType: t };
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);

/** Kafka Connect's JSON wrapper `{schema, payload}` (JsonConverter with schemas.enable): its payload and schema. */
export function unwrapConnect(v: unknown): { payload: unknown; schema?: Record<string, unknown> } {
  if (isObject(v) && 'payload' in v && 'schema' in v && Object.keys(v).length === 2) return { payload: v.payload, schema: isObject(v.schema) ? v.schema : undefined };
  return { payload: v };
}

/** Hints from a Kafka Connect JSON schema: the struct's fields (row envelope), or those of its `after`/`before` struct. */
export function hintsFromConnect(schema: Record<string, unknown> | undefined, envelope: 'debezium' | 'row'): Hints {
  const hints: Hints = new Map();
  if (!schema) return hints;
  let fields = Array.isArray(schema.fields) ? (schema.fields as unknown[]) : [];
  if (envelope === 'debezium') {
    // `after` and `before` have the same struct; one of them may be declared without fields.
    const rows = fields.filter((f): f is Record<string, unknown> => isObject(f) && (f.field === 'after' || f.field === 'before') && Array.isArray(f.fields) && f.fields.length > 0);
    fields = rows.length > 0 ? (rows[0]!.fields as unknown[]) : [];
  }
  for (const f of fields) {
    if (!isObject(f) || typeof f.field !== 'string') continue;
    const params = isObject(f.parameters) ? f.parameters : {};
    hints.set(f.field, { name: typeof f.name === 'string' ? f.name : undefined, scale: params.scale !== undefined ? Number(params.scale) : undefined });
  }
  return hints;
}

/** Hints from an Avro writer schema (JSON): the record's fields (row), or those of the `after`/`before` record; `connect.name` and decimal scale. */
export function hintsFromAvro(schema: unknown, envelope: 'debezium' | 'row'): Hints {
  const hints: Hints = new Map();
  const nonNull = (t: unknown): unknown => (Array.isArray(t) ? t.find((x) => x !== 'null') : t);
  let rec = nonNull(schema);
  if (envelope === 'debezium' && isObject(rec) && Array.isArray(rec.fields)) {
    // The row record is declared in the first of `before`/`after` and named in the other.
    rec = (rec.fields as unknown[])
      .filter((f): f is Record<string, unknown> => isObject(f) && (f.name === 'after' || f.name === 'before'))
      .map((f) => nonNull(f.type))
      .find((t) => isObject(t) && Array.isArray(t.fields));
  }
  if (!isObject(rec) || !Array.isArray(rec.fields)) return hints;
  for (const f of rec.fields as unknown[]) {
    if (!isObject(f) || typeof f.name !== 'string') continue;
    const t = nonNull(f.type);
    if (!isObject(t)) continue;
    const name = typeof t['connect.name'] === 'string' ? t['connect.name'] : typeof t.logicalType === 'string' ? t.logicalType : undefined;
    const params = isObject(t['connect.parameters']) ? t['connect.parameters'] : {};
    const scale = t.scale !== undefined ? Number(t.scale) : params.scale !== undefined ? Number(params.scale) : undefined;
    hints.set(f.name, { name, scale });
  }
  return hints;
}

/**
 * A record (key and value parsed: JSON as parsed, Avro as decoded; null value = tombstone) → what
 * it means. Throws poison (RECORD_INVALID / RECORD_KEY_MISSING / RECORD_VALUE) naming the column.
 */
export function decodeRecord(shape: TopicShape, key: unknown, value: unknown, hints: Hints, recordTsMs: number | null): Decoded {
  const v = unwrapConnect(value).payload;
  if (shape.envelope === 'debezium') {
    if (v === null || v === undefined) return { kind: 'skip', why: 'tombstone (Debezium writes one after each delete)' };
    if (!isObject(v)) throw poison('RECORD_INVALID', `a Debezium change event is an object with op, before and after; got ${describe(v)}`);
    const op = v.op;
    if (op !== 'c' && op !== 'u' && op !== 'd' && op !== 'r' && op !== 't') {
      if (op === 'm') return { kind: 'skip', why: 'Debezium logical decoding message (op m)' };
      throw poison('RECORD_INVALID', `a Debezium change event has op c, u, d, r or t; got ${describe(op)}`);
    }
    const src = isObject(v.source) ? v.source : {};
    const tsMs = toMs(src.ts_ms) ?? toMs(v.ts_ms) ?? recordTsMs;
    const lsn = src.lsn !== undefined && src.lsn !== null ? String(src.lsn) : undefined;
    if (op === 't') return { kind: 'change', op, before: null, after: null, tsMs, lsn };
    const before = v.before === null || v.before === undefined ? null : rowOf(shape, v.before, hints, 'before');
    const after = v.after === null || v.after === undefined ? null : rowOf(shape, v.after, hints, 'after');
    if (op === 'd') {
      // A delete needs its key: `before` (PostgreSQL: the key columns at least), else the record key.
      const row = before ?? keyRow(shape, key, hints);
      return { kind: 'change', op, before: checkKey(shape, row, 'before'), after: null, tsMs, lsn };
    }
    if (!after) throw poison('RECORD_INVALID', `a Debezium '${op}' event has no after row`);
    return { kind: 'change', op, before, after: checkKey(shape, after, 'after'), tsMs, lsn };
  }
  if (v === null || v === undefined) return { kind: 'change', op: 'd', before: checkKey(shape, keyRow(shape, key, hints), 'key'), after: null, tsMs: recordTsMs };
  return { kind: 'change', op: 'u', before: null, after: checkKey(shape, rowOf(shape, v, hints, 'value'), 'value'), tsMs: recordTsMs };
}

/** The key columns of a record key: an object with them (JSON, Avro record, Connect wrapper) or, for a one-column key, the bare value. */
function keyRow(shape: TopicShape, key: unknown, hints: Hints): Row {
  const k = unwrapConnect(key).payload;
  if (k === null || k === undefined) throw poison('RECORD_KEY_MISSING', `a delete (tombstone) needs the record key with ${shape.key.join(', ')}; the record has none`);
  if (isObject(k)) return rowOf({ ...shape, columns: shape.columns.filter((c) => shape.key.includes(c.name)) }, k, hints, 'key');
  if (shape.key.length !== 1) throw poison('RECORD_KEY_MISSING', `the record key ${describe(k)} is not an object with ${shape.key.join(', ')}`);
  const col = shape.columns.find((c) => c.name === shape.key[0])!;
  return { [col.name]: columnValue(k, col, hints.get(col.name), shape.numericTimestamps, 'key') };
}

function checkKey(shape: TopicShape, row: Row, where: string): Row {
  const missing = shape.key.filter((k) => row[k] === null || row[k] === undefined);
  if (missing.length > 0) throw poison('RECORD_KEY_MISSING', `the ${where} row has no value for key column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  return row;
}

function rowOf(shape: TopicShape, v: unknown, hints: Hints, where: string): Row {
  if (!isObject(v)) throw poison('RECORD_INVALID', `the ${where} row is not an object: ${describe(v)}`);
  const row: Row = {};
  for (const col of shape.columns) {
    if (!Object.hasOwn(v, col.name)) continue; // absent: not in this row (a key-only before image)
    setColumn(row, col.name, columnValue(v[col.name], col, hints.get(col.name), shape.numericTimestamps, where));
  }
  return row;
}

/** One value → canonical for its column type; poison RECORD_VALUE naming the column otherwise. */
export function columnValue(v: unknown, col: SourceColumn, hint: Hint | undefined, unit: 'micros' | 'millis', where: string): Value {
  try {
    return toValue(v, col.type, hint, unit);
  } catch (err) {
    const e = poison('RECORD_VALUE', `column ${col.name} (${col.type.pgType}) of the ${where} row: ${(err as Error).message}`) as SynclineError & { column?: string };
    e.column = col.name;
    throw e;
  }
}

function toValue(v: unknown, t: ColumnType, hint: Hint | undefined, unit: 'micros' | 'millis'): Value {
  if (v === null || v === undefined) return null;
  switch (t.kind) {
    case 'int': {
      const n = typeof v === 'bigint' ? Number(v) : typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < -2147483648 || n > 2147483647) throw new Error(`${describe(v)} is not a 32-bit integer`);
      return n;
    }
    case 'long':
      if (typeof v === 'bigint') return v;
      if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
      if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
      throw new Error(`${describe(v)} is not a 64-bit integer`);
    case 'decimal':
    case 'vdecimal': {
      if (typeof v === 'number') return Number.isFinite(v) ? String(v) : String(v);
      if (typeof v === 'bigint') return v.toString();
      const scale = hint?.scale ?? (hint?.name === 'org.apache.kafka.connect.data.Decimal' ? 0 : undefined);
      if (Buffer.isBuffer(v) && scale !== undefined) return unscaledToDecimal(v, scale);
      if (typeof v === 'string') {
        if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v) || v === 'NaN' || v === 'Infinity' || v === '-Infinity') return v;
        // Kafka Connect's Decimal in JSON: base64 of the unscaled two's-complement bytes (scale from the schema).
        if (scale !== undefined && /^[A-Za-z0-9+/]*={0,2}$/.test(v)) return unscaledToDecimal(Buffer.from(v, 'base64'), scale);
      }
      throw new Error(`${describe(v)} is not a number (a Debezium decimal without its schema's scale: set decimal.handling.mode=string, or embed the schema)`);
    }
    case 'float':
    case 'double': {
      if (typeof v === 'number') return t.kind === 'float' ? Math.fround(v) : v;
      if (typeof v === 'bigint') return t.kind === 'float' ? Math.fround(Number(v)) : Number(v);
      if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') return Number(v);
      if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return t.kind === 'float' ? Math.fround(Number(v)) : Number(v);
      throw new Error(`${describe(v)} is not a number`);
    }
    case 'bool':
      if (typeof v === 'boolean') return v;
      throw new Error(`${describe(v)} is not a boolean`);
    case 'string':
    case 'enum':
    case 'uuid':
      if (typeof v !== 'string') throw new Error(`${describe(v)} is not a string`);
      if (t.kind === 'uuid' && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v)) throw new Error(`${describe(v)} is not a UUID`);
      return t.kind === 'uuid' ? v.toLowerCase() : v;
    case 'text':
      return typeof v === 'string' ? v : stringifyJsonExact(v);
    case 'json':
      if (typeof v === 'string') {
        JSON.parse(v); // throws "… is not valid JSON"
        return v;
      }
      return stringifyJsonExact(v);
    case 'bytes':
      if (Buffer.isBuffer(v)) return v;
      if (typeof v === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(v)) return Buffer.from(v, 'base64');
      throw new Error(`${describe(v)} is not base64 bytes`);
    case 'date':
      if (typeof v === 'number' && Number.isInteger(v)) return daysToDate(v); // io.debezium.time.Date: days since 1970-01-01
      if (typeof v === 'string' && /^\d{4,}-\d\d-\d\d$/.test(v)) return v;
      throw new Error(`${describe(v)} is not a date (YYYY-MM-DD or days since 1970-01-01)`);
    case 'timestamp':
    case 'timestamptz': {
      const zoned = t.kind === 'timestamptz';
      if (typeof v === 'string') {
        try {
          return canonicalTimestamp(v, zoned);
        } catch {
          throw new Error(`${describe(v)} is not a timestamp`);
        }
      }
      if ((typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint') return microsToTimestamp(epochMicros(BigInt(v), hint?.name, unit), zoned);
      throw new Error(`${describe(v)} is not a timestamp`);
    }
    case 'array':
      if (!Array.isArray(v)) throw new Error(`${describe(v)} is not an array`);
      return v.map((x) => toValue(x, t.items!, undefined, unit));
  }
}

/** An epoch number → microseconds, by its semantic type (Debezium's) or the configured unit. */
function epochMicros(n: bigint, name: string | undefined, unit: 'micros' | 'millis'): bigint {
  switch (name) {
    case 'io.debezium.time.Timestamp':
    case 'org.apache.kafka.connect.data.Timestamp':
    case 'timestamp-millis':
      return n * 1000n;
    case 'io.debezium.time.MicroTimestamp':
    case 'timestamp-micros':
      return n;
    case 'io.debezium.time.NanoTimestamp':
      return n / 1000n;
    default:
      return unit === 'millis' ? n * 1000n : n;
  }
}

/** Kafka Connect Decimal: big-endian two's-complement unscaled value and a scale → its decimal text. */
export function unscaledToDecimal(buf: Buffer, scale: number): string {
  if (buf.length === 0) return '0';
  let n = BigInt('0x' + buf.toString('hex'));
  if (buf[0]! & 0x80) n -= 1n << BigInt(buf.length * 8);
  const neg = n < 0n;
  let digits = (neg ? -n : n).toString();
  if (scale > 0) {
    digits = digits.padStart(scale + 1, '0');
    digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  }
  return neg ? `-${digits}` : digits;
}

function toMs(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'bigint') return Number(v);
  return null;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Buffer.isBuffer(v)) return `${v.length} bytes`;
  const s = typeof v === 'string' ? JSON.stringify(v) : typeof v === 'bigint' ? v.toString() : JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
