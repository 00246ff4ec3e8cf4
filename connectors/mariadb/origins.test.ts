/** Two-way pieces without a server: origin ids, folding a re-published row's two updates, absent deletes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChangeEvent, Row } from '../../src/core/envelope.js';
import type { SinkRecord } from '../../src/sink/sink.js';
import { originServerId } from './origins.js';
import { foldUpdates } from './source/mariadb-source.js';
import { prepare } from './plan.js';
import { withoutAbsentDeletes } from './sink.js';

test('origin server ids: deterministic, in 2^31..2^32-1, distinct for the three names of a pipeline, probed forward', () => {
  const o = 'syncline:p:a-to-b';
  const ids = [`${o}:0`, `${o}/republish:0`, `${o}/republish-update:0`].map((n) => originServerId(n));
  for (const id of ids) assert.ok(id >= 2 ** 31 && id <= 2 ** 32 - 1, String(id));
  assert.equal(new Set(ids).size, 3);
  assert.equal(originServerId(`${o}:0`), ids[0]);
  assert.equal(originServerId(`${o}:0`, 1), ids[0] === 2 ** 32 - 1 ? 2 ** 31 : ids[0]! + 1);
});

const ev = (op: ChangeEvent['op'], before: Row | null, after: Row | null, table = 'items'): ChangeEvent => ({
  op, before, after, source: { db: 'd', schema: 'd', table, pos: '', commitPos: '', txId: null, tsMs: 0, snapshot: false, idx: 0 }, tsMs: 0, unchangedToast: [],
});

test('foldUpdates: consecutive updates of one key become one (first before, last after); other keys, tables and ops stay', () => {
  const key = () => ['id'];
  const out = foldUpdates([
    ev('u', { id: 1, n: 7 }, { id: 1, n: 6 }),
    ev('u', { id: 2, n: 2 }, { id: 2, n: 3 }),
    ev('u', { id: 1, n: 6 }, { id: 1, n: 7 }),
    ev('u', { id: 1, n: 6 }, { id: 1, n: 7 }, 'other'),
    ev('d', { id: 2, n: 3 }, null),
    ev('u', { id: 2, n: 3 }, { id: 2, n: 4 }),
  ], key);
  assert.deepEqual(out.map((e) => [e.op, e.source.table, e.before, e.after]), [
    ['u', 'items', { id: 1, n: 7 }, { id: 1, n: 7 }],
    ['u', 'items', { id: 2, n: 2 }, { id: 2, n: 3 }],
    ['u', 'other', { id: 1, n: 6 }, { id: 1, n: 7 }],
    ['d', 'items', { id: 2, n: 3 }, null],
    ['u', 'items', { id: 2, n: 3 }, { id: 2, n: 4 }],
  ]);
});

const rec = (op: SinkRecord['op'], id: number): SinkRecord => ({
  table: 'd.items', op, key: { id }, values: op === 'upsert' ? { id, v: 'x' } : null, keep: [], position: '0/1', hash: null, sourceTsMs: 0, origin: { topic: 't', partition: 0, offset: '0' },
});

test('withoutAbsentDeletes: a delete of a key the read found empty is left out, unless an earlier record of the batch wrote the key or the key was not read', () => {
  const prepared = prepare([rec('delete', 1), rec('delete', 2), rec('upsert', 3), rec('delete', 3), rec('delete', 4)], [], 'test');
  const reads = new Map([['d.items', [{ id: 1 }, { id: 2 }, { id: 3 }]]]);
  const found = new Map([['d.items', new Map([['[2]', { id: 2, v: 'y' }]])]]);
  const kept = withoutAbsentDeletes(prepared, reads, found).map((p) => `${p.rec.op}${String(p.rec.key.id)}`);
  assert.deepEqual(kept, ['delete2', 'upsert3', 'delete3', 'delete4']);
});
