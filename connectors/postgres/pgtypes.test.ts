import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import {
  TypeCatalog,
  arrayLiteral,
  columnArrayLiteral,
  columnType,
  floatText,
  numericTypmod,
  parseArrayLiteral,
  parsePgText,
  toPgParam,
  toPgParamUntyped,
  type ColumnType,
  type PgTypeInfo,
} from './pgtypes.js';
import {
  canonicalTimestamp,
  civilFromDays,
  dateToDays,
  daysFromCivil,
  daysToDate,
  microsToTimestamp,
  parseTimestampParts,
  parseTimestampPartsRe,
  timestampToMicros,
} from '../../src/core/types.js';
import { SynclineError } from '../../src/core/errors.js';

const info = (oid: number, name: string, extra: Partial<PgTypeInfo> = {}): PgTypeInfo => ({
  oid,
  name,
  typtype: 'b',
  elemOid: 0,
  category: 'U',
  schema: 'pg_catalog',
  delim: ',',
  baseOid: 0,
  baseTypmod: -1,
  ...extra,
});

// A fake catalog with the real oids of the built-in types.
const catalog = new TypeCatalog([
  info(16, 'bool'),
  info(17, 'bytea'),
  info(18, 'char'),
  info(19, 'name', { category: 'S', elemOid: 18 }),
  info(20, 'int8'),
  info(21, 'int2'),
  info(22, 'int2vector', { category: 'A', elemOid: 21 }),
  info(23, 'int4'),
  info(25, 'text', { category: 'S' }),
  info(114, 'json'),
  info(700, 'float4'),
  info(701, 'float8'),
  info(1043, 'varchar', { category: 'S' }),
  info(1042, 'bpchar', { category: 'S' }),
  info(1082, 'date'),
  info(1114, 'timestamp'),
  info(1184, 'timestamptz'),
  info(1186, 'interval'),
  info(1700, 'numeric'),
  info(2950, 'uuid'),
  info(3802, 'jsonb'),
  info(869, 'inet'),
  info(603, 'box', { delim: ';' }),
  info(1020, '_box', { category: 'A', elemOid: 603 }),
  info(1007, '_int4', { category: 'A', elemOid: 23 }),
  info(1009, '_text', { category: 'A', elemOid: 25 }),
  info(1015, '_varchar', { category: 'A', elemOid: 1043 }),
  info(1231, '_numeric', { category: 'A', elemOid: 1700 }),
  info(90001, 'mood', { typtype: 'e', category: 'E', schema: 'public' }),
  info(90002, '_mood', { category: 'A', elemOid: 90001, schema: 'public' }),
  info(90003, 'Weird Mood', { typtype: 'e', category: 'E', schema: 'My Schema' }),
  info(90004, 'money2', { typtype: 'd', category: 'N', schema: 'public', baseOid: 1700, baseTypmod: ((12 << 16) | 2) + 4 }),
  info(90005, 'citext', { category: 'S', schema: 'public' }),
]);

const numTypmod = (p: number, s: number) => ((p << 16) | (s & 0x7ff)) + 4;

test('numericTypmod decodes precision and scale (also PG 15 negative scales)', () => {
  assert.deepEqual(numericTypmod(numTypmod(12, 2)), { precision: 12, scale: 2 });
  assert.deepEqual(numericTypmod(numTypmod(20, 6)), { precision: 20, scale: 6 });
  assert.deepEqual(numericTypmod(numTypmod(3, -2)), { precision: 3, scale: -2 });
  assert.deepEqual(numericTypmod(numTypmod(3, 5)), { precision: 3, scale: 5 });
  assert.equal(numericTypmod(-1), null);
});

test('columnType maps PostgreSQL types', () => {
  const ct = (oid: number, mod = -1) => columnType(oid, mod, catalog);
  assert.deepEqual(ct(21), { kind: 'int', pgType: 'int2' });
  assert.deepEqual(ct(23), { kind: 'int', pgType: 'int4' });
  assert.deepEqual(ct(20), { kind: 'long', pgType: 'int8' });
  assert.deepEqual(ct(1700, numTypmod(12, 2)), { kind: 'decimal', pgType: 'numeric(12,2)', precision: 12, scale: 2 });
  assert.deepEqual(ct(1700), { kind: 'vdecimal', pgType: 'numeric' });
  // Not representable as an Avro decimal: exact as a variable-scale string.
  assert.deepEqual(ct(1700, numTypmod(3, -2)), { kind: 'vdecimal', pgType: 'numeric(3,-2)' });
  assert.deepEqual(ct(1700, numTypmod(3, 5)), { kind: 'vdecimal', pgType: 'numeric(3,5)' });
  assert.deepEqual(ct(700), { kind: 'float', pgType: 'float4' });
  assert.deepEqual(ct(701), { kind: 'double', pgType: 'float8' });
  assert.deepEqual(ct(25), { kind: 'string', pgType: 'text' });
  assert.deepEqual(ct(1043, 44), { kind: 'string', pgType: 'varchar(40)' });
  assert.deepEqual(ct(1043), { kind: 'string', pgType: 'varchar' });
  assert.deepEqual(ct(1042, 7), { kind: 'string', pgType: 'char(3)' });
  assert.deepEqual(ct(19), { kind: 'string', pgType: 'name' });
  assert.deepEqual(ct(90005), { kind: 'string', pgType: 'public.citext' });
  assert.deepEqual(ct(16), { kind: 'bool', pgType: 'bool' });
  assert.deepEqual(ct(1082), { kind: 'date', pgType: 'date' });
  assert.deepEqual(ct(1114), { kind: 'timestamp', pgType: 'timestamp' });
  assert.deepEqual(ct(1114, 3), { kind: 'timestamp', pgType: 'timestamp(3)' });
  assert.deepEqual(ct(1184), { kind: 'timestamptz', pgType: 'timestamptz' });
  assert.deepEqual(ct(2950), { kind: 'uuid', pgType: 'uuid' });
  assert.deepEqual(ct(114), { kind: 'json', pgType: 'json' });
  assert.deepEqual(ct(3802), { kind: 'json', pgType: 'jsonb' });
  assert.deepEqual(ct(17), { kind: 'bytes', pgType: 'bytea' });
  assert.deepEqual(ct(1007), { kind: 'array', pgType: 'int4[]', items: { kind: 'int', pgType: 'int4' } });
  assert.deepEqual(ct(1015, 14), { kind: 'array', pgType: 'varchar(10)[]', items: { kind: 'string', pgType: 'varchar(10)' } });
  assert.deepEqual(ct(1231, numTypmod(8, 3)), {
    kind: 'array',
    pgType: 'numeric(8,3)[]',
    items: { kind: 'decimal', pgType: 'numeric(8,3)', precision: 8, scale: 3 },
  });
  assert.deepEqual(ct(90001), { kind: 'enum', pgType: 'public.mood' });
  assert.deepEqual(ct(90002), { kind: 'array', pgType: 'public.mood[]', items: { kind: 'enum', pgType: 'public.mood' } });
  assert.deepEqual(ct(90003), { kind: 'enum', pgType: '"My Schema"."Weird Mood"' });
  assert.deepEqual(ct(90004), { kind: 'decimal', pgType: 'public.money2', precision: 12, scale: 2 });
  assert.deepEqual(ct(1186), { kind: 'text', pgType: 'interval' });
  assert.deepEqual(ct(1186, (7176 << 16) | 3), { kind: 'text', pgType: 'interval day to second(3)' });
  assert.deepEqual(ct(869), { kind: 'text', pgType: 'inet' });
  assert.deepEqual(ct(18), { kind: 'text', pgType: '"char"' });
  assert.deepEqual(ct(22), { kind: 'text', pgType: 'int2vector' });
  // box[] uses ';' between elements: kept whole as text.
  assert.deepEqual(ct(1020), { kind: 'text', pgType: 'box[]' });
  assert.throws(() => ct(123456), (e: unknown) => e instanceof SynclineError && e.code === 'PG_TYPE_UNKNOWN');
});

const T = (kind: ColumnType['kind'], extra: Partial<ColumnType> = {}): ColumnType => ({ kind, pgType: kind, ...extra });

test('parsePgText: numbers', () => {
  assert.equal(parsePgText(null, T('int')), null);
  assert.equal(parsePgText('-32768', T('int')), -32768);
  assert.equal(parsePgText('9223372036854775807', T('long')), 9223372036854775807n);
  assert.equal(parsePgText('-9223372036854775808', T('long')), -9223372036854775808n);
  assert.equal(parsePgText('12345678901234.123456', T('decimal')), '12345678901234.123456');
  assert.equal(parsePgText('NaN', T('vdecimal')), 'NaN');
  assert.equal(parsePgText('1.7976931348623157e+308', T('double')), 1.7976931348623157e308);
  assert.ok(Number.isNaN(parsePgText('NaN', T('double'))));
  assert.equal(parsePgText('Infinity', T('double')), Infinity);
  assert.equal(parsePgText('-Infinity', T('float')), -Infinity);
  assert.ok(Object.is(parsePgText('-0', T('double')), -0));
  // float4: the canonical value is the exact float4 value.
  assert.equal(parsePgText('1.1', T('float')), Math.fround(1.1));
  assert.equal(parsePgText('3.4028235e+38', T('float')), 3.4028234663852886e38);
  assert.throws(() => parsePgText('x', T('int')), SynclineError);
  assert.throws(() => parsePgText('', T('double')), SynclineError);
});

test('parsePgText: strings, bool, uuid, json, bytes', () => {
  assert.equal(parsePgText('ab ', T('string')), 'ab ');
  assert.equal(parsePgText('happy', T('enum')), 'happy');
  assert.equal(parsePgText('1 day 02:00:00', T('text')), '1 day 02:00:00');
  assert.equal(parsePgText('t', T('bool')), true);
  assert.equal(parsePgText('f', T('bool')), false);
  assert.equal(parsePgText('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', T('uuid')), 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
  assert.equal(parsePgText('{"b": 1,  "a":2}', T('json')), '{"b": 1,  "a":2}');
  assert.deepEqual(parsePgText('\\x00ff10', T('bytes')), Buffer.from([0, 255, 16]));
  assert.deepEqual(parsePgText('\\x', T('bytes')), Buffer.alloc(0));
  // bytea_output = escape
  assert.deepEqual(parsePgText('a\\000\\\\b\\377', T('bytes')), Buffer.from([0x61, 0, 0x5c, 0x62, 0xff]));
});

test('parsePgText: dates and timestamps', () => {
  assert.equal(parsePgText('2024-02-29', T('date')), '2024-02-29');
  assert.equal(parsePgText('0044-03-15 BC', T('date')), '0044-03-15 BC');
  assert.equal(parsePgText('infinity', T('date')), 'infinity');
  assert.equal(parsePgText('-infinity', T('date')), '-infinity');
  assert.equal(parsePgText('5874897-12-31', T('date')), '5874897-12-31');
  assert.equal(parsePgText('2024-01-01 12:00:00', T('timestamp')), '2024-01-01T12:00:00.000000');
  assert.equal(parsePgText('2024-01-01 12:00:00.5', T('timestamp')), '2024-01-01T12:00:00.500000');
  assert.equal(parsePgText('2024-01-01 12:00:00.123456', T('timestamp')), '2024-01-01T12:00:00.123456');
  assert.equal(parsePgText('0044-03-15 12:00:00 BC', T('timestamp')), '0044-03-15T12:00:00.000000 BC');
  assert.equal(parsePgText('10000-01-01 00:00:00', T('timestamp')), '10000-01-01T00:00:00.000000');
  assert.equal(parsePgText('infinity', T('timestamp')), 'infinity');
  assert.equal(parsePgText('2024-01-01 12:00:00.5+00', T('timestamptz')), '2024-01-01T12:00:00.500000Z');
  assert.equal(parsePgText('2024-01-01 12:00:00.5+05:30', T('timestamptz')), '2024-01-01T06:30:00.500000Z');
  assert.equal(parsePgText('2024-01-01 01:00:00-03', T('timestamptz')), '2024-01-01T04:00:00.000000Z');
  assert.equal(parsePgText('2024-01-01 02:00:00+05', T('timestamptz')), '2023-12-31T21:00:00.000000Z');
  // LMT offsets (old dates in a non-UTC session) have seconds.
  assert.equal(parsePgText('1900-01-01 00:19:32+00:19:32', T('timestamptz')), '1900-01-01T00:00:00.000000Z');
  assert.equal(parsePgText('2024-02-29 23:30:00-01', T('timestamptz')), '2024-03-01T00:30:00.000000Z');
  assert.equal(parsePgText('0001-01-01 00:30:00+01', T('timestamptz')), '0001-12-31T23:30:00.000000Z BC');
  assert.equal(parsePgText('0044-03-15 12:00:00+00 BC', T('timestamptz')), '0044-03-15T12:00:00.000000Z BC');
  assert.equal(parsePgText('-infinity', T('timestamptz')), '-infinity');
  // Canonical input is accepted too (idempotent).
  assert.equal(canonicalTimestamp('2024-01-01T06:30:00.500000Z', true), '2024-01-01T06:30:00.500000Z');
  assert.equal(canonicalTimestamp('0044-03-15T12:00:00.000000 BC', false), '0044-03-15T12:00:00.000000 BC');
  assert.throws(() => parsePgText('01/02/2024', T('date')), SynclineError);
  assert.throws(() => parsePgText('2024-01-01 12:00:00+02', T('timestamp')), SynclineError);
});

test('parsePgText: arrays', () => {
  const int = T('array', { items: T('int') });
  const text = T('array', { items: T('string') });
  assert.deepEqual(parsePgText('{}', int), []);
  assert.deepEqual(parsePgText('{1,2,NULL}', int), [1, 2, null]);
  assert.deepEqual(parsePgText('{{1,2},{3,4}}', int), [[1, 2], [3, 4]]);
  assert.deepEqual(parsePgText('{{{1},{2}}}', int), [[[1], [2]]]);
  assert.deepEqual(parsePgText('{"a b","",NULL,"NULL","q\\"x","b\\\\s",plain,"a,b","{x}"}', text), [
    'a b',
    '',
    null,
    'NULL',
    'q"x',
    'b\\s',
    'plain',
    'a,b',
    '{x}',
  ]);
  assert.deepEqual(parsePgText('{ 1 , 2 }', int), [1, 2]);
  assert.deepEqual(parsePgText('{null,nULL}', text), [null, null]);
  assert.deepEqual(parsePgText('{"\\\\x00ff",NULL}', T('array', { items: T('bytes') })), [Buffer.from([0, 255]), null]);
  assert.deepEqual(parsePgText('{9223372036854775807}', T('array', { items: T('long') })), [9223372036854775807n]);
  assert.deepEqual(parsePgText('{"2024-01-01 00:00:00+00",infinity}', T('array', { items: T('timestamptz') })), [
    '2024-01-01T00:00:00.000000Z',
    'infinity',
  ]);
  assert.deepEqual(parsePgText('{"{\\"a\\":1}"}', T('array', { items: T('json') })), ['{"a":1}']);
  assert.deepEqual(parsePgText('{t,f}', T('array', { items: T('bool') })), [true, false]);
  assert.throws(() => parsePgText('[0:1]={1,2}', int), (e: unknown) => e instanceof SynclineError && e.code === 'PG_ARRAY_BOUNDS');
  assert.throws(() => parsePgText('{1,2', int), SynclineError);
  assert.throws(() => parsePgText('{1,,2}', int), SynclineError);
  assert.throws(() => parsePgText('{1} x', int), SynclineError);
});

test('toPgParam / arrayLiteral write values back', () => {
  assert.equal(toPgParam(null, T('int')), null);
  assert.equal(toPgParam(5, T('int')), 5);
  assert.equal(toPgParam(-9223372036854775808n, T('long')), '-9223372036854775808');
  assert.equal(toPgParam('12.50', T('decimal')), '12.50');
  assert.equal(toPgParam(NaN, T('double')), 'NaN');
  assert.equal(toPgParam(Infinity, T('double')), 'Infinity');
  assert.equal(toPgParam(-Infinity, T('float')), '-Infinity');
  assert.equal(toPgParam(-0, T('double')), '-0');
  assert.equal(toPgParam(0.1, T('double')), '0.1');
  assert.equal(toPgParam(true, T('bool')), true);
  const buf = Buffer.from([0, 1]);
  assert.equal(toPgParam(buf, T('bytes')), buf);
  assert.equal(toPgParam('2024-01-01T00:00:00.000000Z', T('timestamptz')), '2024-01-01T00:00:00.000000Z');
  assert.equal(toPgParam([1, null, 3], T('array', { items: T('int') })), '{"1",NULL,"3"}');
  assert.equal(toPgParam([], T('array', { items: T('int') })), '{}');
  assert.equal(toPgParam(['NULL', 'q"x', 'b\\s', '', null], T('array', { items: T('string') })), '{"NULL","q\\"x","b\\\\s","",NULL}');
  assert.equal(toPgParam([[1, 2], [3, 4]], T('array', { items: T('int') })), '{{"1","2"},{"3","4"}}');
  assert.equal(toPgParam([Buffer.from([0, 255])], T('array', { items: T('bytes') })), '{"\\\\x00ff"}');
  assert.equal(toPgParam([true, false], T('array', { items: T('bool') })), '{"t","f"}');
  assert.equal(toPgParam([NaN, -0], T('array', { items: T('double') })), '{"NaN","-0"}');
  assert.throws(() => toPgParam('x', T('array', { items: T('int') })), SynclineError);

  assert.equal(toPgParamUntyped(5n), '5');
  assert.equal(toPgParamUntyped(-0), '-0');
  assert.equal(toPgParamUntyped(1.5), '1.5');
  assert.equal(toPgParamUntyped('x'), 'x');
  assert.equal(toPgParamUntyped(false), false);
  assert.equal(toPgParamUntyped(null), null);
  assert.equal(toPgParamUntyped(buf), buf);
  assert.equal(toPgParamUntyped(['a', 1n, null]), '{"a","1",NULL}');
});

test('array literal round trip', () => {
  const item = T('string');
  const cases: string[][] = [[], ['', ' ', 'NULL', 'null', '"', '\\', '{', '}', ',', 'a b', '\n\t', '😀', "it's"]];
  for (const c of cases) assert.deepEqual(parseArrayLiteral(arrayLiteral(c), item), c);
  assert.equal(floatText(1e21), '1e+21');
});

test('calendar arithmetic', () => {
  assert.equal(daysFromCivil(1970, 1, 1), 0);
  assert.equal(dateToDays('1970-01-01'), 0);
  assert.equal(dateToDays('2000-01-01'), 10957);
  assert.equal(dateToDays('0001-01-01'), -719162);
  assert.equal(dateToDays('0001-12-31 BC'), -719163);
  assert.equal(daysToDate(-719163), '0001-12-31 BC');
  assert.equal(daysToDate(dateToDays('4713-11-24 BC')), '4713-11-24 BC');
  assert.equal(daysToDate(dateToDays('5874897-12-31')), '5874897-12-31');
  for (let d = -3_000_000; d < 3_000_000; d += 997) {
    const [y, m, day] = civilFromDays(d);
    assert.equal(daysFromCivil(y, m, day), d);
    assert.equal(dateToDays(daysToDate(d)), d);
  }
  assert.equal(timestampToMicros('1970-01-01T00:00:00.000001Z', true), 1n);
  assert.equal(timestampToMicros('1969-12-31T23:59:59.999999Z', true), -1n);
  assert.equal(microsToTimestamp(-1n, true), '1969-12-31T23:59:59.999999Z');
  assert.equal(microsToTimestamp(-62135596800000000n, false), '0001-01-01T00:00:00.000000');
  for (const s of ['0001-01-01T00:00:00.000000', '4714-11-24T00:00:00.000000 BC', '294247-01-01T23:59:59.999999', '2262-04-11T23:47:16.854775']) {
    assert.equal(microsToTimestamp(timestampToMicros(s, false), false), s);
  }
});

test('TypeCatalog.load / ensure against the real PostgreSQL', async () => {
  const client = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' });
  await client.connect();
  try {
    const cat = await TypeCatalog.load(client);
    assert.equal(cat.get(23)?.name, 'int4');
    assert.equal(cat.get(1007)?.elemOid, 23);
    assert.equal(cat.get(1007)?.category, 'A');
    assert.equal(cat.get(603)?.delim, ';');
    assert.deepEqual(columnType(1043, 44, cat), { kind: 'string', pgType: 'varchar(40)' });
    // A type created after the load is found by ensure().
    await client.query(`create type pg_temp.syncline_t_mood as enum ('a', 'b')`);
    const { rows } = await client.query<{ oid: number }>(`select 'pg_temp.syncline_t_mood'::regtype::oid::int as oid`);
    const oid = rows[0].oid;
    assert.equal(cat.get(oid), undefined);
    await cat.ensure(client, [23, oid]);
    assert.equal(cat.get(oid)?.typtype, 'e');
    assert.equal(columnType(oid, -1, cat).kind, 'enum');
  } finally {
    await client.end();
  }
});

test('timestamp parsing: the positional fast path gives what the regex gives, and leaves every other shape to it', () => {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const samples: string[] = [
    '2026-11-25 21:35:10.123456+00', '2026-11-25T21:35:10Z', '2026-11-25 21:35:10', '2026-01-01 00:00:00.5-08',
    '2026-12-31 23:59:59.999999-05:30', '2026-03-01 00:30:00+0530', '2000-02-29 24:00:00', '0001-01-01 00:00:00+14',
    '2026-11-25 21:35:10.1234567+00', '2026-11-25 21:35:10.+00', '2026-11-25 21:35:10+05:30:15', '0044-03-15 12:00:00+00 BC',
    '10000-01-01 00:00:00+00', '2026-11-25 21:35:10+5', '2026-11-25 21:35:10+053', '2026-11-25x21:35:10', '2026-11-25 21:35:1',
    '2026-11-25 21:35:10 +00', '2026-11-25 21:35:10Zx', 'not a timestamp', '',
  ];
  for (let i = 0; i < 5000; i++) {
    const frac = rnd(3) === 0 ? '' : '.' + String(rnd(1_000_000)).padStart(6, '0').slice(0, 1 + rnd(6));
    const zone = ['', 'Z', `+${pad(rnd(15))}`, `-${pad(rnd(15))}:${pad(rnd(60))}`, `+${pad(rnd(15))}${pad(rnd(60))}`][rnd(5)]!;
    samples.push(`${pad(rnd(10000), 4)}-${pad(1 + rnd(12))}-${pad(1 + rnd(28))}${rnd(2) ? ' ' : 'T'}${pad(rnd(25))}:${pad(rnd(60))}:${pad(rnd(60))}${frac}${zone}`);
  }
  const outcome = (f: () => unknown) => {
    try {
      return JSON.stringify(f());
    } catch (err) {
      return `error ${(err as { code?: string }).code}: ${(err as Error).message}`;
    }
  };
  for (const s of samples) {
    for (const withZone of [true, false]) {
      assert.equal(outcome(() => parseTimestampParts(s, withZone)), outcome(() => parseTimestampPartsRe(s, withZone)), `${s} (withZone ${withZone})`);
    }
  }
});

test('columnArrayLiteral: the array literal node-postgres sends for the same column of parameters', async () => {
  const { createRequire } = await import('node:module');
  const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils') as { prepareValue: (v: unknown) => unknown };
  const vals = ['a', 'with "quote"', 'back\\slash', '\\"', '', 'NULL', '{x,y}', 'é ✓ \u0000', true, false, Buffer.from([0, 255, 16]), Buffer.alloc(0), null, undefined, '12.5', 'Infinity', '-0'];
  const rows = vals.map((v) => ['k', v]);
  assert.equal(columnArrayLiteral(rows, 1), prepareValue(rows.map((r) => r[1] ?? null)));
  assert.equal(columnArrayLiteral(rows, 0), prepareValue(rows.map((r) => r[0])));
  assert.equal(columnArrayLiteral([], 0), '{}');
});

test('microsToTimestamp: the same text as the calendar (Date) for instants around day boundaries, days alternating', () => {
  const day = 86_400_000_000n;
  const base = [0n, 1795608000123456n, -1n, -day, 253402300799999999n, -62135596800000000n, 951782400000000n /* 2000-02-29 */];
  const cases: bigint[] = [];
  for (const b of base) for (const d of [-day - 1n, -1n, 0n, 1n, day - 1n, day]) cases.push(b + d);
  const ref = (us: bigint) => {
    const ms = us / 1000n - (us % 1000n < 0n ? 1n : 0n);
    const micros = ((us % 1_000_000n) + 1_000_000n) % 1_000_000n;
    const iso = new Date(Number(ms)).toISOString();
    return `${iso.slice(0, 19)}.${String(micros).padStart(6, '0')}Z`;
  };
  for (let round = 0; round < 2; round++) {
    for (const us of cases) {
      if (us < -62135596800000000n || us > 253402300799999999n) continue; // Date's ISO years 0001 – 9999
      assert.equal(microsToTimestamp(us, true), ref(us), String(us));
      assert.equal(microsToTimestamp(us, false), ref(us).slice(0, -1), String(us));
    }
  }
  // Beyond 2^53 µs (year 287,396) the bigint path: still exact and in order.
  const far = 2n ** 60n;
  assert.equal(timestampToMicros(microsToTimestamp(far, true), true), far);
  assert.equal(timestampToMicros(microsToTimestamp(-far, false), false), -far);
});
