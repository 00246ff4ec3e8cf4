/**
 * Fault injection on the multi-node setup (`npm run chaos`, after the single-node run; a short run in
 * test/chaos-multi-node.int.test.ts): syncline scaled out on Kafka's and Redis's own machinery
 * (docs/deploy.md) while its nodes fail.
 *
 * Set-up: a private Kafka of three KRaft brokers (scripts/stack.sh --brokers 3; topics with
 * replication factor 3, min.insync.replicas 2, six partitions), the version state behind Redis
 * Sentinel (scripts/redis-sentinel.sh: master, replica, three sentinels), the shared PostgreSQL and
 * registry. One pipeline run by identical `syncline start` instances (one leads the capture, the
 * others stand by; all share the processor group's partitions), two at the start, one to three
 * during the run. Workload: the keyed load of ../keyed-writes.ts (updates, deletes, re-inserts; every
 * key written by one client, its `seq` rising with every write; a trigger logs each target write).
 *
 * Faults, one at a time, each at least once, in random order:
 *   broker-kill       kill -9 of the broker leading the most change-topic partitions, started again
 *                     after the outage; it must catch up (every partition back to three in-sync replicas)
 *   worker-add        another instance joins (a graceful stop first when three run)
 *   worker-kill       kill -9 of an instance that does not lead the capture
 *   worker-stop       SIGTERM of an instance: it must exit 0
 *   capture-failover  kill -9 of the instance leading the capture: a standby takes the lock over (timed)
 *   redis-failover    kill -9 of the Redis master: the sentinels promote the replica (timed); the old
 *                     master comes back as a replica
 *
 * Verdict: the target compared row by row with the source (lost: missing or different; extra: not at
 * the source), applied twice: a key's logged target writes out of order or repeated, nothing
 * dead-lettered, no instance exiting unless killed or stopped, every running instance healthy.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import { freePort, PG, ROOT, spawnCli, sql, testEnv, type TestEnv } from '../helpers.js';
import { KeyedWriter, writeLogProblems } from '../keyed-writes.js';
import { privateStack, type PrivateStack } from '../private-stack.js';
import { topics } from '../../src/core/kafka.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export const MULTI_FAULTS = ['broker-kill', 'worker-add', 'worker-kill', 'worker-stop', 'capture-failover', 'redis-failover'] as const;
export type MultiFault = (typeof MULTI_FAULTS)[number];

export interface MultiNodeOptions {
  /** How long the load runs while faults are injected (each fault at least once, however long that takes). */
  durationMs: number;
  faults: readonly MultiFault[];
  /** Pause between two faults, random in [min, max]. */
  gapMs: [number, number];
  /** How long a killed broker stays down. */
  outageMs: number;
  keys: number;
  clients: number;
  reportDir?: string;
  log?: (line: string) => void;
}

export interface MultiNodeReport {
  ok: boolean;
  startedAt: string;
  durationS: number;
  /** Source writes committed by the load. */
  writes: number;
  faults: Record<string, number>;
  instancesStarted: number;
  /** Instances that exited without being killed or stopped (each restarted, as a supervisor would). */
  unexpectedExits: string[];
  /** From the kill -9 of the capture leader to a standby's 'took the capture lock over'. */
  captureTakeoverMs: number[];
  /** From the kill -9 of the Redis master to the sentinels naming the replica. */
  redisPromotionMs: number[];
  /** From a killed broker's start to every partition of the change topic with three in-sync replicas again. */
  brokerCatchUpMs: number[];
  rowsCompared: number;
  lost: number;
  lostKeys: string[];
  extra: number;
  extraKeys: string[];
  appliedTwice: number;
  appliedTwiceKeys: string[];
  targetWrites: number;
  deadLettered: number;
  convergeSeconds: number;
  problems: string[];
}

interface Instance { n: number; p: ChildProcess; port: number; out: () => string; exit: Promise<number | null>; expectedExit: boolean }

const bindable = (port: number) => new Promise<boolean>((resolve) => {
  const s = createServer().once('error', () => resolve(false)).listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
});

export async function runMultiNodeChaos(o: MultiNodeOptions): Promise<MultiNodeReport> {
  const log = o.log ?? ((l: string) => process.stderr.write(`[chaos multi-node] ${l}\n`));
  const startedAt = new Date().toISOString();
  const t0 = Date.now();
  const problems: string[] = [];
  const faultsDone: Record<string, number> = {};
  const unexpectedExits: string[] = [];
  const captureTakeoverMs: number[] = [];
  const redisPromotionMs: number[] = [];
  const brokerCatchUpMs: number[] = [];
  const instances: Instance[] = [];
  let stack: PrivateStack | undefined;
  let env: TestEnv | undefined;
  let base = 0;
  let src: pg.Pool | undefined;
  let admin: ReturnType<Kafka['admin']> | undefined;
  const sentinel = async (...args: string[]) => (await run('bash', [join(ROOT, 'scripts/redis-sentinel.sh'), ...args, '--port-base', String(base)])).stdout.trim();
  let stopping = false;
  try {
    // ---- services
    stack = await privateStack({ kafkaNodes: 3 });
    await stack.up('kafka');
    const brokers = stack.brokers.split(',');
    for (let i = 0; ; i++) {
      base = 24001 + 5 * Math.floor(Math.random() * 1500);
      if ((await Promise.all([0, 1, 2, 3, 4].map((k) => bindable(base + k)))).every(Boolean)) break;
      if (i > 20) throw new Error('no free port range for Redis Sentinel');
    }
    await sentinel('up', '--down-after', '1500');
    log(`three brokers ${stack.brokers}; Redis Sentinel on ${base}..${base + 4}`);
    env = await testEnv([{ name: 'mn', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' } }], {
      kafka: { brokers, replicationFactor: 3, minInsyncReplicas: 2, partitions: 6, sessionTimeoutMs: 6000 },
      extra: { redis: { url: 'redis://127.0.0.1', sentinel: { nodes: [2, 3, 4].map((k) => `127.0.0.1:${base + k}`), name: 'mymaster' } } },
      retry: { retries: 30, initialDelayMs: 100, maxDelayMs: 2000 },
    });
    const e = env;
    src = new pg.Pool({ ...PG, database: e.sourceDb, max: o.clients + 1 });
    src.on('error', () => undefined);
    const load = new KeyedWriter(src, o.keys);
    await load.seed(e.targetDb);
    admin = new Kafka({ brokers, logLevel: logLevel.NOTHING, clientId: 'chaos-multi-node' }).admin();
    await admin.connect();
    const adm = admin;
    const cdc = topics.cdc(e.prefix, 'public', 'items');

    // ---- instances (a supervisor restarts one that exits unasked, and reports it)
    let next = 1;
    const start = async (): Promise<Instance> => {
      const n = next++;
      const port = await freePort();
      const p = spawnCli(['start', '-c', e.configFile, '--metrics-port', String(port)], { SYNCLINE_LOG_LEVEL: 'info', SYNCLINE_INSTANCE_ID: String(n) });
      let out = '';
      p.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-300_000)));
      const i: Instance = { n, p, port, out: () => out, exit: new Promise((r) => p.on('exit', (c) => r(c))), expectedExit: false };
      instances.push(i);
      void i.exit.then((code) => {
        if (i.expectedExit || stopping) return;
        unexpectedExits.push(`instance ${n} exited ${code}: ${out.split('\n').filter((l) => /"level":(50|60)/.test(l)).slice(-3).join(' | ').slice(0, 800)}`);
        log(`instance ${n} exited unasked (${code}); starting another`);
        void start().catch(() => undefined);
      });
      const end = Date.now() + 90_000;
      while (!out.includes('consumer.rebalanced')) {
        if (p.exitCode !== null) throw new Error(`instance ${n} exited ${p.exitCode} while starting: ${out.slice(-1500)}`);
        if (Date.now() > end) throw new Error(`instance ${n} did not join the processor group within 90 s: ${out.slice(-1500)}`);
        await sleep(200);
      }
      return i;
    };
    const alive = () => instances.filter((i) => i.p.exitCode === null && !i.expectedExit);
    /** Its last word on the capture lock is that it holds it ('capture.leader: …'; not '….lost', not 'capture.standby'). */
    const leads = (i: Instance) => {
      const lines = i.out().split('\n').filter((l) => /"msg":"capture\.(leader|standby)/.test(l));
      return lines.length > 0 && /"msg":"capture\.leader: /.test(lines.at(-1)!);
    };
    const leader = () => alive().find(leads);
    const end = async (i: Instance, sig: 'SIGKILL' | 'SIGTERM') => {
      i.expectedExit = true;
      i.p.kill(sig);
      const code = await Promise.race([i.exit, sleep(60_000).then(() => 'timeout' as const)]);
      if (sig === 'SIGTERM' && code !== 0) problems.push(`instance ${i.n} did not stop cleanly on SIGTERM (${code}): ${i.out().slice(-800)}`);
      if (code === 'timeout') i.p.kill('SIGKILL');
    };
    const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
    const until = async (what: string, ok: () => Promise<boolean>, ms: number): Promise<boolean> => {
      for (const stop = Date.now() + ms; !(await ok().catch(() => false)); await sleep(200)) {
        if (Date.now() > stop) {
          problems.push(`${what}: not within ${ms / 1000} s`);
          return false;
        }
      }
      return true;
    };
    const partitions = async () => (await adm.fetchTopicMetadata({ topics: [cdc] })).topics[0]!.partitions;
    const same = async () => {
      const [a, b] = await Promise.all([sql(e.sourceDb, `select md5(string_agg(id || ':' || seq || ':' || v, ',' order by id)) m from items`), sql(e.targetDb, `select md5(string_agg(id || ':' || seq || ':' || v, ',' order by id)) m from items`)]);
      return a.rows[0].m === b.rows[0].m;
    };

    await start();
    await start();
    if (!(await until('the snapshot on the target', same, 180_000))) throw new Error(problems.at(-1));
    // The change topic as configured: three replicas per partition, min.insync.replicas 2.
    const described = await adm.describeConfigs({ resources: [{ type: 2, name: cdc, configNames: ['min.insync.replicas'] }], includeSynonyms: false });
    const minIsr = described.resources[0]?.configEntries.find((c) => c.configName === 'min.insync.replicas')?.configValue;
    if (minIsr !== '2') problems.push(`${cdc} has min.insync.replicas ${minIsr}, not 2`);
    for (const p of await partitions()) if (p.replicas.length !== 3) problems.push(`${cdc} partition ${p.partitionId} has ${p.replicas.length} replicas, not 3`);
    load.start(o.clients);
    log(`two instances; load of ${o.clients} clients over ${o.keys} keys`);

    const inject: Record<MultiFault, () => Promise<void>> = {
      'broker-kill': async () => {
        const leaders = new Map<number, number>();
        for (const p of await partitions()) leaders.set(p.leader, (leaders.get(p.leader) ?? 0) + 1);
        const [victim, led] = [...leaders].sort((a, b) => b[1] - a[1])[0]!;
        await stack!.killKafkaNode(victim);
        log(`broker ${victim} killed (leader of ${led} of 6 partitions)`);
        await sleep(o.outageMs);
        const t = Date.now();
        await stack!.up('kafka');
        if (await until(`broker ${victim} catching up (three in-sync replicas everywhere)`, async () => (await partitions()).every((p) => p.isr.length === 3), 180_000)) brokerCatchUpMs.push(Date.now() - t);
      },
      'worker-add': async () => {
        if (alive().length >= 3) await end(pick(alive().filter((i) => !leads(i))), 'SIGTERM');
        const i = await start();
        log(`instance ${i.n} added (${alive().length} running)`);
      },
      'worker-kill': async () => {
        if (alive().length < 2) await start();
        const i = pick(alive().filter((x) => !leads(x)));
        await end(i, 'SIGKILL');
        log(`instance ${i.n} killed (-9); ${alive().length} running`);
      },
      'worker-stop': async () => {
        if (alive().length < 2) await start();
        const i = pick(alive());
        await end(i, 'SIGTERM');
        log(`instance ${i.n} stopped (SIGTERM); ${alive().length} running`);
      },
      'capture-failover': async () => {
        if (alive().length < 2) await start();
        await until('an instance leading the capture', async () => leader() !== undefined, 60_000);
        const l = leader();
        if (!l) return;
        const before = new Map(alive().filter((i) => i !== l).map((i) => [i, i.out().split('took the capture lock over').length]));
        const t = Date.now();
        await end(l, 'SIGKILL');
        if (await until('a standby taking the capture over', async () => [...before].some(([i, k]) => i.out().split('took the capture lock over').length > k), 60_000)) {
          captureTakeoverMs.push(Date.now() - t);
          log(`capture leader ${l.n} killed (-9); a standby took over in ${Date.now() - t} ms`);
        }
      },
      'redis-failover': async () => {
        const master = await sentinel('master');
        const port = Number(master.split(':')[1]);
        const pid = (await run('cat', [`/tmp/syncline-redis-sentinel-${base}/${port}/redis.pid`])).stdout.trim();
        const t = Date.now();
        await run('kill', ['-9', pid]);
        if (await until('the sentinels promoting the replica', async () => (await sentinel('master')) !== master, 60_000)) {
          redisPromotionMs.push(Date.now() - t);
          log(`Redis master ${master} killed (-9); the sentinels promoted ${await sentinel('master')} in ${Date.now() - t} ms`);
        }
        await sleep(1000);
        await sentinel('revive');
      },
    };

    // ---- faults: shuffled rounds until the duration passed and every kind ran once
    const order: MultiFault[] = [];
    while (Date.now() - t0 < o.durationMs || o.faults.some((f) => !faultsDone[f])) {
      if (order.length === 0) order.push(...[...o.faults].sort(() => Math.random() - 0.5));
      const f = order.shift()!;
      await sleep(o.gapMs[0] + Math.random() * (o.gapMs[1] - o.gapMs[0]));
      log(`fault ${f} (${load.writes} writes so far)`);
      try {
        await inject[f]();
        faultsDone[f] = (faultsDone[f] ?? 0) + 1;
      } catch (err) {
        problems.push(`fault ${f}: ${(err as Error).message.slice(0, 500)}`);
      }
    }
    await sleep(2000);
    await load.stop();
    if (alive().length === 0) await start();
    const quiet = Date.now();
    await until('the target to equal the source', same, 180_000);
    const convergeSeconds = (Date.now() - quiet) / 1000;

    // ---- verdict
    const rows = async (db: string) => new Map((await sql(db, 'select id, seq, v from items')).rows.map((r) => [r.id as number, `${r.seq}:${r.v}`]));
    const [s, d] = await Promise.all([rows(e.sourceDb), rows(e.targetDb)]);
    const lostKeys = [...s].filter(([id, v]) => d.get(id) !== v).map(([id]) => String(id));
    const extraKeys = [...d.keys()].filter((id) => !s.has(id)).map(String);
    const { problems: twice, writes: targetWrites } = await writeLogProblems(e.targetDb);
    const dlq = topics.dlq(e.prefix, 'mn');
    const deadLettered = (await adm.listTopics()).includes(dlq) ? (await adm.fetchTopicOffsets(dlq)).reduce((n, p) => n + Number(p.high), 0) : 0;
    for (const i of alive()) {
      const h = (await (await fetch(`http://127.0.0.1:${i.port}/health`)).json().catch(() => ({}))) as { status?: string };
      if (h.status !== 'ok') problems.push(`instance ${i.n} reports health ${JSON.stringify(h).slice(0, 300)}`);
    }
    const report: MultiNodeReport = {
      ok: false, startedAt, durationS: Math.round((Date.now() - t0) / 1000), writes: load.writes, faults: faultsDone,
      instancesStarted: instances.length, unexpectedExits, captureTakeoverMs, redisPromotionMs, brokerCatchUpMs,
      rowsCompared: s.size, lost: lostKeys.length, lostKeys: lostKeys.slice(0, 20), extra: extraKeys.length, extraKeys: extraKeys.slice(0, 20),
      appliedTwice: twice.length, appliedTwiceKeys: twice.slice(0, 20), targetWrites, deadLettered, convergeSeconds, problems,
    };
    report.ok = report.lost === 0 && report.extra === 0 && report.appliedTwice === 0 && deadLettered === 0 && unexpectedExits.length === 0 && problems.length === 0;
    if (o.reportDir) {
      mkdirSync(o.reportDir, { recursive: true });
      writeFileSync(join(o.reportDir, `chaos-multi-node-${startedAt.replace(/[:.]/g, '-')}.json`), JSON.stringify(report, null, 2));
    }
    return report;
  } finally {
    stopping = true;
    for (const i of instances) if (i.p.exitCode === null) i.p.kill('SIGKILL');
    await Promise.all(instances.map((i) => i.exit));
    await admin?.disconnect().catch(() => undefined);
    await src?.end().catch(() => undefined);
    await env?.cleanup().catch(() => undefined);
    if (base) await sentinel('down').catch(() => undefined);
    await stack?.down();
  }
}

export function multiNodeReportText(r: MultiNodeReport): string {
  const ms = (xs: number[]) => (xs.length ? xs.map((x) => (x / 1000).toFixed(1)).join(', ') + ' s' : '–');
  return [
    `multi-node chaos: ${r.ok ? 'OK' : 'FAILED'} — ${r.durationS} s, ${r.writes} source writes, ${r.targetWrites} target writes checked`,
    `faults: ${Object.entries(r.faults).map(([f, n]) => `${f} ×${n}`).join(', ')}; ${r.instancesStarted} instances started`,
    `capture takeover ${ms(r.captureTakeoverMs)}; Redis promotion ${ms(r.redisPromotionMs)}; broker catch-up ${ms(r.brokerCatchUpMs)}; converged ${r.convergeSeconds.toFixed(1)} s after the load stopped`,
    `rows compared ${r.rowsCompared}: lost ${r.lost}, extra ${r.extra}, applied twice ${r.appliedTwice}, dead-lettered ${r.deadLettered}, unexpected exits ${r.unexpectedExits.length}`,
    ...[...r.lostKeys.map((k) => `lost: ${k}`), ...r.extraKeys.map((k) => `extra: ${k}`), ...r.appliedTwiceKeys.map((k) => `applied twice: ${k}`), ...r.unexpectedExits, ...r.problems.map((p) => `problem: ${p}`)],
  ].join('\n');
}
