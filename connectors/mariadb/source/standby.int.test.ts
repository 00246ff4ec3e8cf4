/**
 * Standby capture for a MariaDB source (ADR 0034, ./leader-lock.ts): two `syncline capture`
 * processes; the first holds the pipeline's GET_LOCK user lock and streams the binlog, the second
 * logs that it stands by. kill -9 of the first: the server releases the lock with its connection,
 * the second takes it and resumes from the stored acknowledged binlog position. A writer runs all
 * along (inserts, updates, deletes; n comes from one sequence): the target ends equal to the source (no gap)
 * and a trigger on the target logs every row version written: none twice.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import mysql from 'mysql2/promise';
import { sleep, spawnCli, sql, startRuntime, waitFor } from '../../../test/helpers.js';
import { my, myEnv, MY, sameRows } from './harness.js';
import { mariadbLockName } from './leader-lock.js';
import { streamIdOf } from './mariadb-source.js';

function capture(configFile: string): ChildProcess & { out: () => string } {
  const child = spawnCli(['capture', '--config', configFile], { SYNCLINE_LOG_LEVEL: 'info' }) as ChildProcess & { out: () => string };
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
  child.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
  child.out = () => out;
  return child;
}

test('MariaDB standby capture: kill -9 of the active capture, the standby takes over: no gap, no version applied twice', async (t) => {
  const env = await myEnv(['items']);
  t.after(() => env.cleanup());
  await my(env.db, `CREATE TABLE items (id BIGINT PRIMARY KEY, n INT NOT NULL, label VARCHAR(50)); INSERT INTO items SELECT seq, 0, 'pre' FROM seq_1_to_300; CREATE SEQUENCE seqgen START WITH 1`);
  await sql(env.targetDb, `create table items (id bigint primary key, n int not null, label varchar(50));
    create table applied (id bigint, n int, op text);
    create function log_write() returns trigger language plpgsql as $$ begin
      if tg_op = 'DELETE' then insert into applied values (old.id, old.n, tg_op); return old; end if;
      insert into applied values (new.id, new.n, tg_op); return new; end $$;
    create trigger log_write after insert or update or delete on items for each row execute function log_write()`);
  const lock = mariadbLockName(env.db, streamIdOf(env.pipeline));
  const holderId = async () => Number((await my(undefined, 'SELECT IS_USED_LOCK(?) AS id', [lock]))[0]?.id ?? 0);

  await startRuntime(env as never, ['process', 'sink']);
  const a = capture(env.configFile);
  t.after(() => { a.kill('SIGKILL'); });
  await waitFor('the first capture to stream', async () => (await sql(env.targetDb, 'select count(*)::int n from items')).rows[0].n >= 300, 90_000, 200);
  const b = capture(env.configFile);
  t.after(() => { b.kill('SIGKILL'); });
  await waitFor('the second capture to stand by (or end)', async () => /capture\.standby/.test(b.out()) || b.exitCode !== null, 45_000, 200)
    .catch(() => assert.fail(`the second capture does not stand by: ${b.out().slice(-1500)}`));
  const first = await holderId();
  assert.ok(first > 0 && /capture\.leader/.test(a.out()), 'the first capture holds the lock');
  assert.ok(b.exitCode === null && b.out().includes(`"connectionId":${first}`), `the second capture stands by, naming the holder (exit code ${b.exitCode}): ${b.out().slice(-1500)}`);

  let writing = true;
  let writes = 0;
  const conn = await mysql.createConnection({ ...MY, database: env.db });
  const writer = (async () => {
    while (writing) {
      const id = 1 + Math.floor(Math.random() * 400);
      if (Math.random() < 0.15) await conn.query('DELETE FROM items WHERE id = ?', [id]);
      else await conn.query(`INSERT INTO items VALUES (?, NEXTVAL(seqgen), 'w') ON DUPLICATE KEY UPDATE n = VALUES(n)`, [id]);
      writes++;
      if (writes % 10 === 0) await sleep(5);
    }
  })();
  await sleep(1500);
  assert.equal(await holderId(), first, 'the first capture still leads');

  const killedAt = Date.now();
  a.kill('SIGKILL');
  await once(a, 'exit');
  await waitFor('the standby to take the lock over', async () => /took the capture lock over/.test(b.out()), 60_000, 100);
  const lockedAt = Date.now();
  t.diagnostic(`takeover after kill -9: the standby held the lock ${lockedAt - killedAt} ms after the kill (standbyPollMs 1000)`);
  await sleep(2500);
  writing = false;
  await writer;
  await conn.end();

  await waitFor('target to equal the source', () => sameRows(env, false), 90_000, 500);
  // n comes from one sequence: every written version (id, n) is unique at the source.
  const twice = (await sql(env.targetDb, `select id, n, op, count(*)::int c from applied group by id, n, op having count(*) > 1 limit 5`)).rows;
  assert.deepEqual(twice, [], 'no row version was applied twice on the target');
  t.diagnostic(`${writes} source writes`);
  assert.ok(writes > 200);
  assert.equal(b.exitCode, null, 'the new leader runs');
});
