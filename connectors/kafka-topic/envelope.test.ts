import { test } from 'node:test';
import assert from 'node:assert/strict';
import { columnTypeOf, decodeRecord, hintsFromAvro, hintsFromConnect, unscaledToDecimal, unwrapConnect, type TopicShape } from './envelope.js';
import { recordPosition } from './source.js';
import { position } from '../../src/core/envelope.js';

const cols = (m: Record<string, string>) => Object.entries(m).map(([name, t]) => ({ name, type: columnTypeOf(t) }));
const dbz: TopicShape = { envelope: 'debezium', key: ['id'], columns: cols({ id: 'int8', name: 'text', qty: 'int4', price: 'numeric(12,2)', at: 'timestamptz', born: 'date', seen: 'timestamp' }), numericTimestamps: 'micros' };
const row: TopicShape = { ...dbz, envelope: 'row' };

test('Debezium JSON without schemas: c/u/d/r, before/after, source.ts_ms and lsn', () => {
  const after = { id: 7, name: 'a', qty: 3, price: '12.50', at: '2026-12-05T10:00:00.123456Z', born: 20000, seen: 1700000000123456 };
  const c = decodeRecord(dbz, { id: 7 }, { op: 'c', before: null, after, source: { ts_ms: 1795608000123, lsn: 12345 }, ts_ms: 1795608000200 }, new Map(), 1);
  assert.deepEqual(c, { kind: 'change', op: 'c', before: null, tsMs: 1795608000123, lsn: '12345', after: { id: 7n, name: 'a', qty: 3, price: '12.50', at: '2026-12-05T10:00:00.123456Z', born: '2024-10-04', seen: '2023-11-14T22:13:20.123456' } });
  const u = decodeRecord(dbz, null, { op: 'u', before: null, after: { ...after, qty: 4 }, source: {} , ts_ms: 5 }, new Map(), 1);
  assert.equal(u.kind === 'change' && u.after!.qty, 4);
  assert.equal(u.kind === 'change' && u.tsMs, 5, 'envelope ts_ms when source has none');
  const d = decodeRecord(dbz, { id: 7 }, { op: 'd', before: { id: 7, name: null, qty: null }, after: null, source: { ts_ms: 9 } }, new Map(), 1);
  assert.deepEqual(d.kind === 'change' && [d.op, d.before!.id, d.after], ['d', 7n, null]);
  const r = decodeRecord(dbz, null, { op: 'r', after }, new Map(), 42);
  assert.equal(r.kind === 'change' && r.tsMs, 42, 'the record timestamp when the event has none');
});

test('a Debezium delete without before takes its key from the record key; tombstones and messages are skipped', () => {
  const d = decodeRecord(dbz, { id: 9 }, { op: 'd', before: null, after: null }, new Map(), 1);
  assert.deepEqual(d.kind === 'change' && d.before, { id: 9n });
  assert.equal(decodeRecord(dbz, { id: 9 }, null, new Map(), 1).kind, 'skip');
  assert.equal(decodeRecord(dbz, null, { op: 'm', message: {} }, new Map(), 1).kind, 'skip');
});

test('Kafka Connect JSON with schemas: payload unwrapped, MicroTimestamp/Timestamp and Decimal read from the schema', () => {
  const schema = { type: 'struct', fields: [
    { type: 'struct', field: 'before', fields: [] },
    { type: 'struct', field: 'after', fields: [
      { type: 'int64', field: 'id' },
      { type: 'bytes', field: 'price', name: 'org.apache.kafka.connect.data.Decimal', parameters: { scale: '2' } },
      { type: 'int64', field: 'seen', name: 'io.debezium.time.Timestamp' },
    ] },
  ] };
  const hints = hintsFromConnect(schema, 'debezium');
  assert.equal(hints.get('seen')!.name, 'io.debezium.time.Timestamp');
  const price = Buffer.from([0x04, 0xe2]).toString('base64'); // 1250 → 12.50
  const v = { schema, payload: { op: 'c', after: { id: 1, price, seen: 1700000000123 } } };
  const e = decodeRecord(dbz, null, v, hints, 1);
  assert.deepEqual(e.kind === 'change' && e.after, { id: 1n, price: '12.50', seen: '2023-11-14T22:13:20.123000' });
  assert.deepEqual(unwrapConnect({ schema: null, payload: 5 }), { payload: 5, schema: undefined });
});

test('Avro writer schema hints: connect.name and decimal scale inside the after union', () => {
  const s = { type: 'record', name: 'Envelope', fields: [
    { name: 'before', type: ['null', { type: 'record', name: 'Value', fields: [
      { name: 'seen', type: { type: 'long', 'connect.name': 'io.debezium.time.NanoTimestamp' } },
      { name: 'price', type: ['null', { type: 'bytes', logicalType: 'decimal', scale: 3, precision: 10 }] },
    ] }] },
    { name: 'after', type: ['null', 'Value'] },
  ] };
  const h = hintsFromAvro(s, 'debezium');
  assert.deepEqual(h.get('seen'), { name: 'io.debezium.time.NanoTimestamp', scale: undefined });
  assert.equal(h.get('price')!.scale, 3);
  const e = decodeRecord(dbz, null, { op: 'u', before: null, after: { id: 5n, seen: 1700000000123456789n, price: Buffer.from([0xff, 0x85]) } }, h, 1);
  assert.deepEqual(e.kind === 'change' && e.after, { id: 5n, seen: '2023-11-14T22:13:20.123456', price: '-0.123' });
});

test('row envelope: a value is an upsert, a tombstone deletes the key (object or bare)', () => {
  const u = decodeRecord(row, { id: 3 }, { id: 3, name: 'x', extra: true }, new Map(), 77);
  assert.deepEqual(u, { kind: 'change', op: 'u', before: null, after: { id: 3n, name: 'x' }, tsMs: 77 });
  assert.deepEqual(decodeRecord(row, { id: 3 }, null, new Map(), 1), { kind: 'change', op: 'd', before: { id: 3n }, after: null, tsMs: 1 });
  assert.deepEqual(decodeRecord(row, 3, null, new Map(), 1).kind === 'change' && decodeRecord(row, 3, null, new Map(), 1), { kind: 'change', op: 'd', before: { id: 3n }, after: null, tsMs: 1 });
  assert.deepEqual(decodeRecord({ ...row, numericTimestamps: 'millis' }, null, { id: 1, seen: 1700000000123 }, new Map(), 1).kind === 'change' && (decodeRecord({ ...row, numericTimestamps: 'millis' }, null, { id: 1, seen: 1700000000123 }, new Map(), 1) as { after: Record<string, unknown> }).after.seen, '2023-11-14T22:13:20.123000');
});

test('bad records are poison naming what and where', () => {
  const code = (f: () => unknown) => { try { f(); return 'none'; } catch (e) { return `${(e as { code: string }).code}: ${(e as Error).message}`; } };
  assert.match(code(() => decodeRecord(dbz, null, { op: 'x' }, new Map(), 1)), /^RECORD_INVALID: .*op c, u, d, r or t; got "x"/);
  assert.match(code(() => decodeRecord(dbz, null, [1, 2], new Map(), 1)), /^RECORD_INVALID/);
  assert.match(code(() => decodeRecord(dbz, null, { op: 'c', after: { name: 'no id' } }, new Map(), 1)), /^RECORD_KEY_MISSING: the after row has no value for key column id/);
  assert.match(code(() => decodeRecord(dbz, null, { op: 'c', after: { id: 1, qty: 'many' } }, new Map(), 1)), /^RECORD_VALUE: column qty \(int4\) of the after row: "many" is not a 32-bit integer/);
  assert.match(code(() => decodeRecord(dbz, null, { op: 'c', after: { id: 1, price: 'BOcA' } }, new Map(), 1)), /^RECORD_VALUE: column price .*decimal.handling.mode=string/);
  assert.match(code(() => decodeRecord(row, null, null, new Map(), 1)), /^RECORD_KEY_MISSING: a delete \(tombstone\) needs the record key/);
  let col: unknown;
  try { decodeRecord(dbz, null, { op: 'c', after: { id: 1, at: 'yesterday' } }, new Map(), 1); } catch (e) { col = (e as { column?: string }).column; }
  assert.equal(col, 'at');
});

test('types by PostgreSQL name; Connect decimals; record positions order by offset within a partition', () => {
  assert.deepEqual(columnTypeOf('NUMERIC(12, 2)'), { kind: 'decimal', pgType: 'numeric(12,2)', precision: 12, scale: 2 });
  assert.equal(columnTypeOf('bigint').kind, 'long');
  assert.equal(columnTypeOf('character varying(20)').kind, 'string');
  assert.equal(columnTypeOf('int4[]').items!.kind, 'int');
  assert.equal(columnTypeOf('interval').kind, 'text');
  assert.equal(unscaledToDecimal(Buffer.from([0x01]), 3), '0.001');
  assert.equal(unscaledToDecimal(Buffer.from([0x80]), 0), '-128');
  assert.equal(recordPosition(2, '1234'), '20000/4D2');
  const p = (part: number, off: bigint) => position(recordPosition(part, off), 0);
  assert.ok(p(0, 9n) < p(0, 10n) && p(0, 0xffffffffn) < p(0, 0x100000000n) && p(1, 0n) > p(0, (1n << 48n) - 1n));
});
