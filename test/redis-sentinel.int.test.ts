/**
 * Version state on a Redis master found through Redis Sentinel (redis.sentinel): a master, a replica
 * and three sentinels started by scripts/redis-sentinel.sh from the installed redis-server on ports
 * of this test's own. Under a keyed write load (./keyed-writes.ts) the master is failed over by hand
 * (SENTINEL FAILOVER), then the new master is killed (-9) and the sentinels promote the old one
 * again. The pipeline follows both without a stage failing; the target ends equal to the source,
 * its write log shows every key's writes in order and none applied twice, nothing is
 * dead-lettered, and the version state is on the master the sentinels name at the end.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import pg from 'pg';
import { Redis } from 'ioredis';
import { PG, readTopic, ROOT, sleep, startRuntime, testEnv, waitFor } from './helpers.js';
import { itemsEqual, KeyedWriter, writeLogProblems } from './keyed-writes.js';
import { topics } from '../src/core/kafka.js';

let BASE = 0;
const script = (...args: string[]) => execFileSync('bash', [`${ROOT}scripts/redis-sentinel.sh`, ...args, '--port-base', String(BASE)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
const bindable = (port: number) => new Promise<boolean>((resolve) => {
  const s = createServer().once('error', () => resolve(false)).listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
});

before(async () => {
  for (let i = 0; ; i++) {
    BASE = 23001 + 5 * Math.floor(Math.random() * 1500);
    if ((await Promise.all([0, 1, 2, 3, 4].map((k) => bindable(BASE + k)))).every(Boolean)) break;
    if (i > 20) throw new Error('no free port range for Redis Sentinel');
  }
  script('up', '--down-after', '1500');
});
after(() => {
  script('down');
});

/** The role line of a server's INFO replication ('' when it does not answer). */
async function replication(port: number): Promise<string> {
  const r = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await r.info('replication');
  } catch {
    return '';
  } finally {
    r.disconnect();
  }
}

test('a pipeline with its version state behind Redis Sentinel follows a manual failover and a kill -9 of the master: nothing lost or applied twice', async (t) => {
  const sentinels = [2, 3, 4].map((k) => `127.0.0.1:${BASE + k}`);
  const env = await testEnv([{ name: 'sn', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' } }], {
    extra: { redis: { url: 'redis://127.0.0.1', sentinel: { nodes: sentinels, name: 'mymaster' } } },
    retry: { retries: 20, initialDelayMs: 100, maxDelayMs: 2000 },
  });
  const src = new pg.Pool({ ...PG, database: env.sourceDb, max: 4 });
  src.on('error', () => undefined);
  t.after(async () => {
    await src.end().catch(() => undefined);
    await env.cleanup();
  });
  const load = new KeyedWriter(src, 400);
  await load.seed(env.targetDb);
  const { rt, done } = await startRuntime(env);
  let failed: unknown;
  done.catch((err: unknown) => (failed = err));
  const same = itemsEqual(env);
  await waitFor('the snapshot on the target', same, 120_000, 300);
  assert.equal(script('master'), `127.0.0.1:${BASE}`);

  load.start(3);
  await sleep(2000);
  // 1. A manual failover: the replica becomes the master, the old master its replica.
  execFileSync('redis-cli', ['-p', String(BASE + 2), 'sentinel', 'failover', 'mymaster']);
  await waitFor('the sentinels to name the replica as master', async () => script('master') === `127.0.0.1:${BASE + 1}`, 30_000, 200);
  await waitFor('the old master to replicate the new one', async () => /role:slave/.test(await replication(BASE)) && /master_link_status:up/.test(await replication(BASE)), 30_000, 200);
  const first = load.writes;
  await sleep(3000);
  // 2. The new master killed (-9): the sentinels promote the old one again.
  execFileSync('kill', ['-9', execFileSync('cat', [`/tmp/syncline-redis-sentinel-${BASE}/${BASE + 1}/redis.pid`], { encoding: 'utf8' }).trim()]);
  const killedAt = Date.now();
  await waitFor('the sentinels to promote the old master', async () => script('master') === `127.0.0.1:${BASE}`, 60_000, 200);
  t.diagnostic(`failover by hand after ${first} writes; master killed, promoted again after ${((Date.now() - killedAt) / 1000).toFixed(1)} s`);
  await sleep(3000);
  await load.stop();

  await waitFor('the target to equal the source', same, 120_000, 300);
  t.diagnostic(`${load.writes} writes`);
  assert.equal(failed, undefined, `no stage failed: ${String(failed)}`);
  assert.equal(rt.observe.health.report().status, 'ok');
  const { problems, writes } = await writeLogProblems(env.targetDb);
  assert.deepEqual(problems.slice(0, 10), [], `${problems.length} writes out of order or applied twice`);
  t.diagnostic(`${writes} target writes checked`);
  assert.equal((await readTopic(topics.dlq(env.prefix, 'sn')).catch(() => [])).length, 0, 'nothing dead-lettered');
  // The version state is on the master the sentinels name now.
  const master = new Redis({ port: BASE, lazyConnect: true, maxRetriesPerRequest: 1 });
  await master.connect();
  try {
    const [, keys] = await master.scan('0', 'MATCH', `${env.prefix}:{sn}:*`, 'COUNT', 10_000);
    assert.ok(keys.length > 0, 'version state keys on the final master');
  } finally {
    master.disconnect();
  }
});
