import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keySchema, parseSchema, valueSchema, envelopeToAvro, type SchemaColumn } from '../core/avro.js';
import type { ChangeEvent, Row } from '../core/envelope.js';
import { SynclineError } from '../core/errors.js';
import type { ColumnType } from '../core/types.js';
import { encodeRefusal, holdsSpecial } from './refusal.js';

const T = (kind: ColumnType['kind'], extra: Partial<ColumnType> = {}): ColumnType => ({ kind, pgType: kind, ...extra });
const ns = { prefix: 'p', schema: 'public', table: 'items' };
const cols: SchemaColumn[] = [
  { name: 'id', type: T('decimal', { precision: 4, scale: 0 }) },
  { name: 'price', type: T('decimal', { precision: 3, scale: 2 }) },
  { name: 'grid', type: T('array', { items: T('int') }) },
  { name: 'at', type: T('timestamp') },
];
const keyType = parseSchema(keySchema(ns, cols.slice(0, 1)));
const valueType = parseSchema(valueSchema(ns, cols));
const event = (op: ChangeEvent['op'], after: Row): ChangeEvent => ({
  op, before: null, after,
  source: { db: 'd', schema: 'public', table: 'items', pos: '0/1', commitPos: '0/1', txId: 1, tsMs: 0, snapshot: op === 'r', idx: 0 },
  tsMs: 0, unchangedToast: [],
});
/** What capture does: encode, and on failure describe the refusal. */
function refuse(e: ChangeEvent): SynclineError {
  const key = { id: e.after!.id! };
  try {
    keyType.toBuffer(key);
    valueType.toBuffer(envelopeToAvro(e));
  } catch (err) {
    return encodeRefusal({ source: 'public.items', key, event: e, err, keyType, valueType });
  }
  throw new Error('encoded');
}

test('a change capture cannot encode: the error names table, key and column, and why in the type\'s words', () => {
  let e = refuse(event('r', { id: '7', price: '1.234', grid: null, at: null }));
  assert.deepEqual([e.kind, e.code, e.column], ['poison', 'AVRO_DECIMAL', 'price']);
  assert.equal(e.message, "cannot encode the snapshot row of public.items key [\"7\"] column price: decimal value '1.234' has more than 2 fraction digits");
  // A value column holding NaN that was not widened (capture widens it first; this is what is left if it could not).
  e = refuse(event('u', { id: '7', price: 'NaN', grid: null, at: null }));
  assert.deepEqual([e.code, e.column], ['AVRO_DECIMAL_NAN', 'price']);
  assert.match(e.message, /^cannot encode the update of public\.items key \["7"\] column price: decimal value 'NaN' cannot be represented/);
  // In the key: said so, with why the key schema does not take it.
  e = refuse(event('c', { id: 'NaN', price: '1.00', grid: null, at: null }));
  assert.deepEqual([e.code, e.column], ['AVRO_DECIMAL_NAN', 'id']);
  assert.match(e.message, /^cannot encode the insert of public\.items key \["NaN"\] column id: .*\(a key column cannot carry NaN\/Infinity/);
  // Thrown by rowToAvro (a multi-dimensional array): its column is kept, its prefix not repeated.
  e = refuse(event('r', { id: '8', price: null, grid: [[1, 2], [3, 4]], at: null }));
  assert.deepEqual([e.code, e.column], ['AVRO_MULTIDIM_ARRAY', 'grid']);
  assert.equal(e.message, 'cannot encode the snapshot row of public.items key ["8"] column grid: holds a multi-dimensional array, which the Avro schema (one-dimensional arrays) cannot carry');
  // PostgreSQL's last timestamps do not fit in micros since 1970.
  e = refuse(event('c', { id: '9', price: null, grid: null, at: '294276-12-31T23:59:59.999999' }));
  assert.deepEqual([e.code, e.column], ['AVRO_TIMESTAMP', 'at']);
  assert.ok(holdsSpecial('NaN') && holdsSpecial(['1', '-Infinity']) && !holdsSpecial('1.00') && !holdsSpecial(null));
});
