/**
 * kill -9 of the capture process (a child process running `syncline capture`) mid-stream, three
 * times, under a steady writer: each restart resumes from the stored acknowledged binlog position
 * (no new snapshot), and the target converges row for row (nothing lost). SIGTERM exits 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import mysql from 'mysql2/promise';
import { sleep, soak, spawnCli, sql, startRuntime, waitFor } from '../../../test/helpers.js';
import { changes, my, myEnv, MY, sameRows } from './harness.js';

test('capture killed with SIGKILL mid-stream resumes from the stored binlog position and loses nothing', async (t) => {
  const env = await myEnv(['items']);
  t.after(() => env.cleanup());
  await my(env.db, `CREATE TABLE items (id BIGINT PRIMARY KEY, n INT NOT NULL, label VARCHAR(50)); INSERT INTO items SELECT seq, 0, 'pre' FROM seq_1_to_500`);

  await startRuntime(env as never, ['process', 'sink']);
  let capture = spawnCli(['capture', '--config', env.configFile]);
  t.after(() => { capture.kill('SIGKILL'); });

  let writing = true;
  let committed = 0;
  const conn = await mysql.createConnection({ ...MY, database: env.db });
  const writer = (async () => {
    for (let i = 1; writing; i++) {
      await conn.query('BEGIN');
      await conn.query(`INSERT INTO items (id, n, label) SELECT 1000 + ? * 20 + seq, 0, 'x' FROM seq_1_to_20`, [i]);
      await conn.query(`UPDATE items SET n = n + 1 WHERE id BETWEEN 1000 + ? * 20 + 1 AND 1000 + ? * 20 + 5`, [i, i]);
      await conn.query(`DELETE FROM items WHERE id = 1000 + ? * 20 + 7`, [i]);
      await conn.query('COMMIT');
      committed += 26;
      if (i % 10 === 0) await sleep(5);
    }
  })();

  const count = async () => (await sql(env.targetDb, 'select count(*)::int n from items').catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n as number;
  let floor = 500;
  for (let round = 0; round < soak(1, 3); round++) {
    // Each capture process gets to stream (the target grows past what it held when the last one was killed).
    await waitFor('capture to produce some changes', async () => (await count()) > floor + 300, 60_000);
    floor = await count();
    capture.kill('SIGKILL');
    await once(capture, 'exit');
    await sleep(300);
    capture = spawnCli(['capture', '--config', env.configFile]);
  }
  await sleep(1000);
  writing = false;
  await writer;
  await conn.end();
  assert.ok(committed > 1000, `committed ${committed} changes`);

  await waitFor('target to converge after the kills', () => sameRows(env, false), 120_000, 500);
  const all = await changes(env, 'items');
  const snapshots = new Set(all.filter((e) => e.op === 'r').map((e) => e.source.commitPos));
  assert.equal(snapshots.size, 1, 'one snapshot: the restarts resumed from the stored position');

  capture.kill('SIGTERM');
  const [code] = await once(capture, 'exit');
  assert.equal(code, 0, 'capture exits 0 on SIGTERM');
});
