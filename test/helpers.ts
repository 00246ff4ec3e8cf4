/**
 * Helpers for integration tests on the real stack. Every test gets its own databases, slot names,
 * topic prefix and consumer groups (all derived from one random id), so tests can run in any order.
 */
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import { parseConfig } from '../src/core/config/load.js';
import type { SynclineConfig } from '../src/core/config/schema.js';
import { Runtime, type Stage } from '../src/runtime.js';
import { Redis } from 'ioredis';
import { KafkaClient } from '../src/core/kafka.js';
import { rootLogger } from '../src/core/log.js';
import { buildSinkParts, type SinkParts } from '../src/sink/build.js';

export const PG = { host: '127.0.0.1', port: 5432, user: 'postgres' };
export const ROOT = new URL('..', import.meta.url).pathname;

export function uid(): string {
  return randomBytes(4).toString('hex');
}

export async function withClient<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ ...PG, database, options: '-c TimeZone=UTC' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function sql(database: string, text: string, params: unknown[] = []): Promise<pg.QueryResult> {
  return withClient(database, (c) => c.query(text, params));
}

export async function createDb(name: string): Promise<void> {
  await sql('postgres', `drop database if exists ${name} with (force)`);
  await sql('postgres', `create database ${name}`);
}

export async function dropDb(name: string): Promise<void> {
  // A pg Pool's end() resolves before its clients' connections are closed: WITH (FORCE) would terminate
  // one still closing, and its error, with no listener left, is an uncaught exception in the test. Wait
  // (up to 1.5 s) for the database's connections to go before forcing out what is left.
  for (let i = 0; i < 15; i++) {
    const r = await sql('postgres', `select count(*)::int as n from pg_stat_activity where datname = $1`, [name]).catch(() => ({ rows: [{ n: 0 }] }));
    if (r.rows[0].n === 0) break;
    await sleep(100);
  }
  await sql('postgres', `drop database if exists ${name} with (force)`).catch(() => undefined);
}

/** Drop replication slots whose names start with the prefix (waiting for active ones to be released). */
export async function dropSlots(prefix: string): Promise<void> {
  for (let i = 0; i < 40; i++) {
    const r = await sql('postgres', `select slot_name, active_pid from pg_replication_slots where slot_name like $1`, [prefix + '%']);
    if (r.rowCount === 0) return;
    for (const row of r.rows) {
      if (row.active_pid) await sql('postgres', `select pg_terminate_backend($1)`, [row.active_pid]).catch(() => undefined);
      await sql('postgres', `select pg_drop_replication_slot($1)`, [row.slot_name]).catch(() => undefined);
    }
    await sleep(250);
  }
}

export async function deleteTopics(prefix: string): Promise<void> {
  const kafka = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const names = (await admin.listTopics()).filter((t) => t.startsWith(prefix + '.'));
    if (names.length) await admin.deleteTopics({ topics: names, timeout: 30000 }).catch(() => undefined);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Replay from the start: consumer groups deleted (their members stopped). syncline's consumers
 * subscribe from the earliest offset where their group has none, so each reads its topics again.
 * kafkajs's admin.resetOffsets joins the group and waits out a fetch once per topic (~6 s each).
 */
export async function deleteGroups(groupIds: string[]): Promise<void> {
  const admin = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.deleteGroups(groupIds);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Long variants of crash tests (more kill rounds) run in `npm run chaos` (which sets SYNCLINE_SOAK=1);
 * `npm test` runs the short one. `soak(short, long)` picks.
 */
export const soak = <T>(short: T, long: T): T => (process.env.SYNCLINE_SOAK === '1' ? long : short);

/** A TCP port on 127.0.0.1 that was free a moment ago (for a server a test starts). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A target table `items (id, seq, v)` with a trigger log of every row version it commits (rolled
 * back with a failed apply): a version applied twice shows as a repeated (id, seq) in `applied`.
 */
export const ITEMS_DDL = `create table items (id int primary key, seq int not null, v text not null);`;
export const APPLIED_LOG = `
  create table applied (n bigserial primary key, id int not null, seq int, op text not null);
  create function log_applied() returns trigger language plpgsql as $$ begin
    if tg_op = 'DELETE' then insert into applied (id, seq, op) values (old.id, old.seq, 'D'); return old; end if;
    insert into applied (id, seq, op) values (new.id, new.seq, left(tg_op, 1)); return new; end $$;
  create trigger log_applied after insert or update or delete on items for each row execute function log_applied();`;

export async function waitFor<T>(what: string, fn: () => Promise<T | false | undefined | null>, timeoutMs = 90000, everyMs = 250): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

/** Row count and an order-independent checksum of a table's full text representation. */
export async function checksum(database: string, table: string, orderBy: string): Promise<{ count: number; md5: string }> {
  const r = await sql(database, `select count(*)::int as count, coalesce(md5(string_agg(md5(t::text), '' order by ${orderBy})), '') as md5 from ${table} t`);
  return { count: r.rows[0].count, md5: r.rows[0].md5 };
}

export interface TestPipeline {
  name: string;
  tables: { source: string; target?: string; key?: string[]; columns?: Record<string, string>; validate?: Record<string, unknown>; transform?: Record<string, unknown>[]; route?: Record<string, unknown>; conflict?: Record<string, unknown>; encrypt?: string[]; mask?: string[] }[];
  /** Two-way sync: this pipeline reads the env's target database and writes its source database. */
  reverse?: boolean;
  /** Multi-way sync: the databases this pipeline reads and writes, as indexes into TestEnv.dbs (0 source, 1 target, 2… the env's `databases` beyond two); the source's tables get change topics `<prefix>.d<i>` (none for i = 0). */
  between?: [number, number];
  /** Fan-out: the pipeline whose change topics this one reads (no source of its own, ADR 0039). */
  follows?: string;
  peer?: string;
  /** Replication slot and publication names as written in the config, `{prefix}` replaced (default: `<prefix>_<name>` with - as _). */
  slot?: string;
  publication?: string;
  /** Options of the target connector besides its connection (e.g. autoCreate). */
  target?: Record<string, unknown>;
  conflict?: Record<string, unknown>;
  retry?: Record<string, unknown>;
  validation?: Record<string, unknown>;
  batch?: { size: number };
  /** Sync mode settings (mode, schedule, timezone, windows, maxRunDurationMs). */
  sync?: Record<string, unknown>;
  /** Change history of the pipeline (e.g. {} for the defaults). */
  history?: Record<string, unknown>;
}

export interface TestEnv {
  id: string;
  prefix: string;
  sourceDb: string;
  targetDb: string;
  /** Every database of the env: [sourceDb, targetDb, …] (opts.databases of them). */
  dbs: string[];
  configFile: string;
  config: SynclineConfig;
  slot(name: string): string;
  /** Stops every runtime started for this env, then drops slots, databases and topics. */
  cleanup(): Promise<void>;
  runtimes: Runtime[];
}

/** Databases, config file and names for one test; the caller creates the tables. */
export async function testEnv(pipelines: TestPipeline[], opts: { snapshot?: 'initial' | 'never'; retry?: Record<string, unknown>; /** Extra top-level config sections (e.g. observability, reports); a function gets the env's database names. */ extra?: Record<string, unknown> | ((dbs: { sourceDb: string; targetDb: string }) => Record<string, unknown>); /** Extra kafka options (e.g. sessionTimeoutMs for tests that kill a consumer). */ kafka?: Record<string, unknown>; /** Databases to create (default 2: source and target; more for multi-way sync, see TestPipeline.between). */ databases?: number } = {}): Promise<TestEnv> {
  const id = uid();
  const prefix = `t${id}`;
  const sourceDb = `syncline_t_${id}_src`;
  const targetDb = `syncline_t_${id}_dst`;
  const dbs = [sourceDb, targetDb, ...Array.from({ length: Math.max(0, (opts.databases ?? 2) - 2) }, (_, i) => `syncline_t_${id}_d${i + 2}`)];
  for (const db of dbs) await createDb(db);
  const dbOf = (p: TestPipeline, side: 0 | 1) => (p.between ? dbs[p.between[side]]! : (side === 0) === !p.reverse ? sourceDb : targetDb);
  const slot = (name: string) => `${prefix}_${name.replace(/-/g, '_')}`;
  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 3, ...(opts.kafka ?? {}) },
    defaults: { retry: opts.retry ?? { retries: 2, initialDelayMs: 50, maxDelayMs: 200 }, batch: { size: 500 } },
    pipelines: Object.fromEntries(
      pipelines.map((p) => [
        p.name,
        {
          ...(p.follows ? { follows: p.follows } : { source: { type: 'postgres', connection: { ...PG, database: dbOf(p, 0) }, slot: p.slot?.replace('{prefix}', prefix) ?? slot(p.name), publication: p.publication?.replace('{prefix}', prefix) ?? slot(p.name), snapshot: opts.snapshot ?? 'initial', heartbeatMs: 1000, lingerMs: 5 } }),
          target: { type: 'postgres', connection: { ...PG, database: dbOf(p, 1) }, ...(p.target ?? {}) },
          ...(p.peer ? { peer: p.peer } : {}),
          // The other database's tables of the same names need change topics of their own.
          ...(p.reverse ? { changeTopicPrefix: `${prefix}.b` } : {}),
          ...(p.between && p.between[0] > 0 && !p.follows ? { changeTopicPrefix: `${prefix}.d${p.between[0]}` } : {}),
          tables: p.tables,
          ...(p.conflict ? { conflict: p.conflict } : {}),
          ...(p.retry ? { retry: p.retry } : {}),
          ...(p.validation ? { validation: p.validation } : {}),
          ...(p.batch ? { batch: p.batch } : {}),
          ...(p.sync ?? {}),
          ...(p.history ? { history: p.history } : {}),
        },
      ]),
    ),
    ...(typeof opts.extra === 'function' ? opts.extra({ sourceDb, targetDb }) : (opts.extra ?? {})),
  };
  const dir = mkdtempSync(join(tmpdir(), 'syncline-test-'));
  const configFile = join(dir, 'config.yaml');
  const text = JSON.stringify(doc, null, 2); // JSON is YAML
  writeFileSync(configFile, text);
  const config = parseConfig(text, configFile, {});
  const runtimes: Runtime[] = [];
  return {
    id, prefix, sourceDb, targetDb, dbs, configFile, config, slot, runtimes,
    async cleanup() {
      // A stop that hangs is a defect of its own: said, and the rest cleaned up, instead of the file's timeout hiding the test's outcome.
      const stuck = (await Promise.all(runtimes.map((r) => Promise.race([r.stop().then(() => null, () => null), sleep(STOP_BOUND_MS).then(() => r)])))).filter((r) => r !== null);
      if (stuck.length > 0) process.stderr.write(`runtime.stop() of ${stuck.map((r) => r.pipelines.map((p) => p.name).join(',')).join(' / ')} did not finish within ${STOP_BOUND_MS / 1000} s\n`);
      await dropSlots(prefix);
      // Replication origins of two-way pipelines persist in the cluster (and count against max_replication_slots).
      await sql('postgres', `select pg_replication_origin_drop(roname) from pg_replication_origin where roname like $1`, [`syncline:${prefix}:%`]).catch(() => undefined);
      for (const db of dbs) await dropDb(db);
      await deleteTopics(prefix).catch(() => undefined);
      if (stuck.length > 0) throw new Error(`runtime.stop() did not finish within ${STOP_BOUND_MS / 1000} s: a stage is stuck (see the stage logs above)`);
    },
  };
}

/** How long env.cleanup() waits for each runtime's stop. */
const STOP_BOUND_MS = 60_000;

export async function startRuntime(env: TestEnv, stages: Stage[] = ['capture', 'process', 'sink'], only?: string[]): Promise<{ rt: Runtime; done: Promise<void> }> {
  const rt = new Runtime(env.config, new Set(stages), only);
  env.runtimes.push(rt);
  const { done } = await rt.start();
  done.catch(() => undefined);
  return { rt, done };
}

/**
 * Two-way and multi-way tests: a check that the databases agree (`same`) and nothing was captured,
 * received or re-published by any pipeline of `rt` for `quietMs`: identical is not converged (the
 * sides pass through moments where both hold a row one of them is about to delete).
 */
export function settledWhen(rt: Runtime, same: () => Promise<boolean>, quietMs = 2000): () => Promise<boolean> {
  const activity = () => rt.pipelines.reduce((n, p) => n + (p.capture?.stats.changes ?? 0) + (p.applier?.stats.received ?? 0) + (p.applier?.stats.republished ?? 0), 0);
  let moved = { n: -1, at: 0 };
  return async () => {
    if (!(await same())) return false;
    const n = activity();
    if (n !== moved.n) moved = { n, at: Date.now() };
    return Date.now() - moved.at >= quietMs;
  };
}

/**
 * The node arguments that start the CLI with `args`. scripts/test.sh compiles the sources into dist/
 * (its type check emits) and sets SYNCLINE_TEST_DIST=1: the CLI then starts from there, as the image
 * runs it, with ~1.5 s less CPU per start than through tsx's loader hooks (the suite starts it a few
 * hundred times on two cores). A test file run by itself (node --test) starts it from the sources.
 */
export function cliArgs(args: string[]): string[] {
  return process.env.SYNCLINE_TEST_DIST === '1' ? [join(ROOT, 'dist/src/cli/main.js'), ...args] : ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args];
}

/** Run the real CLI as a child process (for kill -9 tests). */
export function spawnCli(args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, cliArgs(args), {
    cwd: ROOT,
    env: { ...process.env, SYNCLINE_LOG_LEVEL: process.env.SYNCLINE_CHILD_LOG_LEVEL ?? 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
    if (process.env.SYNCLINE_CHILD_LOG) process.stderr.write(`[${args[0]}] ${d.toString()}`);
  });
  child.stdout?.on('data', (d: Buffer) => {
    if (process.env.SYNCLINE_CHILD_LOG) process.stderr.write(`[${args[0]}] ${d.toString()}`);
  });
  (child as ChildProcess & { stderrTail: () => string }).stderrTail = () => err;
  return child;
}

/** A CLI process (instance `n`) whose info-level log the test reads. */
export interface LoggedProcess {
  n: number;
  p: ChildProcess;
  /** The last 400 KB of its log (stdout). */
  out(): string;
  exit: Promise<number | null>;
  /** The partitions its last `consumer.rebalanced` (of `stage`, when given) assigned it, of every topic. */
  assigned(stage?: string): number[];
}

/** spawnCli at log level info, as instance `n` (SYNCLINE_INSTANCE_ID), its log kept for the test. */
export function spawnLogged(args: string[], n: number, env: Record<string, string> = {}): LoggedProcess {
  const p = spawnCli(args, { SYNCLINE_LOG_LEVEL: 'info', SYNCLINE_INSTANCE_ID: String(n), ...env });
  let out = '';
  p.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-400_000)));
  return {
    n, p,
    out: () => out,
    exit: new Promise((r) => p.on('exit', (c) => r(c))),
    assigned(stage) {
      const last = out.split('\n').filter((l) => l.includes('consumer.rebalanced') && (stage === undefined || l.includes(`"stage":"${stage}"`))).at(-1);
      return last ? Object.values((JSON.parse(last) as { assigned: Record<string, number[]> }).assigned).flat() : [];
    },
  };
}

/** Run the real CLI to its end: exit code, stdout and stderr. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const child = spawnCli(args, env);
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? -1)));
  return { code, out, err };
}

/**
 * Read every message of a topic (from the beginning up to the current end). A topic written in
 * transactions (the apply topic) has commit markers among its offsets, so the offsets do not say
 * how many messages there are: `transactional` reads until nothing more came for 1.5 s.
 */
export async function readTopic(topic: string, opts: { transactional?: boolean } = {}): Promise<{ key: Buffer | null; value: Buffer | null; headers: Record<string, string>; partition: number; offset: string }[]> {
  const kafka = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const total = offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0);
  const out: Awaited<ReturnType<typeof readTopic>> = [];
  if (total === 0) return out;
  const consumer = kafka.consumer({ groupId: `reader-${uid()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise<void>((resolve) => {
    let last = Date.now();
    if (opts.transactional) {
      consumer.on(consumer.events.GROUP_JOIN, () => {
        last = Date.now();
        const idle = setInterval(() => {
          if (Date.now() - last < 1500) return;
          clearInterval(idle);
          resolve();
        }, 100);
      });
    }
    void consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(Array.isArray(v) ? v[0] : v);
        out.push({ key: message.key, value: message.value, headers, partition, offset: message.offset });
        last = Date.now();
        if (out.length >= total && !opts.transactional) resolve();
      },
    });
  });
  await consumer.disconnect();
  return out;
}

/**
 * The sink side of an env's pipelines built in the test process, as the sink stage builds it
 * (buildSinkParts over one Redis and one Kafka client). `close()` closes every part built, the
 * clients and the env.
 */
export async function sinkHarness(env: TestEnv): Promise<{ redis: Redis; build(pipeline: string): Promise<SinkParts>; close(): Promise<void> }> {
  const redis = new Redis(env.config.redis.url, { lazyConnect: true });
  const kafka = new KafkaClient(env.config.kafka, rootLogger.child({ stage: 'kafka' }));
  await redis.connect();
  const built: SinkParts[] = [];
  return {
    redis,
    async build(pipeline) {
      const parts = await buildSinkParts({ config: env.config, kafka, redis }, pipeline, env.config.pipelines[pipeline]!, rootLogger.child({ pipeline, stage: 'sink' }));
      built.push(parts);
      return parts;
    },
    async close() {
      await Promise.allSettled(built.map((b) => b.sink.close()));
      redis.disconnect();
      await kafka.close();
      await env.cleanup();
    },
  };
}

/**
 * Keep one idle session open on each of the env's databases until the returned function is called.
 * A concurrent `scripts/test.sh` (another worktree) drops every test database nobody is connected to
 * when it starts; between a test's own queries its databases can be without a session.
 */
export async function holdDatabases(env: TestEnv): Promise<() => Promise<void>> {
  const clients = [env.sourceDb, env.targetDb].map((database) => new pg.Client({ ...PG, database }));
  await Promise.all(clients.map((c) => c.connect()));
  for (const c of clients) c.on('error', () => undefined); // dropped with force by cleanup()
  return async () => {
    await Promise.allSettled(clients.map((c) => c.end()));
  };
}
