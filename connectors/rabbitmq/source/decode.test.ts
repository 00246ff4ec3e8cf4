import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../index.js';
import { eventPosition } from '../../../src/core/envelope.js';
import { errorCode, errorKind } from '../../../src/core/errors.js';
import { ConfigError, parseConfig } from '../../../src/core/config/load.js';
import type { SourceTable } from '../../../src/capture/source.js';
import type { SinkRecord } from '../../../src/sink/sink.js';
import { columnTypeOf } from '../../kafka-topic/envelope.js';
import { outMessage } from '../message.js';
import { decodeRow, decodeSyncline, positionParts } from './decode.js';

const items: SourceTable = {
  schema: 'public',
  table: 'items',
  key: ['id'],
  columns: Object.entries({ id: 'int8', name: 'text', price: 'numeric(12,2)', raw: 'bytea', ratio: 'float8', seen: 'timestamptz', n: 'int4' }).map(([name, t]) => ({ name, type: columnTypeOf(t) })),
};
const tables = new Map([['public.items', items]]);

const rec = (over: Partial<SinkRecord> = {}): SinkRecord => ({
  table: 'public.items',
  op: 'upsert',
  key: { id: 7n },
  values: { id: 7n, name: 'pen', price: '1.50', raw: Buffer.from([1, 2]), ratio: Number.NaN, seen: '2026-01-02T03:04:05.123456Z', n: 3, extra: 'ignored' },
  keep: [],
  position: '00000000016b3748:00000002',
  hash: null,
  sourceTsMs: 1795608000123,
  origin: { topic: 't', partition: 0, offset: '1' },
  ...over,
});

const body = (r: SinkRecord) => outMessage(r, '{table}.{op}').body;
const throwsPoison = (fn: () => unknown, code: string, re: RegExp) => {
  try {
    fn();
  } catch (err) {
    assert.equal(errorKind(err), 'poison');
    assert.equal(errorCode(err), code);
    assert.match((err as Error).message, re);
    return;
  }
  assert.fail(`expected poison ${code}`);
};

test('positions: the target\'s position string → commit position and index, and back through eventPosition', () => {
  assert.deepEqual(positionParts('00000000016b3748:00000002'), { commitPos: '0/16B3748', idx: 2 });
  assert.deepEqual(positionParts('0000000a00000001:00000000'), { commitPos: 'A/1', idx: 0 });
  for (const p of ['', '16b3748:2', '00000000016b3748', '00000000016B3748:00000002', 7]) throwsPoison(() => positionParts(p), 'RABBITMQ_MESSAGE_INVALID', /not a syncline position/);
});

test('format syncline: what the RabbitMQ target publishes round-trips to the change (tagged values, types, position)', () => {
  const d = decodeSyncline(body(rec()), tables);
  assert.equal(d.op, 'u');
  assert.equal(d.table, 'public.items');
  assert.deepEqual(d.after, { id: 7n, name: 'pen', price: '1.50', raw: Buffer.from([1, 2]), ratio: Number.NaN, seen: '2026-01-02T03:04:05.123456Z', n: 3 });
  assert.equal(d.tsMs, 1795608000123);
  const pos = d.position!;
  const ev = { op: d.op, before: null, after: d.after, source: { db: 'q', schema: 'public', table: 'items', pos: pos.commitPos, commitPos: pos.commitPos, txId: null, tsMs: 0, snapshot: false, idx: pos.idx }, tsMs: 0, unchangedToast: [] };
  assert.equal(eventPosition(ev), '00000000016b3748:00000002', 'the applier sees the upstream position');

  const del = decodeSyncline(body(rec({ op: 'delete', values: null })), tables);
  assert.deepEqual([del.op, del.before, del.after], ['d', { id: 7n }, null]);
  const tr = decodeSyncline(body(rec({ op: 'truncate', key: {}, values: null })), tables);
  assert.deepEqual([tr.op, tr.before, tr.after], ['t', null, null]);
  const kept = decodeSyncline(body(rec({ keep: ['name'], values: { id: 7n, price: '2' } })), tables);
  assert.deepEqual([kept.after, kept.unchangedToast], [{ id: 7n, price: '2' }, ['name']]);
  // Quoted names are the same table.
  assert.equal(decodeSyncline(body(rec({ table: '"public"."items"' })), tables).table, 'public.items');
});

test('format syncline: poison messages name what is wrong', () => {
  throwsPoison(() => decodeSyncline(Buffer.from('not json {'), tables), 'RABBITMQ_NOT_JSON', /not JSON/);
  throwsPoison(() => decodeSyncline(Buffer.from('[1]'), tables), 'RABBITMQ_MESSAGE_INVALID', /is an object/);
  throwsPoison(() => decodeSyncline(Buffer.from('{"format":2,"op":"upsert"}'), tables), 'RABBITMQ_MESSAGE_INVALID', /format 2 is not understood/);
  throwsPoison(() => decodeSyncline(body(rec({ table: 'public.other' })), tables), 'RABBITMQ_TABLE_UNKNOWN', /public\.other is not one of the source's tables \(public\.items\)/);
  throwsPoison(() => decodeSyncline(body(rec({ key: {}, values: { name: 'x' } })), tables), 'RECORD_KEY_MISSING', /key column id of public\.items/);
  throwsPoison(() => decodeSyncline(body(rec({ op: 'delete', key: {}, values: null })), tables), 'RECORD_KEY_MISSING', /key/);
  throwsPoison(() => decodeSyncline(body(rec({ values: { id: 7n, n: 'many' } })), tables), 'RECORD_VALUE', /column n \(int4\)/);
  throwsPoison(() => decodeSyncline(body(rec({ position: 'x' })), tables), 'RABBITMQ_MESSAGE_INVALID', /position "x"/);
  const b = JSON.parse(body(rec()).toString());
  throwsPoison(() => decodeSyncline(Buffer.from(JSON.stringify({ ...b, op: 'merge' })), tables), 'RABBITMQ_MESSAGE_INVALID', /op "merge"/);
});

test('format row: a plain JSON row is an upsert, AMQP type delete deletes its key; poison named', () => {
  const u = decodeRow(Buffer.from('{"id":5,"name":"a","price":1.5,"seen":"2026-01-01 00:00:00+00","other":1}'), items, 'public.items', false, 1000);
  assert.deepEqual([u.op, u.after, u.position, u.tsMs], ['u', { id: 5n, name: 'a', price: '1.5', seen: '2026-01-01T00:00:00.000000Z' }, undefined, 1000]);
  const d = decodeRow(Buffer.from('{"id":"5","name":"gone"}'), items, 'public.items', true, null);
  assert.deepEqual([d.op, d.before, d.after], ['d', { id: 5n }, null]);
  throwsPoison(() => decodeRow(Buffer.from('{"name":"a"}'), items, 'public.items', false, null), 'RECORD_KEY_MISSING', /id/);
  throwsPoison(() => decodeRow(Buffer.from('"a"'), items, 'public.items', false, null), 'RABBITMQ_MESSAGE_INVALID', /row is not an object/);
  throwsPoison(() => decodeRow(Buffer.from('{'), items, 'public.items', false, null), 'RABBITMQ_NOT_JSON', /not JSON/);
});

test('config: a rabbitmq source needs a queue and tables whose keys are columns', () => {
  const doc = (source: Record<string, unknown>) => JSON.stringify({
    version: 1, topicPrefix: 't', kafka: { brokers: ['127.0.0.1:9092'] },
    pipelines: { p: { source: { type: 'rabbitmq', queue: 'q', tables: [{ table: 'public.items', key: ['id'], columns: { id: 'int8' } }], ...source }, target: { type: 'postgres', connection: { database: 'x' } }, tables: [{ source: 'public.items' }] } },
  });
  const c = parseConfig(doc({}), 'c.yaml', {});
  const s = c.pipelines.p!.source as unknown as { format: string; prefetch: number; declare: boolean };
  assert.deepEqual([s.format, s.prefetch, s.declare], ['syncline', 500, false]);
  assert.throws(() => parseConfig(doc({ tables: [{ table: 'public.items', key: ['nope'], columns: { id: 'int8' } }] }), 'c.yaml', {}), (e: unknown) => e instanceof ConfigError && /key column nope is not in columns/.test(e.message));
  assert.throws(() => parseConfig(doc({ format: 'xml' }), 'c.yaml', {}), ConfigError);
});
