/**
 * Scale-out on Kafka's consumer groups (issue 25): identical `syncline start` processes of one
 * pipeline share its work — one capture leads (the others stand by, ADR 0034), the processor group's
 * partitions are spread over all of them. Under a keyed write load (./keyed-writes.ts): start with
 * one, add a second and a third, kill -9 the first (the capture leader), stop the second gracefully
 * (SIGTERM, exit 0). Checked: the target equals the source; the target's write log shows every key's
 * writes in order with none applied twice; the last instance took over the capture and counted its
 * group's rebalances (syncline_consumer_rebalances_total, consumer.rebalanced in its log).
 * Then a rolling restart of three instances under load, one at a time: the same checks, and the
 * processor group's lag (change-topic ends minus committed offsets, sampled) stays bounded.
 * Then the table-wide records with the partitions spread over three instances: a TRUNCATE (every
 * partition meets it before it runs; a slow transform widens the window in which a process writes
 * a change it read before the truncate) and a re-snapshot's sweep after the slot was dropped.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import { freePort, PG, sleep, spawnLogged, sql, testEnv, waitFor, type LoggedProcess } from './helpers.js';
import { groups, topics } from '../src/core/kafka.js';
import { itemsEqual, KeyedWriter, writeLogProblems } from './keyed-writes.js';

type Instance = LoggedProcess & { port: number };

/** A pipeline `wk` over the keyed load, its target with the write log, and `syncline start` instances of it. */
async function workers(t: TestContext, table: { transform?: Record<string, unknown>[] } = {}) {
  const env = await testEnv([{ name: 'wk', tables: [{ source: 'public.items', ...table }], conflict: { strategy: 'source-wins' } }], {
    kafka: { partitions: 6, sessionTimeoutMs: 6000 },
    retry: { retries: 20, initialDelayMs: 100, maxDelayMs: 2000 },
  });
  const src = new pg.Pool({ ...PG, database: env.sourceDb, max: 4 });
  src.on('error', () => undefined);
  const instances: Instance[] = [];
  t.after(async () => {
    for (const i of instances) if (i.p.exitCode === null) i.p.kill('SIGKILL');
    await src.end().catch(() => undefined);
    await env.cleanup();
  });
  const load = new KeyedWriter(src, 600);
  await load.seed(env.targetDb);

  const start = async (n: number): Promise<Instance> => {
    const port = await freePort();
    const i = { ...spawnLogged(['start', '-c', env.configFile, '--metrics-port', String(port)], n), port };
    instances.push(i);
    await waitFor(`instance ${n} to join the processor group`, async () => {
      if (i.p.exitCode !== null) throw new Error(`instance ${n} exited ${i.p.exitCode}: ${i.out().slice(-2000)}`);
      return i.out().includes('consumer.rebalanced');
    }, 60_000, 200);
    return i;
  };
  const same = itemsEqual(env);
  const metric = async (i: Instance, name: string) => {
    const text = await (await fetch(`http://127.0.0.1:${i.port}/metrics`)).text();
    const m = new RegExp(`^${name}\\{pipeline="wk",stage="process"\\} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };

  return { env, src, load, start, same, metric, instances };
}

test('N instances in one group: add a 2nd and a 3rd under load, kill -9 one, stop one; per-key order kept, nothing lost or applied twice, rebalances counted', async (t) => {
  const { env, load, start, same, metric } = await workers(t);
  const first = await start(1);
  await waitFor('the snapshot on the target', same, 120_000, 300);
  load.start(3);
  await sleep(2000);
  const second = await start(2);
  await sleep(3000);
  const third = await start(3);
  await sleep(3000);
  t.diagnostic(`three instances under load after ${load.writes} writes`);

  first.p.kill('SIGKILL'); // the capture leader too (it started first)
  await sleep(8000);
  second.p.kill('SIGTERM');
  assert.equal(await second.exit, 0, `instance 2 stops cleanly on SIGTERM: ${second.out().slice(-2000)}`);
  await sleep(3000);
  await load.stop();
  t.diagnostic(`${load.writes} writes; instance 3 alone now`);

  await waitFor('the target to equal the source (instance 3 alone)', same, 120_000, 300);
  assert.equal(third.p.exitCode, null, 'instance 3 still runs');
  const { problems, writes } = await writeLogProblems(env.targetDb);
  assert.deepEqual(problems.slice(0, 10), [], `${problems.length} writes out of order or applied twice`);
  t.diagnostic(`${writes} target writes checked`);

  // Instance 3 saw its own join and at least one more (the kill of instance 1 and the leave of
  // instance 2: one rebalance each, or one for both when the second came while the first went on);
  // after the last it consumes all six partitions.
  const rebalances = await metric(third, 'syncline_consumer_rebalances_total');
  const lines = third.out().split('\n').filter((l) => l.includes('consumer.rebalanced') && l.includes('"stage":"process"'));
  t.diagnostic(`instance 3: ${rebalances} rebalances counted, ${lines.length} logged; partitions after each: ${lines.map((l) => JSON.stringify((JSON.parse(l) as { assigned: Record<string, number[]> }).assigned).replace(/"[^"]*cdc\.public\.items"/, 'items')).join(' → ')}`);
  assert.ok(rebalances !== undefined && rebalances >= 2, `instance 3 counted its rebalances: ${rebalances}`);
  assert.equal(rebalances, lines.length, 'each rebalance counted is logged');
  const lastAssigned = (JSON.parse(lines.at(-1)!) as { assigned: Record<string, number[]> }).assigned;
  assert.deepEqual(Object.values(lastAssigned).flat(), [0, 1, 2, 3, 4, 5], 'instance 3 alone consumes every partition');
  const firstAssigned = (JSON.parse(lines[0]!) as { assigned: Record<string, number[]> }).assigned;
  assert.ok(Object.values(firstAssigned).flat().length < 6, 'while three ran, instance 3 had a share of the partitions');
  // The capture went from instance 1 to a standby (2 or 3), and to instance 3 at the latest when 2 stopped.
  assert.match(third.out(), /capture\.leader: took the capture lock over/, 'instance 3 leads the capture at the end');
  const health = await (await fetch(`http://127.0.0.1:${third.port}/health`)).json() as { status: string };
  assert.equal(health.status, 'ok');
});

test('rolling restart of every instance under load (SIGTERM, start again, one at a time): nothing lost or applied twice, lag bounded', async (t) => {
  const { env, load, start, same, instances } = await workers(t);
  const admin = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING, clientId: 'workers-test' }).admin();
  await admin.connect();
  t.after(() => admin.disconnect());
  const cdc = topics.cdc(env.prefix, 'public', 'items');
  const group = groups.processor(env.prefix, 'wk');
  /** Changes in the change topic not yet committed by the processor group. */
  const lag = async () => {
    const [ends, committed] = await Promise.all([admin.fetchTopicOffsets(cdc), admin.fetchOffsets({ groupId: group, topics: [cdc] })]);
    const done = new Map(committed[0]!.partitions.map((p) => [p.partition, Number(p.offset)]));
    return ends.reduce((s, e) => s + Number(e.high) - Math.max(0, done.get(e.partition) ?? 0), 0);
  };
  for (const n of [1, 2, 3]) await start(n);
  await waitFor('the snapshot on the target', same, 120_000, 300);
  load.start(3);
  let maxLag = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      maxLag = Math.max(maxLag, await lag().catch(() => 0));
      await sleep(250);
    }
  })();
  await sleep(2000);
  const restarts: string[] = [];
  for (const n of [1, 2, 3]) {
    const old = instances.find((i) => i.n === n && i.p.exitCode === null)!;
    const t0 = Date.now();
    old.p.kill('SIGTERM');
    assert.equal(await old.exit, 0, `instance ${n} stops cleanly: ${old.out().slice(-1500)}`);
    await start(n);
    restarts.push(`${n}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await sleep(1500);
  }
  await sleep(2000);
  await load.stop();
  await waitFor('the target to equal the source', same, 120_000, 300);
  sampling = false;
  await sampler;
  const { problems, writes } = await writeLogProblems(env.targetDb);
  t.diagnostic(`${load.writes} writes during the rolling restart (${restarts.join(', ')} from SIGTERM to joined again); the processor group's lag peaked at ${maxLag} changes; ${writes} target writes checked`);
  assert.deepEqual(problems.slice(0, 10), [], `${problems.length} writes out of order or applied twice`);
  // Bounded: the group never fell further behind than a few seconds of the load (the writers commit ~300 changes/s here).
  assert.ok(maxLag < 5000, `lag stayed bounded (peak ${maxLag})`);
});

test('three instances, the partitions spread over them: a TRUNCATE meets every partition before it runs; a re-snapshot sweeps once every partition delivered it', async (t) => {
  const slow = new URL('./fixtures/slow-transform.mjs', import.meta.url).pathname;
  const { env, src, start, same, instances } = await workers(t, { transform: [{ custom: { module: slow, timeoutMs: 15_000 } }] });
  for (const n of [1, 2, 3]) await start(n);
  await waitFor('the snapshot on the target', same, 120_000, 300);

  // Changes on every partition, one of them slow (the process that has it read the key's state and
  // writes 4 s later), the TRUNCATE right after, then rows inserted after it. Met by the partitions'
  // first copy instead, the truncate ran at once in the other processes and the slow row was written
  // after it: the target kept a row the source no longer has.
  await src.query(`update items set seq = 2, v = 'before' where id % 3 = 0`);
  await src.query(`insert into items values (0, 1, 'slow')`);
  await src.query('truncate items');
  for (let i = 0; i < 5; i++) await src.query(`insert into items select g, 3, 'after' from generate_series(${i * 60 + 1}, ${i * 60 + 60}) g`);
  await waitFor('the target to equal the source after the truncate', same, 60_000, 300).catch(async (e: Error) => {
    const rows = (await sql(env.targetDb, `select v, count(*)::int n from items group by v order by v`)).rows;
    throw new Error(`${e.message}; target rows by value: ${JSON.stringify(rows)}`);
  });
  const runBy = instances.filter((i) => i.out().includes('truncate.run'));
  const waits = instances.map((i) => i.out()).join('\n').split('\n').filter((l) => l.includes('truncate.wait'));
  t.diagnostic(`truncate: run by instance ${runBy.map((i) => i.n).join(', ')}; ${waits.length} partitions waited for it`);
  assert.equal(runBy.length, 1, 'one process ran the truncate');
  assert.ok(waits.length >= 1, 'partitions waited at the truncate for the others');
  const { problems } = await writeLogProblems(env.targetDb);
  assert.deepEqual(problems.slice(0, 10), [], `${problems.length} writes out of order or applied twice`);

  // The slot dropped while the instances are stopped; rows deleted and changed meanwhile: the
  // re-snapshot (its end marker on every partition, over three processes) sweeps the deleted ones.
  for (const i of instances.filter((i) => i.p.exitCode === null)) {
    i.p.kill('SIGTERM');
    assert.equal(await i.exit, 0, `instance ${i.n} stops cleanly`);
  }
  await sql('postgres', `select pg_drop_replication_slot($1)`, [env.slot('wk')]);
  await src.query(`delete from items where id between 100 and 149`);
  await src.query(`update items set seq = 4, v = 'while gone' where id between 1 and 20`);
  for (const n of [1, 2, 3]) await start(n);
  await waitFor('the target to equal the source after the re-snapshot', same, 90_000, 300);
  // A marker delivered again (a rebalance before its commit) may count once more: that sweep finds nothing left.
  const sweeps = instances.slice(3).map((i) => i.out()).join('\n').split('\n').filter((l) => l.includes('snapshot.sweep')).map((l) => (JSON.parse(l) as { rows: number }).rows);
  t.diagnostic(`re-snapshot: sweep(s) of ${sweeps.join(', ')} rows`);
  assert.deepEqual(sweeps.filter((n) => n > 0), [50], 'one sweep, after every partition delivered the end of the snapshot, deleted the 50 rows deleted while the slot was gone');
  const after = await writeLogProblems(env.targetDb);
  assert.deepEqual(after.problems.slice(0, 10), [], `${after.problems.length} writes out of order or applied twice`);
});
