import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodePending, encodePending } from './apply-topic.js';
import type { Pending } from './applier.js';

test('apply-topic records keep what a re-published row was kept over; an earlier version\'s `decided: true` reads as kept over a delete', () => {
  const p = (decided: unknown): Pending => ({ record: { table: 'public.t', op: 'upsert', key: { id: 1 }, values: { id: 1 }, keep: [], position: '0000000000000001:00000000', hash: null, update: true, decided, origin: { topic: 't', partition: 0, offset: '0' } } as never, raw: { key: null, value: null } });
  assert.equal(decodePending(encodePending(p('update')).value).record.decided, 'update');
  assert.equal(decodePending(encodePending(p('delete')).value).record.decided, 'delete');
  assert.equal(decodePending(encodePending(p(true)).value).record.decided, 'delete');
  assert.equal(decodePending(encodePending(p(undefined)).value).record.decided, undefined);
});
