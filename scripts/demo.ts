/**
 * `npm run demo`: the main job end to end on the local stack (started by `npm run stack:up`, which
 * `npm run demo` runs first). Creates fresh demo source and target databases with seed data, starts
 * the three example pipelines of configs/data-sync-config.yaml in this process, applies a burst of
 * concurrent inserts/updates/deletes, waits for convergence, prints per-pipeline counts and a
 * source/target checksum comparison, writes reports/sync-status.json (plus history.jsonl and sync-report.md), and exits 0 only if every
 * table converged.
 *
 * Every address comes from the config, i.e. from its variables: SYNCLINE_SOURCE_HOST/PORT/DB and
 * SYNCLINE_TARGET_HOST/PORT/DB (the servers and databases), SYNCLINE_KAFKA_BROKERS,
 * SYNCLINE_SCHEMA_REGISTRY_URL, SYNCLINE_REDIS_URL, SYNCLINE_METRICS_PORT, SYNCLINE_REPORTS_DIR
 * (test/cold-start.int.test.ts runs it against a private stack that way).
 */
import '../src/core/kafkajs-patch.js'; // first: before kafkajs loads (src/core/kafkajs-patch.ts)
import pg from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import { loadConfig } from '../src/core/config/load.js';
import type { SynclineConfig } from '../src/core/config/schema.js';
import type { PgConnection } from '../connectors/postgres/spec.js';
import { Runtime } from '../src/runtime.js';
import { writeReports } from '../src/observe/report.js';
import { createDemoSchema, DEMO_TABLES, runWorkload, seed } from './workload.js';

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

/** The source or target connection of the demo's pipelines (they share one of each). */
function endpoint(config: SynclineConfig, side: 'source' | 'target'): { server: Server; database: string } {
  const c = (Object.values(config.pipelines)[0]![side] as { connection: PgConnection }).connection;
  return { server: { host: c.host, port: c.port, user: c.user, ...(c.password ? { password: c.password } : {}), options: '-c TimeZone=UTC' }, database: c.database };
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

async function checksum(server: Server, db: string, table: string, key: string) {
  const c = new pg.Client({ ...server, database: db });
  await c.connect();
  try {
    const r = await c.query(`select count(*)::int as n, coalesce(md5(string_agg(md5(t::text), '' order by ${key})), '') as sum from ${table} t`);
    return { rows: r.rows[0].n as number, checksum: r.rows[0].sum as string };
  } finally {
    await c.end();
  }
}

async function main() {
  const started = Date.now();
  // A fresh topic prefix per run: old demo topics and registry subjects never mix with this run.
  const prefix = `demo${Date.now().toString(36)}`;
  process.env.SYNCLINE_TOPIC_PREFIX = prefix;
  const config = loadConfig(CONFIG);
  const slots = Object.values(config.pipelines).map((p) => (p.source as { slot: string }).slot);
  const source = endpoint(config, 'source');
  const target = endpoint(config, 'target');
  const reportsDir = config.reports?.dir ?? 'reports';

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
    await c.end();
  }
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
  let results: { pipeline: string; table: string; source: { rows: number; checksum: string }; target: { rows: number; checksum: string }; converged: boolean }[] = [];
  for (;;) {
    results = [];
    for (const t of DEMO_TABLES) {
      const s = await checksum(source.server, source.database, t.table, t.key);
      const d = await checksum(target.server, target.database, t.table, t.key);
      results.push({ pipeline: t.pipeline, table: t.table, source: s, target: d, converged: s.checksum === d.checksum && s.rows === d.rows });
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
  // An inactive slot holds WAL for as long as it exists: the demo's are not left behind (the next
  // run starts with fresh ones; its topics stay until then, for a look at them).
  for (const slot of slots) {
    await admin(source.server, `select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active`, [slot]).catch((err) => console.log(`(slot ${slot} not dropped: ${(err as Error).message})`));
  }

  console.log('\nper pipeline');
  console.table(pipelines.map((p) => ({ pipeline: p.pipeline, snapshot: p.capture?.snapshotRows, captured: p.capture?.changes, applied: p.apply?.applied, unchanged: p.apply?.skippedUnchanged, redelivered: p.apply?.skippedStale, conflicts: p.apply?.conflicts, deadLettered: p.apply?.deadLettered })));
  console.log('source / target');
  console.table(results.map((r) => ({ table: r.table, sourceRows: r.source.rows, targetRows: r.target.rows, sourceChecksum: r.source.checksum.slice(0, 12), targetChecksum: r.target.checksum.slice(0, 12), converged: r.converged })));

  const ok = results.every((r) => r.converged) && !failure;
  // Same writer as a running syncline and `syncline report`; the demo's own results under "demo".
  const demo = { topicPrefix: prefix, durationMs: Date.now() - started, workload: wl, converged: ok, error: failure ? String((failure as Error).message ?? failure) : null, pipelines, tables: results };
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

main().catch((err) => {
  console.error(`demo failed: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
