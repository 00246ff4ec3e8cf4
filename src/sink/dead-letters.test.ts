import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deadLetterId } from './dead-letters.js';

test('dead-letter ids: stable for the same change and reason, distinct for the rows of one snapshot', () => {
  // Capture's own letters have no origin message; every row of a snapshot has the snapshot's position.
  const snapshotRow = (key: string) => ({ kind: 'invalid' as const, table: 'public.items', position: '0000000001a2b3c4:00000000', targetKey: key });
  const ids = ['[1]', '[2]', '[3]', '["a"]'].map((k) => deadLetterId('p', snapshotRow(k)));
  assert.equal(new Set(ids).size, 4);
  assert.equal(deadLetterId('p', snapshotRow('[2]')), ids[1]); // dead-lettered again: the same id
  assert.match(ids[0]!, /^[0-9a-f]{16}$/);
  // The reason, the pipeline and the origin message each make another letter.
  assert.notEqual(deadLetterId('p', { ...snapshotRow('[1]'), kind: 'failed' }), ids[0]);
  assert.notEqual(deadLetterId('q', snapshotRow('[1]')), ids[0]);
  const o = (offset: string) => ({ kind: 'failed' as const, table: 'public.items', position: '0000000001a2b3c4:00000000', targetKey: '[1]', origin: { topic: 't', partition: 0, offset } });
  assert.notEqual(deadLetterId('p', o('5')), deadLetterId('p', o('6')));
  assert.equal(deadLetterId('p', o('5')), deadLetterId('p', o('5')));
});
