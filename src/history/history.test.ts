import { test } from 'node:test';
import assert from 'node:assert/strict';
import { entriesOf, fieldDiff, historyKey, keyArgument, tableRetention } from './history.js';
import '../../connectors/index.js';
import { parseConfig } from '../core/config/load.js';
import type { SinkRecord } from '../sink/sink.js';

const rec = (op: SinkRecord['op'], id: number, values: SinkRecord['values'], position: string, noted = true): SinkRecord => ({
  table: 'public.t', op, key: op === 'truncate' ? {} : { id }, values, keep: [], position, hash: null, sourceTsMs: 1000, origin: { topic: 't', partition: 0, offset: '0' },
  ...(noted ? { history: { decision: 'applied' as const } } : {}),
});

test('entriesOf: before images from the rows read, then each record of a key sees the one before; truncate clears', () => {
  const before = new Map([['public.t', new Map([['[1]', { id: 1, v: 'old', big: 5n }]])]]);
  const e = entriesOf('p', [rec('upsert', 1, { id: 1, v: 'new' }, '1'), rec('delete', 1, null, '2'), rec('upsert', 2, { id: 2, v: 'x' }, '3', false), rec('truncate', 0, null, '4'), rec('upsert', 1, { id: 1, v: 'back' }, '5')], before);
  assert.deepEqual(e.map((x) => [x.op, x.key, x.before, x.after]), [
    ['upsert', '["1"]', { id: 1, v: 'old', big: '5' }, { id: 1, v: 'new', big: '5' }],
    ['delete', '["1"]', { id: 1, v: 'new', big: '5' }, null],
    ['truncate', '', null, null],
    ['upsert', '["1"]', null, { id: 1, v: 'back' }],
  ]);
  assert.equal(e.every((x) => x.changed), true);
  // Not read: before unknown.
  assert.equal(entriesOf('p', [rec('upsert', 3, { id: 3 }, '1')], undefined)[0]!.beforeKnown, false);
});

test('keys: numbers and bigints read the same; --key forms', () => {
  assert.equal(historyKey({ id: 42 }), historyKey({ id: 42n }));
  assert.equal(keyArgument('42'), '["42"]');
  assert.equal(keyArgument('[1,"a"]'), '["1","a"]');
  assert.equal(keyArgument('{"a":1,"b":"x"}'), '["1","x"]');
  assert.equal(keyArgument('abc'), '["abc"]');
});

test('fieldDiff: changed, added and removed fields', () => {
  assert.deepEqual(fieldDiff({ a: 1, b: 2 }, { a: 1, b: 3, c: 4 }), [{ field: 'b', from: 2, to: 3 }, { field: 'c', from: undefined, to: 4 }]);
  assert.deepEqual(fieldDiff({ a: 1 }, null), [{ field: 'a', from: 1, to: undefined }]);
});

test('retention: off unless the pipeline or the table turns it on; a table overrides field by field', () => {
  assert.equal(tableRetention({}, {}), null);
  assert.deepEqual(tableRetention({}, { history: {} }), { days: 90, maxPerKey: 10_000 });
  assert.deepEqual(tableRetention({ history: { enabled: true, days: 30, maxPerKey: 5 } }, { history: { maxPerKey: 7 } }), { days: 30, maxPerKey: 7 });
  assert.equal(tableRetention({ history: { enabled: true, days: 30, maxPerKey: 5 } }, { history: { enabled: false } }), null);
});

test('config: history without a store is refused, naming the pipeline and the fix', () => {
  const doc = (extra: object) => JSON.stringify({
    version: 1, ...extra,
    pipelines: { p: { source: { type: 'postgres', connection: { database: 'a' }, slot: 's', publication: 'p' }, target: { type: 'postgres', connection: { database: 'b' } }, conflict: { strategy: 'source-wins' }, history: { days: 0 }, tables: [{ source: 'public.t' }] } },
  });
  assert.throws(() => parseConfig(doc({}), 'c.json', {}), /days/);
  const ok = doc({}).replace('"days":0', '"days":7');
  assert.throws(() => parseConfig(ok, 'c.json', {}), /pipeline p keeps a change history, but there is no history store: set history.url \(or audit.url\)/);
  assert.equal(parseConfig(JSON.stringify({ ...JSON.parse(ok), history: { url: 'postgres://x@h/db' } }), 'c.json', {}).pipelines.p!.history!.days, 7);
});
