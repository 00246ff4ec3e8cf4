import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decidedOf, positionToBigInt, position, republishOrigin } from './envelope.js';

test('position: 16 hex digits of the commit LSN, then 8 of the index, whatever order LSNs come in (the LSN part is cached)', () => {
  const lsns = ['0/0', '0/16B3748', 'A/FFFFFFFF', '0/16B3748', 'FFFFFFFF/1', 'A/FFFFFFFF'];
  for (const [i, lsn] of lsns.entries()) {
    for (const idx of [0, 1, i, 0xffffffff]) {
      assert.equal(position(lsn, idx), positionToBigInt(lsn).toString(16).padStart(16, '0') + ':' + idx.toString(16).padStart(8, '0'));
    }
  }
  assert.equal(position('A/FFFFFFFF', 2), '0000000affffffff:00000002');
  assert.ok(position('0/16B3748', 5) < position('1/0', 0), 'string order is commit order');
});

test('a re-published row says what it was kept over: origin names and header values', () => {
  assert.equal(republishOrigin('syncline:p:a-to-b', 'delete'), 'syncline:p:a-to-b/republish');
  assert.equal(republishOrigin('syncline:p:a-to-b', 'update'), 'syncline:p:a-to-b/republish-update');
  // Neither is the pipeline's own write origin (`<origin>:<n>`), which the peer's capture skips.
  for (const over of ['delete', 'update'] as const) assert.ok(!republishOrigin('syncline:p:a-to-b', over).startsWith('syncline:p:a-to-b:'));
  assert.equal(decidedOf('update'), 'update');
  assert.equal(decidedOf('delete'), 'delete');
  assert.equal(decidedOf('1'), 'delete', "earlier versions' header meant kept over a delete");
});
