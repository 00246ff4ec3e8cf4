/**
 * Test harness of the MariaDB source's integration tests: a MariaDB database and a PostgreSQL target
 * database per test (`syncline_t_<8 hex>_…`), a config with one pipeline MariaDB → PostgreSQL
 * (autoCreate), helpers to query MariaDB and to read a change topic decoded.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { parseConfig } from '../../../src/core/config/load.js';
import type { SynclineConfig } from '../../../src/core/config/schema.js';
import type { Runtime } from '../../../src/runtime.js';
import { AvroCodec } from '../../../src/core/codec.js';
import { envelopeFromAvro } from '../../../src/core/avro.js';
import type { ChangeEvent } from '../../../src/core/envelope.js';
import { topics } from '../../../src/core/kafka.js';
import { createDb, deleteTopics, dropDb, PG, readTopic, sql, uid } from '../../../test/helpers.js';

export const MY = { host: '127.0.0.1', port: 3306, user: 'root' };

export async function my(database: string | undefined, sql: string, params: unknown[] = []): Promise<mysql.RowDataPacket[]> {
  const c = await mysql.createConnection({ ...MY, database, multipleStatements: true, dateStrings: true, supportBigNumbers: true, bigNumberStrings: true });
  try {
    const [rows] = await c.query(sql, params);
    return rows as mysql.RowDataPacket[];
  } finally {
    await c.end();
  }
}

export interface MyEnv {
  id: string;
  prefix: string;
  pipeline: string;
  /** The MariaDB database (= the tables' schema). */
  db: string;
  targetDb: string;
  configFile: string;
  config: SynclineConfig;
  runtimes: Runtime[];
  cleanup(): Promise<void>;
}

export async function myEnv(tables: string[], opts: { snapshot?: 'initial' | 'never'; source?: Record<string, unknown>; target?: Record<string, unknown> } = {}): Promise<MyEnv> {
  const id = uid();
  const prefix = `t${id}`;
  const db = `syncline_t_${id}_my`;
  const targetDb = `syncline_t_${id}_dst`;
  const pipeline = 'my-sync';
  await my(undefined, `CREATE DATABASE \`${db}\` CHARACTER SET utf8mb4`);
  await createDb(targetDb);
  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 3 },
    defaults: { retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 }, batch: { size: 500 } },
    pipelines: {
      [pipeline]: {
        source: { type: 'mariadb', connection: { ...MY, database: db }, serverId: 100000 + parseInt(id.slice(0, 6), 16), snapshot: opts.snapshot ?? 'initial', heartbeatMs: 500, lingerMs: 5, ...(opts.source ?? {}) },
        target: { type: 'postgres', connection: { ...PG, database: targetDb }, autoCreate: true, ...(opts.target ?? {}) },
        conflict: { strategy: 'source-wins' },
        tables: tables.map((t) => ({ source: `${db}.${t}`, target: `public.${t}` })),
      },
    },
  };
  const dir = mkdtempSync(join(tmpdir(), 'syncline-mysrc-'));
  const configFile = join(dir, 'config.yaml');
  const text = JSON.stringify(doc, null, 2);
  writeFileSync(configFile, text);
  const config = parseConfig(text, configFile, {});
  const runtimes: Runtime[] = [];
  return {
    id, prefix, pipeline, db, targetDb, configFile, config, runtimes,
    async cleanup() {
      await Promise.allSettled(runtimes.map((r) => r.stop()));
      await my(undefined, `DROP DATABASE IF EXISTS \`${db}\``).catch(() => undefined);
      await dropDb(targetDb);
      await deleteTopics(prefix).catch(() => undefined);
    },
  };
}

/** Every change of a table's change topic, decoded (control markers included), in position order. */
export async function changes(env: MyEnv, table: string): Promise<ChangeEvent[]> {
  const codec = new AvroCodec(env.config.schemaRegistry.url);
  const msgs = await readTopic(topics.cdc(env.prefix, env.db, table));
  const out: ChangeEvent[] = [];
  for (const m of msgs) out.push(envelopeFromAvro(await codec.decode(m.value)));
  return out;
}

/** The items table (id, n, label[, extra]) equal in MariaDB and the PostgreSQL target, row for row. */
export async function sameRows(env: MyEnv, extra: boolean): Promise<boolean> {
  const cols = extra ? `, '|', COALESCE(extra, '-')` : '';
  const s = await my(env.db, `SELECT CONCAT(id, '|', n, '|', COALESCE(label, '-')${cols}) AS r FROM items ORDER BY id`);
  const pgCols = extra ? ` || '|' || coalesce(extra::text, '-')` : '';
  const d = await sql(env.targetDb, `select id || '|' || n || '|' || coalesce(label, '-')${pgCols} as r from items order by id`).catch(() => ({ rows: [] as { r: string }[] }));
  return s.length > 0 && JSON.stringify(s.map((x) => x.r)) === JSON.stringify(d.rows.map((x) => x.r));
}
