import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rollbackPosition } from '../sink/applier.js';
import type { Row } from '../core/envelope.js';
import { keyString } from '../sink/sink.js';
import { maskChange, planRollback } from './rollback.js';

test('rollbackPosition: just past the stored position, before the next commit; later rollbacks move on; null when used up', () => {
  const s = '00000001a2b3c4d5:00000003';
  const p1 = rollbackPosition(s)!;
  assert.equal(p1, '00000001a2b3c4d5:ffff0000');
  assert.ok(p1 > s && p1 < '00000001a2b3c4d6:00000000', 'after the stored change, before any later commit');
  const p2 = rollbackPosition(p1)!;
  assert.equal(p2, '00000001a2b3c4d5:ffff0001');
  assert.ok(p2 > p1);
  assert.equal(rollbackPosition(null), '0000000000000000:ffff0000');
  assert.equal(rollbackPosition('00000001a2b3c4d5:ffffffff'), null);
});

test('planRollback: upsert what differs over the columns held then, delete what did not exist, nothing where equal', () => {
  const k = (id: number) => ({ id });
  const current = new Map<string, Row>([
    [keyString(k(1)), { id: 1, name: 'a', qty: 1, extra: 'x' }], // equal over the columns held at the instant (extra is newer)
    [keyString(k(2)), { id: 2, name: 'b2', qty: 2 }], // changed since
    [keyString(k(3)), { id: 3, name: 'c', qty: 3 }], // inserted since
  ]);
  const plan = planRollback('public.t', [
    { key: '["1"]', keyRow: k(1), want: { id: 1, name: 'a', qty: 1 } },
    { key: '["2"]', keyRow: k(2), want: { id: 2, name: 'b', qty: 2 } },
    { key: '["3"]', keyRow: k(3), want: null },
    { key: '["4"]', keyRow: k(4), want: { id: 4, name: 'd', qty: 4 } }, // deleted since
    { key: '["5"]', keyRow: k(5), want: null }, // gone then and now
  ], current);
  assert.deepEqual(plan.map((c) => [c.key, c.action]), [['["2"]', 'upsert'], ['["3"]', 'delete'], ['["4"]', 'upsert']]);
  assert.deepEqual(plan[0]!.diff, [{ field: 'name', from: 'b2', to: 'b' }]);
  assert.equal(plan[1]!.target, null);
  assert.equal(plan[2]!.current, null);
  assert.deepEqual(plan[2]!.diff.map((d) => d.field), ['id', 'name', 'qty']);
});

test('maskChange: sensitive columns as *** in the rows and the diff', () => {
  const mask = { sensitive: (c: string) => c === 'email' } as never;
  const c = planRollback('public.u', [{ key: '["1"]', keyRow: { id: 1 }, want: { id: 1, email: 'a@x' } }], new Map([[keyString({ id: 1 }), { id: 1, email: 'b@x' }]]))[0]!;
  const m = maskChange(c, mask);
  assert.deepEqual([m.current, m.target, m.diff], [{ id: 1, email: '***' }, { id: 1, email: '***' }, [{ field: 'email', from: '***', to: '***' }]]);
});
