/**
 * Shared pieces of the pipeline benchmarks (bench/capture-limit.ts … bench/memory.ts): unique names,
 * the source workload (N inserts then N/2 updates, 5-column or wide rows), replication slots created
 * before the workload so every tool decodes exactly the same WAL from a fresh slot, a Kafka offset
 * poller, syncline run as a child process (bench/child.ts) with its peak RSS, and median/spread.
 *
 * Every benchmark owns its databases, slots (`<prefix>_…`), topic prefix and Redis key prefix, all
 * derived from one random id, and drops its slots when done (an inactive slot retains WAL).
 */
import { randomBytes } from 'node:crypto';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { Redis } from 'ioredis';
import { createDb, dropDb, dropSlots } from '../test/helpers.js';
import { SYNCLINE_NODE_FLAGS } from '../src/cli/node-flags.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const PG = { host: '127.0.0.1', port: 5432, user: 'postgres' };
export const BROKERS = ['127.0.0.1:9092'];
export const REGISTRY = 'http://127.0.0.1:8081/apis/ccompat/v7';

export const uid = (): string => randomBytes(4).toString('hex');
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ figures

export interface Figure {
  runs: number[];
  median: number;
  min: number;
  max: number;
  /** ±half of (max − min) / median, in percent. */
  spreadPct: number;
}

export function figure(runs: number[]): Figure {
  const ok = runs.filter((x) => Number.isFinite(x));
  if (ok.length === 0) return { runs, median: NaN, min: NaN, max: NaN, spreadPct: NaN };
  const s = [...ok].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  const min = s[0]!;
  const max = s[s.length - 1]!;
  return { runs, median, min, max, spreadPct: median > 0 ? ((max - min) / median / 2) * 100 : 0 };
}

export const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a';
export const fmtFigure = (f: Figure, digits = 0): string => `${fmt(f.median, digits)} (${fmt(f.min, digits)} – ${fmt(f.max, digits)}, ±${fmt(f.spreadPct, 1)}%)`;

/** Ratio of two medians, and its range from the per-repeat ratios (repeat i of a against repeat i of b). */
export function ratio(a: Figure, b: Figure): Figure {
  const n = Math.min(a.runs.length, b.runs.length);
  const per = Array.from({ length: n }, (_, i) => a.runs[i]! / b.runs[i]!);
  const f = figure(per);
  return { ...f, median: a.median / b.median };
}

// ------------------------------------------------------------------ PostgreSQL

export async function withClient<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ ...PG, database, options: '-c TimeZone=UTC' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export const sql = (database: string, text: string, params: unknown[] = []) => withClient(database, (c) => c.query(text, params));

// Databases and slots are made and dropped exactly as the integration tests do.
export { createDb, dropDb, dropSlots };

// ------------------------------------------------------------------ the workload

export type Shape = 'narrow' | 'wide';

/** 5 columns (narrow) or 25 columns of ≈ 1 KB per row (wide); `v` is 1 after the insert, 2 after the update. */
export function tableDdl(table: string, shape: Shape): string {
  if (shape === 'narrow') {
    return `create table ${table} (id bigint primary key, name text not null, amount numeric(12,2) not null, updated_at timestamptz not null, v int not null)`;
  }
  const extra = Array.from({ length: 10 }, (_, i) => `i${i} int, t${i} text`).join(', ');
  return `create table ${table} (id bigint primary key, name text not null, amount numeric(12,2) not null, updated_at timestamptz not null, v int not null, ${extra})`;
}

function insertSql(table: string, shape: Shape): string {
  const base = `g, 'name ' || g, (g % 100000) + 0.25, now(), 1`;
  if (shape === 'narrow') return `insert into ${table} select ${base} from generate_series($1::bigint, $2::bigint) g`;
  const extra = Array.from({ length: 10 }, (_, i) => `g % ${1000 + i}, repeat(md5((g + ${i})::text), 3)`).join(', ');
  return `insert into ${table} select ${base}, ${extra} from generate_series($1::bigint, $2::bigint) g`;
}

export interface Workload {
  inserts: number;
  updates: number;
  /** Changes in total (inserts + updates): one Kafka message each. */
  changes: number;
  /** Rows per source transaction. */
  txRows: number;
  /** pg_current_wal_lsn() after the last commit. */
  endLsn: string;
  seconds: number;
}

/**
 * Write `inserts` rows, then update the first `updates` of them, `txRows` rows per transaction.
 * Rows get ids 1..inserts; the update sets v = 2 and moves amount and updated_at.
 */
export async function writeWorkload(db: string, table: string, shape: Shape, inserts: number, updates: number, txRows = 10_000): Promise<Workload> {
  const t0 = Date.now();
  const ins = insertSql(table, shape);
  await withClient(db, async (c) => {
    for (let a = 1; a <= inserts; a += txRows) await c.query(ins, [a, Math.min(inserts, a + txRows - 1)]);
    for (let a = 1; a <= updates; a += txRows) {
      await c.query(`update ${table} set v = 2, amount = amount + 1, updated_at = now() where id between $1 and $2`, [a, Math.min(updates, a + txRows - 1)]);
    }
  });
  const endLsn = (await sql(db, 'select pg_current_wal_lsn()::text as lsn')).rows[0].lsn as string;
  return { inserts, updates, changes: inserts + updates, txRows, endLsn, seconds: (Date.now() - t0) / 1000 };
}

export interface Source {
  id: string;
  prefix: string;
  db: string;
  table: string;
  publication: string;
  shape: Shape;
  /** Create a logical slot (pgoutput) at the current WAL position. */
  slot(name: string): Promise<string>;
  cleanup(): Promise<void>;
}

/**
 * A fresh source database with the table and its publication. Slots created before the workload is
 * written all decode the same changes, from a fresh slot each.
 */
export async function createSource(shape: Shape, tag: string): Promise<Source> {
  const id = uid();
  const prefix = `bench${id}`;
  const db = `syncline_bench_${id}_${tag}`;
  await createDb(db);
  const table = 'bench_rows';
  await sql(db, tableDdl(`public.${table}`, shape));
  const publication = `${prefix}_pub`;
  await sql(db, `create publication ${publication} for table public.${table}`);
  return {
    id, prefix, db, table, publication, shape,
    async slot(name: string) {
      const slot = `${prefix}_${name}`;
      await sql(db, `select pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
      return slot;
    },
    async cleanup() {
      await dropSlots(prefix);
      await dropDb(db);
    },
  };
}

// ------------------------------------------------------------------ Kafka

export function kafka(): Kafka {
  return new Kafka({ brokers: BROKERS, clientId: 'syncline-bench', logLevel: logLevel.NOTHING });
}

export async function withAdmin<T>(fn: (a: Admin) => Promise<T>): Promise<T> {
  const admin = kafka().admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

export async function deleteTopics(prefix: string): Promise<void> {
  await withAdmin(async (a) => {
    const names = (await a.listTopics()).filter((t) => t.startsWith(prefix + '.') || t.startsWith(prefix + '_'));
    if (names.length) await a.deleteTopics({ topics: names, timeout: 30000 }).catch(() => undefined);
  }).catch(() => undefined);
}

export async function deleteRedisKeys(prefix: string): Promise<void> {
  const r = new Redis('redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 2 });
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== '0');
  } catch {
    /* best effort */
  } finally {
    r.disconnect();
  }
}

export interface ProgressTiming {
  /** ms (epoch) of the first poll that saw a message. */
  firstAt: number;
  /** Messages already there at that poll. */
  firstCount: number;
  /** ms (epoch) of the last poll that saw none (or the start). */
  zeroAt: number;
  /** ms (epoch) of the poll that saw `expected`. */
  doneAt: number;
  count: number;
}

/**
 * Poll a counter every `everyMs` until it reaches `expected`: the time of the first non-zero value
 * and of the value reaching `expected`. The rate is (expected − firstCount) / (doneAt − firstAt),
 * the same measurement for every tool, start-up excluded.
 */
export async function timeProgress(what: string, read: () => Promise<number>, expected: number, opts: { everyMs?: number; timeoutMs?: number; alive?: () => string | undefined } = {}): Promise<ProgressTiming> {
  const every = opts.everyMs ?? 100;
  const until = Date.now() + (opts.timeoutMs ?? 30 * 60_000);
  let firstAt = 0;
  let firstCount = 0;
  let zeroAt = Date.now();
  let last = 0;
  let lastChange = Date.now();
  for (;;) {
    const n = await read();
    const now = Date.now();
    if (n === 0) zeroAt = now;
    if (n > 0 && firstAt === 0) {
      firstAt = now;
      firstCount = n;
    }
    if (n !== last) lastChange = now;
    last = n;
    if (n >= expected) return { firstAt, firstCount, zeroAt, doneAt: now, count: n };
    const dead = opts.alive?.();
    if (dead) throw new Error(`${what}: ${dead} (at ${n} of ${expected})`);
    if (now > until || now - lastChange > 180_000) throw new Error(`${what}: timed out at ${n} of ${expected}`);
    await sleep(every);
  }
}

export function rateOf(t: ProgressTiming, expected: number): number {
  // Tiny runs: most of the work landed between two polls; count it all over the interval from the
  // last empty poll (an upper bound on the time, so a lower bound on the rate).
  if (t.firstCount * 2 >= expected || t.doneAt <= t.firstAt) return expected / (Math.max(1, t.doneAt - t.zeroAt) / 1000);
  return (expected - t.firstCount) / ((t.doneAt - t.firstAt) / 1000);
}

/** Sum of the high watermarks of a topic's partitions (0 while it does not exist). */
export function topicCounter(admin: Admin, topic: string): () => Promise<number> {
  return async () => {
    try {
      const offs = await admin.fetchTopicOffsets(topic);
      return offs.reduce((n, o) => n + Number(o.high), 0);
    } catch {
      return 0;
    }
  };
}

export async function createTopic(admin: Admin, topic: string, partitions = 3): Promise<void> {
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }] });
}

// ------------------------------------------------------------------ a quiet machine

/** Share of CPU time idle (0–1, all CPUs) over `ms`, from /proc/stat. */
export async function cpuIdle(ms: number): Promise<number> {
  const read = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { idle: f[3]! + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await sleep(ms);
  const b = read();
  return b.total > a.total ? (b.idle - a.idle) / (b.total - a.total) : 1;
}

/**
 * Before a measurement that is sensitive to other load (latency): PostgreSQL checkpointed, then up
 * to `maxMs` for the CPUs to be at least `idle` idle over a second. What the previous benchmark
 * left behind (topics of millions of messages being deleted, WAL to flush, autovacuum) otherwise
 * lands in the measured tail. Returns how long it waited and the idle share it saw last.
 */
export async function settle(opts: { idle?: number; maxMs?: number } = {}): Promise<{ waitedMs: number; idle: number }> {
  const want = opts.idle ?? 0.8;
  const t0 = Date.now();
  await sql('postgres', 'checkpoint');
  let idle = await cpuIdle(1000);
  while (idle < want && Date.now() - t0 < (opts.maxMs ?? 60_000)) idle = await cpuIdle(1000);
  return { waitedMs: Date.now() - t0, idle };
}

// ------------------------------------------------------------------ child processes

/** Peak resident set (VmHWM) and current RSS of a process, in MB; undefined once it is gone. */
export function memoryOf(pid: number): { hwmMb: number; rssMb: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return { hwmMb: kb('VmHWM') / 1024, rssMb: kb('VmRSS') / 1024 };
  } catch {
    return undefined;
  }
}

export interface ChildStats {
  /** Capture: changes produced to Kafka and acknowledged. */
  produced: number;
  snapshotRows: number;
  /** Processor+sink (Applier stats). */
  received: number;
  applied: number;
  skippedUnchanged: number;
  skippedStale: number;
  conflicts: number;
  deadLettered: number;
}

export interface Child {
  proc: ChildProcess;
  pid: number;
  /** Last stats line the child printed. */
  stats: ChildStats;
  /** Highest VmHWM seen, in MB (sampled; the final read is just before the child exits). */
  peakMb: () => number;
  /** A message if the child exited, else undefined. */
  exited: () => string | undefined;
  stop(): Promise<void>;
  stderr: () => string;
}

export interface PipelineSpec {
  prefix: string;
  pipeline: string;
  sourceDb: string;
  targetDb?: string;
  slot: string;
  publication: string;
  table: string;
  snapshot: 'initial' | 'never';
  batchSize?: number;
  lingerMs?: number;
  sinkBatch?: number;
  /** kafka.producer (default kafkajs). */
  producer?: 'kafkajs' | 'librdkafka';
  /** Partitions of the change topic (default 3). */
  partitions?: number;
  /** Field encryption: these columns encrypted, the target decrypting (keys in SYNCLINE_ENCRYPTION_KEYS, active key k1). */
  encrypt?: string[];
  /** Transform steps of the table (bench/transforms.ts). */
  transform?: unknown[];
  /** Change history of the pipeline kept in this PostgreSQL database (bench/history.ts). */
  historyUrl?: string;
}

/** A syncline config (JSON is YAML) for one pipeline of one table. */
export function writeConfig(s: PipelineSpec): string {
  const doc = {
    version: 1,
    topicPrefix: s.prefix,
    kafka: { brokers: BROKERS, partitions: s.partitions ?? 3, ...(s.producer ? { producer: s.producer } : {}) },
    schemaRegistry: { url: REGISTRY },
    redis: { url: 'redis://127.0.0.1:6379', keyPrefix: s.prefix },
    defaults: { batch: { size: s.sinkBatch ?? 1000 } },
    pipelines: {
      [s.pipeline]: {
        source: {
          type: 'postgres', connection: { ...PG, database: s.sourceDb }, slot: s.slot, publication: s.publication,
          snapshot: s.snapshot, heartbeatMs: 1000, batchSize: s.batchSize ?? 2000, lingerMs: s.lingerMs ?? 20,
        },
        target: { type: 'postgres', connection: { ...PG, database: s.targetDb ?? s.sourceDb }, ...(s.encrypt ? { decrypt: true } : {}) },
        tables: [{ source: `public.${s.table}`, ...(s.encrypt ? { encrypt: s.encrypt } : {}), ...(s.transform ? { transform: s.transform } : {}) }],
        ...(s.historyUrl ? { history: {} } : {}),
      },
    },
    ...(s.encrypt ? { encryption: { activeKey: 'k1' } } : {}),
    ...(s.historyUrl ? { history: { url: s.historyUrl } } : {}),
  };
  const dir = mkdtempSync(join(tmpdir(), 'syncline-bench-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, JSON.stringify(doc, null, 2));
  return file;
}


const built = new Set<string>();

/**
 * How a syncline child is started: compiled, as the package and the container image run it
 * (`node dist/…`, built once per checkout with `tsc` when the benchmark starts one), or with
 * SYNCLINE_BENCH_RUNTIME=tsx from the TypeScript sources (as `npm run syncline` does; tsx's
 * transform adds a `__name` call per closure created, measurably slower on the hot paths).
 */
export function childEntry(root: string): string[] {
  if (process.env.SYNCLINE_BENCH_RUNTIME === 'tsx') return ['--import', 'tsx', join(root, 'bench/child.ts')];
  buildChildren(root); // once per root; bench/index.ts and runBenchCli have built it already
  return [join(root, 'dist/bench/child.js')];
}

/**
 * Compile the checkout the syncline children run from (once per root). bench/index.ts and
 * runBenchCli call it before any benchmark: a build inside spawnSyncline (≈ 10 s here) fell inside
 * the first timed window that starts a child (the initial load's first table, the first capture's
 * rate with start-up).
 */
export function buildChildren(root: string = ROOT): void {
  if (process.env.SYNCLINE_BENCH_RUNTIME === 'tsx' || built.has(root)) return;
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], { cwd: root, stdio: 'inherit' });
  built.add(root);
}

/**
 * Run the given stages of syncline (src/runtime.ts) in a child process (bench/child.ts, see
 * childEntry), which prints its stats as a JSON line every 100 ms. `nodeArgs` e.g. ['--cpu-prof'].
 */
export function spawnSyncline(configFile: string, stages: string[], opts: { nodeArgs?: string[]; env?: Record<string, string>; /** Another checkout (A/B against a baseline). */ root?: string } = {}): Child {
  const root = opts.root ?? ROOT;
  // SYNCLINE_BENCH_CPU_PROF=DIR: every syncline child writes a V8 CPU profile into DIR (node --cpu-prof).
  const prof = process.env.SYNCLINE_BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.SYNCLINE_BENCH_CPU_PROF}`] : [];
  // SYNCLINE_BENCH_NODE_ARGS='--flag …': extra node flags for every syncline child (to try V8 settings).
  prof.push(...(process.env.SYNCLINE_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean));
  const proc = spawn(process.execPath, [...SYNCLINE_NODE_FLAGS, ...prof, ...(opts.nodeArgs ?? []), ...childEntry(root), configFile, stages.join(',')], {
    cwd: root,
    env: { ...process.env, SYNCLINE_LOG_LEVEL: process.env.SYNCLINE_BENCH_LOG_LEVEL ?? 'warn', ...(opts.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return watchChild(proc);
}

export function watchChild(proc: ChildProcess): Child {
  const pid = proc.pid!;
  let stats: ChildStats = { produced: 0, snapshotRows: 0, received: 0, applied: 0, skippedUnchanged: 0, skippedStale: 0, conflicts: 0, deadLettered: 0 };
  let err = '';
  let exit: string | undefined;
  let peak = 0;
  const sample = () => {
    const m = memoryOf(pid);
    if (m && m.hwmMb > peak) peak = m.hwmMb;
  };
  const timer = setInterval(sample, 200);
  let buf = '';
  proc.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith('{"stats"')) {
        try {
          stats = (JSON.parse(line) as { stats: ChildStats }).stats;
        } catch {
          /* partial line */
        }
      } else if (process.env.SYNCLINE_BENCH_CHILD_LOG) process.stderr.write(`[child] ${line}\n`);
    }
    sample();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
    if (process.env.SYNCLINE_BENCH_CHILD_LOG) process.stderr.write(`[child] ${d.toString()}`);
  });
  const ended = new Promise<void>((res) => {
    proc.on('exit', (code, sig) => {
      exit = `exited with ${code ?? sig}: ${err.slice(-1500)}`;
      clearInterval(timer);
      res();
    });
  });
  return {
    proc, pid,
    get stats() {
      return stats;
    },
    peakMb: () => (sample(), peak),
    exited: () => exit,
    stderr: () => err,
    async stop() {
      sample();
      if (exit) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      await ended;
      clearTimeout(t);
    },
  } as Child;
}

export function hasFlag(args: string[], name: string): boolean {
  return args.includes(name);
}

/**
 * A bench file run directly (`npx tsx bench/targets.ts --changes 50000`): when `moduleUrl` (its
 * import.meta.url) is the script node was started with, runs `run` with a reader of `--name value`
 * options, prints the table it makes and exits (1, with the error, when it throws). Imported by
 * bench/index.ts instead, it does nothing.
 */
export function runBenchCli<R>(moduleUrl: string, run: (arg: (name: string, dflt: string) => string) => Promise<R>, table: (r: R) => string): void {
  if (!process.argv[1] || resolve(process.argv[1]) !== fileURLToPath(moduleUrl)) return;
  buildChildren();
  const arg = (name: string, dflt: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1]! : dflt;
  };
  run(arg).then(
    (r) => {
      console.log('\n' + table(r));
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}

/**
 * The closing lines of an end-to-end section of BENCHMARKS.md (bench/encryption.ts, transforms.ts,
 * history.ts): the machine is shared, which one it was, and how to reproduce the figures.
 */
export function e2eSectionFooter(m: { nproc: number; cpu: string; node: string; date: string }, command: string, compare: string): string[] {
  return [
    `The machine is shared with other work: compare ${compare} of one run, not runs of different days.`,
    '',
    `Machine: ${m.nproc} CPU${m.nproc === 1 ? '' : 's'} (\`nproc\`), ${m.cpu}, Node ${m.node}, PostgreSQL 15, Kafka, Redis on the same machine; measured ${m.date}.`,
    `Reproduce: \`npm run stack:up && ${command}\`.`,
  ];
}
