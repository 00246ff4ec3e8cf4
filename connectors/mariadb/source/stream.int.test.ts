/**
 * Snapshot → stream handoff under concurrent inserts, updates and deletes: no gap, no duplicate
 * (source and target compared row for row; no insert both in the snapshot and in the stream). Then
 * mid-stream: ALTER TABLE ADD COLUMN (a new schema version, the column arrives), a key change
 * (delete + insert), TRUNCATE (op 't').
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mysql from 'mysql2/promise';
import { sleep, sql, startRuntime, waitFor } from '../../../test/helpers.js';
import { topics } from '../../../src/core/kafka.js';
import { changes, my, myEnv, MY, sameRows } from './harness.js';

const DDL = `CREATE TABLE items (id BIGINT PRIMARY KEY, n INT NOT NULL, label VARCHAR(50)) ENGINE=InnoDB;
CREATE TABLE small (id INT PRIMARY KEY, v VARCHAR(10))`;

test('snapshot/stream handoff under concurrent writes, ALTER TABLE mid-stream, key change, TRUNCATE', async (t) => {
  const env = await myEnv(['items', 'small']);
  t.after(() => env.cleanup());
  await my(env.db, DDL);
  await my(env.db, `INSERT INTO items SELECT seq, 0, CONCAT('pre-', seq) FROM seq_1_to_3000; INSERT INTO items VALUES (2000000, 0, 'key')`); // the writer never touches 2000000

  let writing = true;
  let altered = false;
  let nextId = 3001;
  let committed = 0;
  const conn = await mysql.createConnection({ ...MY, database: env.db });
  const writer = (async () => {
    while (writing) {
      await conn.query('BEGIN');
      const ids = Array.from({ length: 10 }, () => nextId++);
      if (altered) await conn.query(`INSERT INTO items (id, n, label, extra) VALUES ${ids.map((i) => `(${i}, 0, 'w', ${i % 7})`).join(',')}`);
      else await conn.query(`INSERT INTO items (id, n, label) VALUES ${ids.map((i) => `(${i}, 0, 'w')`).join(',')}`);
      const some = 1 + Math.floor(Math.random() * (nextId - 1));
      await conn.query(`UPDATE items SET n = n + 1, label = 'upd' WHERE id BETWEEN ? AND ?`, [some, some + 3]);
      await conn.query(`DELETE FROM items WHERE id = ?`, [1 + Math.floor(Math.random() * (nextId - 1))]);
      await conn.query('COMMIT');
      committed++;
      await sleep(2);
    }
  })();

  await sleep(300); // writes before the start
  await startRuntime(env as never);
  await waitFor('the snapshot and the first streamed rows', async () => (await sql(env.targetDb, 'select count(*)::int n from items where id > 3300').catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n > 0, 60_000);

  // Mid-stream DDL while the writer goes on.
  await my(env.db, `ALTER TABLE items ADD COLUMN extra INT NULL`);
  altered = true;
  await sleep(1500);
  await my(env.db, `UPDATE items SET id = 2000001 WHERE id = 2000000`); // key change
  await my(env.db, `INSERT INTO small VALUES (1, 'a'), (2, 'b'); TRUNCATE TABLE small; INSERT INTO small VALUES (3, 'c')`);
  await sleep(500);
  writing = false;
  await writer;
  await conn.end();
  assert.ok(committed > 50, `the writer committed ${committed} transactions`);

  await waitFor('source and target equal row for row', () => sameRows(env, true), 90_000, 500);
  await waitFor('small: truncated, then one row', async () => {
    const r = await sql(env.targetDb, 'select id from small order by id');
    return r.rows.length === 1 && r.rows[0].id === 3;
  }, 30_000);
  assert.equal((await sql(env.targetDb, 'select count(*)::int n from items where id = 2000001')).rows[0].n, 1, 'the row under its new key');
  assert.equal((await sql(env.targetDb, 'select count(*)::int n from items where id = 2000000')).rows[0].n, 0, 'the old key is gone');

  const all = await changes(env, 'items');
  const snapIds = new Set(all.filter((e) => e.op === 'r').map((e) => String(e.after!.id)));
  const streamedInserts = all.filter((e) => e.op === 'c').map((e) => String(e.after!.id));
  assert.ok(snapIds.size >= 3000 - 50, `snapshot rows: ${snapIds.size}`);
  assert.ok(streamedInserts.length > 100, `streamed inserts: ${streamedInserts.length}`);
  assert.deepEqual(streamedInserts.filter((id) => snapIds.has(id)), [], 'no insert both in the snapshot and in the stream (no duplicate at the handoff)');
  // No gap: every row the source holds at the end, and every row the stream updated or deleted, came
  // in through the snapshot or a streamed insert (rows inserted and deleted before the snapshot do not).
  const seen = new Set([...snapIds, ...streamedInserts]);
  const finalIds = (await my(env.db, 'SELECT id FROM items')).map((r) => String(r.id));
  const touched = all.filter((e) => e.op === 'u' || e.op === 'd').map((e) => String(e.before!.id));
  const missing = [...new Set([...finalIds, ...touched])].filter((id) => !seen.has(id));
  assert.deepEqual(missing, [], 'every row captured');
  assert.ok(touched.length > 50, `streamed updates and deletes: ${touched.length}`);
  // No streamed change twice in the change topic (snapshot rows all carry the snapshot's position).
  const positions = all.filter((e) => !e.source.snapshot && e.op !== 't').map((e) => `${e.source.commitPos}:${e.source.idx}`);
  assert.equal(new Set(positions).size, positions.length, 'no change produced twice');
  const keyChange = all.filter((e) => (e.op === 'd' && String(e.before?.id) === '2000000') || (e.op === 'c' && String(e.after?.id) === '2000001')).sort((a, b) => a.source.idx - b.source.idx); // two keys: two partitions, read in any order
  assert.deepEqual(keyChange.map((e) => e.op), ['d', 'c'], 'key change: delete of the old key, then the insert');
  assert.equal(keyChange[0]!.source.commitPos, keyChange[1]!.source.commitPos);
  assert.ok(all.some((e) => e.op === 'c' && e.after?.extra !== undefined && e.after?.extra !== null), 'the new column arrives');
  const smallOps = (await changes(env, 'small')).filter((e) => e.op !== 'm').map((e) => e.op);
  assert.ok(smallOps.includes('t'), `small: a truncate (ops ${smallOps.join(',')})`);

  // A new value schema version for the ALTER.
  const subject = `${topics.cdc(env.prefix, env.db, 'items')}-value`;
  const res = await fetch(`${env.config.schemaRegistry.url}/subjects/${encodeURIComponent(subject)}/versions`);
  const versions = (await res.json()) as number[];
  assert.ok(versions.length >= 2, `value schema versions: ${JSON.stringify(versions)}`);
});
