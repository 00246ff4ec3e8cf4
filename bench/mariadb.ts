/**
 * MariaDB next to PostgreSQL, measured in the same run (bench/pipeline.ts interleaves them):
 *
 * - `mariadb-capture`: syncline's capture stage with the MariaDB source (binlog, @vlasky/zongji)
 *   carrying a backlog of N inserts + N/2 updates of the 5-column table (the same row shape,
 *   transaction size and change mix as the PostgreSQL workload) into Kafka. Each repeat has its own
 *   topic prefix, whose capture was started once before the workload was written and stopped, so
 *   its stored binlog position is before the workload: the repeat's capture resumes there and reads
 *   exactly the backlog (the MariaDB counterpart of a fresh slot per repeat). Rate = changes / time
 *   from the first to the last message seen in the topic (offsets polled every 100 ms, start-up
 *   excluded), as for the PostgreSQL capture (2).
 * - `mariadb-sink`: processor + sink (one child, `process,sink`) applying an already-filled change
 *   topic (the PostgreSQL capture's of the same repeat) into a fresh, empty target, PostgreSQL and
 *   MariaDB, with a fresh consumer group and Redis key prefix each. Rate = changes / time from the
 *   first record reaching the sink to the target holding the final state (checked in SQL), as for
 *   the end-to-end run (4); capture is not in the measurement, only the target differs.
 *
 * Everything created (MariaDB and PostgreSQL databases, topics, Redis keys) is dropped afterwards.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import {
  BROKERS, PG, REGISTRY, createDb, deleteRedisKeys, deleteTopics, dropDb, rateOf, sleep, spawnSyncline, sql, tableDdl, timeProgress, topicCounter, uid, withAdmin,
  type Workload,
} from './common.js';
import { targetDone } from './end-to-end.js';
import { cpuPerChange, sampleCpu } from './cpu.js';

/** The local MariaDB server's pid (undefined if it is not a process of this machine). */
export function mariadbdPid(): number | undefined {
  try {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'mariadbd') return Number(d);
      } catch {
        /* gone meanwhile */
      }
    }
  } catch {
    /* not Linux */
  }
  return undefined;
}

/** CPU roles of a MariaDB run: the syncline child and the whole MariaDB server (its binlog dump thread, its writers, and anyone else's queries). */
function rolesOf(child: number, role: string): Map<number, string> {
  const m = new Map([[child, role]]);
  const my = mariadbdPid();
  if (my !== undefined) m.set(my, 'MariaDB server (all of it)');
  return m;
}

export const MY = { host: '127.0.0.1', port: 3306, user: 'root' };

export async function my(database: string | undefined, text: string, params: unknown[] = []): Promise<mysql.RowDataPacket[]> {
  const c = await mysql.createConnection({ ...MY, database, supportBigNumbers: true, bigNumberStrings: true });
  try {
    const [rows] = await c.query(text, params);
    return rows as mysql.RowDataPacket[];
  } finally {
    await c.end();
  }
}

/** The 5-column table of the PostgreSQL workload in MariaDB: the same Avro schema comes out (int8, text, numeric(12,2), timestamptz, int4). */
export const MARIADB_DDL = (table: string) =>
  `CREATE TABLE ${table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, amount DECIMAL(12,2) NOT NULL, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), v INT NOT NULL) ENGINE=InnoDB`;

function writeDoc(doc: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), 'syncline-bench-')), 'config.yaml');
  writeFileSync(file, JSON.stringify(doc, null, 2));
  return file;
}

// ------------------------------------------------------------------ capture

export interface MariadbSource {
  id: string;
  prefix: string;
  db: string;
  table: string;
  /** Topic prefix of repeat r (its capture state lives in `<prefix>.capture.offsets`). */
  prefixOf(r: number): string;
  configOf(r: number): string;
  /**
   * Start and stop one capture per repeat (all at once, snapshot: never) so that each stores a
   * binlog position before the workload is written.
   */
  register(repeats: number): Promise<void>;
  writeWorkload(inserts: number, updates: number, txRows?: number): Promise<Workload>;
  cleanup(): Promise<void>;
}

export async function createMariadbSource(): Promise<MariadbSource> {
  const id = uid();
  const prefix = `bench${id}my`;
  const db = `syncline_bench_${id}_my`;
  const table = 'bench_rows';
  await my(undefined, `CREATE DATABASE \`${db}\` CHARACTER SET utf8mb4`);
  await my(db, MARIADB_DDL(table));
  const configs = new Map<number, string>();
  const base = 200_000 + parseInt(id.slice(0, 6), 16) * 16;
  const src: MariadbSource = {
    id, prefix, db, table,
    prefixOf: (r) => `${prefix}${r}`,
    configOf(r) {
      let f = configs.get(r);
      if (!f) {
        f = writeDoc({
          version: 1,
          topicPrefix: src.prefixOf(r),
          kafka: { brokers: BROKERS, partitions: 3 },
          schemaRegistry: { url: REGISTRY },
          redis: { url: 'redis://127.0.0.1:6379', keyPrefix: src.prefixOf(r) },
          pipelines: {
            bench: {
              // The same produce settings as the PostgreSQL capture's (bench/common.ts writeConfig).
              source: { type: 'mariadb', connection: { ...MY, database: db }, serverId: base + r, snapshot: 'never', heartbeatMs: 1000, batchSize: 2000, lingerMs: 20 },
              target: { type: 'postgres', connection: { ...PG, database: 'postgres' } },
              tables: [{ source: `${db}.${table}`, target: `public.${table}` }],
            },
          },
        });
        configs.set(r, f);
      }
      return f;
    },
    async register(repeats) {
      const topics = Array.from({ length: repeats }, (_, r) => `${src.prefixOf(r)}.cdc.${db}.${table}`);
      const children = Array.from({ length: repeats }, (_, r) => spawnSyncline(src.configOf(r), ['capture']));
      try {
        await withAdmin(async (admin) => {
          const until = Date.now() + 120_000;
          for (;;) {
            const have = new Set(await admin.listTopics());
            if (topics.every((t) => have.has(t))) break;
            const dead = children.map((c) => c.exited()).find(Boolean);
            if (dead) throw new Error(`MariaDB capture (registering): ${dead}`);
            if (Date.now() > until) throw new Error('MariaDB capture (registering): the change topics did not appear within 120 s');
            await sleep(200);
          }
        });
        await sleep(1500); // the binlog stream is open: its position is what the stop stores
      } finally {
        await Promise.all(children.map((c) => c.stop()));
      }
    },
    async writeWorkload(inserts, updates, txRows = 10_000) {
      const t0 = Date.now();
      const c = await mysql.createConnection({ ...MY, database: db });
      try {
        // One statement = one transaction (autocommit) of txRows rows, as in the PostgreSQL workload.
        for (let a = 1; a <= inserts; a += txRows) {
          const b = Math.min(inserts, a + txRows - 1);
          await c.query(`INSERT INTO ${table} (id, name, amount, updated_at, v) SELECT seq, CONCAT('name ', seq), (seq % 100000) + 0.25, NOW(6), 1 FROM seq_${a}_to_${b}`);
        }
        for (let a = 1; a <= updates; a += txRows) {
          await c.query(`UPDATE ${table} SET v = 2, amount = amount + 1, updated_at = NOW(6) WHERE id BETWEEN ? AND ?`, [a, Math.min(updates, a + txRows - 1)]);
        }
      } finally {
        await c.end();
      }
      return { inserts, updates, changes: inserts + updates, txRows, endLsn: '', seconds: (Date.now() - t0) / 1000 };
    },
    async cleanup() {
      await my(undefined, `DROP DATABASE IF EXISTS \`${db}\``).catch(() => undefined);
      for (const r of configs.keys()) {
        await deleteTopics(src.prefixOf(r));
        await deleteRedisKeys(src.prefixOf(r));
      }
    },
  };
  return src;
}

export interface MariadbCaptureRun {
  changes: number;
  perSec: number;
  perSecWithStartup: number;
  peakMb: number;
  /** µs of CPU per change by process role (bench/cpu.ts; the capture's start-up included). */
  cpu: Record<string, number>;
}

/** Repeat r's capture resumes from its registered position and carries the backlog into Kafka. */
export async function runMariadbCapture(src: MariadbSource, r: number, w: Workload): Promise<MariadbCaptureRun> {
  const topic = `${src.prefixOf(r)}.cdc.${src.db}.${src.table}`;
  try {
    return await withAdmin(async (admin) => {
      const started = Date.now();
      const child = spawnSyncline(src.configOf(r), ['capture']);
      const roles = rolesOf(child.pid, 'syncline capture');
      const cpuBefore = sampleCpu(roles, '(no target database)');
      try {
        const t = await timeProgress('MariaDB capture', topicCounter(admin, topic), w.changes, { alive: child.exited });
        if (t.count !== w.changes) throw new Error(`MariaDB capture: ${t.count} messages in ${topic}, ${w.changes} changes written`);
        const cpu = cpuPerChange(cpuBefore, sampleCpu(roles, '(no target database)'), w.changes);
        return { changes: w.changes, perSec: rateOf(t, w.changes), perSecWithStartup: w.changes / ((t.doneAt - started) / 1000), peakMb: child.peakMb(), cpu };
      } finally {
        await child.stop();
      }
    });
  } finally {
    await deleteTopics(src.prefixOf(r));
  }
}

// ------------------------------------------------------------------ sink

export interface SinkRun {
  target: 'postgres' | 'mariadb';
  perSec: number;
  peakMb: number;
  applied: number;
  /** µs of CPU per change by process role (bench/cpu.ts), from the child's start. */
  cpu: Record<string, number>;
}

/**
 * processor + sink from the filled change topic `<changePrefix>.cdc.public.<table>` (N changes of
 * the PostgreSQL workload) into a fresh target of kind `target`. Own topic prefix (consumer groups,
 * DLQ), Redis key prefix and target database; all dropped afterwards.
 */
export async function runSinkOnly(o: { changePrefix: string; sourceDb: string; table: string; w: Workload; target: 'postgres' | 'mariadb'; tag: string }): Promise<SinkRun> {
  const id = uid();
  const prefix = `bench${id}${o.tag}`;
  const targetDb = `syncline_bench_${id}_${o.tag}`;
  const maria = o.target === 'mariadb';
  if (maria) await my(undefined, `CREATE DATABASE \`${targetDb}\` CHARACTER SET utf8mb4`);
  else {
    await createDb(targetDb);
    await sql(targetDb, tableDdl(`public.${o.table}`, 'narrow'));
  }
  const config = writeDoc({
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: BROKERS, partitions: 3 },
    schemaRegistry: { url: REGISTRY },
    redis: { url: 'redis://127.0.0.1:6379', keyPrefix: prefix },
    defaults: { batch: { size: 1000 } },
    pipelines: {
      bench: {
        changeTopicPrefix: o.changePrefix,
        // Not started (no capture stage here): the processor reads the source's change topic only.
        source: { type: 'postgres', connection: { ...PG, database: o.sourceDb }, slot: `${prefix}_unused`, publication: `${prefix}_unused`, snapshot: 'never' },
        // MariaDB: the table is created by the sink (autoCreate, its default) from the first record.
        target: maria ? { type: 'mariadb', connection: { ...MY, database: targetDb } } : { type: 'postgres', connection: { ...PG, database: targetDb } },
        tables: [{ source: `public.${o.table}`, target: maria ? `${targetDb}.${o.table}` : `public.${o.table}` }],
      },
    },
  });
  const done = maria
    ? async () => {
        const rows = await my(targetDb, `SELECT COUNT(*) AS n, COALESCE(SUM(v = 2), 0) AS u FROM ${o.table}`).catch(() => undefined);
        return rows !== undefined && Number(rows[0]!.n) === o.w.inserts && Number(rows[0]!.u) === o.w.updates;
      }
    : () => targetDone(targetDb, o.table, o.w);
  const child = spawnSyncline(config, ['process', 'sink']);
  const roles = maria ? rolesOf(child.pid, 'syncline process+sink') : new Map([[child.pid, 'syncline process+sink']]);
  const cpuBefore = sampleCpu(roles, targetDb);
  try {
    const t = await timeProgress(`sink → ${o.target}`, async () => child.stats.received, o.w.changes, { alive: child.exited });
    for (;;) {
      if (await done()) break;
      const dead = child.exited();
      if (dead) throw new Error(`sink → ${o.target}: ${dead}`);
      if (Date.now() - t.doneAt > 120_000) throw new Error(`sink → ${o.target}: the target did not reach the final state within 120 s of the last record`);
      await sleep(100);
    }
    const timing = { ...t, doneAt: Date.now() };
    const cpu = cpuPerChange(cpuBefore, sampleCpu(roles, targetDb), o.w.changes);
    return { target: o.target, perSec: rateOf(timing, o.w.changes), peakMb: child.peakMb(), applied: child.stats.applied, cpu };
  } finally {
    await child.stop();
    await deleteTopics(prefix);
    await deleteRedisKeys(prefix);
    if (maria) await my(undefined, `DROP DATABASE IF EXISTS \`${targetDb}\``).catch(() => undefined);
    else await dropDb(targetDb);
  }
}
