/**
 * Backfill of a MariaDB table while the binlog streams (src/capture/backfill.ts with the MariaDB
 * source's signal table, ./backfill.ts, ADR 0020), on the real MariaDB → PostgreSQL: a write storm on
 * the table being backfilled converges with no stale overwrite (a per-key seq column only grows);
 * kill -9 of the capture process resumes after the last finished chunk; --where, pause/resume,
 * cancel from the CLI (signals through the signal table); a table added by a reload is backfilled
 * and streamed. The signal table stays empty and its rows never reach a change topic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import mysql from 'mysql2/promise';
import { runCli, sleep, soak, spawnCli, sql, startRuntime, waitFor } from '../../../test/helpers.js';
import { readBackfills } from '../../../src/cli/backfill.js';
import type { BackfillView } from '../../../src/capture/backfill.js';
import { parseConfig } from '../../../src/core/config/load.js';
import { KafkaClient, topics } from '../../../src/core/kafka.js';
import { rootLogger } from '../../../src/core/log.js';
import { my, myEnv, MY, type MyEnv } from './harness.js';
import { SIGNAL_TABLE } from './backfill.js';

const MY_DDL = `CREATE TABLE items (id BIGINT PRIMARY KEY, seq BIGINT NOT NULL, label VARCHAR(50), pad VARCHAR(60)) ENGINE=InnoDB`;
const PG_DDL = `create table items (id bigint primary key, seq bigint not null, label text, pad text)`;


/** Rows written with sql_log_bin = 0: the binlog never carries them, so only a backfill brings them to the target. */
const fillUnlogged = (env: MyEnv, n: number) =>
  my(env.db, `SET SESSION sql_log_bin = 0; INSERT INTO items SELECT seq, 0, CONCAT('row ', seq), REPEAT('x', 50) FROM seq_1_to_${n}; SET SESSION sql_log_bin = 1`);

async function setup(n: number, snapshot: 'initial' | 'never'): Promise<MyEnv> {
  const env = await myEnv(['items'], { snapshot });
  await my(env.db, MY_DDL);
  await sql(env.targetDb, PG_DDL);
  await fillUnlogged(env, n);
  return env;
}

const srcSeqs = async (env: MyEnv) => new Map((await my(env.db, 'SELECT id, seq FROM items')).map((r) => [String(r.id), BigInt(r.seq as string)]));
const dstSeqs = async (env: MyEnv) => new Map((await sql(env.targetDb, 'select id::text, seq::text from items')).rows.map((r: { id: string; seq: string }) => [r.id, BigInt(r.seq)]));

async function converged(env: MyEnv): Promise<void> {
  let diff: string[] = [];
  try {
    await waitFor('target to converge with the source', async () => {
      const [s, d] = await Promise.all([srcSeqs(env), dstSeqs(env)]);
      diff = [];
      for (const [id, v] of s) if (d.get(id) !== v) diff.push(`${id}: source ${v}, target ${d.get(id) ?? 'missing'}`);
      for (const [id, v] of d) if (!s.has(id)) diff.push(`${id}: not at the source, target ${v}`);
      return diff.length === 0;
    }, 120_000, 500);
  } catch (err) {
    throw new Error(`${(err as Error).message}; ${diff.length} rows differ: ${diff.slice(0, 20).join('; ')}`);
  }
}

const backfillOf = async (env: MyEnv, id: string): Promise<BackfillView | undefined> => (await readBackfills(env.config, env.pipeline)).find((b) => b.id === id);

async function topicCount(topic: string): Promise<number> {
  const kafka = new KafkaClient({ brokers: ['127.0.0.1:9092'] } as never, rootLogger.child({ stage: 'test' }));
  try {
    return (await kafka.topicOffsets(topic)).reduce((n, o) => n + Number(o.high) - Number(o.low), 0);
  } finally {
    await kafka.close();
  }
}

test('MariaDB backfill during a write storm converges, and no chunk row overwrites a newer binlog change', async (t) => {
  const N = 12_000;
  const env = await setup(N, 'never');
  t.after(() => env.cleanup());
  const { rt } = await startRuntime(env as never);
  await waitFor('capture to stream', async () => rt.pipelines[0]?.capture?.backfiller !== undefined);

  // Three writers on disjoint keys (id % 3); each writer's counter only grows, so a key's seq only grows
  // (also across delete and re-insert): the target must never show a lower one later.
  let storming = true;
  let writes = 0;
  const writer = async (w: number) => {
    const c = await mysql.createConnection({ ...MY, database: env.db });
    let counter = 0;
    try {
      while (storming) {
        const ids = new Set<number>();
        while (ids.size < 30) ids.add(w + 3 * (1 + Math.floor(Math.random() * (N / 3 - 1))));
        const all = [...ids];
        await c.query('BEGIN');
        for (const id of all.slice(0, 20)) await c.query('UPDATE items SET seq = ?, label = ? WHERE id = ?', [++counter + w * 1e9, 'upd', id]);
        await c.query(`DELETE FROM items WHERE id IN (${all.slice(20, 25).join(',')})`);
        await c.query(`INSERT INTO items (id, seq, label, pad) VALUES ${all.slice(25).map((id) => `(${id}, ${++counter + w * 1e9}, 'again', 'y')`).join(',')} ON DUPLICATE KEY UPDATE seq = VALUES(seq), label = 'again'`);
        await c.query('COMMIT');
        writes += 30;
      }
    } finally {
      await c.end();
    }
  };
  const storm = Promise.all([0, 1, 2].map(writer));

  const seen = new Map<string, bigint>();
  const violations: string[] = [];
  let monitoring = true;
  const monitor = (async () => {
    while (monitoring) {
      for (const [id, s] of await dstSeqs(env)) {
        const before = seen.get(id);
        if (before !== undefined && s < before) violations.push(`id ${id}: seq ${s} after ${before}`);
        if (before === undefined || s > before) seen.set(id, s);
      }
      await sleep(100);
    }
  })();

  const r = await runCli(['backfill', env.pipeline, '--config', env.configFile, '--table', `${env.db}.items`, '--chunk-size', '300', '--wait', '--json', '--timeout', '300']);
  assert.equal(r.code, 0, `backfill --wait: ${r.err}`);
  const view = JSON.parse(r.out) as BackfillView;
  assert.equal(view.status, 'done');
  assert.equal(view.percent, 100);
  assert.ok(view.rows > N / 2 && view.chunks >= Math.ceil(view.rows / 300), `chunks ${view.chunks}, rows ${view.rows}`);
  storming = false;
  await storm;
  await converged(env);
  monitoring = false;
  await monitor;
  const stats = rt.pipelines[0]!.capture!.stats.backfill;
  t.diagnostic(`writes ${writes}, backfill rows ${view.rows}, chunks ${view.chunks}, dropped for newer binlog changes ${stats.backfillDropped}, ${view.rowsPerSec} rows/s`);
  assert.ok(writes > 2000, `the storm wrote ${writes} changes`);
  assert.deepEqual(violations.slice(0, 10), [], 'a chunk row overwrote a newer streamed change');
  assert.ok(stats.backfillDropped > 0, 'some chunk rows were dropped for a change streamed inside their window');
  // The signal table stays empty, and none of its rows became a change topic.
  assert.equal(Number((await my(env.db, `SELECT COUNT(*) AS n FROM ${SIGNAL_TABLE}`))[0]!.n), 0, 'the signal table stays empty');
  assert.equal(await topicCount(topics.cdc(env.prefix, env.db, SIGNAL_TABLE)).catch(() => 0), 0, 'no change topic of the signal table');
});

test('a MariaDB backfill goes on after kill -9 of the capture from its last finished chunk', async (t) => {
  const N = soak(20_000, 100_000); // `npm run chaos` reads the longer table
  const CHUNK = 500;
  const env = await setup(N, 'never');
  t.after(() => env.cleanup());
  await startRuntime(env as never, ['process', 'sink']);
  let capture: ChildProcess = spawnCli(['capture', '--config', env.configFile]);
  t.after(() => { capture.kill('SIGKILL'); });
  const topic = topics.cdc(env.prefix, env.db, 'items');
  // The capture streams (snapshot: never starts at the binlog's end: a signal written before would be missed).
  await waitFor('the capture to stream', async () => {
    await my(env.db, 'UPDATE items SET label = CONCAT(label, \'.\') WHERE id = 1');
    return (await dstSeqs(env)).size > 0;
  }, 120_000, 1000);
  assert.equal((await dstSeqs(env)).size, 1, 'only the row streamed: the others never were in the binlog');

  const r = await runCli(['backfill', env.pipeline, '--config', env.configFile, '--table', `${env.db}.items`, '--chunk-size', String(CHUNK)]);
  assert.equal(r.code, 0, r.err);
  const id = r.out.trim();
  const before = await waitFor('3 finished chunks', async () => {
    const b = await backfillOf(env, id);
    return b && b.chunks >= 3 ? b : undefined;
  }, 120_000, 100);
  capture.kill('SIGKILL');
  await once(capture, 'exit');
  const atKill = (await backfillOf(env, id))!;
  assert.equal(atKill.status, 'running');
  assert.ok(atKill.chunks >= before.chunks && atKill.chunks < N / CHUNK, `killed after chunk ${atKill.chunks}`);
  assert.equal(atKill.last?.[0], String(atKill.chunks * CHUNK), 'the resume key is the last finished chunk\'s last key');
  const producedAtKill = await topicCount(topic).catch(() => 0);

  capture = spawnCli(['capture', '--config', env.configFile]);
  const done = await waitFor('the backfill to finish after the restart', async () => {
    const b = await backfillOf(env, id);
    return b?.status === 'done' ? b : undefined;
  }, 180_000, 500);
  await converged(env);
  const produced = await topicCount(topic);
  t.diagnostic(`killed after ${atKill.chunks} chunks (${producedAtKill} rows in Kafka at the kill); ${produced} rows in Kafka at the end for ${N} source rows; ${done.chunks} chunks`);
  assert.equal(done.rows, N, 'rows counted once: the resumed backfill went on from its chunk');
  assert.equal(done.chunks, N / CHUNK + 1, 'chunks numbered on from the last finished one (the last reads nothing)');
  assert.ok(produced <= N + 2 * CHUNK, `${produced} rows produced for ${N}: chunks were read again from the start`);
});

test('MariaDB backfill: a refused --where, --where with pause and resume, cancel, and a table added by a reload', async (t) => {
  const N = 6000;
  // snapshot: initial (of an empty table): a table added later is backfilled only then.
  const env = await myEnv(['items'], { snapshot: 'initial' });
  t.after(() => env.cleanup());
  await my(env.db, MY_DDL);
  await sql(env.targetDb, PG_DDL);
  const { rt } = await startRuntime(env as never);
  // The snapshot (of the empty table) must be over before the unlogged rows are written, or it reads
  // them (CI under load: the backfiller exists before the snapshot runs). A streamed row reaching the
  // target proves it: streaming starts after the snapshot. The marker is deleted again (streamed too).
  await my(env.db, `INSERT INTO items VALUES (-1, 0, 'marker', '')`);
  await waitFor('the capture to stream (a marker row in the target)', async () => (await dstSeqs(env)).has('-1'), 120_000, 200);
  await my(env.db, 'DELETE FROM items WHERE id = -1');
  await waitFor('the marker row deleted in the target', async () => !(await dstSeqs(env)).has('-1'), 60_000, 200);
  await fillUnlogged(env, N);
  const bf = () => rt.pipelines[0]!.capture!.backfiller!;

  // A where MariaDB refuses: refused by the CLI with MariaDB's words.
  const bad = await runCli(['backfill', env.pipeline, '--config', env.configFile, '--table', `${env.db}.items`, '--where', 'nosuchcol > 1']);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /BACKFILL_WHERE.*nosuchcol/);

  // --where (a signal through the signal table), paused and resumed.
  const r = await runCli(['backfill', env.pipeline, '--config', env.configFile, '--table', `${env.db}.items`, '--where', 'id % 2 = 0', '--chunk-size', '100']);
  assert.equal(r.code, 0, r.err);
  const id = r.out.trim();
  await waitFor('a chunk or two', async () => ((await backfillOf(env, id))?.rows ?? 0) > 0, 60_000, 50);
  // Pause and resume as the HTTP API does them (direct calls; the CLI's signals are tested by the cancel below).
  assert.equal((await bf().control(id, 'pause')).status, 'paused');
  await sleep(1500); // the chunk in flight finishes
  const p1 = bf().get(id);
  await sleep(1500);
  const p2 = bf().get(id);
  assert.equal(p2.status, 'paused');
  assert.equal(p2.rows, p1.rows, 'no progress while paused');
  assert.ok(p2.rows < N / 2, `paused at ${p2.rows} rows`);
  assert.equal((await bf().control(id, 'resume')).status, 'running');
  const done = await waitFor('the backfill to finish', async () => {
    const b = await backfillOf(env, id);
    return b?.status === 'done' ? b : undefined;
  }, 120_000, 200);
  assert.equal(done.total, N / 2);
  assert.equal(done.rows, N / 2);
  let inTarget = 0;
  await waitFor('the even rows in the target', async () => (inTarget = (await dstSeqs(env)).size) === N / 2, 60_000, 200)
    .catch((err: Error) => { throw new Error(`${err.message}: ${inTarget} rows in the target for ${N / 2}`); });
  assert.equal((await sql(env.targetDb, 'select count(*)::int as n from items where id % 2 = 1')).rows[0].n, 0, '--where: only matching rows were read');

  // Cancel from the CLI while it runs.
  const r2 = await runCli(['backfill', env.pipeline, '--config', env.configFile, '--table', `${env.db}.items`, '--chunk-size', '20']);
  assert.equal(r2.code, 0, r2.err);
  const id2 = r2.out.trim();
  await waitFor('the second backfill to run', async () => ((await backfillOf(env, id2))?.rows ?? 0) > 0, 60_000, 50);
  const c = await runCli(['backfill', env.pipeline, '--config', env.configFile, '--cancel', id2, '--wait', '--timeout', '60']);
  assert.equal(c.code, 0, c.err);
  const c1 = bf().get(id2);
  assert.equal(c1.status, 'cancelled');
  await sleep(1500);
  assert.equal(bf().get(id2).rows, c1.rows, 'no chunk after the cancel');
  assert.ok(c1.rows < N, `cancelled at ${c1.rows} of ${N}`);

  // A table added by a reload: backfilled (its rows were there before) and then streamed.
  await my(env.db, `CREATE TABLE extra (id BIGINT PRIMARY KEY, seq BIGINT NOT NULL, label VARCHAR(50)); INSERT INTO extra SELECT seq, 0, 'first' FROM seq_1_to_3000`);
  await sql(env.targetDb, 'create table extra (id bigint primary key, seq bigint not null, label text)');
  const raw = JSON.parse(readFileSync(env.configFile, 'utf8')) as { pipelines: Record<string, { tables: { source: string; target: string }[] }> };
  raw.pipelines[env.pipeline]!.tables.push({ source: `${env.db}.extra`, target: 'public.extra' });
  const next = parseConfig(JSON.stringify(raw), env.configFile, {});
  const stagesBefore = { capture: rt.pipelines[0]!.capture, processor: rt.pipelines[0]!.processor };
  const plan = await rt.reload(next);
  assert.deepEqual(plan.pipelines.map((x) => x.added), [[`${env.db}.extra`]]);
  // No restart: the same capture (its binlog reader's filter took the table) and the same consumer stage.
  assert.equal(rt.pipelines[0]!.capture, stagesBefore.capture, 'capture kept running');
  assert.equal(rt.pipelines[0]!.processor, stagesBefore.processor, 'the processor stage kept running');
  const same = async () => {
    const src = (await my(env.db, `SELECT CONCAT(id, '|', seq, '|', label) AS r FROM extra ORDER BY id`)).map((x) => x.r);
    const d = (await sql(env.targetDb, `select id || '|' || seq || '|' || label as r from extra order by id`)).rows.map((x: { r: string }) => x.r);
    return JSON.stringify(src) === JSON.stringify(d);
  };
  const added = await waitFor('the added table backfilled', async () => {
    const b = (await readBackfills(env.config, env.pipeline)).find((x) => x.table === `${env.db}.extra`);
    return b?.status === 'done' ? b : undefined;
  }, 120_000, 500);
  assert.equal(added.rows, 3000);
  await waitFor('extra backfilled', same, 60_000, 500);
  // …and streamed from then on.
  await my(env.db, `UPDATE extra SET seq = 1, label = 'streamed' WHERE id <= 10; DELETE FROM extra WHERE id = 11`);
  await waitFor('extra streamed', same, 60_000, 500);
});
