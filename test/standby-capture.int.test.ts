/**
 * Standby capture (ADR 0034, src/capture/leadership.ts, connectors/postgres/source/leader-lock.ts):
 * two `syncline capture` processes for one PostgreSQL pipeline. The first holds the pipeline's
 * advisory lock on the source database and captures; the second logs that it stands by (naming the
 * holder) and touches nothing. kill -9 of the first frees the lock at once; the second takes it, then
 * the slot, and streams from the slot's confirmed position. A writer runs all along (inserts, updates,
 * deletes; a key's seq comes from one sequence, so it only grows): the target ends equal to the
 * source (no gap), and a trigger on the target logs every row version written: none twice (changes
 * read again after the takeover are not applied again). Then the new leader's lock connection is
 * killed: it stops producing, its stage starts again and leads again, still with no gap.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { checksum, sleep, spawnCli, sql, startRuntime, testEnv, waitFor, withClient } from './helpers.js';

const DDL = `create table items (id bigint primary key, seq bigint not null, label text)`;

/** The pid of the process whose lock connection holds the pipeline's capture lock (its application_name says it). */
async function lockHolder(db: string, slot: string): Promise<number | undefined> {
  const r = await sql(db, `select a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid
     where l.locktype = 'advisory' and l.granted and l.objsubid = 1
       and ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('syncline.capture:' || $1::text, 0)`, [slot]);
  const m = /pid (\d+)\)/.exec(r.rows[0]?.application_name ?? '');
  return m ? Number(m[1]) : undefined;
}

const slotActivePid = async (slot: string): Promise<number | null> =>
  (await sql('postgres', `select active_pid from pg_replication_slots where slot_name = $1`, [slot])).rows[0]?.active_pid ?? null;

/** A capture child whose log lines (info) are kept. */
function capture(configFile: string): ChildProcess & { out: () => string } {
  const child = spawnCli(['capture', '--config', configFile], { SYNCLINE_LOG_LEVEL: 'info' }) as ChildProcess & { out: () => string };
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
  child.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
  child.out = () => out;
  return child;
}

test('standby capture: kill -9 of the active capture, the standby takes over: no gap, no version applied twice', async (t) => {
  const env = await testEnv([{ name: 'sb', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' } }]);
  t.after(() => env.cleanup());
  const slot = env.slot('sb');
  await withClient(env.sourceDb, (c) => c.query(`${DDL}; create sequence seqgen; insert into items select g, nextval('seqgen'), 'row ' || g from generate_series(1, 300) g`));
  await withClient(env.targetDb, (c) => c.query(`${DDL};
    create table applied (id bigint, seq bigint, op text);
    create function log_write() returns trigger language plpgsql as $$ begin
      if tg_op = 'DELETE' then insert into applied values (old.id, old.seq, tg_op); return old; end if;
      insert into applied values (new.id, new.seq, tg_op); return new; end $$;
    create trigger log_write after insert or update or delete on items for each row execute function log_write()`));
  await startRuntime(env, ['process', 'sink']);

  const a = capture(env.configFile);
  t.after(() => { a.kill('SIGKILL'); });
  await waitFor('the first capture to stream', async () => (await slotActivePid(slot)) !== null, 90_000, 200);
  const b = capture(env.configFile);
  t.after(() => { b.kill('SIGKILL'); });
  await waitFor('the second capture to stand by (or end)', async () => /capture\.standby/.test(b.out()) || b.exitCode !== null, 90_000, 200);
  assert.ok(b.exitCode === null && /capture\.standby/.test(b.out()), `the second capture stands by (exit code ${b.exitCode}): ${b.out().slice(-1500)}`);
  assert.equal(await lockHolder(env.sourceDb, slot), a.pid, 'the first capture holds the lock');
  assert.match(b.out(), new RegExp(`"holder":\\{"pid":\\d+,"applicationName":"syncline capture sb \\([^)]*pid ${a.pid}\\)`), 'the standby names the holder');

  // The writer: updates, deletes and re-inserts on 400 keys, each with a new seq.
  let writing = true;
  let writes = 0;
  const writer = withClient(env.sourceDb, async (c) => {
    while (writing) {
      const id = 1 + Math.floor(Math.random() * 400);
      if (Math.random() < 0.15) await c.query('delete from items where id = $1', [id]);
      else await c.query(`insert into items values ($1, nextval('seqgen'), 'w') on conflict (id) do update set seq = excluded.seq, label = items.label || '.'`, [id]);
      writes++;
      if (writes % 10 === 0) await sleep(5);
    }
  });
  await sleep(2000);
  assert.equal(b.exitCode, null, `the standby still runs: ${b.out().slice(-2000)}`);
  assert.equal(await lockHolder(env.sourceDb, slot), a.pid, 'the first capture still leads');

  const killedAt = Date.now();
  a.kill('SIGKILL');
  await once(a, 'exit');
  await waitFor('the standby to take the lock', async () => (await lockHolder(env.sourceDb, slot)) === b.pid, 60_000, 100);
  const lockedAt = Date.now();
  await waitFor('the standby to stream from the slot', async () => /capture\.resume/.test(b.out()) && (await slotActivePid(slot)) !== null, 60_000, 100);
  const streamingAt = Date.now();
  t.diagnostic(`takeover after kill -9: lock in ${lockedAt - killedAt} ms, streaming from the slot in ${streamingAt - killedAt} ms (standbyPollMs 1000)`);
  assert.ok(streamingAt - killedAt < 60_000);

  // The new leader's lock connection dies (an operator or a network cut ends it): it stops producing
  // (retriable), its stage starts again, takes the lock (nobody else holds it) and streams on.
  await sleep(1000);
  const lockBackend = (await sql(env.sourceDb, `select pid from pg_stat_activity where application_name like $1`, [`syncline capture sb (% pid ${b.pid})`])).rows[0]?.pid;
  assert.ok(lockBackend, 'the lock connection is named after its process');
  await sql(env.sourceDb, 'select pg_terminate_backend($1)', [lockBackend]);
  await waitFor('the leader to see its lock lost', async () => /capture\.leader\.lost/.test(b.out()), 30_000, 100);
  await waitFor('the leader to take its lock again', async () => (await lockHolder(env.sourceDb, slot)) === b.pid && (b.out().match(/capture\.resume"/g) ?? []).length >= 2 && (await slotActivePid(slot)) !== null, 60_000, 100);
  await sleep(1500);
  writing = false;
  await writer;
  try {
    await waitFor('target to equal the source', async () => {
      const [s, d] = await Promise.all([checksum(env.sourceDb, 'items', 'id'), checksum(env.targetDb, 'items', 'id')]);
      return s.md5 === d.md5 && s.count === d.count;
    }, 90_000, 500);
  } catch (err) {
    throw new Error(`${(err as Error).message}; standby log: ${b.out().slice(-3000)}`);
  }
  const twice = (await sql(env.targetDb, `select id, seq, op, count(*)::int n from applied group by id, seq, op having count(*) > 1 limit 5`)).rows;
  assert.deepEqual(twice, [], 'no row version was applied twice on the target');
  const applied = Number((await sql(env.targetDb, 'select count(*)::int n from applied')).rows[0].n);
  t.diagnostic(`${writes} source writes, ${applied} row versions applied on the target`);
  assert.ok(writes > 200 && applied > 300, 'the writer and the snapshot were applied');
  assert.equal(b.exitCode, null, 'the new leader runs');
});
