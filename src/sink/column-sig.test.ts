import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { columnSig } from './applier.js';

const expected = (cols: string[]) => createHash('sha1').update([...cols].sort().join(',')).digest('hex').slice(0, 8);

test('columnSig: 8 hex digits of sha1 of the sorted names, whatever the order; lists told apart however often asked', () => {
  const lists = [['id', 'name'], ['name', 'id'], ['id', 'nam'], ['id', 'name', 'v'], ['a'], ['b'], [], ['x,y'], ['x', 'y']];
  // More lists than its recent cache holds, asked in turns, several rounds.
  const many = Array.from({ length: 20 }, (_, i) => [`c${i}`, 'id']);
  for (let round = 0; round < 3; round++) {
    for (const cols of [...lists, ...many]) assert.equal(columnSig(cols), expected(cols), cols.join('|'));
  }
  assert.equal(columnSig(['id', 'name']), columnSig(['name', 'id']));
  // A list changed after it was asked for is not answered from the cache with its old names.
  const cols = ['id', 'k1'];
  const before = columnSig(cols);
  cols[1] = 'k2';
  assert.notEqual(columnSig(cols), before);
  assert.equal(columnSig(cols), expected(['id', 'k2']));
});
