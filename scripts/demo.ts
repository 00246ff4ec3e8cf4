/**
 * `npm run demo`: the main job end to end on the local stack (started by `npm run stack:up`, which
 * `npm run demo` runs first). Creates fresh demo source and target databases with seed data, starts
 * the three example pipelines of configs/data-sync-config.yaml in this process, applies a burst of
 * concurrent inserts/updates/deletes, waits for convergence, prints per-pipeline counts and a
 * source/target checksum comparison, writes reports/sync-status.json (plus history.jsonl and sync-report.md), and exits 0 only if every
 * table converged.
 */
import pg from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import { loadConfig } from '../src/core/config/load.js';
import { Runtime } from '../src/runtime.js';
import { writeReports } from '../src/observe/report.js';
import { createDemoSchema, DEMO_TABLES, runWorkload, seed } from './workload.js';

const SOURCE_DB = 'syncline_demo_source';
const TARGET_DB = 'syncline_demo_target';
const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', options: '-c TimeZone=UTC' };
const CHANGES = Number(process.env.DEMO_CHANGES ?? 5000);
const CONFIG = process.env.SYNCLINE_CONFIG ?? 'configs/data-sync-config.yaml';

async function admin(text: string, params: unknown[] = []) {
  const c = new pg.Client({ ...PG, database: 'postgres' });
  await c.connect();
  try {
    return await c.query(text, params);
  } finally {
    await c.end();
  }
}

async function checksum(db: string, table: string, key: string) {
  const c = new pg.Client({ ...PG, database: db });
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

  console.log(`syncline demo: resetting databases ${SOURCE_DB} → ${TARGET_DB}`);
  for (const slot of slots) {
    await admin(`select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active_pid is not null`, [slot]);
    await admin(`select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1`, [slot]).catch(() => undefined);
  }
  for (const db of [SOURCE_DB, TARGET_DB]) {
    await admin(`drop database if exists ${db} with (force)`);
    await admin(`create database ${db}`);
    const c = new pg.Client({ ...PG, database: db });
    await c.connect();
    await createDemoSchema(c);
    if (db === SOURCE_DB) await seed(c);
    await c.end();
  }
  await deleteOldDemoTopics(prefix);

  const runtime = new Runtime(config, new Set(['capture', 'process', 'sink']));
  const { done } = await runtime.start();
  let failure: unknown;
  done.catch((err) => (failure = err));
  console.log(`pipelines started (${runtime.pipelines.map((p) => p.name).join(', ')}); snapshot of the seed data runs first`);

  const wl = await runWorkload({ ...PG, database: SOURCE_DB }, { changes: CHANGES, workers: 6 });
  console.log(`workload: ${wl.changes} row changes committed in ${wl.transactions} multi-row transactions and single statements (${JSON.stringify(wl.byKind)})`);

  // Wait for convergence.
  const deadline = Date.now() + 180_000;
  let results: { pipeline: string; table: string; source: { rows: number; checksum: string }; target: { rows: number; checksum: string }; converged: boolean }[] = [];
  for (;;) {
    results = [];
    for (const t of DEMO_TABLES) {
      const source = await checksum(SOURCE_DB, t.table, t.key);
      const target = await checksum(TARGET_DB, t.table, t.key);
      results.push({ pipeline: t.pipeline, table: t.table, source, target, converged: source.checksum === target.checksum && source.rows === target.rows });
    }
    if (results.every((r) => r.converged) || failure || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 1000));
  }

  const pipelines = runtime.pipelines.map((h) => ({
    pipeline: h.name,
    capture: h.capture ? { snapshotRows: h.capture.stats.snapshotRows, changes: h.capture.stats.changes, produced: h.capture.stats.produced, confirmedLsn: h.capture.stats.confirmedLsn } : null,
    apply: h.applier?.stats ?? null,
  }));
  // The report files' current state (src/observe/report.ts), taken while the pipelines still run.
  const metricsText = await runtime.metrics.render();
  const health = runtime.observe.health.report();
  await runtime.stop();

  console.log('\nper pipeline');
  console.table(pipelines.map((p) => ({ pipeline: p.pipeline, snapshot: p.capture?.snapshotRows, captured: p.capture?.changes, applied: p.apply?.applied, unchanged: p.apply?.skippedUnchanged, redelivered: p.apply?.skippedStale, conflicts: p.apply?.conflicts, deadLettered: p.apply?.deadLettered })));
  console.log('source / target');
  console.table(results.map((r) => ({ table: r.table, sourceRows: r.source.rows, targetRows: r.target.rows, sourceChecksum: r.source.checksum.slice(0, 12), targetChecksum: r.target.checksum.slice(0, 12), converged: r.converged })));

  const ok = results.every((r) => r.converged) && !failure;
  // Same writer as a running syncline and `syncline report`; the demo's own results under "demo".
  const demo = { topicPrefix: prefix, durationMs: Date.now() - started, workload: wl, converged: ok, error: failure ? String((failure as Error).message ?? failure) : null, pipelines, tables: results };
  writeReports('reports', metricsText, health, 'demo', { demo });
  console.log(`\nwrote reports/sync-status.json — ${ok ? 'every table converged' : 'NOT CONVERGED'} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exit(ok ? 0 : 1);
}

async function deleteOldDemoTopics(current: string) {
  const kafka = new Kafka({ brokers: config().brokers, logLevel: logLevel.NOTHING });
  const a = kafka.admin();
  await a.connect();
  const old = (await a.listTopics()).filter((t) => /^demo[0-9a-z]+\./.test(t) && !t.startsWith(current + '.'));
  if (old.length) await a.deleteTopics({ topics: old }).catch(() => undefined);
  await a.disconnect();
}

function config() {
  return { brokers: [process.env.SYNCLINE_KAFKA_BROKERS ?? '127.0.0.1:9092'] };
}

main().catch((err) => {
  console.error(`demo failed: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
