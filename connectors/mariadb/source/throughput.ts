/**
 * Throughput of the MariaDB source's binlog path on a simple table (no Kafka: the changes go to a
 * counting handler), so it measures the binlog reader (zongji) plus our canonical conversion.
 *   npx tsx connectors/mariadb/source/throughput.ts [rows=200000]
 * Writes ROWS rows in transactions of 1,000 into a fresh database syncline_t_<8 hex>_tp (dropped
 * afterwards), then streams them from the binlog position before the writes and reports changes/s.
 */
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { pino } from 'pino';
import type { CaptureHandler } from '../../../src/capture/source.js';
import type { CaptureOffset, CaptureOffsets } from '../../../src/capture/offsets.js';
import { MariadbSource, binlogLsn } from './mariadb-source.js';
import { mariadbSourceSpec } from './spec.js';

const ROWS = Number(process.argv[2] ?? 200_000);
const db = `syncline_t_${randomBytes(4).toString('hex')}_tp`;
const conn = await mysql.createConnection({ host: '127.0.0.1', user: 'root', multipleStatements: true });
try {
  await conn.query(`CREATE DATABASE ${db}; CREATE TABLE ${db}.items (id BIGINT PRIMARY KEY, n INT NOT NULL, label VARCHAR(50), at DATETIME(6))`);
  const [[st]] = await conn.query<mysql.RowDataPacket[]>('SHOW MASTER STATUS');
  const from = binlogLsn(String(st!.File), Number(st!.Position));
  const w0 = Date.now();
  for (let i = 0; i < ROWS; i += 1000) {
    await conn.query(`INSERT INTO ${db}.items SELECT ${i} + seq, seq, CONCAT('label-', seq), NOW(6) FROM ${db}.seq_1_to_1000`);
  }
  const writeMs = Date.now() - w0;

  const config = mariadbSourceSpec.parse({ type: 'mariadb', connection: { database: db }, serverId: 4000000000 + Math.floor(Math.random() * 1e6) });
  const source = new MariadbSource(config, 'throughput', pino({ level: 'warn' }));
  const record: CaptureOffset = { slot: 'mariadb_throughput', snapshot: 'skipped', consistentPoint: from, tables: [`${db}.items`], at: '', position: from };
  let seen = 0;
  let t0 = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const handler: CaptureHandler = {
    offsets: { read: async () => record, write: async () => undefined } as unknown as CaptureOffsets,
    running() {}, async resuming() {}, async columns() {}, begin() {},
    async change() {
      if (seen++ === 0) t0 = Date.now();
      if (seen === ROWS) done();
    },
    commit(end) { source.acknowledge(end); }, async flush() {}, idle: () => true, stopped: false,
  };
  await source.connect();
  await source.describe([{ source: `${db}.items` } as never]);
  const running = source.run(handler).catch((err: unknown) => { console.error(err); process.exit(1); });
  await finished;
  const ms = Date.now() - t0;
  await source.quiesce();
  await source.stop();
  await running;
  console.log(JSON.stringify({ rows: ROWS, writeMs, streamMs: ms, changesPerSecond: Math.round(ROWS / (ms / 1000)) }));
} finally {
  await conn.query(`DROP DATABASE IF EXISTS ${db}`);
  await conn.end();
}
