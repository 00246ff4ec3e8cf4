/**
 * snapshot: never: rows that existed before the first start are not copied, the stream starts at the
 * binlog's end; a restart resumes from the stored position (changes made while it was down arrive).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql, startRuntime, waitFor } from '../../../test/helpers.js';
import { changes, my, myEnv } from './harness.js';

test('snapshot: never streams from the binlog end, and resumes after a stop', async (t) => {
  const env = await myEnv(['items'], { snapshot: 'never' });
  t.after(() => env.cleanup());
  await my(env.db, `CREATE TABLE items (id BIGINT PRIMARY KEY, n INT NOT NULL, label VARCHAR(50)); INSERT INTO items SELECT seq, 0, 'before' FROM seq_1_to_50`);
  const first = await startRuntime(env as never);
  // Streaming starts at the binlog's end when capture begins to stream, which can follow start():
  // probe rows (negative ids, deleted after) until one reaches the target.
  let probe = 0;
  await waitFor('a probe row in the target', async () => {
    await my(env.db, `INSERT INTO items VALUES (${--probe}, 0, 'probe')`);
    return (await sql(env.targetDb, 'select count(*)::int n from items').catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n >= 1;
  }, 60_000, 1000);
  await my(env.db, `DELETE FROM items WHERE id < 0; INSERT INTO items VALUES (100, 1, 'streamed'); UPDATE items SET n = 5 WHERE id = 3`);
  await waitFor('the streamed changes in the target', async () => {
    const r = await sql(env.targetDb, 'select id from items order by id');
    return JSON.stringify(r.rows.map((x) => Number(x.id))) === JSON.stringify([3, 100]);
  }, 60_000);
  await first.rt.stop();
  await my(env.db, `INSERT INTO items VALUES (101, 1, 'while down'); DELETE FROM items WHERE id = 100`);
  await startRuntime(env as never);
  await waitFor('the changes made while down', async () => {
    const r = await sql(env.targetDb, 'select id from items order by id');
    return JSON.stringify(r.rows.map((x) => Number(x.id))) === JSON.stringify([3, 101]);
  }, 60_000);
  const all = (await changes(env, 'items')).filter((e) => ((e.after?.id ?? e.before?.id) as bigint) > 0n);
  assert.equal(all.filter((e) => e.source.snapshot).length, 0, 'no snapshot');
  assert.deepEqual(all.map((e) => e.op).sort(), ['c', 'c', 'd', 'u']);
});
