/**
 * Control records in a split deployment (capture + processor in one runtime, the sink in another,
 * the apply topic between them). The sink consumes the apply topic's partitions concurrently, so a
 * record that acts on a whole table must reach every partition after what came before it there:
 *  - the end of a re-snapshot: its sweep (deleting target rows the snapshot did not see) must wait
 *    for the snapshot rows of every partition, or it deletes rows whose fresh copies are still queued;
 *  - a truncate: each partition's consumer must meet it before the rows inserted after it, or the
 *    truncate wipes rows another partition already applied; and it runs only once every partition
 *    applied what came before it there (a barrier in Redis, ADR 0041), or an older change written
 *    after it brings a truncated row back.
 * To make the order visible, a target row lock holds back one apply-topic partition's batch while the
 * others go on. Before the processor wrote these records to every partition, both tests failed:
 * all copies hashed by their (empty) key to one partition, whose consumer acted alone.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { Redis } from 'ioredis';
import { Partitioners } from 'kafkajs';
import { topics } from '../src/core/kafka.js';
import { decodePending } from '../src/sink/apply-topic.js';
import { keyStringOf } from '../src/sink/sink.js';
import type { Applier } from '../src/sink/applier.js';
import { PG, checksum, readTopic, sleep, spawnLogged, sql, startRuntime, testEnv, waitFor, type TestEnv } from './helpers.js';

const P = 'items-sync';
const TABLE = 'public.items';
const DDL = `create table items (id int primary key, v text not null, updated_at timestamptz not null default clock_timestamp())`;
const PARTITIONS = 3; // testEnv's kafka.partitions

/** The apply-topic partition kafkajs's default partitioner gives a record key (see encodePending). */
const partitioner = Partitioners.DefaultPartitioner();
const partitionOf = (key: string): number =>
  partitioner({ topic: 'apply', partitionMetadata: [...Array(PARTITIONS).keys()].map((partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] })), message: { key: Buffer.from(key), value: null } });
const rowPartition = (id: number) => partitionOf(`${TABLE}\u0000${keyStringOf([id])}`);
/** Where a keyless record (truncate, end of snapshot) goes by its key. */
const keylessPartition = partitionOf(`${TABLE}\u0000${keyStringOf([])}`);
/** ids from, from + 1, … (n of them). */
const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

async function records(env: TestEnv) {
  return (await readTopic(topics.apply(env.prefix, P), { transactional: true })).map((m) => ({ partition: m.partition, record: decodePending(m.value).record }));
}

const converged = async (env: TestEnv) => {
  const [s, d] = await Promise.all([checksum(env.sourceDb, 'items', 'id'), checksum(env.targetDb, 'items', 'id')]);
  return s.md5 === d.md5 && s.count === d.count;
};

/** Wait for the target to equal the source; if it does not, say what it holds. */
async function convergeOrExplain(env: TestEnv, what: string, applier: Applier): Promise<void> {
  await waitFor(what, () => converged(env), 30_000, 300).catch(async (e: Error) => {
    const rows = (await sql(env.targetDb, `select v, count(*)::int n, min(id) lo, max(id) hi from items group by v order by v`)).rows;
    throw new Error(`${e.message}; target rows by value: ${JSON.stringify(rows)}; sink stats: ${JSON.stringify(applier.stats)}`);
  });
}

/** 300 rows synced by a split deployment (its sink runtime stopped again); env.runtimes[0] is capture + process. */
async function splitItems(t: TestContext): Promise<TestEnv> {
  // Lock waits and retries of the held-back batch must not dead-letter it.
  const env = await testEnv([{ name: P, tables: [{ source: TABLE }] }], { retry: { retries: 30, initialDelayMs: 100, maxDelayMs: 500 } });
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into items (id, v) select g, 'seed' from generate_series(1, 300) g`);
  await startRuntime(env, ['capture', 'process']);
  const sink = await startRuntime(env, ['sink']);
  await waitFor('the split pipeline to converge', () => converged(env), 60_000, 300);
  await sink.rt.stop();
  // The test's partitioner agrees with where the rows went.
  const seen = (await records(env)).filter((r) => r.record.op === 'upsert');
  assert.ok(seen.length >= 300);
  for (const r of seen) assert.equal(r.partition, rowPartition(Number(r.record.key.id)), `row ${String(r.record.key.id)} is on the partition its key hashes to`);
  return env;
}

/** Hold a row lock on the target until release(): writes of that row's partition wait behind it. */
async function lockTargetRow(t: TestContext, env: TestEnv, id: number): Promise<{ release(): Promise<void> }> {
  const c = new pg.Client({ ...PG, database: env.targetDb });
  c.on('error', () => undefined); // cleanup drops the database under a client a failed test left open
  await c.connect();
  t.after(() => c.end().catch(() => undefined));
  await c.query('begin');
  await c.query('select * from items where id = $1 for update', [id]);
  return { release: () => c.query('rollback').then(() => c.end()) };
}

test('split deployment: the sweep at the end of a re-snapshot waits for every apply-topic partition', async (t) => {
  const env = await splitItems(t);
  const up = env.runtimes[0]!;
  await up.stop();
  // The slot is dropped while nothing runs; meanwhile one row changes and one is deleted.
  const held = ids(1, 300).find((id) => rowPartition(id) !== keylessPartition)!;
  const gone = ids(1, 300).find((id) => id !== held && rowPartition(id) === rowPartition(held))!;
  await sql('postgres', `select pg_drop_replication_slot($1)`, [env.slot(P)]);
  await sql(env.sourceDb, `update items set v = 'changed while the slot was gone', updated_at = clock_timestamp() where id = $1`, [held]);
  await sql(env.sourceDb, `delete from items where id = $1`, [gone]);

  await startRuntime(env, ['capture', 'process']);
  await waitFor('the re-snapshot and its end on every change-topic partition in the apply topic', async () => {
    const sweeps = (await records(env)).filter((r) => r.record.op === 'sweep');
    const last = sweeps.map((r) => r.record.position).sort().at(-1);
    return new Set(sweeps.filter((r) => r.record.position === last && last > sweeps[0]!.record.position).map((r) => r.record.origin.partition)).size === PARTITIONS;
  }, 60_000, 500);

  // The changed row's partition is held back; the others (and the keyless records' own) go on.
  const lock = await lockTargetRow(t, env, held);
  const sink = await startRuntime(env, ['sink']);
  const applier = sink.rt.pipelines[0]!.applier!;
  await waitFor('the sink to reach an end-of-snapshot marker', async () => applier.stats.control > 0, 30_000, 50);
  await sleep(1500);
  await lock.release();

  await convergeOrExplain(env, 'the target to converge after the re-snapshot', applier);
  assert.equal((await sql(env.targetDb, `select count(*)::int n from items where id = $1`, [gone])).rows[0].n, 0, 'the row deleted while the slot was gone is deleted on the target');
  assert.equal(applier.stats.swept, 1, 'the sweep deleted exactly the row the re-snapshot did not find');
});

test('split deployment: a truncate waits at every apply-topic partition until each applied what came before it there, then runs once', async (t) => {
  const env = await splitItems(t);
  // A change before the truncate on one partition: its write is held back there by a row lock.
  const held = ids(1, 300).find((id) => rowPartition(id) === keylessPartition)!;
  await sql(env.sourceDb, `update items set v = 'before the truncate', updated_at = clock_timestamp() where id = $1`, [held]);
  await sql(env.sourceDb, `truncate items`);
  await sql(env.sourceDb, `insert into items (id, v) select g, 'after the truncate' from generate_series(1001, 1100) g`);
  const elsewhere = ids(1001, 100).filter((id) => rowPartition(id) !== keylessPartition).length;
  assert.ok(elsewhere > 0, 'some rows inserted after the truncate are on other partitions');
  await waitFor('the truncate and the inserts in the apply topic', async () => {
    const rs = await records(env);
    return rs.some((r) => r.record.op === 'truncate') && rs.filter((r) => r.record.op === 'upsert' && Number(r.record.key.id) > 1000).length === 100;
  }, 60_000, 500);

  const lock = await lockTargetRow(t, env, held);
  let released = false;
  const release = async () => {
    if (!released) await lock.release();
    released = true;
  };
  try {
    const sink = await startRuntime(env, ['sink']);
    const applier = sink.rt.pipelines[0]!.applier!;
    // The other partitions reach the truncate and wait there (the barrier in Redis counts them);
    // the held one cannot: its write before the truncate waits for the lock.
    const redis = new Redis(env.config.redis.url);
    t.after(() => redis.disconnect());
    const arrived = async () => {
      const keys = await redis.keys(`${env.prefix}:{${P}}:tb:${TABLE}:*`);
      return keys.length === 1 ? redis.scard(keys[0]!) : keys.length;
    };
    await waitFor('every partition but the held one at the truncate', async () => (await arrived()) === PARTITIONS - 1, 30_000, 100);
    await sleep(1500);
    const target = (await sql(env.targetDb, `select count(*)::int n, count(*) filter (where id > 1000)::int after from items`)).rows[0];
    assert.deepEqual(target, { n: 300, after: 0 }, 'while one partition has not reached it, the truncate has not run and no row inserted after it is written');
    assert.equal(await arrived(), PARTITIONS - 1, 'the held partition has not arrived');
    await release();

    await convergeOrExplain(env, 'the target to hold exactly the rows inserted after the truncate', applier);
    assert.equal((await sql(env.targetDb, `select count(*)::int n from items`)).rows[0].n, 100);
    assert.equal(await arrived(), PARTITIONS, 'every partition arrived');
  } finally {
    await release();
  }
});

test('split deployment, three sink processes (one apply-topic partition each): a truncate runs once, after every partition applied what came before it; a re-snapshot sweeps once, after every partition delivered its end', async (t) => {
  const env = await splitItems(t);
  const sinks = [1, 2, 3].map((n) => spawnLogged(['sink', '-c', env.configFile], n));
  t.after(() => {
    for (const s of sinks) if (s.p.exitCode === null) s.p.kill('SIGKILL');
  });
  await waitFor('three sink processes, one apply-topic partition each', async () => {
    for (const s of sinks) if (s.p.exitCode !== null) throw new Error(`sink ${s.n} exited ${s.p.exitCode}: ${s.out().slice(-2000)}`);
    return sinks.every((s) => s.assigned().length === 1);
  }, 90_000, 200);
  const redis = new Redis(env.config.redis.url);
  t.after(() => redis.disconnect());
  // How many partitions reached the newest truncate ('tb') or end of snapshot ('s'), in Redis.
  const scard = async (kind: 'tb' | 's') => {
    const newest = (await redis.keys(`${env.prefix}:{${P}}:${kind}:${TABLE}:*`)).sort().at(-1);
    return newest === undefined ? 0 : redis.scard(newest);
  };
  const logged = (what: string) => sinks.flatMap((s) => s.out().split('\n').filter((l) => l.includes(what)).map((l) => ({ n: s.n, line: JSON.parse(l) as { rows?: number } })));

  // The truncate: one partition's write before it waits for a row lock (the process that has it
  // read the key's state before the truncate). Without the barrier the processes ran the truncate at
  // their own copies, queued behind the lock; one ran it again after another's partition had applied
  // rows inserted after it, and removed them (the target kept 58 of the 100).
  const held = ids(1, 300).find((id) => rowPartition(id) === keylessPartition)!;
  const lock = await lockTargetRow(t, env, held);
  try {
    await sql(env.sourceDb, `update items set v = 'before the truncate', updated_at = clock_timestamp() where id = $1`, [held]);
    await sql(env.sourceDb, `truncate items`);
    await sql(env.sourceDb, `insert into items (id, v) select g, 'after the truncate' from generate_series(1001, 1100) g`);
    await waitFor('every partition but the held one at the truncate', async () => (await scard('tb')) === PARTITIONS - 1, 60_000, 100);
    await sleep(1500);
    const target = (await sql(env.targetDb, `select count(*)::int n, count(*) filter (where id > 1000)::int after from items`)).rows[0];
    assert.deepEqual(target, { n: 300, after: 0 }, 'while one partition has not reached it, the truncate has not run and no row inserted after it is written');
  } finally {
    await lock.release();
  }
  await waitFor('the target to hold exactly the rows inserted after the truncate', () => converged(env), 60_000, 300).catch(async (e: Error) => {
    const rows = (await sql(env.targetDb, `select v, count(*)::int n, min(id) lo, max(id) hi from items group by v order by v`)).rows;
    throw new Error(`${e.message}; target rows by value: ${JSON.stringify(rows)}`);
  });
  assert.equal((await sql(env.targetDb, `select count(*)::int n from items`)).rows[0].n, 100);
  const runs = logged('truncate.run');
  t.diagnostic(`truncate: run by sink ${[...new Set(runs.map((r) => r.n))].join(', ')}; ${logged('truncate.wait').length} partition(s) waited for it`);
  assert.equal(new Set(runs.map((r) => r.n)).size, 1, 'one process ran the truncate');

  // The re-snapshot: the slot dropped while capture and processor are stopped, a row changed and one
  // deleted meanwhile; the sink process that has the changed row's partition stopped (SIGSTOP, a
  // stalled process; a row lock would be an open transaction, which keeps the new slot from being
  // created). The sweep (deleting target rows the re-snapshot did not find) must wait for that
  // partition: run early, it deleted the changed row (its state still older than the snapshot).
  await env.runtimes[0]!.stop();
  const changed = ids(1001, 100).find((id) => rowPartition(id) !== keylessPartition)!;
  const gone = ids(1001, 100).find((id) => id !== changed && rowPartition(id) !== rowPartition(changed))!;
  await sql('postgres', `select pg_drop_replication_slot($1)`, [env.slot(P)]);
  await sql(env.sourceDb, `update items set v = 'changed while the slot was gone', updated_at = clock_timestamp() where id = $1`, [changed]);
  await sql(env.sourceDb, `delete from items where id = $1`, [gone]);
  const stalled = sinks.find((s) => s.assigned().includes(rowPartition(changed)))!;
  stalled.p.kill('SIGSTOP');
  try {
    const snapshots = (await redis.keys(`${env.prefix}:{${P}}:s:${TABLE}:*`)).length;
    await startRuntime(env, ['capture', 'process']);
    await waitFor('the re-snapshot', async () => (await redis.keys(`${env.prefix}:{${P}}:s:${TABLE}:*`)).length > snapshots, 60_000, 100);
    await waitFor('the end of the re-snapshot at the partitions not stalled', async () => (await scard('s')) >= (PARTITIONS - 1) * PARTITIONS, 30_000, 100);
    await sleep(1500);
    // Run early, this sweep would delete rows (the changed row's and the deleted row's state are older
    // than the snapshot). A sweep of 0 rows is the first snapshot's end marker delivered again to
    // these processes (the stopped sink had not committed all of its copies): it finds nothing.
    assert.deepEqual(logged('snapshot.sweep').filter((s) => (s.line.rows ?? 0) > 0), [], 'no sweep while one partition has not delivered the end of the snapshot');
  } finally {
    stalled.p.kill('SIGCONT');
  }
  await waitFor('the target to equal the source after the re-snapshot', () => converged(env), 60_000, 300);
  const sweeps = logged('snapshot.sweep').map((s) => s.line.rows ?? 0);
  t.diagnostic(`re-snapshot: sweep(s) of ${sweeps.join(', ')} rows`);
  // A marker delivered again (a rebalance before its commit) may count once more: that sweep finds nothing left.
  assert.deepEqual(sweeps.filter((n) => n > 0), [1], 'one sweep deleted the one row deleted while the slot was gone');
  for (const s of sinks) assert.equal(s.p.exitCode, null, `sink ${s.n} still runs`);
});
