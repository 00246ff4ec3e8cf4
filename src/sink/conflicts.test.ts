import { test } from 'node:test';
import assert from 'node:assert/strict';
import { conflictDiff, interpretChoice, latestTimestamp, makeResolver, olderThanTarget, type Conflict } from './conflicts.js';

const base: Conflict = {
  pipeline: 'p', table: 'public.t', op: 'upsert', key: { id: 1 }, source: { id: 1, v: 'a', updated_at: '2026-01-01T00:00:02.000000Z' },
  target: { id: 1, v: 'b', updated_at: '2026-01-01T00:00:01.000000Z' }, lastSynced: { id: 1, v: 'x', updated_at: '2026-01-01T00:00:00.000000Z' },
  position: '0000000000000001:00000000', sourceTsMs: Date.parse('2026-01-01T00:00:02Z'),
};

test('latest-timestamp: the later row wins; a tie goes to the greater content hash, the same from either side', () => {
  assert.equal(latestTimestamp(base, 'updated_at'), 'source');
  assert.equal(latestTimestamp({ ...base, target: { ...base.target!, updated_at: '2026-01-01T00:00:03.000000Z' } }, 'updated_at'), 'target');
  const tieA = { ...base, target: { ...base.target!, updated_at: base.source!.updated_at! } };
  const tieB = { ...tieA, source: tieA.target, target: tieA.source };
  const a = latestTimestamp(tieA, 'updated_at');
  const b = latestTimestamp(tieB, 'updated_at');
  assert.notEqual(a, b, 'each side keeps the same row (one says source, the other target)');
  assert.equal(latestTimestamp({ ...base, target: null }, 'updated_at'), 'source', 'no target row: the change wins');
});

test('a delete is timed at the end of its commit millisecond (rows written in its own transaction are not newer)', () => {
  const del = { ...base, op: 'delete' as const, source: null, sourceTsMs: Date.parse('2026-01-01T00:00:05.123Z') };
  assert.equal(olderThanTarget({ ...del, target: { id: 1, updated_at: '2026-01-01T00:00:05.123456Z' } }, 'updated_at'), false);
  assert.equal(olderThanTarget({ ...del, target: { id: 1, updated_at: '2026-01-01T00:00:05.124000Z' } }, 'updated_at'), true);
  assert.equal(olderThanTarget({ ...base, target: null }, 'updated_at'), false);
});

test('custom results: source/target/manual, merged rows (key kept), garbage refused with the reason', async () => {
  assert.deepEqual(interpretChoice('source', base), { kind: 'source' });
  assert.deepEqual(interpretChoice({ merged: { v: 'm' } }, base), { kind: 'merged', row: { v: 'm', id: 1 } });
  assert.deepEqual(interpretChoice({ id: 1, v: 'n' }, base), { kind: 'merged', row: { id: 1, v: 'n' } });
  assert.throws(() => interpretChoice(42, base), /returned a number/);
  assert.throws(() => interpretChoice({ merged: { id: 2 } }, base), /changes key column id/);
  assert.throws(() => interpretChoice({ merged: { v: {} } }, base), /column v has a object value/);
  const throwing = makeResolver({ strategy: 'custom', field: 'updated_at', module: 'x' }, () => {
    throw new Error('boom');
  });
  const r = await throwing.resolve(base);
  assert.equal(r.kind, 'manual');
  assert.match((r as { error: Error }).error.message, /resolve\(\) threw: boom/);
});

test('the diff lists every field where source, target and last-synced differ', () => {
  const d = conflictDiff(base);
  assert.deepEqual(d.map((x) => x.field).sort(), ['updated_at', 'v']);
  assert.deepEqual(d.find((x) => x.field === 'v'), { field: 'v', source: 'a', target: 'b', lastSynced: 'x' });
});
