import { test } from 'node:test';
import assert from 'node:assert/strict';
import { insertSql, plan, prepare, withLiterals, type TableMeta } from './plan.js';
import type { SinkRecord, FailedRecord } from '../../src/sink/sink.js';
import type { Row } from '../../src/core/envelope.js';
import { readTypeOf } from './types.js';
import { createTableSql, newTableColumns, quoteTable } from './ddl.js';

const meta: TableMeta = {
  table: 'shop.t',
  ident: '`shop`.`t`',
  primaryKey: ['id'],
  otherUnique: false,
  columns: new Map(
    [['id', 'bigint', 'int8'], ['v', 'longtext', 'text'], ['big', 'longtext', 'text']].map(([name, dataType, pg]) => [name!, { name: name!, dataType: dataType!, read: readTypeOf(pg!), generated: false }]),
  ),
};
let n = 0;
const rec = (op: SinkRecord['op'], id: number | null, values: Row | null = null, keep: string[] = []): SinkRecord => ({
  table: 'shop.t', op, key: id === null ? {} : { id: BigInt(id) }, values: values && { id: BigInt(id!), ...values }, keep, position: String(++n), hash: null, sourceTsMs: 0, origin: { topic: 't', partition: 0, offset: String(n) },
});
const sqlOf = (batch: SinkRecord[]) => {
  const failed: FailedRecord[] = [];
  const ready = withLiterals(prepare(batch, failed, 'here'), () => meta, failed, (_p, e) => e);
  assert.deepEqual(failed, []);
  return plan(ready, () => meta).map((s) => (s.kind === 'sql' ? s.sql : insertSql(s.meta, s.cols, s.keyCols, s.rows, !s.absent)));
};

test('a batch becomes a delete of the keys last deleted and one upsert per column set; a key collapses to its last record', () => {
  assert.deepEqual(sqlOf([rec('upsert', 1, { v: 'a' }), rec('delete', 2), rec('upsert', 1, { v: "b'" }), rec('upsert', 3, { v: null })]), [
    'DELETE FROM `shop`.`t` WHERE `id` IN (2)',
    "INSERT INTO `shop`.`t` (`id`,`v`) VALUES (1,'b'''),(3,NULL) ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)",
  ]);
});

test('a truncate drops what came before it; an upsert after a delete of its key deletes first; keep columns are left out or taken from the batch', () => {
  assert.deepEqual(sqlOf([rec('upsert', 1, { v: 'x' }), rec('truncate', null), rec('delete', 2), rec('upsert', 2, { v: 'y' }, ['big'])]), [
    'DELETE FROM `shop`.`t`',
    'DELETE FROM `shop`.`t` WHERE `id` IN (2)',
    "INSERT INTO `shop`.`t` (`id`,`v`) VALUES (2,'y') ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)",
  ]);
  assert.deepEqual(sqlOf([rec('upsert', 4, { v: 'a', big: 'B' }), rec('upsert', 4, { v: 'b' }, ['big'])]), [
    "INSERT INTO `shop`.`t` (`id`,`big`,`v`) VALUES (4,'B','b') ON DUPLICATE KEY UPDATE `big` = VALUES(`big`), `v` = VALUES(`v`)",
  ]);
});

test('absent upserts are plain inserts; a key-only upsert changes nothing on a duplicate', () => {
  const r = rec('upsert', 5, {});
  r.absent = true;
  assert.deepEqual(sqlOf([r, rec('upsert', 6, {})]), ['INSERT INTO `shop`.`t` (`id`) VALUES (5)', 'INSERT INTO `shop`.`t` (`id`) VALUES (6) ON DUPLICATE KEY UPDATE `id` = `id`']);
});

test('records without a table, key or values fail as INVALID_RECORD', () => {
  const failed: FailedRecord[] = [];
  prepare([{ ...rec('upsert', 1, { v: 'a' }), values: null }, { ...rec('delete', 1), key: { id: null } }], failed, 'here');
  assert.deepEqual(failed.map((f) => f.error.code), ['INVALID_RECORD', 'INVALID_RECORD']);
});

test('CREATE TABLE: schema part is the database, key NOT NULL as primary key, source types in comments, binary no-pad collation', () => {
  assert.equal(quoteTable('"My Db"."odd`name"'), '`My Db`.`odd``name`');
  assert.equal(
    createTableSql('shop.users', newTableColumns(['id'], { id: 'int8', name: 'text' }, ['extra']), ['id']),
    "CREATE TABLE IF NOT EXISTS `shop`.`users` (`id` BIGINT NOT NULL COMMENT 'pg:int8', `name` LONGTEXT NULL COMMENT 'pg:text', `extra` LONGTEXT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin",
  );
});
