/**
 * Version state on a real Redis Cluster (3 masters + 3 replicas started by scripts/redis-cluster.sh
 * from the installed redis-server, on ports of this test's own): a PG→PG pipeline converges under a
 * workload of inserts, updates and deletes; then, mid-stream, the master holding the pipeline's slot
 * is failed over by hand (CLUSTER FAILOVER on its replica) and the new master is killed with -9
 * (its replica, the old master, takes over after the node timeout). The target ends equal to the
 * source, nothing is dead-lettered, and a trigger log on the target shows no row version applied
 * twice. Misconfigurations fail at start with the config path to correct.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import pg from 'pg';
import { Cluster, Redis } from 'ioredis';
import { APPLIED_LOG, checksum, ITEMS_DDL, PG, ROOT, sleep, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import { clusterHealth, keySlot, scanKeys } from '../src/core/redis.js';
import { Runtime } from '../src/runtime.js';
import { parseConfig } from '../src/core/config/load.js';
import { doctor } from '../src/cli/doctor.js';
import { dependencyProbes, watchRedis } from '../src/observe/checks.js';

// An odd port base of its own (bus ports are +10000), away from the shared Redis and other tests' clusters.
let BASE = 0;
let PORTS: number[] = [];
let NODES: string[] = [];
const script = (...args: string[]) => execFileSync('bash', [`${ROOT}scripts/redis-cluster.sh`, ...args, '--port-base', String(BASE)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const bindable = (port: number) => new Promise<boolean>((resolve) => {
  const s = createServer().once('error', () => resolve(false)).listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
});

before(async () => {
  for (let i = 0; ; i++) {
    BASE = 21001 + 2 * Math.floor(Math.random() * 4000);
    PORTS = [0, 1, 2, 3, 4, 5].map((k) => BASE + k);
    const free = await Promise.all([...PORTS, ...PORTS.map((p) => p + 10000), BASE + 7].map(bindable));
    if (free.every(Boolean)) break;
    if (i > 20) throw new Error('no free port range for the Redis Cluster');
  }
  NODES = PORTS.slice(0, 3).map((p) => `127.0.0.1:${p}`);
  script('up', '--node-timeout', '1500');
});
after(() => {
  script('down');
});

/** `CLUSTER NODES` as a list of { port, master, slots } from one live node. */
async function topology(): Promise<{ id: string; port: number; master: boolean; masterId: string; slots: [number, number][]; failed: boolean }[]> {
  for (const p of PORTS) {
    const r = new Redis({ port: p, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, commandTimeout: 3000 });
    r.on('error', () => undefined);
    try {
      await r.connect();
      const text = String(await r.call('CLUSTER', 'NODES'));
      return text.trim().split('\n').map((line) => {
        const f = line.split(' ');
        const slots = f.slice(8).filter((s) => /^\d/.test(s)).map((s) => (s.includes('-') ? (s.split('-').map(Number) as [number, number]) : ([Number(s), Number(s)] as [number, number])));
        return { id: f[0]!, port: Number(f[1]!.split(':')[1]!.split('@')[0]), master: f[2]!.includes('master'), masterId: f[3]!, slots, failed: /fail/.test(f[2]!) };
      });
    } catch {
      // that node is down: ask the next
    } finally {
      r.disconnect();
    }
  }
  throw new Error('no node of the cluster answers');
}

async function ownerOf(slot: number) {
  const nodes = await topology();
  const master = nodes.find((n) => n.master && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b));
  if (!master) return null;
  const replica = nodes.find((n) => !n.master && !n.failed && n.masterId === master.id);
  return { master: master.port, replica: replica?.port };
}

async function clusterOk(): Promise<string | false> {
  const c = new Cluster(NODES.map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })), { lazyConnect: true, clusterRetryStrategy: () => null, redisOptions: { commandTimeout: 3000 } });
  c.on('error', () => undefined);
  try {
    await c.connect();
    const h = await clusterHealth(c);
    return h.ok ? h.detail : false;
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}

const DDL = ITEMS_DDL;
const LOG = APPLIED_LOG;

/** A steady stream of small transactions of inserts, updates (seq + 1) and deletes, until stopped. */
function workload(database: string, firstId: number) {
  const client = new pg.Client({ ...PG, database });
  const live: number[] = [];
  let next = firstId;
  let stop = false;
  let changes = 0;
  const done = (async () => {
    await client.connect();
    while (!stop) {
      await client.query('begin');
      for (let i = 0; i < 3; i++) {
        const r = Math.random();
        if (live.length < 20 || r < 0.35) {
          const id = next++;
          await client.query('insert into items values ($1, 1, $2)', [id, `v${id}`]);
          live.push(id);
        } else if (r < 0.85) {
          const id = live[Math.floor(Math.random() * live.length)]!;
          await client.query("update items set seq = seq + 1, v = md5(random()::text) where id = $1", [id]);
        } else {
          const id = live.splice(Math.floor(Math.random() * live.length), 1)[0]!;
          await client.query('delete from items where id = $1', [id]);
        }
        changes++;
      }
      await client.query('commit');
      await sleep(15);
    }
    await client.end();
  })();
  return {
    get changes() {
      return changes;
    },
    async stop() {
      stop = true;
      await done;
    },
  };
}

const converged = async (env: { sourceDb: string; targetDb: string }) => {
  const [s, d] = await Promise.all([checksum(env.sourceDb, 'items', 'id'), checksum(env.targetDb, 'items', 'id')]);
  return s.count > 0 && s.md5 === d.md5 && s.count === d.count ? s : false;
};

/** Each step on stderr as it starts (shown with the file's output): a test stuck past its timeout names where. */
const began = Date.now();
const step = (what: string) => process.stderr.write(`redis-cluster +${((Date.now() - began) / 1000).toFixed(1)} s: ${what}\n`);

test('a pipeline with its version state on a Redis Cluster converges, and survives a manual failover and a kill -9 of the master', { timeout: 420_000 }, async (t) => {
  const env = await testEnv([{ name: 'rc', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' } }], { extra: { redis: { cluster: { nodes: NODES } } } });
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL + `insert into items select g, 1, 'seed' || g from generate_series(1, 200) g;`);
  await sql(env.targetDb, DDL + LOG);
  const slot = keySlot(`${env.prefix}:{rc}:v:public.items:[1]`);
  assert.equal(slot, keySlot(`${env.prefix}:{rc}:t:public.items`), 'every key of the pipeline in one slot');

  step('start the runtime');
  const { rt } = await startRuntime(env);
  // The /ready probe of Redis, on the runtime's own client.
  const probe = dependencyProbes({ kafka: rt.kafka, registry: env.config.schemaRegistry, redis: watchRedis(rt.redis), sources: [], targets: [] }).get('redis')!;
  const ready = () => probe(2000).then(() => true, (err: Error) => (readyError = err.message, false));
  let readyError = '';
  assert.ok(await ready(), readyError);
  let wl = workload(env.sourceDb, 1000);
  await sleep(2000);
  await wl.stop();
  step('first convergence');
  await waitFor('convergence on the cluster', () => converged(env), 90_000, 300);

  // Mid-stream: a manual failover of the pipeline's master, then a kill -9 of the new master.
  wl = workload(env.sourceDb, 100_000);
  const first = await ownerOf(slot);
  assert.ok(first?.replica, `the slot's master has a replica: ${JSON.stringify(first)}`);
  await sleep(1000);
  step(`CLUSTER FAILOVER on ${first.replica}`);
  execFileSync('redis-cli', ['-p', String(first.replica), 'CLUSTER', 'FAILOVER'], { timeout: 10_000 });
  await waitFor('the replica to take the slot over', async () => (await ownerOf(slot))?.master === first.replica, 15_000, 100);
  await sleep(1500);
  const pid = Number(readFileSync(`/tmp/syncline-redis-cluster-${BASE}/${first.replica}/redis.pid`, 'utf8'));
  const killedAt = Date.now();
  const appliedAtKill = rt.pipelines[0]!.applier!.stats.applied;
  const changesAtKill = wl.changes;
  step(`kill -9 the new master ${first.replica}`);
  process.kill(pid, 'SIGKILL');
  await waitFor('the Redis probe to fail while the slot has no master', async () => !(await ready()), 10_000, 50);
  const red = readyError;
  await waitFor('the old master to be promoted again', async () => (await ownerOf(slot))?.master === first.master, 20_000, 100);
  step('cluster_state ok');
  await waitFor('cluster_state ok', clusterOk, 20_000, 200);
  const failoverMs = Date.now() - killedAt;
  await waitFor('the Redis probe to pass again', ready, 10_000, 100);
  assert.match(red, /redis: |Redis Cluster not ok/, red);
  const during = { changes: wl.changes - changesAtKill, applied: rt.pipelines[0]!.applier!.stats.applied - appliedAtKill };
  await sleep(1500);
  await wl.stop();

  step('convergence after the failovers');
  const final = await waitFor('convergence after the failovers', () => converged(env), 90_000, 300);
  const stats = rt.pipelines[0]!.applier!.stats;
  assert.equal(stats.deadLettered, 0, `nothing dead-lettered: ${JSON.stringify(stats)}`);
  const dup = await sql(env.targetDb, `select id, seq, op, count(*)::int n from applied where op <> 'D' group by 1, 2, 3 having count(*) > 1`);
  assert.deepEqual(dup.rows, [], 'no row version applied twice');
  const deletes = await sql(env.targetDb, `select id, count(*)::int n from applied where op = 'D' group by 1 having count(*) > 1`);
  assert.deepEqual(deletes.rows, [], 'no row deleted twice');
  const logged = Number((await sql(env.targetDb, 'select count(*) from applied')).rows[0].count);
  const state = new Cluster(NODES.map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })), { lazyConnect: true, redisOptions: { commandTimeout: 5000 } });
  state.on('error', () => undefined);
  step('count the version keys');
  await state.connect();
  let inState = 0;
  await scanKeys(state, `${env.prefix}:{rc}:v:*`, (ks) => void (inState += ks.length));
  state.disconnect();
  t.diagnostic(`rows ${final.count}, source changes ${wl.changes} + first phase; applied ${stats.applied}, skipped ${stats.skippedStale + stats.skippedUnchanged}, retries ${stats.retries}, target row writes ${logged}, version keys ${inState}; kill -9 → cluster ok in ${failoverMs} ms, meanwhile ${during.changes} source changes and ${during.applied} applied; probe while down: ${red}`);
  assert.ok(inState >= final.count, `version state holds every live key (${inState} ≥ ${final.count})`);

  // doctor on the cluster (one node of six dead): reachable, writable in the pipeline's slot, the cluster's state.
  step('doctor');
  let report = '';
  const code = await doctor({ config: env.configFile, out: (text) => (report += text) });
  assert.match(report, new RegExp(`ok +writable: scripts and transactions under ${env.prefix}:\\{<pipeline>\\}:… work; cluster_state:ok, slots ok 16384/16384, 3 masters`), report);
  assert.match(report, /redis cluster 127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+/, report);
  assert.equal(code, 0, report);
  step('stop');
});

test('misconfigured Redis: a cluster node as redis.url, a plain Redis as redis.cluster.nodes, nothing listening — each a clear start error naming the config path', async () => {
  const env = await testEnv([{ name: 'rcbad', tables: [{ source: 'public.items' }] }]);
  try {
    const start = async (redis: Record<string, unknown>) => {
      const text = JSON.stringify({ ...JSON.parse(readFileSync(env.configFile, 'utf8')), redis, startTimeoutMs: 3000 });
      const rt = new Runtime(parseConfig(text, env.configFile, {}), new Set(['sink']));
      try {
        await rt.start();
        return null;
      } catch (err) {
        return err as { code?: string; message: string };
      } finally {
        await rt.stop().catch(() => undefined);
      }
    };
    const atNode = await start({ url: `redis://${NODES[0]}` });
    assert.equal(atNode?.code, 'REDIS_CLUSTER_MODE', atNode?.message);
    assert.match(atNode!.message, new RegExp(`Redis at ${NODES[0]} \\(redis\\.url\\) is a node of a Redis Cluster: list the cluster's nodes in redis\\.cluster\\.nodes`));
    const plain = await start({ cluster: { nodes: ['127.0.0.1:6379'] } });
    assert.equal(plain?.code, 'REDIS_NOT_CLUSTER', plain?.message);
    assert.match(plain!.message, /Redis Cluster at 127\.0\.0\.1:6379 \(redis\.cluster\.nodes\).*not in cluster mode/);
    const none = await start({ cluster: { nodes: [`127.0.0.1:${BASE + 7}`] } });
    assert.match(none?.message ?? '', new RegExp(`Redis Cluster at 127\\.0\\.0\\.1:${BASE + 7} \\(redis\\.cluster\\.nodes\\)`));
    assert.throws(() => parseConfig(JSON.stringify({ ...JSON.parse(readFileSync(env.configFile, 'utf8')), redis: { cluster: { nodes: ['10.0.0.5'] } } }), env.configFile, {}), /redis\.cluster\.nodes\[0\]: host:port/);
  } finally {
    await env.cleanup();
  }
});
