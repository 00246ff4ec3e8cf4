import { test } from 'node:test';
import assert from 'node:assert/strict';
import { conflictDiff, interpretChoice, latestTimestamp, makeResolver, olderThanTarget, timestampFieldProblem, type Conflict } from './conflicts.js';

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

test('no conflict, equal times: with the tie-break (a mesh, whatever is recorded of the key) the tie goes where latestTimestamp sends it; without it the change applies', () => {
  const x = { ...base, source: { id: 1, v: 'x', updated_at: '2026-01-01T00:00:02.000000Z' }, target: { id: 1, v: 'y', updated_at: '2026-01-01T00:00:02.000000Z' } };
  const y = { ...x, source: x.target, target: x.source };
  assert.notEqual(olderThanTarget(x, 'updated_at', true), olderThanTarget(y, 'updated_at', true), 'exactly one of the two rows is kept over the other');
  assert.equal(olderThanTarget(x, 'updated_at', true), latestTimestamp(x, 'updated_at') === 'target');
  // An update that leaves the timestamp as it was applies (one-way and two-way pipelines).
  assert.equal(olderThanTarget(x, 'updated_at'), false);
  assert.equal(olderThanTarget(y, 'updated_at'), false);
  // A delete loses a tie with a row (timed at the end of its millisecond) only with the tie-break.
  const del = { ...base, op: 'delete' as const, source: null, sourceTsMs: Date.parse('2026-01-01T00:00:05.123Z'), target: { id: 1, updated_at: '2026-01-01T00:00:05.123999Z' } };
  assert.equal(olderThanTarget(del, 'updated_at', true), true);
  assert.equal(olderThanTarget(del, 'updated_at'), false);
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

test('the diff compares through `open` (encrypted columns by plaintext) but lists the values as they are', () => {
  const c = { source: { id: 1, s: 'enc:1:p', v: 'a' }, target: { id: 1, s: 'p', v: 'b' }, lastSynced: { id: 1, s: 'enc:2:p', v: 'a' } };
  assert.deepEqual(conflictDiff(c).map((x) => x.field), ['s', 'v'], 'as they are: three spellings of p differ');
  const open = (r: Record<string, unknown>) => ({ ...r, s: String(r.s).replace(/^enc:\d+:/, '') }) as typeof r;
  const d = conflictDiff(c, open as never);
  assert.deepEqual(d, [{ field: 'v', source: 'a', target: 'b', lastSynced: 'a' }]);
});

test('latest-timestamp needs its column: refused at start when the table lacks it (renames followed)', () => {
  const lt = { strategy: 'latest-timestamp' as const, field: 'updated_at' };
  assert.equal(timestampFieldProblem('p', { source: 'public.t' }, lt, ['id', 'updated_at']), null);
  assert.equal(timestampFieldProblem('p', { source: 'public.t' }, { strategy: 'source-wins', field: 'updated_at' }, ['id']), null);
  assert.equal(timestampFieldProblem('p', { source: 'public.t', columns: { changed: 'updated_at' } }, lt, ['id', 'changed']), null);
  const renamedAway = timestampFieldProblem('p', { source: 'public.t', columns: { updated_at: 'modified' } }, lt, ['id', 'updated_at']);
  assert.match(renamedAway ?? '', /table public\.t has no column updated_at/);
  const missing = timestampFieldProblem('orders-sync', { source: 'public.notes' }, lt, ['id', 'body']);
  assert.match(missing ?? '', /^pipeline orders-sync: table public\.notes has no column updated_at, which its conflict strategy latest-timestamp compares/);
  assert.match(missing ?? '', /Set conflict\.field/);
  assert.match(missing ?? '', /strategy: source-wins/);
  // A per-table setting is named as the place to look.
  const perTable = timestampFieldProblem('p', { source: 'public.t', conflict: { strategy: 'latest-timestamp', field: 'ts' } }, { strategy: 'source-wins', field: 'updated_at' }, ['id']);
  assert.match(perTable ?? '', /no column ts.*tables\[\]\.conflict of public\.t/);
});

test('latest-timestamp on a row without its column parks the change instead of deciding by content hash', async () => {
  const r = makeResolver({ strategy: 'latest-timestamp', field: 'updated_at' });
  const noColumn = { ...base, source: { id: 1, v: 'a' }, target: { id: 1, v: 'b' } };
  const choice = await r.resolve(noColumn);
  assert.equal(choice.kind, 'manual');
  assert.equal(choice.kind === 'manual' ? choice.error?.code : undefined, 'CONFLICT_FIELD_MISSING');
  assert.match(choice.kind === 'manual' ? (choice.error?.message ?? '') : '', /target row of public\.t has no column updated_at/);
  // Null values of an existing column are a tie as before (decided by content hash), not a missing column.
  const nulls = await r.resolve({ ...base, source: { id: 1, v: 'a', updated_at: null }, target: { id: 1, v: 'b', updated_at: null } });
  assert.ok(nulls.kind === 'source' || nulls.kind === 'target');
  assert.equal((await r.resolve({ ...base, op: 'delete', source: null })).kind, 'source'); // a delete is timed by its commit
});
