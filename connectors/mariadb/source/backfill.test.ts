import { test } from 'node:test';
import assert from 'node:assert/strict';
import { afterCondition, keyText, signalOf } from './backfill.js';
import type { ColumnType } from '../../../src/core/types.js';

const long: ColumnType = { kind: 'long', pgType: 'int8' };
const text: ColumnType = { kind: 'string', pgType: 'text' };
const bytes: ColumnType = { kind: 'bytes', pgType: 'bytea' };

test('chunk key condition: expanded in key order; numbers inline (exact beyond 2^53), others bound', () => {
  assert.deepEqual(afterCondition(['id'], [long], ['9007199254740993']), { sql: '((`id` > 9007199254740993))', params: [] });
  const two = afterCondition(['a', 'b'], [text, long], ["o'k", '-5']);
  assert.equal(two.sql, '((`a` > ?) OR (`a` = ? AND `b` > -5))');
  assert.deepEqual(two.params, ["o'k", "o'k"]);
  const bin = afterCondition(['k'], [bytes], [keyText(Buffer.from([0, 255]))]);
  assert.deepEqual(bin.params, [Buffer.from([0, 255])]);
  assert.throws(() => afterCondition(['id'], [long], ['1; drop table t']), /BACKFILL_RESUME_KEY|not a number/);
  assert.throws(() => afterCondition(['a', 'b'], [long, long], ['1']), /key changed/);
});

test('signal rows: text or bytes; unknown kinds and incomplete rows are not signals', () => {
  assert.deepEqual(signalOf({ stream: 'mariadb_p', kind: 'watermark', body: Buffer.from('x:1:low') }), { stream: 'mariadb_p', kind: 'watermark', body: 'x:1:low' });
  assert.equal(signalOf({ stream: 'mariadb_p', kind: 'other', body: 'x' }), null);
  assert.equal(signalOf({ stream: 'mariadb_p', kind: 'signal', body: null }), null);
});
