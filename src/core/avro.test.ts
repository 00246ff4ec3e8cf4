import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import pg from 'pg';
import avsc from 'avsc';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import {
  avroNamespace,
  avroOptions,
  columnPgTypes,
  decimalBytes,
  decodeFailurePath,
  encodeFailure,
  specialDecimalColumns,
  envelopeFromAvro,
  envelopeHead,
  envelopeHeadReader,
  envelopeToAvro,
  keySchema,
  parseSchema,
  pgTypeOfField,
  pgTypesFromSchemaJson,
  valueSchema,
  type SchemaColumn,
} from './avro.js';
import { TypeCatalog, columnType, parsePgText, quoteIdent, toPgParam, type ColumnType } from '../../connectors/postgres/pgtypes.js';
import type { ChangeEvent, Row } from './envelope.js';
import { SynclineError } from './errors.js';

const PG = { host: '127.0.0.1', port: 5432, user: 'postgres' };
const REGISTRY = 'http://127.0.0.1:8081/apis/ccompat/v7';

const T = (kind: ColumnType['kind'], extra: Partial<ColumnType> = {}): ColumnType => ({ kind, pgType: kind, ...extra });
const ns = { prefix: 'syncline.shop', schema: 'public', table: 'orders' };

const isPoison = (code: string) => (e: unknown) => e instanceof SynclineError && e.kind === 'poison' && e.code === code;

function event(after: Row | null, extra: Partial<ChangeEvent> = {}): ChangeEvent {
  return {
    op: 'c',
    before: null,
    after,
    source: { db: 'shop', schema: 'public', table: 'orders', pos: '0/1A2B2F0', commitPos: '0/1A2B3C8', txId: 5012, tsMs: 1795608000123, snapshot: false, idx: 2 },
    tsMs: 1795608000200,
    unchangedToast: [],
    ...extra,
  };
}

/** Encode/decode one column value through a Key record with that single column. */
function roundTrip(t: ColumnType, v: unknown): unknown {
  const type = parseSchema(keySchema(ns, [{ name: 'v', type: t }]));
  return (type.fromBuffer(type.toBuffer({ v })) as { v: unknown }).v;
}

// ---------------------------------------------------------------------------------------------------
// Unit tests

test('schema builders: names, nullability, pgType attributes', () => {
  const cols: SchemaColumn[] = [
    { name: 'id', type: T('long', { pgType: 'int8' }) },
    { name: 'amount', type: T('decimal', { pgType: 'numeric(12,2)', precision: 12, scale: 2 }) },
  ];
  assert.equal(avroNamespace({ prefix: 'syncline', schema: 'my-schema', table: '1st table' }), 'syncline.my_schema._1st_table');
  const k = keySchema(ns, cols) as { name: string; namespace: string; fields: { name: string; type: unknown; pgType: string }[] };
  assert.equal(k.name, 'Key');
  assert.equal(k.namespace, 'syncline.shop.public.orders');
  assert.deepEqual(k.fields[0], { name: 'id', type: 'long', pgType: 'int8' });
  assert.deepEqual(k.fields[1], {
    name: 'amount',
    type: { type: 'bytes', logicalType: 'decimal', precision: 12, scale: 2 },
    pgType: 'numeric(12,2)',
  });
  const v = valueSchema(ns, cols) as { name: string; fields: { name: string; type: unknown; default?: unknown }[] };
  assert.equal(v.name, 'Envelope');
  assert.deepEqual(
    v.fields.map((f) => f.name),
    ['op', 'source', 'ts_ms', 'before', 'after', 'unchanged_toast'],
  );
  const value = (v.fields[3].type as unknown[])[1] as { name: string; fields: unknown[] };
  assert.equal(value.name, 'Value');
  assert.deepEqual(value.fields[0], { name: 'id', type: ['null', 'long'], default: null, pgType: 'int8' });
  assert.deepEqual(v.fields[4].type, ['null', 'Value']);
  assert.deepEqual(v.fields[5], { name: 'unchanged_toast', type: { type: 'array', items: 'string' }, default: [] });
  // Both parse with avsc.
  parseSchema(k);
  parseSchema(v);
});

test('schema builders reject column names that are not Avro names (fatal, naming table and column)', () => {
  for (const name of ['order-id', '1st', 'prix€', 'a b', '']) {
    assert.throws(
      () => valueSchema(ns, [{ name, type: T('int') }]),
      (e: unknown) =>
        e instanceof SynclineError && e.kind === 'fatal' && e.code === 'AVRO_INVALID_NAME' && e.message.includes('public.orders') && e.message.includes(`"${name}"`),
    );
    assert.throws(() => keySchema(ns, [{ name, type: T('int') }]), SynclineError);
  }
});

test('pgType attributes survive parsing (pgTypeOfField, columnPgTypes, pgTypesFromSchemaJson)', () => {
  const cols: SchemaColumn[] = [
    { name: 'id', type: T('int', { pgType: 'int4' }) },
    { name: 'tags', type: T('array', { pgType: 'varchar(10)[]', items: T('string', { pgType: 'varchar(10)' }) }) },
    { name: 'mood', type: T('enum', { pgType: 'public.mood' }) },
  ];
  const expected = new Map([
    ['id', 'int4'],
    ['tags', 'varchar(10)[]'],
    ['mood', 'public.mood'],
  ]);
  const v = parseSchema(valueSchema(ns, cols));
  assert.deepEqual(columnPgTypes(v), expected);
  assert.deepEqual(columnPgTypes(parseSchema(keySchema(ns, cols))), expected);
  assert.deepEqual(pgTypesFromSchemaJson(JSON.stringify(valueSchema(ns, cols))), expected);
  assert.deepEqual(pgTypesFromSchemaJson(JSON.stringify(keySchema(ns, cols))), expected);
  const k = parseSchema(keySchema(ns, cols)) as avsc.types.RecordType;
  assert.equal(pgTypeOfField(k.fields[1]), 'varchar(10)[]');
  assert.equal(pgTypeOfField({ name: 'x', type: 'int', pgType: 'int2' }), 'int2');
  // Plain avsc (without avroOptions) drops the attribute: this is why the typeHook records it.
  const plain = avsc.Type.forSchema(keySchema(ns, cols) as never) as avsc.types.RecordType;
  assert.equal(pgTypeOfField(plain.fields[0]), undefined);
  assert.equal(JSON.stringify(plain.schema({ exportAttrs: true })).includes('pgType'), false);
});

test('long: bigint, full int64 range', () => {
  for (const v of [0n, 1n, -1n, 9007199254740993n, 9223372036854775807n, -9223372036854775808n]) {
    assert.equal(roundTrip(T('long'), v), v);
  }
  assert.equal(roundTrip(T('long'), 42), 42n); // numbers are accepted on encode
  // and written with the bytes of the same bigint (no bigint made on the way)
  const longType = parseSchema({ type: 'record', name: 'L', fields: [{ name: 'v', type: 'long' }] });
  for (const n of [0, 1, -1, -5, 127, -128, 2 ** 32, -(2 ** 32) - 1, 2 ** 53 - 1, -(2 ** 53) + 1, 1795608000200]) {
    assert.deepEqual(longType.toBuffer({ v: n }), longType.toBuffer({ v: BigInt(n) }), String(n));
  }
  // Decoded by the direct varint read (up to 8 bytes, below 2^53) or avsc's byte unpacking (the rest): both exact,
  // at every varint length boundary, and what plain avsc reads (numbers; its own decode is exact below 2^51).
  const plainLong = avsc.Type.forSchema({ type: 'record', name: 'P', fields: [{ name: 'v', type: 'long' }, { name: 'w', type: 'int' }] });
  const withTail = parseSchema({ type: 'record', name: 'P', fields: [{ name: 'v', type: 'long' }, { name: 'w', type: 'int' }] });
  const edges: bigint[] = [];
  for (let bits = 0n; bits <= 63n; bits++) for (const d of [-1n, 0n, 1n]) edges.push((1n << bits) + d, -(1n << bits) + d);
  for (const v of edges.filter((x) => x >= -(1n << 63n) && x < 1n << 63n)) {
    const buf = withTail.toBuffer({ v, w: -7 });
    assert.deepEqual({ ...withTail.fromBuffer(buf) }, { v, w: -7 }, String(v));
    if (v > -(2n ** 51n) && v < 2n ** 51n) assert.deepEqual({ ...plainLong.fromBuffer(buf) }, { v: Number(v), w: -7 }, String(v));
    // Written by avsc's varint writer within ±2^52 (the bytes plain avsc writes for the number; beyond, its doubles
    // round the zigzag value) and by its byte packing beyond, from a number as from a bigint.
    if (v > -(2n ** 52n) && v < 2n ** 52n) assert.deepEqual(buf, plainLong.toBuffer({ v: Number(v), w: -7 }), `bytes of ${v}`);
    if (v > -(2n ** 53n) && v < 2n ** 53n) assert.deepEqual(withTail.toBuffer({ v: Number(v), w: -7 }), buf, `bytes of ${v} given as a number`);
  }
  assert.throws(() => withTail.toBuffer({ v: 2 ** 40 + 0.5, w: 1 }));
  assert.throws(() => withTail.toBuffer({ v: NaN, w: 1 }));
  assert.throws(() => withTail.toBuffer({ v: '5', w: 1 }));
  assert.throws(() => withTail.fromBuffer(withTail.toBuffer({ v: 2n ** 40n, w: 1 }).subarray(0, 3)), /truncated|invalid/i);
  assert.throws(() => roundTrip(T('long'), 9223372036854775808n));
  assert.throws(() => roundTrip(T('long'), 1.5));
  // Other logical longs are bigints too; our timestamps keep their string form.
  const millis = parseSchema({ type: 'record', name: 'R', fields: [{ name: 'm', type: { type: 'long', logicalType: 'timestamp-millis' } }] });
  assert.equal((millis.fromBuffer(millis.toBuffer({ m: 5n })) as { m: unknown }).m, 5n);
});

test('decimal: unscaled two’s complement bytes, exact scale digits, NaN is poison', () => {
  const t = T('decimal', { precision: 12, scale: 2 });
  const type = parseSchema(keySchema(ns, [{ name: 'v', type: t }]));
  const bytesOf = (v: string) => type.toBuffer({ v }).subarray(1); // skip the bytes length varint
  assert.deepEqual(bytesOf('12.50'), Buffer.from([0x04, 0xe2]));
  assert.deepEqual(bytesOf('-0.01'), Buffer.from([0xff]));
  assert.deepEqual(bytesOf('0.00'), Buffer.from([0x00]));
  assert.deepEqual(bytesOf('1.28'), Buffer.from([0x00, 0x80]));
  assert.deepEqual(bytesOf('-1.28'), Buffer.from([0x80]));
  for (const v of ['12.50', '-0.01', '0.00', '9999999999.99', '-9999999999.99', '0.50', '-1.28', '1.28', '-1.29']) {
    assert.equal(roundTrip(t, v), v);
  }
  assert.equal(roundTrip(t, '12.5'), '12.50');
  assert.equal(roundTrip(t, '12.500'), '12.50');
  assert.equal(roundTrip(T('decimal', { precision: 10, scale: 0 }), '-1234567890'), '-1234567890');
  const big = T('decimal', { precision: 38, scale: 10 });
  assert.equal(roundTrip(big, '-1234567890123456789012345678.0123456789'), '-1234567890123456789012345678.0123456789');
  assert.throws(() => roundTrip(t, 'NaN'), isPoison('AVRO_DECIMAL_NAN'));
  assert.throws(() => roundTrip(t, '12.505'), isPoison('AVRO_DECIMAL'));
  assert.throws(() => roundTrip(t, '12345678901.00'), isPoison('AVRO_DECIMAL'));
  assert.throws(() => roundTrip(t, 12.5), isPoison('AVRO_DECIMAL'));
  // Variable-scale numeric is a string: carries everything.
  for (const v of ['NaN', 'Infinity', '-Infinity', '0.000000000000000000000000000001', '123456789012345678901234567890.5']) {
    assert.equal(roundTrip(T('vdecimal'), v), v);
  }
});

test('decimal columns that held NaN/±Infinity: ["null", decimal, "string"], exact, compatible with the plain decimal', () => {
  const d32 = T('decimal', { pgType: 'numeric(3,2)', precision: 3, scale: 2 });
  const d40 = T('decimal', { pgType: 'numeric(4,0)', precision: 4, scale: 0 });
  const cols: SchemaColumn[] = [
    { name: 'id', type: T('int', { pgType: 'int4' }) },
    { name: 'a', type: d32 },
    { name: 'b', type: d40 },
    { name: 'arr', type: T('array', { pgType: 'numeric(3,2)[]', items: d32 }) },
    { name: 'free', type: T('vdecimal', { pgType: 'numeric' }) },
  ];
  const specials = new Set(['a', 'arr', 'free', 'nosuch']);
  const schema = valueSchema(ns, cols, specials) as { fields: { name: string; type: unknown }[] };
  const fields = ((schema.fields[3]!.type as unknown[])[1] as { fields: { name: string; type: unknown }[] }).fields;
  const dec32 = { type: 'bytes', logicalType: 'decimal', precision: 3, scale: 2 };
  assert.deepEqual(fields.map((f) => f.type), [
    ['null', 'int'],
    ['null', dec32, 'string'], // null first (the default), the decimal keeps branch index 1
    ['null', { type: 'bytes', logicalType: 'decimal', precision: 4, scale: 0 }], // not in specials: as before
    ['null', { type: 'array', items: ['null', dec32, 'string'] }],
    ['null', { type: 'string', 'connect.name': 'syncline.VariableScaleDecimal' }], // a string already
  ]);
  const wide = parseSchema(schema);
  const plain = parseSchema(valueSchema(ns, cols));
  assert.deepEqual([...specialDecimalColumns(wide)].sort(), ['a', 'arr']);
  assert.deepEqual([...specialDecimalColumns(plain)], []);

  const rows: Row[] = [
    { id: 1, a: 'NaN', b: '12', arr: ['1.50', 'NaN', null, 'Infinity', '-Infinity'], free: 'Infinity' },
    { id: 2, a: 'Infinity', b: null, arr: [], free: '-Infinity' },
    { id: 3, a: '-Infinity', b: '-9999', arr: null, free: 'NaN' },
    { id: 4, a: '-9.99', b: '0', arr: ['0.00'], free: '1e-30' },
    { id: 5, a: null, b: null, arr: null, free: null },
  ];
  for (const after of rows) {
    const e = event(after);
    assert.deepStrictEqual(envelopeFromAvro(wide.fromBuffer(wide.toBuffer(envelopeToAvro(e)))), e);
  }
  // A finite value is written byte for byte as the plain decimal wrote it: only the schema id differs.
  const finite = envelopeToAvro(event(rows[3]!));
  assert.deepEqual(wide.toBuffer(finite), plain.toBuffer(finite));
  // Schema evolution: the wide schema reads what the plain one wrote (BACKWARD).
  assert.deepStrictEqual(envelopeFromAvro(wide.fromBuffer(plain.toBuffer(finite), wide.createResolver(plain))).after, rows[3]);
  // A bad value is refused with the decimal's own reason, not avsc's "invalid [...]".
  assert.throws(() => wide.toBuffer(envelopeToAvro(event({ ...rows[3]!, a: '12.5' }))), isPoison('AVRO_DECIMAL'));
  assert.throws(() => wide.toBuffer(envelopeToAvro(event({ ...rows[3]!, a: 'nan' }))), isPoison('AVRO_DECIMAL_NAN')); // not PostgreSQL's spelling
  // The plain decimal refuses the special values (every key column keeps it).
  assert.throws(() => plain.toBuffer(envelopeToAvro(event(rows[0]!))), /invalid/);
  assert.throws(() => roundTrip(d32, 'NaN'), isPoison('AVRO_DECIMAL_NAN'));

  // What a consumer without syncline's types sees (plain avsc; Confluent's Java deserializer alike):
  // the decimal branch as its bytes (a BigDecimal with logical types on), the special values as strings.
  const generic = avsc.Type.forSchema(schema as never) as avsc.Type;
  const seen = (generic.fromBuffer(wide.toBuffer(envelopeToAvro(event(rows[0]!)))) as { after: Record<string, unknown> }).after;
  assert.equal(seen.a, 'NaN');
  assert.deepEqual(seen.b, Buffer.from([0x0c]));
  assert.deepEqual(seen.arr, [Buffer.from([0x00, 0x96]), 'NaN', null, 'Infinity', '-Infinity']);

  // Only that shape of union is taken over: others stay avsc's.
  const other = parseSchema({ type: 'record', name: 'O', fields: [{ name: 's', type: ['null', 'string', 'int'] }, { name: 'd', type: ['null', dec32] }] });
  assert.deepEqual({ ...other.fromBuffer(other.toBuffer({ s: 'NaN', d: '1.00' })) }, { s: 'NaN', d: '1.00' });
});

test('encodeFailure / decodeFailurePath: the column a refused value is in, and why in the type\'s words', () => {
  const cols: SchemaColumn[] = [
    { name: 'id', type: T('long') },
    { name: 'price', type: T('decimal', { precision: 3, scale: 2 }) },
    { name: 'tags', type: T('array', { items: T('decimal', { precision: 3, scale: 2 }) }) },
  ];
  const type = parseSchema(valueSchema(ns, cols));
  const f = encodeFailure(type, envelopeToAvro(event({ id: 1n, price: '1.234', tags: null })));
  assert.deepEqual(f?.path, ['after', 'price']);
  assert.ok(isPoison('AVRO_DECIMAL')(f?.error));
  assert.match((f!.error as Error).message, /more than 2 fraction digits/);
  const g = encodeFailure(type, envelopeToAvro(event({ id: 1n, price: '1.00', tags: ['1.00', 'NaN'] })));
  assert.deepEqual(g?.path, ['after', 'tags', '[1]']);
  assert.ok(isPoison('AVRO_DECIMAL_NAN')(g?.error));
  assert.equal(encodeFailure(type, envelopeToAvro(event({ id: 1n, price: '1.00', tags: null }))), undefined);
  const key = parseSchema(keySchema(ns, cols.slice(0, 2)));
  assert.deepEqual(encodeFailure(key, { id: 1n, price: 'Infinity' })?.path, ['price']);

  // Decoding: where a body breaks (truncated inside the row).
  const ok = type.toBuffer(envelopeToAvro(event({ id: 1n, price: '1.00', tags: ['1.00'] })));
  const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 7]), ok]);
  assert.deepEqual(decodeFailurePath(type, framed.subarray(0, framed.length - 3), 5), ['after', 'tags']);
  assert.deepEqual(decodeFailurePath(type, framed, 5), []);
});

test('decimal bytes of up to 15 digits (no bigint) are those of the bigint path', () => {
  const twos = (u: bigint) => {
    const bits = (u < 0n ? -u - 1n : u).toString(2).length;
    const bytes = Math.ceil((bits + 1) / 8);
    const x = u < 0n ? (1n << BigInt(bytes * 8)) + u : u;
    return Buffer.from(x.toString(16).padStart(bytes * 2, '0'), 'hex');
  };
  let seed = 11;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const values = ['0', '-0', '0.00', '-0.00', '00012.30', '1', '-1', '127', '128', '-128', '-129', '255', '256', '32767', '-32768', '999999999999999', '-999999999999999', '12.5', '-12.05'];
  for (let i = 0; i < 2000; i++) {
    const digits = 1 + Math.floor(rnd() * 15);
    const s = String(Math.floor(rnd() * 10 ** digits)).padStart(digits, '0');
    const cut = Math.floor(rnd() * Math.min(3, s.length));
    values.push((rnd() < 0.5 ? '-' : '') + (cut ? s.slice(0, s.length - cut) + '.' + s.slice(s.length - cut) : s));
  }
  for (const v of values) {
    const [ip, fp = ''] = v.replace('-', '').split('.');
    const u = BigInt(ip! + fp.padEnd(2, '0')) * (v.startsWith('-') ? -1n : 1n);
    assert.deepEqual(decimalBytes(v, 2, 18), twos(u), v);
  }
  // Beyond 15 digits, more fraction digits than the scale, or over the precision: the bigint path decides.
  assert.deepEqual(decimalBytes('12345678901234567.89', 2, 20), twos(1234567890123456789n));
  assert.deepEqual(decimalBytes('1.500', 2, 5), twos(150n));
  assert.throws(() => decimalBytes('1234.5', 2, 5), isPoison('AVRO_DECIMAL'));
  assert.throws(() => decimalBytes('1.234', 2, 5), isPoison('AVRO_DECIMAL'));
});

test('date: days since epoch, infinity as int32 sentinels, BC dates', () => {
  const t = T('date');
  const type = parseSchema(keySchema(ns, [{ name: 'v', type: t }]));
  const days = (v: string) => (avsc.Type.forSchema({ type: 'record', name: 'K', fields: [{ name: 'v', type: 'int' }] }).fromBuffer(type.toBuffer({ v })) as { v: number }).v;
  assert.equal(days('1970-01-02'), 1);
  assert.equal(days('infinity'), 2147483647);
  assert.equal(days('-infinity'), -2147483648);
  for (const v of ['2024-02-29', '1970-01-01', '1969-12-31', '0001-01-01', '0001-12-31 BC', '4713-11-24 BC', '5874897-12-31', 'infinity', '-infinity']) {
    assert.equal(roundTrip(t, v), v);
  }
  assert.throws(() => roundTrip(t, '2024-01-01T00:00:00'), SynclineError);
});

test('timestamps: micros exact over the whole range, infinity as int64 sentinels', () => {
  const tz = T('timestamptz');
  const ts = T('timestamp');
  for (const v of [
    '2024-01-01T12:00:00.123456Z',
    '1970-01-01T00:00:00.000000Z',
    '1969-12-31T23:59:59.999999Z',
    '0001-01-01T00:00:00.000001Z',
    '4714-11-24T00:00:00.000000Z BC',
    '2262-04-11T23:47:16.854776Z',
    '294246-12-31T23:59:59.999999Z',
    'infinity',
    '-infinity',
  ]) {
    assert.equal(roundTrip(tz, v), v);
  }
  for (const v of ['2024-01-01T12:00:00.123456', '0044-03-15T12:00:00.000000 BC', '9999-12-31T23:59:59.999999', 'infinity']) {
    assert.equal(roundTrip(ts, v), v);
  }
  // PostgreSQL's last timestamps (294247..294276 AD) do not fit in int64 micros since 1970.
  assert.throws(() => roundTrip(ts, '294276-12-31T23:59:59.999999'), isPoison('AVRO_TIMESTAMP'));
  const type = parseSchema(keySchema(ns, [{ name: 'v', type: tz }]));
  const raw = avsc.Type.forSchema({ type: 'record', name: 'K', fields: [{ name: 'v', type: 'long' }] });
  assert.equal((raw.fromBuffer(type.toBuffer({ v: '1970-01-01T00:00:01.000001Z' })) as { v: number }).v, 1000001);
});

test('floats, strings, bytes, uuid, json, arrays', () => {
  assert.equal(roundTrip(T('float'), Math.fround(1.1)), Math.fround(1.1));
  assert.ok(Number.isNaN(roundTrip(T('float'), NaN) as number));
  assert.ok(Object.is(roundTrip(T('double'), -0), -0));
  assert.equal(roundTrip(T('double'), 1.7976931348623157e308), 1.7976931348623157e308);
  assert.equal(roundTrip(T('double'), 5e-324), 5e-324);
  assert.equal(roundTrip(T('string'), 'héllo 😀 "q"'), 'héllo 😀 "q"');
  assert.deepEqual(roundTrip(T('bytes'), Buffer.from([0, 0, 1])), Buffer.from([0, 0, 1]));
  assert.equal(roundTrip(T('uuid'), 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
  assert.equal(roundTrip(T('json'), '{"a": [1, 2.50]}'), '{"a": [1, 2.50]}');
  assert.equal(roundTrip(T('bool'), false), false);
  const arr = T('array', { items: T('decimal', { precision: 6, scale: 2 }) });
  assert.deepEqual(roundTrip(arr, ['1.50', null, '-2.00']), ['1.50', null, '-2.00']);
  assert.deepEqual(roundTrip(T('array', { items: T('long') }), []), []);
  assert.deepEqual(roundTrip(T('array', { items: T('timestamptz') }), ['infinity', null]), ['infinity', null]);
});

test('envelope round trip, field naming, unchanged TOAST, multi-dimensional arrays', () => {
  const cols: SchemaColumn[] = [
    { name: 'id', type: T('long') },
    { name: 'body', type: T('string') },
    { name: 'grid', type: T('array', { items: T('int') }) },
  ];
  const type = parseSchema(valueSchema(ns, cols));
  const e = event({ id: 7n, body: 'x', grid: [1, null] }, { before: { id: 7n, body: 'old', grid: null }, op: 'u' });
  const avro = envelopeToAvro(e);
  assert.equal(avro.source.commit_lsn, '0/1A2B3C8');
  assert.equal(avro.source.tx_id, 5012);
  assert.equal(avro.ts_ms, 1795608000200);
  // Encoded from numbers, decoded as bigints (Avro long).
  const decoded = type.fromBuffer(type.toBuffer(avro)) as { ts_ms: unknown; source: { tx_id: unknown } };
  assert.equal(decoded.ts_ms, 1795608000200n);
  assert.equal(decoded.source.tx_id, 5012n);
  assert.equal(avro.source.connector, 'syncline');
  assert.deepEqual(envelopeFromAvro(type.fromBuffer(type.toBuffer(avro))), e);

  const del = event(null, { op: 'd', before: { id: 7n, body: null, grid: null }, source: { ...e.source, txId: null, snapshot: true } });
  assert.deepEqual(envelopeFromAvro(type.fromBuffer(type.toBuffer(envelopeToAvro(del)))), del);

  // Unchanged TOAST columns: not sent by PostgreSQL, written as null, removed again on decode.
  const toast = event({ id: 7n, grid: [2] }, { op: 'u', unchangedToast: ['body'] });
  const back = envelopeFromAvro(type.fromBuffer(type.toBuffer(envelopeToAvro(toast))));
  assert.deepEqual(back, toast);
  assert.equal('body' in back.after!, false);

  assert.throws(() => envelopeToAvro(event({ id: 1n, grid: [[1, 2], [3, 4]] })), isPoison('AVRO_MULTIDIM_ARRAY'));
  assert.throws(() => envelopeFromAvro({ op: 'x', source: {} }), isPoison('AVRO_ENVELOPE'));
});

test('envelopeHead: op and position from the leading fields, the rows never decoded; older layouts (rows first) too', () => {
  const cols: SchemaColumn[] = [{ name: 'id', type: T('long') }, { name: 'body', type: T('string') }];
  const type = parseSchema(valueSchema(ns, cols));
  const e = event({ id: 7n, body: 'x'.repeat(1000) }, { op: 'u' });
  const buf = Buffer.concat([Buffer.from([0, 0, 0, 0, 1]), type.toBuffer(envelopeToAvro(e))]);
  assert.deepEqual(envelopeHead(type, buf, 5), { op: 'u', commitPos: '0/1A2B3C8', idx: e.source.idx });
  // The rows replaced by garbage: the head is still read (nothing after source is decoded).
  const fields = (type as unknown as { fields: { type: avsc.Type }[] }).fields;
  const end = fields[1]!.type.decode(buf, fields[0]!.type.decode(buf, 5).offset).offset;
  const garbage = Buffer.concat([buf.subarray(0, end), Buffer.alloc(8, 0xff)]);
  assert.deepEqual(envelopeHead(type, garbage, 5), { op: 'u', commitPos: '0/1A2B3C8', idx: e.source.idx });
  assert.throws(() => type.fromBuffer(garbage.subarray(5)));
  // An envelope of the earlier field order (before, after, op, source, …) is read up to source.
  const schema = valueSchema(ns, cols) as { fields: { name: string }[] };
  const order = ['before', 'after', 'op', 'source', 'ts_ms', 'unchanged_toast'];
  const old = parseSchema({ ...schema, fields: order.map((n) => schema.fields.find((f) => f.name === n)) });
  const oldBuf = Buffer.concat([Buffer.from([0, 0, 0, 0, 2]), old.toBuffer(envelopeToAvro(e))]);
  assert.deepEqual(envelopeHead(old, oldBuf, 5), { op: 'u', commitPos: '0/1A2B3C8', idx: e.source.idx });
  assert.throws(() => envelopeHead(type, buf.subarray(0, 12), 5), isPoison('DECODE_FAILED'));
  // This version's layout is read straight from the bytes; it agrees with the generic reader on
  // positions of every size, with and without a transaction id, and on truncated input.
  assert.equal(envelopeHeadReader(type).name, 'readHeadByHand');
  assert.notEqual(envelopeHeadReader(old).name, 'readHeadByHand');
  for (const [lsn, idx, txId] of [['0/0', 0, null], ['FFFFFFFF/FFFFFFFF', 2 ** 31 - 1, 123456789012], ['16/B374D848', 64, 0], ['0/1', 63, -1]] as const) {
    const ev = event({ id: 1n, body: null }, { op: 'c', source: { ...e.source, commitPos: lsn, pos: lsn, idx, txId } });
    const b = Buffer.concat([Buffer.from([0, 0, 0, 0, 1]), type.toBuffer(envelopeToAvro(ev))]);
    const ob = Buffer.concat([Buffer.from([0, 0, 0, 0, 2]), old.toBuffer(envelopeToAvro(ev))]);
    assert.deepEqual(envelopeHead(type, b, 5), { op: 'c', commitPos: lsn, idx });
    assert.deepEqual(envelopeHead(old, ob, 5), envelopeHead(type, b, 5));
    const srcEnd = fields[1]!.type.decode(b, fields[0]!.type.decode(b, 5).offset).offset;
    for (const cut of [6, 8, 20, srcEnd - 1]) assert.throws(() => envelopeHead(type, b.subarray(0, cut), 5), isPoison('DECODE_FAILED'), `cut at ${cut}`);
  }
  assert.throws(() => envelopeHead(parseSchema(keySchema(ns, cols)), buf, 5), isPoison('AVRO_ENVELOPE'));
});

test('schema evolution: old messages read with a newer reader schema (logical types resolve)', () => {
  const v1cols: SchemaColumn[] = [
    { name: 'id', type: T('long') },
    { name: 'amount', type: T('decimal', { precision: 12, scale: 2 }) },
    { name: 'at', type: T('timestamptz') },
    { name: 'day', type: T('date') },
  ];
  const v2cols: SchemaColumn[] = [...v1cols, { name: 'note', type: T('string') }];
  const w = parseSchema(valueSchema(ns, v1cols));
  const r = parseSchema(valueSchema(ns, v2cols));
  const e = event({ id: 1n, amount: '12.50', at: '2024-01-01T00:00:00.000001Z', day: '-infinity' });
  const buf = w.toBuffer(envelopeToAvro(e));
  const decoded = envelopeFromAvro(r.fromBuffer(buf, r.createResolver(w)));
  assert.deepEqual(decoded.after, { ...e.after, note: null });
  // A reader with a larger decimal scale reads the old values exactly.
  const r2 = parseSchema(valueSchema(ns, [...v1cols.slice(0, 1), { name: 'amount', type: T('decimal', { precision: 14, scale: 4 }) }]));
  assert.equal((envelopeFromAvro(r2.fromBuffer(buf, r2.createResolver(w))).after as Row).amount, '12.5000');
});

// ---------------------------------------------------------------------------------------------------
// Integration: real PostgreSQL → text → canonical → Avro via the registry → canonical → PostgreSQL

const COLUMNS = `
  id int primary key,
  c_int2 smallint, c_int4 integer, c_int8 bigint,
  c_num numeric(20,6), c_vnum numeric, c_num0 numeric(10,0), c_price price,
  c_real real, c_double double precision,
  c_text text, c_varchar varchar(10), c_char char(3), c_name name,
  c_bool boolean, c_date date, c_ts timestamp, c_ts3 timestamp(3), c_tstz timestamptz,
  c_uuid uuid, c_json json, c_jsonb jsonb, c_bytea bytea, c_enum mood,
  c_int_arr int[], c_text_arr text[], c_num_arr numeric[], c_dec_arr numeric(6,2)[], c_varchar_arr varchar(5)[],
  c_int8_arr bigint[], c_bytea_arr bytea[], c_date_arr date[], c_tstz_arr timestamptz[], c_ts_arr timestamp[],
  c_bool_arr boolean[], c_float_arr float8[], c_real_arr real[], c_uuid_arr uuid[], c_jsonb_arr jsonb[], c_enum_arr mood[],
  c_interval interval, c_interval_ds interval day to second(3), c_inet inet, c_cidr cidr, c_macaddr macaddr,
  c_time time, c_timetz timetz, c_point point, c_money money, c_box_arr box[], c_range int4range, c_char1 "char",
  c_bit bit(4), c_varbit varbit(8), c_xml xml, c_tsvector tsvector, c_oid oid, c_interval_arr interval[]`;

const ROWS = [
  `(1, 32767, 2147483647, 9223372036854775807,
    12345678901234.123456, 123456789012345678901234567890.5, 1234567890, 12.345,
    3.14159, 1.7976931348623157e308,
    E'héllo wörld 😀 "quoted" ''single'' back\\\\slash\\nnewline\\ttab', 'abc', 'ab', 'some_name',
    true, '2024-02-29', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123', '2024-03-10 08:15:30.123456+05:30',
    'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{"b": 1,   "a": [1, 2.50, "x"]}', '{"b": 1, "a": [1, 2.50]}', '\\x00ff0000de', 'happy',
    '{1,2,NULL,-3}', ARRAY['a', NULL, 'q"x', 'a,b', '', 'NULL', 'b\\s', '{x}', ' sp ', 'é😀'], '{1.5,NULL,-0.000001,NaN,Infinity}',
    '{1.50,-2.00,NULL}', '{"ab ","x"}',
    '{-9223372036854775808,9223372036854775807}', ARRAY['\\x00'::bytea, NULL, '\\x'::bytea, '\\x5c22'::bytea], '{2024-01-01,infinity,NULL,0044-03-15 BC}',
    '{"2024-01-01 00:00:00.000001+01",-infinity}', '{"2024-01-01 00:00:00.5"}',
    '{t,f,NULL}', '{NaN,Infinity,-0,0.1,-1e-300}', '{1.1,NULL}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', ARRAY['{"a":1}'::jsonb, 'null'::jsonb, NULL],
    '{sad,NULL,"it''s \\"complicated\\""}',
    '1 year 2 mons 3 days 04:05:06.789', '1 day 02:03:04.5678', '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03',
    '23:59:59.999999', '12:00:00+05:30', '(1.5,-2)', '12.34', '{(1,1),(0,0);(2,2),(1,1)}', '[1,10)', 'x',
    B'1010', B'101', '<a b="1">x &amp; y</a>', 'a fat cat', 4294967295, '{"1 day","-2 hours"}')`,
  `(2, ${Array((COLUMNS.match(/\bc_\w+ /g) ?? []).length).fill('NULL').join(', ')})`,
  `(3, -32768, -2147483648, -9223372036854775808,
    -99999999999999.999999, 1e-30, 0, -0.001,
    'NaN', '-0',
    '', '', '', '',
    false, 'infinity', 'infinity', '-infinity', '-infinity',
    '00000000-0000-0000-0000-000000000000', 'null', '[]', '\\x', 'it''s "complicated"',
    '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
    '-178000000 years', '0', '::1', '::/0', '00:00:00:00:00:00',
    '00:00:00', '00:00:00-15:59', '(0,0)', '-92233720368547758.08', '{}', 'empty', ' ',
    B'0000', B'', '', '', 0, '{}')`,
  `(4, 0, 0, 0,
    0.000001, 'NaN', -1, 0,
    'Infinity', 'Infinity',
    ' leading and trailing ', '0123456789', 'abc', 'x',
    true, '0044-03-15 BC', '4714-11-24 00:00:00 BC', '0001-01-01 00:00:00 BC', '0001-01-01 00:30:00+01',
    'ffffffff-ffff-ffff-ffff-ffffffffffff', '"just a string"', '{"nested": {"deep": [null, true, 1e-7]}}', '\\x000000', 'sad',
    '{0}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}',
    '178000000 years', '-1 days +23:59:59.999', '::ffff:1.2.3.4', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff',
    '24:00:00', '24:00:00+15:59', '(-1e300,1e-300)', '92233720368547758.07', '{(0,0),(0,0)}', '(,)', E'\\\\',
    B'1111', B'11111111', '<!-- c -->', '', 1, '{}')`,
  `(5, 1, 1, 1,
    -0.5, 'Infinity', 9999999999, -99999.999,
    '-Infinity', 4.9e-324,
    'x', 'x', 'x', 'x',
    false, '5874897-12-31', '294246-12-31 23:59:59.999999', '1999-12-31 23:59:59.999', '1900-01-01 00:00:00+00:19:32',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{}', '{"a": "\\u00e9\\ud83d\\ude00"}', '\\xffffffff', 'ok',
    '{{1,2},{3,4}}', '{{a,b}}', '{1}', '{1}', '{x}', '{1}', '{"\\\\x01"}', '{-infinity}', '{infinity}', '{infinity}', '{t}', '{-Infinity}', '{NaN}', '{00000000-0000-0000-0000-000000000001}', '{"[]"}', '{ok}',
    '-1 mons', '1 second', '0.0.0.0/0', '0.0.0.0/0', '01:02:03:04:05:06',
    '00:00:00.000001', '00:00:00.000001+00', '(1,1)', '0', '{(3,3),(1,1);(5,5),(4,4)}', '[-2147483648,2147483647)', 'a',
    B'0101', B'1', '<x/>', 'z', 42, '{"00:00:00"}')`,
];

test('integration: every column type survives PostgreSQL → Avro (registry) → PostgreSQL exactly', { timeout: 120_000 }, async (t) => {
  const suffix = crypto.randomBytes(4).toString('hex');
  const dbName = `syncline_t_types_${suffix}`;
  const admin = new pg.Client({ ...PG, database: 'postgres' });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  const textTypes = { getTypeParser: () => (v: string) => v };
  const client = new pg.Client({ ...PG, database: dbName, types: textTypes as never });
  const subjects: string[] = [];
  t.after(async () => {
    await client.end().catch(() => {});
    await admin.query(`drop database if exists ${dbName} with (force)`).catch(() => {});
    await admin.end().catch(() => {});
    for (const s of subjects) {
      await fetch(`${REGISTRY}/subjects/${s}`, { method: 'DELETE' }).catch(() => {});
      await fetch(`${REGISTRY}/subjects/${s}?permanent=true`, { method: 'DELETE' }).catch(() => {});
    }
  });
  await client.connect();
  await client.query(`SET TimeZone='UTC'; SET DateStyle='ISO'; SET extra_float_digits=3`);
  await client.query(`create type mood as enum ('sad', 'ok', 'happy', 'it''s "complicated"')`);
  await client.query(`create domain price as numeric(8,3)`);
  await client.query(`create table a (${COLUMNS})`);
  await client.query(`create table b (${COLUMNS})`);
  // Insert in a non-UTC session: the text we read back must not depend on it.
  await client.query(`SET TimeZone='Asia/Kolkata'`);
  for (const r of ROWS) await client.query(`insert into a values ${r}`);
  await client.query(`SET TimeZone='UTC'`);

  const catalog = await TypeCatalog.load(client);
  const res = await client.query<unknown[]>({ text: 'select * from a order by id', rowMode: 'array' } as pg.QueryArrayConfig);
  await catalog.ensure(client, res.fields.map((f) => f.dataTypeID));
  const cols: SchemaColumn[] = res.fields.map((f) => ({ name: f.name, type: columnType(f.dataTypeID, f.dataTypeModifier, catalog) }));
  const kinds = Object.fromEntries(cols.map((c) => [c.name, c.type.kind]));
  assert.deepEqual(
    { c_num: kinds.c_num, c_vnum: kinds.c_vnum, c_price: kinds.c_price, c_enum: kinds.c_enum, c_text_arr: kinds.c_text_arr, c_box_arr: kinds.c_box_arr, c_interval: kinds.c_interval },
    { c_num: 'decimal', c_vnum: 'vdecimal', c_price: 'decimal', c_enum: 'enum', c_text_arr: 'array', c_box_arr: 'text', c_interval: 'text' },
  );

  // pgType is SQL that creates the same column type.
  await client.query(`create table c (${cols.map((c) => `${quoteIdent(c.name)} ${c.type.pgType}`).join(', ')})`);
  const formats = await client.query<string[]>({
    // A result set reports a domain column as its base type (logical replication's Relation message reports the domain).
    text: `select a.attname,
                  case when t.typtype = 'd' then format_type(t.typbasetype, t.typtypmod) else format_type(a.atttypid, a.atttypmod) end,
                  format_type(c.atttypid, c.atttypmod)
             from pg_attribute a join pg_type t on t.oid = a.atttypid
             join pg_attribute c on c.attname = a.attname and c.attrelid = 'c'::regclass
            where a.attrelid = 'a'::regclass and a.attnum > 0 and not a.attisdropped`,
    rowMode: 'array',
  } as pg.QueryArrayConfig);
  assert.equal(formats.rows.length, cols.length);
  for (const [name, fa, fc] of formats.rows as unknown as string[][]) assert.equal(fc, fa, `pgType of ${name}`);

  // With the attribute's own type (as in a Relation message), a domain keeps its name and maps as its base type.
  const dom = await client.query<string[]>({
    text: `select atttypid::text, atttypmod::text from pg_attribute where attrelid = 'a'::regclass and attname = 'c_price'`,
    rowMode: 'array',
  } as pg.QueryArrayConfig);
  const [domOid, domMod] = (dom.rows[0] as unknown as string[]).map(Number);
  assert.deepEqual(columnType(domOid, domMod, catalog), { kind: 'decimal', pgType: 'public.price', precision: 8, scale: 3 });

  const rows: Row[] = (res.rows as unknown as (string | null)[][]).map((r) => Object.fromEntries(cols.map((c, i) => [c.name, parsePgText(r[i], c.type)])));
  assert.equal(rows.length, ROWS.length);
  // A few canonical values, checked by hand.
  assert.equal(rows[0].c_int8, 9223372036854775807n);
  assert.equal(rows[2].c_int8, -9223372036854775808n);
  assert.equal(rows[0].c_num, '12345678901234.123456');
  assert.equal(rows[2].c_vnum, '0.000000000000000000000000000001');
  assert.equal(rows[0].c_vnum, '123456789012345678901234567890.5');
  assert.equal(rows[0].c_double, 1.7976931348623157e308);
  assert.equal(rows[0].c_tstz, '2024-03-10T02:45:30.123456Z');
  assert.equal(rows[0].c_ts, '2024-01-02T03:04:05.123456');
  assert.equal(rows[0].c_uuid, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
  assert.equal(rows[0].c_char, 'ab ');
  assert.deepEqual(rows[0].c_bytea, Buffer.from([0, 0xff, 0, 0, 0xde]));
  assert.deepEqual(rows[0].c_text_arr, ['a', null, 'q"x', 'a,b', '', 'NULL', 'b\\s', '{x}', ' sp ', 'é😀']);
  assert.deepEqual(rows[0].c_num_arr, ['1.5', null, '-0.000001', 'NaN', 'Infinity']);
  assert.deepEqual(rows[4].c_int_arr, [[1, 2], [3, 4]]);
  assert.equal(rows[3].c_date, '0044-03-15 BC');
  assert.equal(rows[3].c_tstz, '0001-12-31T23:30:00.000000Z BC');
  assert.ok(Object.is(rows[2].c_double, -0));
  for (const [k, v] of Object.entries(rows[1])) if (k !== 'id') assert.equal(v, null, k);

  // Register key and value schemas.
  const producer = new SchemaRegistry({ host: REGISTRY }, { forSchemaOptions: avroOptions });
  const consumer = new SchemaRegistry({ host: REGISTRY }, { forSchemaOptions: avroOptions }); // fetches schemas by id
  const topic = `syncline-test-${suffix}`;
  subjects.push(`${topic}-key`, `${topic}-value`);
  const tableNs = { prefix: 'syncline', schema: 'public', table: 'a' };
  const keyCols = cols.filter((c) => c.name === 'id');
  const { id: keyId } = await producer.register({ type: SchemaType.AVRO, schema: JSON.stringify(keySchema(tableNs, keyCols)) }, { subject: `${topic}-key` });
  const { id: valueId } = await producer.register({ type: SchemaType.AVRO, schema: JSON.stringify(valueSchema(tableNs, cols)) }, { subject: `${topic}-value` });
  // The registry keeps the pgType attributes, and the parsed writer schema exposes them.
  assert.deepEqual(columnPgTypes((await consumer.getSchema(valueId)) as unknown as avsc.Type), new Map(cols.map((c) => [c.name, c.type.pgType])));

  const insert = `insert into b (${cols.map((c) => quoteIdent(c.name)).join(', ')}) values (${cols.map((_, i) => `$${i + 1}`).join(', ')})`;
  for (const row of rows) {
    const e = event(row, { op: 'r' });
    if (Object.values(row).some((v) => Array.isArray(v) && v.some(Array.isArray))) {
      // Multi-dimensional arrays: no Avro representation, poison (the row is checked and skipped here).
      assert.throws(() => envelopeToAvro(e), isPoison('AVRO_MULTIDIM_ARRAY'));
      await client.query(
        insert,
        cols.map((c) => toPgParam(row[c.name], c.type)),
      );
      continue;
    }
    const keyBuf = await producer.encode(keyId, { id: row.id });
    const valueBuf = await producer.encode(valueId, envelopeToAvro(e));
    assert.equal(valueBuf.readInt32BE(1), valueId);
    assert.deepEqual({ ...(await consumer.decode(keyBuf)) }, { id: row.id });
    const decoded = envelopeFromAvro(await consumer.decode(valueBuf));
    assert.deepStrictEqual(decoded, e);
    await client.query(
      insert,
      cols.map((c) => toPgParam(decoded.after![c.name], c.type)),
    );
  }

  // Every column of every row identical in PostgreSQL's own text form.
  const diff = await client.query<string[]>({
    text: `select coalesce(a.id, b.id)::text, array_to_string(array_remove(array[${cols
      .map((c) => `case when a.${quoteIdent(c.name)}::text is distinct from b.${quoteIdent(c.name)}::text then '${c.name}' end`)
      .join(', ')}], null), ',')
             from a full join b on a.id = b.id
            where (a.*)::text is distinct from (b.*)::text`,
    rowMode: 'array',
  } as pg.QueryArrayConfig);
  assert.deepEqual(diff.rows, [], `rows differ (id, columns): ${JSON.stringify(diff.rows)}`);
  const counts = await client.query<string[]>({ text: 'select (select count(*) from a)::text, (select count(*) from b)::text', rowMode: 'array' } as pg.QueryArrayConfig);
  assert.deepEqual(counts.rows[0], [String(ROWS.length), String(ROWS.length)]);

  // Row 5 (multi-dimensional arrays) went through toPgParam without Avro; the rest round-tripped through
  // Avro; also check the text of a whole row through the second table.
  const sample = await client.query<string[]>({ text: 'select (b.*)::text from b where id = 1', rowMode: 'array' } as pg.QueryArrayConfig);
  assert.ok((sample.rows[0] as unknown as string[])[0].includes('9223372036854775807'));

  // NaN in a numeric(p,s) column cannot be a plain Avro decimal: poison (capture then widens the
  // column to ["null", decimal, "string"], see the unit test above and test/numeric-special.int.test.ts).
  await client.query(`insert into a (id, c_num) values (100, 'NaN')`);
  const nan = await client.query<unknown[]>({ text: 'select * from a where id = 100', rowMode: 'array' } as pg.QueryArrayConfig);
  const nanRow = Object.fromEntries(cols.map((c, i) => [c.name, parsePgText((nan.rows[0] as unknown as (string | null)[])[i], c.type)]));
  await assert.rejects(producer.encode(valueId, envelopeToAvro(event(nanRow))), /NaN|cannot be represented|invalid/i);
});

test('integration: adding a column registers a BACKWARD-compatible version; old messages decode', { timeout: 60_000 }, async (t) => {
  const subject = `syncline-test-${crypto.randomBytes(4).toString('hex')}-value`;
  t.after(async () => {
    await fetch(`${REGISTRY}/subjects/${subject}`, { method: 'DELETE' }).catch(() => {});
    await fetch(`${REGISTRY}/subjects/${subject}?permanent=true`, { method: 'DELETE' }).catch(() => {});
  });
  const tableNs = { prefix: 'syncline', schema: 'public', table: 'evolving' };
  const v1cols: SchemaColumn[] = [
    { name: 'id', type: T('long', { pgType: 'int8' }) },
    { name: 'amount', type: T('decimal', { pgType: 'numeric(12,2)', precision: 12, scale: 2 }) },
    { name: 'at', type: T('timestamptz', { pgType: 'timestamptz' }) },
  ];
  const v2cols: SchemaColumn[] = [...v1cols, { name: 'note', type: T('string', { pgType: 'text' }) }];
  const v1 = valueSchema(tableNs, v1cols);
  const v2 = valueSchema(tableNs, v2cols);

  const producer = new SchemaRegistry({ host: REGISTRY }, { forSchemaOptions: avroOptions });
  const { id: id1 } = await producer.register({ type: SchemaType.AVRO, schema: JSON.stringify(v1) }, { subject });
  const old = event({ id: 1n, amount: '12.50', at: '2024-01-01T00:00:00.000001Z' });
  const oldBuf = await producer.encode(id1, envelopeToAvro(old));

  const { id: id2 } = await producer.register({ type: SchemaType.AVRO, schema: JSON.stringify(v2) }, { subject });
  assert.notEqual(id2, id1);
  const versions = (await (await fetch(`${REGISTRY}/subjects/${subject}/versions`)).json()) as number[];
  assert.equal(versions.length, 2);
  assert.equal(await producer.getLatestSchemaId(subject), id2);
  const newBuf = await producer.encode(id2, envelopeToAvro(event({ id: 2n, amount: '0.01', at: 'infinity', note: 'n' })));

  const consumer = new SchemaRegistry({ host: REGISTRY }, { forSchemaOptions: avroOptions });
  // With its writer schema.
  assert.deepStrictEqual(envelopeFromAvro(await consumer.decode(oldBuf)), old);
  // With the new schema as reader: the added column is null.
  const asV2 = envelopeFromAvro(await consumer.decode(oldBuf, { [SchemaType.AVRO]: { readerSchema: v2 as never } }));
  assert.deepStrictEqual(asV2.after, { ...old.after, note: null });
  assert.deepStrictEqual(envelopeFromAvro(await consumer.decode(newBuf)).after, { id: 2n, amount: '0.01', at: 'infinity', note: 'n' });
  assert.deepEqual(columnPgTypes((await consumer.getSchema(id2)) as unknown as avsc.Type).get('note'), 'text');

  // Changing a column's type is not BACKWARD compatible: the registry refuses it.
  const v3 = valueSchema(tableNs, [{ name: 'id', type: T('string', { pgType: 'text' }) }, ...v2cols.slice(1)]);
  await assert.rejects(producer.register({ type: SchemaType.AVRO, schema: JSON.stringify(v3) }, { subject }), (e: unknown) => (e as { status?: number }).status === 409);
});

test('nullable logical columns (unions): values written in any order round-trip; a bad one is refused', () => {
  const t = parseSchema({
    type: 'record', name: 'N', fields: [
      { name: 'd', type: ['null', { type: 'bytes', logicalType: 'decimal', precision: 12, scale: 2 }] },
      { name: 't', type: ['null', { type: 'long', logicalType: 'timestamp-micros' }] },
      { name: 'day', type: ['null', { type: 'int', logicalType: 'date' }] },
    ],
  });
  const rows = [
    { d: '1.50', t: '2026-12-04T01:02:03.000001Z', day: '2026-12-04' },
    { d: '1.50', t: '2026-12-04T01:02:03.000001Z', day: '2026-12-04' },
    { d: '-7.00', t: null, day: '1969-12-31' },
    { d: null, t: '1970-01-01T00:00:00.000000Z', day: null },
    { d: '1.50', t: '2026-12-04T01:02:03.000002Z', day: '2026-12-04' },
  ];
  for (const r of rows) assert.deepEqual({ ...t.fromBuffer(t.toBuffer(r)) }, r);
  assert.throws(() => t.toBuffer({ d: 'abc', t: null, day: null }));
  assert.deepEqual({ ...t.fromBuffer(t.toBuffer(rows[0])) }, rows[0]); // not left holding the bad value
});
