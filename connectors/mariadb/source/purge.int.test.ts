/**
 * npm test: alone (it purges the server's old binlog files, which a neighbour's capture may still be reading).
 * The binlog no longer holds the stored position (PURGE BINARY LOGS while the pipeline was down):
 * the source detects it, warns and snapshots again, and the target converges, including rows
 * deleted and updated while it was down (the snapshot's end marker deletes what the snapshot did not see).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql, startRuntime, waitFor } from '../../../test/helpers.js';
import { changes, my, myEnv, sameRows } from './harness.js';

test('purged binlog: re-snapshot and converge', async (t) => {
  const env = await myEnv(['items']);
  t.after(() => env.cleanup());
  await my(env.db, `CREATE TABLE items (id BIGINT PRIMARY KEY, n INT NOT NULL, label VARCHAR(50)); INSERT INTO items SELECT seq, 0, 'pre' FROM seq_1_to_200`);
  const first = await startRuntime(env as never);
  await waitFor('snapshot in the target', async () => (await sql(env.targetDb, 'select count(*)::int n from items').catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n === 200, 60_000);
  await my(env.db, `INSERT INTO items SELECT seq, 1, 'streamed' FROM seq_201_to_250`);
  await waitFor('streamed rows in the target', () => sameRows(env, false), 60_000);
  await first.rt.stop();

  // Down: changes, then the binlog holding the stored position is purged.
  await my(env.db, `DELETE FROM items WHERE id <= 20; UPDATE items SET n = 7, label = 'while down' WHERE id BETWEEN 100 AND 120; INSERT INTO items SELECT seq, 2, 'down' FROM seq_300_to_320`);
  const before = (await my(undefined, 'SHOW BINARY LOGS')).map((r) => String(r.Log_name));
  await my(undefined, 'FLUSH BINARY LOGS');
  const [status] = await my(undefined, 'SHOW MASTER STATUS');
  // A binlog reader that is just going away still holds its file for a moment: PURGE keeps files in use.
  let after: string[] = [];
  await waitFor('the old binlog files purged', async () => {
    await my(undefined, `PURGE BINARY LOGS TO '${String(status!.File)}'`);
    after = (await my(undefined, 'SHOW BINARY LOGS')).map((r) => String(r.Log_name));
    return before.every((f) => !after.includes(f));
  }, 20_000, 500);
  assert.ok(before.every((f) => !after.includes(f)), `purged ${before.join(',')} (left ${after.join(',')})`);

  await startRuntime(env as never);
  await waitFor('target to converge after the re-snapshot', () => sameRows(env, false), 90_000, 500);
  const all = await changes(env, 'items');
  assert.ok(all.filter((e) => e.op === 'r').length >= 200 + 230, 'a second snapshot was taken');
  assert.equal((await sql(env.targetDb, 'select count(*)::int n from items where id <= 20')).rows[0].n, 0, 'rows deleted while down are gone');
});
