import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareRows } from './verify.js';

test('compareRows: missing, extra and different keys with the differing columns; equal rows report nothing', () => {
  const src = [
    { key: ['1'], values: ['1', 'a', '1.5'] },
    { key: ['2'], values: ['2', 'b', '1.5'] },
    { key: ['3'], values: ['3', 'c', null] },
  ];
  const dst = [
    { key: ['1'], values: ['1', 'a', '1.5'] },
    { key: ['3'], values: ['3', 'C', '0'] },
    { key: ['9'], values: ['9', 'x', '1'] },
  ];
  assert.deepEqual(compareRows(src, dst), [
    { key: ['2'], kind: 'missing' },
    { key: ['3'], kind: 'different', columns: [1, 2] },
    { key: ['9'], kind: 'extra' },
  ]);
  assert.deepEqual(compareRows(src, src), []);
  // A NULL and the text 'n' / an empty string are different values.
  assert.equal(compareRows([{ key: ['1'], values: [null] }], [{ key: ['1'], values: [''] }]).length, 1);
});
