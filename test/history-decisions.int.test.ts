/**
 * Change history with the store in another database than the target (entries stored after the
 * target commit, once per position) and a conflict strategy that reads the target: an applied
 * change has the target row read as its before image; a change that loses to a row edited on the
 * target is recorded as conflict_target_won (strategy target-wins) without changing the target;
 * `asof` refuses the table, which has no baseline (the store cannot copy the target in one
 * transaction from another database).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDb, dropDb, PG, sql, startRuntime, testEnv, uid, waitFor } from './helpers.js';
import { HistoryStore } from '../src/history/store.js';

test('history in another database: after-commit entries with before images, a lost conflict recorded, asof refused without a baseline', async (t) => {
  const metaDb = `syncline_t_${uid()}_meta`;
  await createDb(metaDb);
  const metaUrl = `postgres://${PG.user}@${PG.host}:${PG.port}/${metaDb}`;
  const P = 'acc-hist';
  const env = await testEnv([{ name: P, tables: [{ source: 'public.acc' }], conflict: { strategy: 'target-wins' }, history: { maxPerKey: 50 } }], { extra: { history: { url: metaUrl } } });
  const store = new HistoryStore(metaUrl, 'syncline_history');
  t.after(async () => {
    await store.close();
    await env.cleanup();
    await dropDb(metaDb);
  });
  const ddl = 'create table acc (id int primary key, owner text not null, balance int not null)';
  await sql(env.sourceDb, ddl);
  await sql(env.targetDb, ddl);
  const { rt } = await startRuntime(env);
  const stats = () => rt.pipelines[0]!.applier!.stats;
  await waitFor('streaming', async () => (rt.pipelines[0]!.capture?.stats.confirmed ?? '') !== '');

  await sql(env.sourceDb, `insert into acc values (1, 'ann', 10), (2, 'bob', 20)`);
  await waitFor('2 applied', async () => stats().applied >= 2);
  await sql(env.sourceDb, `update acc set balance = 11 where id = 1`);
  await waitFor('the update applied', async () => (await sql(env.targetDb, 'select balance from acc where id = 1')).rows[0]?.balance === 11);
  // Edited on the target: the next source change of key 2 loses to it (target-wins).
  await sql(env.targetDb, `update acc set owner = 'bob (local)' where id = 2`);
  await sql(env.sourceDb, `update acc set balance = 21 where id = 2`);
  await waitFor('the conflict settled', async () => stats().conflicts >= 1);
  await waitFor('its history stored', async () => (await store.timeline(P, 'public.acc', ['["2"]'])).length === 2);

  const one = await store.timeline(P, 'public.acc', ['["1"]']);
  assert.deepEqual(one.map((e) => [e.op, e.decision, e.beforeKnown, e.before, e.after]), [
    ['upsert', 'applied', true, null, { id: 1, owner: 'ann', balance: 10 }],
    ['upsert', 'applied', true, { id: 1, owner: 'ann', balance: 10 }, { id: 1, owner: 'ann', balance: 11 }],
  ]);
  const two = await store.timeline(P, 'public.acc', ['["2"]']);
  assert.deepEqual(two.map((e) => [e.decision, e.strategy, e.changed]), [['applied', null, true], ['conflict_target_won', 'target-wins', false]]);
  assert.deepEqual(two[1]!.after, { id: 2, owner: 'bob (local)', balance: 20 }, 'the row the target kept');
  assert.equal((await sql(env.targetDb, 'select balance from acc where id = 2')).rows[0].balance, 20);
  // Each entry once (no duplicate from a retry or a redelivery).
  const n = await store.pool.query(`select count(*)::int n, count(distinct (key, position, decision))::int d from syncline_history.changes where pipeline = $1`, [P]);
  assert.equal(n.rows[0].n, n.rows[0].d);
  await assert.rejects(store.asof(P, 'public.acc', new Date()), /has no baseline of this table/);
  await rt.stop();
});
