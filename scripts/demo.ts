/**
 * `npm run demo`: the main job end to end on the local stack (started by `npm run stack:up`, which
 * `npm run demo` runs first). Creates fresh demo source and target databases with seed data (the
 * PostgreSQL target, and a MariaDB database of this run's own for the cross-system pipeline), starts
 * the three example pipelines of configs/data-sync-config.yaml in this process, applies a burst of
 * concurrent inserts/updates/deletes, waits for convergence, prints per-pipeline counts and a
 * source/target comparison of every table across the two systems (scripts/compare.ts: rows on each
 * side, a checksum of canonical per-row hashes, rows that differ), writes reports/sync-status.json
 * (plus history.jsonl and sync-report.md), drops its MariaDB database, and exits 0 only if every
 * table converged.
 *
 * Every address comes from the config, i.e. from its variables: SYNCLINE_SOURCE_HOST/PORT/DB and
 * SYNCLINE_TARGET_HOST/PORT/DB (the PostgreSQL servers and databases), SYNCLINE_MARIADB_HOST/PORT/
 * USER/PASSWORD (the MariaDB server; SYNCLINE_MARIADB_DB is set per run to syncline_<topic prefix>
 * unless given), SYNCLINE_KAFKA_BROKERS, SYNCLINE_SCHEMA_REGISTRY_URL, SYNCLINE_REDIS_URL,
 * SYNCLINE_METRICS_PORT, SYNCLINE_REPORTS_DIR (test/cold-start.int.test.ts runs it against a private
 * stack that way; that stack has no MariaDB of its own, so the machine's on 127.0.0.1:3306 serves).
 */
import '../src/core/kafkajs-patch.js'; // first: before kafkajs loads (src/core/kafkajs-patch.ts)
import pg from 'pg';
import mysql from 'mysql2/promise';
import { Kafka, logLevel } from 'kafkajs';
import { loadConfig } from '../src/core/config/load.js';
import type { SynclineConfig } from '../src/core/config/schema.js';
import type { PgConnection } from '../connectors/postgres/spec.js';
import type { MariadbConnection } from '../connectors/mariadb/connection.js';
import { Runtime } from '../src/runtime.js';
import { writeReports } from '../src/observe/report.js';
import { createDemoSchema, DEMO_TABLES, runWorkload, seed } from './workload.js';
import { columnKinds, differing, tableSide, type Endpoint, type TableSide } from './compare.js';

const CHANGES = Number(process.env.DEMO_CHANGES ?? 5000);
const CONFIG = process.env.SYNCLINE_CONFIG ?? 'configs/data-sync-config.yaml';

/** A PostgreSQL server of the demo (the config's source or target connection), without its database. */
interface Server {
  host: string;
  port: number;
  user: string;
  password?: string;
  options: string;
}

/** The PostgreSQL source of the demo's pipelines (they share one), or the first PostgreSQL target. */
function endpoint(config: SynclineConfig, side: 'source' | 'target'): { server: Server; database: string } {
  const p = Object.values(config.pipelines).find((x) => typeOf(x[side]) === 'postgres')!;
  const c = (p[side] as { connection: PgConnection }).connection;
  return { server: pgServer(c), database: c.database };
}

async function admin(server: Server, text: string, params: unknown[] = []) {
  const c = new pg.Client({ ...server, database: 'postgres' });
  await c.connect();
  try {
    return await c.query(text, params);
  } finally {
    await c.end();
  }
}

/** A pipeline's source or target type (`postgres`, `mariadb`). */
const typeOf = (side: unknown) => (side as { type: string }).type;

function pgServer(c: PgConnection): Server {
  return { host: c.host, port: c.port, user: c.user, ...(c.password ? { password: c.password } : {}), options: '-c TimeZone=UTC' };
}

function mariaOptions(c: MariadbConnection, database?: string): mysql.ConnectionOptions {
  return { host: c.host, port: c.port, user: c.user, password: c.password ?? '', ...(database ? { database } : {}) };
}

/** One compared table: the pipeline that carries it, its source and where its target lives. */
interface Compared {
  pipeline: string;
  table: string;
  key: string[];
  source: Endpoint;
  target: Endpoint;
  /** `postgres:db.schema.table` or `mariadb:database.table`. */
  targetName: string;
}

/** The demo's tables (scripts/workload.ts), each with the target its pipeline in the config writes. */
function comparedTables(config: SynclineConfig): Compared[] {
  return DEMO_TABLES.map((t) => {
    const [pipeline, p] = Object.entries(config.pipelines).find(([, x]) => x.tables.some((tb) => tb.source === t.table)) ?? [];
    if (!p) throw new Error(`no pipeline of ${CONFIG} captures ${t.table}`);
    const targetTable = p.tables.find((tb) => tb.source === t.table)!.target ?? t.table;
    const src = (p.source as { connection: PgConnection }).connection;
    const source: Endpoint = { system: 'postgres', connection: { ...pgServer(src), database: src.database } };
    const key = t.key.split(',').map((k) => k.trim());
    if (typeOf(p.target) === 'mariadb') {
      const c = (p.target as { connection: MariadbConnection }).connection;
      return { pipeline: pipeline!, table: t.table, key, source, target: { system: 'mariadb', connection: mariaOptions(c, c.database) }, targetName: `mariadb:${targetTable}` };
    }
    const c = (p.target as { connection: PgConnection }).connection;
    return { pipeline: pipeline!, table: t.table, key, source, target: { system: 'postgres', connection: { ...pgServer(c), database: c.database } }, targetName: `postgres:${c.database}.${targetTable}` };
  });
}

/**
 * The MariaDB databases of the config's mariadb targets (each connection's database and the database
 * part of each target table), per server, for the demo to create at its start and drop at its end.
 */
function mariaDatabases(config: SynclineConfig): { connection: MariadbConnection; databases: string[] }[] {
  const out: { connection: MariadbConnection; databases: string[] }[] = [];
  for (const p of Object.values(config.pipelines)) {
    if (typeOf(p.target) !== 'mariadb') continue;
    const connection = (p.target as { connection: MariadbConnection }).connection;
    const databases = new Set([connection.database, ...p.tables.map((t) => (t.target ?? t.source).split('.')[0]!)]);
    out.push({ connection, databases: [...databases] });
  }
  return out;
}

async function maria(c: MariadbConnection, statements: string[]): Promise<void> {
  const conn = await mysql.createConnection(mariaOptions(c));
  try {
    for (const s of statements) await conn.query(s);
  } finally {
    await conn.end();
  }
}

const mq = (name: string) => '`' + name.replace(/`/g, '``') + '`';

/**
 * Databases left by demo runs that never reached their end (killed): syncline_demo<base-36 ms> older
 * than an hour (a run lasts minutes; a younger one may be a run still going, e.g. a test's).
 */
async function dropStaleDemoDatabases(c: MariadbConnection): Promise<string[]> {
  const conn = await mysql.createConnection(mariaOptions(c));
  try {
    const [rows] = await conn.query(`SHOW DATABASES LIKE 'syncline\\_demo%'`);
    const stale = (rows as Record<string, string>[]).map((r) => Object.values(r)[0]!).filter((db) => {
      const m = /^syncline_demo([0-9a-z]+)$/.exec(db);
      const at = m ? parseInt(m[1]!, 36) : NaN;
      return Number.isFinite(at) && at > 1.5e12 && at < Date.now() - 3_600_000;
    });
    for (const db of stale) await conn.query(`DROP DATABASE IF EXISTS ${mq(db)}`);
    return stale;
  } finally {
    await conn.end();
  }
}

/** Drops the demo's MariaDB databases; once (main's end or its failure), best effort. */
let dropMaria: (() => Promise<void>) | undefined;

async function main() {
  const started = Date.now();
  // A fresh topic prefix per run: old demo topics and registry subjects never mix with this run.
  const prefix = `demo${Date.now().toString(36)}`;
  process.env.SYNCLINE_TOPIC_PREFIX = prefix;
  // The MariaDB target's database, this run's own (a concurrent run, e.g. a test's on a private
  // stack, shares the machine's MariaDB); dropped at the end.
  if (!process.env.SYNCLINE_MARIADB_DB) process.env.SYNCLINE_MARIADB_DB = `syncline_${prefix}`;
  const config = loadConfig(CONFIG);
  const slots = Object.values(config.pipelines).map((p) => (p.source as { slot: string }).slot);
  const source = endpoint(config, 'source');
  const target = endpoint(config, 'target');
  const reportsDir = config.reports?.dir ?? 'reports';
  const compared = comparedTables(config);
  const marias = mariaDatabases(config);

  console.log(`syncline demo: resetting databases ${source.database} → ${target.database}`);
  for (const slot of slots) {
    await admin(source.server, `select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active_pid is not null`, [slot]);
    await admin(source.server, `select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1`, [slot]).catch(() => undefined);
  }
  for (const { server, database } of [source, target]) {
    await admin(server, `drop database if exists ${pg.escapeIdentifier(database)} with (force)`);
    await admin(server, `create database ${pg.escapeIdentifier(database)}`);
    const c = new pg.Client({ ...server, database });
    await c.connect();
    await createDemoSchema(c);
    if (server === source.server) await seed(c);
    else {
      // Tables whose pipeline writes elsewhere (MariaDB) are not left empty in the PostgreSQL target.
      for (const t of compared) if (t.target.system !== 'postgres') await c.query(`drop table if exists ${t.table}`);
    }
    await c.end();
  }
  for (const { connection, databases } of marias) {
    const stale = await dropStaleDemoDatabases(connection).catch(() => []);
    if (stale.length) console.log(`(dropped MariaDB databases of interrupted demo runs: ${stale.join(', ')})`);
    console.log(`MariaDB ${connection.host}:${connection.port}: database ${databases.join(', ')} (the tables are created by the sink: autoCreate)`);
    // The connection's database must exist; the tables' (the same here) are created by autoCreate.
    await maria(connection, [...databases.map((d) => `DROP DATABASE IF EXISTS ${mq(d)}`), `CREATE DATABASE ${mq(connection.database)}`]);
  }
  dropMaria = async () => {
    dropMaria = undefined;
    for (const { connection, databases } of marias) {
      await maria(connection, databases.map((d) => `DROP DATABASE IF EXISTS ${mq(d)}`)).catch((err) => console.log(`(MariaDB databases ${databases.join(', ')} not dropped: ${(err as Error).message})`));
    }
  };
  // Best effort: old runs' topics only take space.
  await deleteOldDemoTopics(config.kafka.brokers, prefix).catch((err) => console.log(`(old demo topics not deleted: ${(err as Error).message})`));

  const runtime = new Runtime(config, new Set(['capture', 'process', 'sink']));
  const { done } = await runtime.start();
  let failure: unknown;
  done.catch((err) => (failure = err));
  console.log(`pipelines started (${runtime.pipelines.map((p) => p.name).join(', ')}); snapshot of the seed data runs first`);

  const wl = await runWorkload({ ...source.server, database: source.database }, { changes: CHANGES, workers: 6 });
  console.log(`workload: ${wl.changes} row changes committed in ${wl.transactions} multi-row transactions and single statements (${JSON.stringify(wl.byKind)})`);

  // Wait for convergence.
  const deadline = Date.now() + 180_000;
  // The compared columns and their meaning are the source's (scripts/compare.ts).
  const kinds = new Map<string, Map<string, string>>();
  for (const t of compared) kinds.set(t.table, await columnKinds(t.source.connection as pg.ClientConfig, t.table));
  type Side = Omit<TableSide, 'hashes'>;
  let results: { pipeline: string; table: string; target: string; source: Side; targetSide: Side; differing: number; converged: boolean }[] = [];
  for (;;) {
    results = [];
    for (const t of compared) {
      const k = kinds.get(t.table)!;
      const [s, d] = await Promise.all([tableSide(t.source, t.table, t.key, k), tableSide(t.target, t.targetName.replace(/^postgres:[^.]*\.|^mariadb:/, ''), t.key, k)]);
      const diff = differing(s, d);
      results.push({ pipeline: t.pipeline, table: t.table, target: t.targetName, source: { rows: s.rows, checksum: s.checksum }, targetSide: { rows: d.rows, checksum: d.checksum }, differing: diff, converged: diff === 0 && s.rows === d.rows && s.checksum === d.checksum });
    }
    if (results.every((r) => r.converged) || failure || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 1000));
  }

  const pipelines = runtime.pipelines.map((h) => ({
    pipeline: h.name,
    capture: h.capture ? { snapshotRows: h.capture.stats.snapshotRows, changes: h.capture.stats.changes, produced: h.capture.stats.produced, confirmed: h.capture.stats.confirmed } : null,
    apply: h.applier?.stats ?? null,
  }));
  // The report files' current state (src/observe/report.ts), taken while the pipelines still run.
  const metricsText = await runtime.metrics.render();
  const health = runtime.observe.health.report();
  await runtime.stop();
  await dropMaria?.();
  // An inactive slot holds WAL for as long as it exists: the demo's are not left behind (the next
  // run starts with fresh ones; its topics stay until then, for a look at them).
  for (const slot of slots) {
    await admin(source.server, `select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active`, [slot]).catch((err) => console.log(`(slot ${slot} not dropped: ${(err as Error).message})`));
  }

  console.log('\nper pipeline');
  console.table(pipelines.map((p) => ({ pipeline: p.pipeline, snapshot: p.capture?.snapshotRows, captured: p.capture?.changes, applied: p.apply?.applied, unchanged: p.apply?.skippedUnchanged, redelivered: p.apply?.skippedStale, conflicts: p.apply?.conflicts, deadLettered: p.apply?.deadLettered })));
  console.log('source (PostgreSQL) / target: rows, checksums of canonical per-row hashes, rows that differ');
  console.table(results.map((r) => ({ pipeline: r.pipeline, table: r.table, target: r.target, sourceRows: r.source.rows, targetRows: r.targetSide.rows, sourceChecksum: r.source.checksum.slice(0, 12), targetChecksum: r.targetSide.checksum.slice(0, 12), differing: r.differing, converged: r.converged ? 'yes' : 'no' })));

  const ok = results.every((r) => r.converged) && !failure;
  // Same writer as a running syncline and `syncline report`; the demo's own results under "demo".
  // Per table: source and target as before ({ rows, checksum }), where the target lives, the rows that differ.
  const tables = results.map((r) => ({ pipeline: r.pipeline, table: r.table, targetTable: r.target, source: r.source, target: r.targetSide, differing: r.differing, converged: r.converged }));
  const demo = { topicPrefix: prefix, durationMs: Date.now() - started, workload: wl, converged: ok, error: failure ? String((failure as Error).message ?? failure) : null, pipelines, tables };
  writeReports(reportsDir, metricsText, health, 'demo', { demo });
  console.log(`\nwrote ${reportsDir}/sync-status.json — ${ok ? 'every table converged' : 'NOT CONVERGED'} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exit(ok ? 0 : 1);
}

async function deleteOldDemoTopics(brokers: string[], current: string) {
  const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING });
  const a = kafka.admin();
  await a.connect();
  const old = (await a.listTopics()).filter((t) => /^demo[0-9a-z]+\./.test(t) && !t.startsWith(current + '.'));
  if (old.length) await a.deleteTopics({ topics: old }).catch(() => undefined);
  await a.disconnect();
}

main().catch(async (err) => {
  console.error(`demo failed: ${(err as Error).stack ?? err}`);
  await dropMaria?.();
  process.exit(1);
});
