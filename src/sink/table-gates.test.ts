import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TableGates } from './table-gates.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

test('a truncate waits for the writes in flight on its table, and holds new writes back until it is done', async () => {
  const g = new TableGates();
  const events: string[] = [];
  const w1 = await g.write(new Set(['a']));
  const other = await g.write(new Set(['b'])); // another table: no effect on a's truncate
  const t = g.truncate('a').then((release) => {
    events.push('truncate');
    return release;
  });
  await tick();
  assert.equal(events.length, 0, 'the truncate waits for the write in flight');
  const w2 = g.write(new Set(['a', 'b'])).then((release) => {
    events.push('write after');
    return release;
  });
  await tick();
  w1();
  const releaseTruncate = await t;
  await tick();
  assert.deepEqual(events, ['truncate'], 'a write that came while the truncate waited goes after it');
  releaseTruncate();
  (await w2)();
  other();
  assert.deepEqual(events, ['truncate', 'write after']);
});

test('truncates of one table take turns; of two tables they do not wait on each other', async () => {
  const g = new TableGates();
  const r1 = await g.truncate('a');
  let second = false;
  const p = g.truncate('a').then((r) => ((second = true), r));
  const rb = await g.truncate('b');
  await tick();
  assert.equal(second, false);
  r1();
  (await p)();
  assert.equal(second, true);
  rb();
  (await g.write(new Set(['a', 'b'])))();
});
