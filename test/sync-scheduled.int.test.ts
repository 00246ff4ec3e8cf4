/**
 * Scheduled sync (src/sync/): bounded runs on the real stack (PostgreSQL → Kafka → PostgreSQL).
 * Each run ends with the target holding what was written before it started; nothing runs between
 * runs; later writes are picked up by the next run; runs are recorded in <prefix>.sync.runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checksum, sleep, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import type { Runtime } from '../src/runtime.js';
import type { SyncRun } from '../src/sync/runs.js';

const DDL = `create table orders (id bigint primary key, note text not null, written_at timestamptz not null default clock_timestamp())`;

const runsOf = (rt: Runtime, name: string): SyncRun[] => rt.sync.controllers.get(name)?.recent ?? [];
const ended = (rt: Runtime, name: string) => runsOf(rt, name).filter((r) => r.outcome !== 'running');

async function nextRun(rt: Runtime, name: string, after: number, what: string): Promise<SyncRun> {
  return waitFor(what, async () => ended(rt, name).find((r, i) => i >= after && r.outcome !== 'running'), 120_000, 100);
}

test('scheduled PostgreSQL → PostgreSQL: each run ends with the target holding what was written before it; nothing runs between runs', async (t) => {
  const env = await testEnv([{ name: 'orders-sched', tables: [{ source: 'public.orders' }], conflict: { strategy: 'source-wins' }, sync: { mode: 'scheduled', schedule: '*/4 * * * * *' } }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into orders (id, note) select g, 'seed' from generate_series(1, 200) g`);
  const { rt } = await startRuntime(env);

  // Run 1: the snapshot of the seed rows.
  const r1 = await nextRun(rt, 'orders-sched', 0, 'the first run');
  assert.equal(r1.outcome, 'succeeded', r1.error);
  assert.equal(r1.trigger, 'schedule');
  assert.deepEqual(await checksum(env.targetDb, 'orders', 'id'), await checksum(env.sourceDb, 'orders', 'id'));
  assert.equal(r1.counts.applied, 200);

  // Between runs nothing is applied: a write now is not in the target until the next run.
  const before = await checksum(env.targetDb, 'orders', 'id');
  const n = ended(rt, 'orders-sched').length;
  await sql(env.sourceDb, `update orders set note = 'between' where id <= 20`);
  await sql(env.sourceDb, `delete from orders where id > 190`);
  await sleep(300);
  if (rt.sync.controllers.get('orders-sched')!.running === undefined && runsOf(rt, 'orders-sched').length === n) {
    assert.deepEqual(await checksum(env.targetDb, 'orders', 'id'), before, 'no run: the target has not changed');
  }
  const writtenAt = Date.now();
  const r2 = await waitFor('a run started after the writes', async () => ended(rt, 'orders-sched').find((r) => Date.parse(r.startedAt) > writtenAt), 60_000, 100);
  assert.equal(r2.outcome, 'succeeded', r2.error);
  assert.deepEqual(await checksum(env.targetDb, 'orders', 'id'), await checksum(env.sourceDb, 'orders', 'id'), 'the next run picked the writes up');
  assert.ok(r2.sourceEnd && /^[0-9A-F]+\/[0-9A-F]+$/.test(r2.sourceEnd), `source end in the source's notation: ${r2.sourceEnd}`);

  // Writes going on while runs happen: after each run, every row written before it started is in the target.
  let stop = false;
  let id = 1000;
  const writer = (async () => {
    while (!stop) {
      await sql(env.sourceDb, `insert into orders (id, note) values ($1, 'live')`, [id++]);
      await sleep(20);
    }
  })();
  const from = ended(rt, 'orders-sched').length;
  for (let k = 0; k < 2; k++) {
    const r = await nextRun(rt, 'orders-sched', from + k, `run ${k + 1} during writes`);
    assert.equal(r.outcome, 'succeeded', r.error);
    const missing = await sql(env.sourceDb, `select id from orders where written_at < $1 order by id`, [r.startedAt]);
    const have = new Set((await sql(env.targetDb, `select id from orders`)).rows.map((x) => String(x.id)));
    const lost = missing.rows.map((x) => String(x.id)).filter((x) => !have.has(x));
    assert.deepEqual(lost, [], `rows written before run ${r.id} started are in the target`);
  }
  stop = true;
  await writer;

  // The record: every run is in the compacted topic, with its counts.
  const stored = await waitFor('the runs in the record topic', async () => {
    const all = await rt.sync.store.runs('orders-sched');
    return all.filter((r) => r.outcome === 'succeeded').length >= 4 ? all : undefined;
  }, 30_000, 500);
  const s1 = stored.find((r) => r.id === r1.id)!;
  assert.equal(s1.counts.applied, 200);
  assert.equal(s1.outcome, 'succeeded');
});
