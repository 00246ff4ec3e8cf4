/**
 * The retry policy on the real stack. The target PostgreSQL is reached through a TCP proxy so it
 * can "go down" without stopping the server the source shares:
 *  - target down for a few seconds mid-stream → retried, nothing lost, nothing dead-lettered;
 *  - target permanently unreachable → dead-lettered after exactly the configured attempts (the
 *    target connector's own retry policy overrides the pipeline default);
 *  - a fatal error (missing target table) → the process stops with the reason and exit code 1.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { parseConfig } from '../src/core/config/load.js';
import { Kafka, logLevel } from 'kafkajs';
import { groups, topics } from '../src/core/kafka.js';
import type { Sink } from '../src/sink/sink.js';
import { checksum, readTopic, sleep, spawnCli, sql, startRuntime, testEnv, waitFor, withClient, type TestEnv } from './helpers.js';
import { TcpProxy } from './tcp-proxy.js';

const DDL = `create table jobs (id int primary key, state text not null, updated_at timestamptz not null default clock_timestamp())`;

/** Point the env's target connection at the proxy and set the target connector's retry policy. */
function throughProxy(env: TestEnv, port: number, retry: Record<string, number>): void {
  const doc = JSON.parse(JSON.stringify(env.config, (_k, v) => (typeof v === 'bigint' ? Number(v) : v)));
  for (const p of Object.values(doc.pipelines) as { target: { connection: { port: number }; retry?: unknown }; retry?: unknown; conflict?: unknown }[]) {
    p.target.connection.port = port;
    p.target.retry = retry;
    p.retry = { retries: 0 }; // the pipeline default the connector overrides
    p.conflict = { strategy: 'source-wins', field: 'updated_at' };
  }
  const text = JSON.stringify(doc, null, 2);
  writeFileSync(env.configFile, text);
  env.config = parseConfig(text, env.configFile, {});
}

/** A jobs-sync env whose target is reached through a TCP proxy, cleaned up after the test. */
async function proxiedJobs(t: TestContext, retry: Record<string, number>, seed?: string): Promise<{ env: TestEnv; proxy: TcpProxy }> {
  const env = await testEnv([{ name: 'jobs-sync', tables: [{ source: 'public.jobs' }] }]);
  const proxy = new TcpProxy(5432);
  t.after(async () => {
    await env.cleanup();
    await proxy.stop();
  });
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  if (seed) await sql(env.sourceDb, seed);
  throughProxy(env, await proxy.start(), retry);
  return { env, proxy };
}

/** Whether the pipeline's processor group committed up to the end of its change topic. */
async function committedAll(env: TestEnv): Promise<boolean> {
  const admin = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING, clientId: 'retry-test' }).admin();
  await admin.connect();
  try {
    const topic = topics.cdc(env.prefix, 'public', 'jobs');
    const [ends, [committed]] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId: groups.processor(env.prefix, 'jobs-sync'), topics: [topic] })]);
    const at = new Map(committed!.partitions.map((p) => [p.partition, Number(p.offset)]));
    return ends.every((e) => Number(e.high) === 0 || (at.get(e.partition) ?? -1) >= Number(e.high));
  } finally {
    await admin.disconnect();
  }
}

function countWrites(sink: Sink): { n: number } {
  const counter = { n: 0 };
  const orig = sink.writeBatch.bind(sink);
  sink.writeBatch = async (batch) => {
    counter.n++;
    return orig(batch);
  };
  return counter;
}

test('target down for a few seconds mid-stream: retried, nothing lost, nothing dead-lettered', async (t) => {
  const { env, proxy } = await proxiedJobs(t, { retries: 8, initialDelayMs: 200, maxDelayMs: 1500 });
  const { rt } = await startRuntime(env);
  const stats = () => rt.pipelines[0]!.applier!.stats;

  await sql(env.sourceDb, `insert into jobs (id, state) select g, 'new' from generate_series(1, 100) g`);
  await waitFor('first rows', async () => (await checksum(env.targetDb, 'jobs', 'id')).count === 100);
  proxy.block();
  for (let i = 0; i < 10; i++) {
    await sql(env.sourceDb, `insert into jobs (id, state) select g, 'while-down' from generate_series(101 + $1::int * 10, 110 + $1::int * 10) g`, [i]);
    await sql(env.sourceDb, `update jobs set state = 'touched', updated_at = clock_timestamp() where id = $1`, [i + 1]);
    await sleep(300);
  }
  await waitFor('a retry while the target is down', async () => stats().retries > 0, 30_000);
  proxy.unblock();
  await waitFor('convergence once the target is back', async () => {
    const [s, d] = await Promise.all([checksum(env.sourceDb, 'jobs', 'id'), checksum(env.targetDb, 'jobs', 'id')]);
    return s.md5 === d.md5 && s.count === d.count;
  }, 60_000, 500);
  assert.equal(stats().deadLettered, 0, 'nothing dead-lettered');
  assert.ok(stats().retries >= 1);
});

test('target permanently unreachable: dead-lettered after exactly the configured attempts, then the pipeline moves on', async (t) => {
  const { env, proxy } = await proxiedJobs(t, { retries: 2, initialDelayMs: 100, maxDelayMs: 400 });
  const { rt } = await startRuntime(env);
  const h = rt.pipelines[0]!;
  await waitFor('snapshot done', async () => (h.capture?.stats.confirmed ?? '') !== '');
  // The end-of-snapshot markers applied too (their sweep reads the target's catalog: blocked, it is
  // retried for ever, a control record is never dead-lettered, and the change behind it waits).
  await waitFor('the processor group to commit every change-topic message', () => committedAll(env), 60_000, 200);
  const writes = countWrites(h.sink!);

  proxy.block();
  await sql(env.sourceDb, `insert into jobs (id, state) values (1, 'doomed')`);
  const letters = await waitFor('the dead letter', async () => {
    const m = await readTopic(topics.dlq(env.prefix, 'jobs-sync')).catch(() => []);
    return m.length > 0 ? m : false;
  }, 120_000, 500);
  assert.equal(letters.length, 1);
  assert.equal(letters[0]!.headers['syncline.dlq.kind'], 'failed');
  assert.equal(letters[0]!.headers['syncline.attempts'], '3', 'retries: 2 → 3 attempts (connector policy, not the pipeline default of 0 retries)');
  assert.equal(writes.n, 3, 'the sink was tried exactly 3 times');
  assert.equal(h.applier!.stats.retries, 2);

  proxy.unblock();
  await sql(env.sourceDb, `insert into jobs (id, state) values (2, 'after')`);
  await waitFor('the next change to arrive', async () => (await sql(env.targetDb, `select count(*)::int n from jobs where id = 2`)).rows[0].n === 1, 30_000);
  assert.equal((await sql(env.targetDb, `select count(*)::int n from jobs where id = 1`)).rows[0].n, 0, 'the dead-lettered row is not in the target');
});

test('a key whose target row is locked is retried while the other keys of its batch go through, in order', async (t) => {
  // Row 5 is retried for up to ≈ 25 s (50 attempts), much longer than the test holds its lock.
  const { env, proxy } = await proxiedJobs(t, { retries: 50, initialDelayMs: 200, maxDelayMs: 500 }, `insert into jobs (id, state) select g, 'v0' from generate_series(1, 10) g`);
  (env.config.pipelines['jobs-sync']!.target as { lockTimeoutMs: number }).lockTimeoutMs = 200;
  // Capture in one runtime, processor and sink in another: the consumer is started only once every
  // change is in the topic, so each partition's changes come in one batch (started together, a slow
  // machine let a fetch take part of a partition's changes, and the rest queued behind row 5's retries).
  await startRuntime(env, ['capture']);
  let { rt } = await startRuntime(env, ['process', 'sink']);
  await waitFor('snapshot applied', async () => (await sql(env.targetDb, `select count(*)::int n from jobs where state = 'v0'`)).rows[0].n === 10);
  await rt.stop();
  const topic = topics.cdc(env.prefix, 'public', 'jobs');
  const before = (await readTopic(topic)).length;

  // Someone holds row 5 of the target.
  const holder = new (await import('pg')).default.Client({ host: '127.0.0.1', user: 'postgres', database: env.targetDb });
  holder.on('error', () => undefined); // terminated by the cleanup's drop database
  await holder.connect();
  t.after(() => holder.end().catch(() => undefined));
  await holder.query('begin');
  await holder.query(`select * from jobs where id = 5 for update`);

  // One source transaction changes every row twice: one batch of ten keys, two records each.
  await withClient(env.sourceDb, async (c) => {
    await c.query('begin');
    await c.query(`update jobs set state = 'v1', updated_at = clock_timestamp()`);
    await c.query(`update jobs set state = 'v2', updated_at = clock_timestamp()`);
    await c.query('commit');
  });
  await waitFor('the 20 changes in the change topic', async () => (await readTopic(topic)).length >= before + 20, 30_000);
  ({ rt } = await startRuntime(env, ['process', 'sink']));
  const sent = Date.now();
  const stats = () => JSON.stringify(rt.pipelines[0]!.applier!.stats);
  await waitFor('the other nine keys to arrive while row 5 is locked', async () => {
    const r = await sql(env.targetDb, `select id, state from jobs where id <> 5 and state = 'v2'`);
    return r.rowCount === 9;
  }, 30_000, 100).catch((err: Error) => {
    throw new Error(`${err.message}; applier ${stats()}`);
  });
  t.diagnostic(`the nine keys arrived ${Date.now() - sent} ms after the source commit; applier ${stats()}`);
  assert.ok(rt.pipelines[0]!.applier!.stats.retries >= 1, 'row 5 is being retried');
  assert.equal((await sql(env.targetDb, `select count(*)::int n from jobs where id = 5 and state = 'v0'`)).rows[0].n, 1);

  await holder.query('rollback');
  await waitFor('row 5 to catch up, with its last version', async () => (await sql(env.targetDb, `select state from jobs where id = 5`)).rows[0]?.state === 'v2', 30_000, 100).catch((err: Error) => {
    throw new Error(`${err.message}; applier ${stats()}`);
  });
  assert.equal(rt.pipelines[0]!.applier!.stats.deadLettered, 0);
});

test('a fatal error stops the process with the reason and exit code 1, without a restart loop', async (t) => {
  // autoCreate off: no table in the target, and writing is impossible until a person creates it.
  const env = await testEnv([{ name: 'jobs-sync', tables: [{ source: 'public.jobs' }], target: { autoCreate: false } }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.sourceDb, `insert into jobs (id, state) values (1, 'x')`);
  const child: ChildProcess = spawnCli(['start', '--config', env.configFile]);
  const [code] = await Promise.race([once(child, 'exit'), sleep(90_000).then(() => ['timeout'])]);
  const stderr = (child as ChildProcess & { stderrTail(): string }).stderrTail();
  assert.equal(code, 1, `exit code (stderr: ${stderr.slice(-500)})`);
  assert.match(stderr, /public\.jobs/);
  assert.match(stderr, /does not exist/);
});
