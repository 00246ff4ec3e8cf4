/**
 * A Redis that stops answering (SIGSTOP on a redis-server of this test's own: the kernel still takes
 * connections and bytes, nothing replies) must not stall a pipeline or its shutdown without a word.
 * Every command is bounded by redis.commandTimeoutMs: the sink's Redis calls fail as retriable
 * REDIS_TIMEOUT and are retried; when Redis answers again the target converges with nothing
 * dead-lettered or applied twice; and a stop while Redis is frozen completes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { APPLIED_LOG, checksum, ITEMS_DDL, sleep, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import { createRedis } from '../src/core/redis.js';
import { VersionState } from '../src/sink/version-state.js';
import { SynclineError } from '../src/core/errors.js';

let port = 0;
let server: ChildProcess;

const freePort = () => new Promise<number>((resolve, reject) => {
  const s = createServer().once('error', reject).listen(0, '127.0.0.1', () => {
    const p = (s.address() as { port: number }).port;
    s.close(() => resolve(p));
  });
});
const freeze = () => server.kill('SIGSTOP');
const thaw = () => server.kill('SIGCONT');

before(async () => {
  port = await freePort();
  server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await waitFor('the test redis-server', async () => {
    const r = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    r.on('error', () => undefined);
    try {
      await r.connect();
      return (await r.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      r.disconnect();
    }
  }, 15_000, 100);
});
after(() => {
  thaw();
  server.kill('SIGKILL');
});

test('a frozen Redis: version-state calls fail as retriable REDIS_TIMEOUT after redis.commandTimeoutMs', { timeout: 60_000 }, async () => {
  const client = createRedis({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 500 }, { maxRetriesPerRequest: 3 });
  client.on('error', () => undefined);
  await client.connect();
  const vs = new VersionState(client, 'syncline_t_freeze', 'p');
  assert.deepEqual(await vs.getMany([{ table: 'public.t', key: '[1]' }]), [null]);
  freeze();
  try {
    await assert.rejects(vs.getMany([{ table: 'public.t', key: '[1]' }]), (e: unknown) => {
      assert.ok(e instanceof SynclineError, String(e));
      assert.equal(e.kind, 'retriable');
      assert.equal(e.code, 'REDIS_TIMEOUT');
      assert.match(e.message, /Redis did not answer within redis\.commandTimeoutMs/);
      return true;
    });
  } finally {
    thaw();
  }
  assert.deepEqual(await vs.getMany([{ table: 'public.t', key: '[1]' }]), [null], 'the same client works again once Redis answers');
  client.disconnect();
});

const DDL = ITEMS_DDL;
const LOG = APPLIED_LOG;

test('a pipeline whose Redis freezes retries, converges once it answers, and stops while it is frozen', { timeout: 240_000 }, async (t) => {
  const env = await testEnv([{ name: 'fz', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' } }], { extra: { redis: { url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 800 } } });
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL + `insert into items select g, 1, 'seed' || g from generate_series(1, 100) g;`);
  await sql(env.targetDb, DDL + LOG);
  const { rt } = await startRuntime(env);
  const same = async () => {
    const [s, d] = await Promise.all([checksum(env.sourceDb, 'items', 'id'), checksum(env.targetDb, 'items', 'id')]);
    return s.md5 === d.md5 && s.count === d.count;
  };
  await waitFor('the snapshot on the target', same, 60_000, 200);
  const applier = rt.pipelines[0]!.applier!;
  const retries = async () => (await rt.metrics.retries.get()).values.filter((v) => v.labels.pipeline === 'fz').reduce((n, v) => n + v.value, 0);
  const timeouts = async () => (await rt.metrics.errors.get()).values.filter((v) => v.labels.pipeline === 'fz' && v.labels.class === 'retriable').reduce((n, v) => n + v.value, 0);

  // Frozen while changes arrive: the sink's Redis calls time out and the batches are retried.
  const retriesBefore = await retries();
  freeze();
  try {
    await sql(env.sourceDb, `update items set seq = seq + 1, v = 'frozen' || id where id <= 30; delete from items where id between 31 and 40; insert into items select g, 1, 'new' || g from generate_series(101, 120) g;`);
    await waitFor('the batches to be retried against the frozen Redis (syncline_retries_total)', async () => (await retries()) >= retriesBefore + 2, 30_000, 100);
    assert.ok((await timeouts()) >= 2, 'counted as retriable errors (syncline_errors_total)');
    assert.equal(await same(), false, 'nothing reaches the target while the version state cannot be read');
  } finally {
    thaw();
  }
  await waitFor('convergence once Redis answers again', same, 60_000, 200);
  // Deleted and inserted again, after the freeze.
  await sql(env.sourceDb, `insert into items select g, 5, 'back' || g from generate_series(31, 35) g;`);
  await waitFor('the re-inserted rows', same, 30_000, 200);
  assert.equal(applier.stats.deadLettered, 0, JSON.stringify(applier.stats));
  const dup = await sql(env.targetDb, `select id, seq, op, count(*)::int n from applied group by 1, 2, 3 having count(*) > 1`);
  assert.deepEqual(dup.rows, [], 'no row version applied twice');

  // A stop while Redis is frozen and a batch waits on it completes (the commands time out).
  const retried = await retries();
  freeze();
  try {
    await sql(env.sourceDb, `update items set seq = seq + 1 where id > 100`);
    await waitFor('a batch to wait on the frozen Redis', async () => (await retries()) > retried, 15_000, 50);
    await sleep(300);
    const stopped = await Promise.race([rt.stop().then(() => 'stopped'), sleep(30_000).then(() => 'still stopping after 30 s')]);
    assert.equal(stopped, 'stopped');
  } finally {
    thaw();
  }
});

test('Redis stops answering in the middle of a fetched batch: the chunks applied before it are committed, not delivered again', { timeout: 240_000 }, async (t) => {
  // A retry budget (≈ 2 s) shorter than the freeze: the chunk in flight gives up and the batch is fetched again.
  const env = await testEnv([{ name: 'fc', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' }, batch: { size: 25 } }], { retry: { retries: 1, initialDelayMs: 100, maxDelayMs: 100 }, extra: { redis: { url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 800 } } });
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  // A slow target (2 ms a row), so that a backlog takes a while to apply and the freeze lands inside it.
  await sql(env.targetDb, DDL + LOG + `
    create function slow() returns trigger language plpgsql as $$ begin perform pg_sleep(0.002); return new; end $$;
    create trigger slow before insert or update on items for each row execute function slow();`);
  const { rt } = await startRuntime(env);
  const applier = rt.pipelines[0]!.applier!;
  await waitFor('the (empty) snapshot done', async () => rt.pipelines[0]!.capture!.stats.snapshotRows === 0 && applier.stats.control > 0, 60_000, 200);
  await sql(env.sourceDb, `insert into items select g, 1, 'v' || g from generate_series(1, 1500) g`);
  const applied = async () => Number((await sql(env.targetDb, 'select count(*) from items')).rows[0].count);
  await waitFor('the backlog half applied', async () => (await applied()) >= 300, 60_000, 20);
  freeze();
  try {
    await sleep(4000);
  } finally {
    thaw();
  }
  await waitFor('the backlog applied', async () => (await applied()) === 1500, 120_000, 200);
  const twice = await sql(env.targetDb, `select id, count(*)::int n from applied group by id having count(*) > 1 order by id limit 5`);
  assert.deepEqual(twice.rows, [], 'no row written twice');
  // Each batch retry delivers again only the chunk that failed (its target write committed, its state
  // not: the write intents settle it and it is skipped), not the chunks applied before it.
  const batchRetries = (await rt.metrics.retries.get()).values.filter((v) => v.labels.pipeline === 'fc' && v.labels.stage === 'process').reduce((n, v) => n + v.value, 0);
  t.diagnostic(`batch retries ${batchRetries}; stats ${JSON.stringify(applier.stats)}`);
  assert.ok(batchRetries >= 1, 'a chunk gave up while Redis was frozen and its batch was fetched again');
  assert.ok(applier.stats.skippedStale <= applier.stats.intentsSettled, `only the failing chunks came again: ${applier.stats.skippedStale} changes skipped as already applied, ${applier.stats.intentsSettled} of them settled from write intents`);
});
