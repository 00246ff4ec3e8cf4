/**
 * The polling source's modes against a real MariaDB (the dialect's SQL: QUOTE/MD5 row hash and its
 * digest, the DATETIME overlap, keyset pages over a composite key): timestamp mode catches
 * same-timestamp rows and a transaction that commits after a pass moved past its timestamp; version
 * mode converges under concurrent writers; hash mode finds deletes, and an idle pass reads no chunk
 * (the database's digest equals the one computed from the stored hashes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { pino } from 'pino';
import { sleep, uid, waitFor } from '../../../test/helpers.js';
import { PollSource } from '../../../src/capture/poll/poll-source.js';
import { pollTableSpec, type PollTableConfig } from '../../../src/capture/poll/spec.js';
import { applyChanges, liveRows, MemoryHandler, MemoryOffsets } from '../../../src/capture/poll/harness.js';
import { positionToBigInt, type Row } from '../../../src/core/envelope.js';
import { keyString } from '../../../src/sink/sink.js';
import { canonicalTableName } from '../../../src/core/names.js';
import { readMariadbSource, MARIA } from '../source/contract-fixtures.js';
import { MariadbPollDialect } from './dialect.js';

process.env.TZ = 'Pacific/Pago_Pago';
const log = pino({ level: 'silent' });

async function start(db: string, stateDir: string, tables: Record<string, Partial<PollTableConfig>>) {
  const parsed = Object.fromEntries(Object.entries(tables).map(([k, v]) => [k, pollTableSpec.parse(v)]));
  const source = new PollSource(new MariadbPollDialect({ ...MARIA, database: db, ssl: false, sslVerify: true }, 'poll-test', () => undefined), {
    pipeline: 'poll-test', log, streamId: 'mariadb_poll_test', intervalMs: 100, pageSize: 7, stateDir, tables: parsed, batchSize: 100, lingerMs: 0,
  });
  const handler = new MemoryHandler(new MemoryOffsets(), source);
  await source.connect();
  await source.describe(Object.keys(tables).map((name) => ({ source: canonicalTableName(name) })));
  const done = source.run(handler);
  done.catch(() => undefined);
  return { source, handler, done };
}

type Run = Awaited<ReturnType<typeof start>>;

async function nextPass(r: Run): Promise<void> {
  const target = await r.source.position();
  await waitFor(`confirmed to reach ${target}`, async () => r.source.confirmed !== '' && positionToBigInt(r.source.confirmed) >= positionToBigInt(target), 30_000, 20);
}

async function stop(r: Run): Promise<void> {
  await r.source.quiesce();
  await r.source.stop();
  await r.done;
}

async function assertConverged(r: Run, db: string, table: string, key: string[]): Promise<void> {
  const model = liveRows(applyChanges(r.handler.changes.filter((e) => e.source.table === table), key));
  const rows = await readMariadbSource(db, table, key);
  assert.equal(model.size, rows.length, `${table}: emitted model ${model.size} rows, table ${rows.length}`);
  for (const row of rows) assert.deepEqual(model.get(keyString(Object.fromEntries(key.map((k) => [k, row[k]!])) as Row)), row);
}

test('MariaDB: timestamp overlap, version under concurrent writers, hash deletes and idle passes that read no chunk', async (t) => {
  const db = `syncline_t_${uid()}_mpoll`;
  const admin = await mysql.createConnection({ ...MARIA });
  await admin.query(`CREATE DATABASE ${db} CHARACTER SET utf8mb4`);
  const stateDir = mkdtempSync(join(tmpdir(), 'syncline-mpoll-'));
  const pool = mysql.createPool({ ...MARIA, database: db, connectionLimit: 6 });
  t.after(async () => {
    await pool.end();
    await admin.query(`DROP DATABASE IF EXISTS ${db}`);
    await admin.end();
    rmSync(stateDir, { recursive: true, force: true });
  });
  await pool.query(`CREATE TABLE ts (id INT PRIMARY KEY, v VARCHAR(20), updated_at DATETIME(6) NOT NULL)`);
  await pool.query(`CREATE TABLE vt (id INT PRIMARY KEY, v VARCHAR(40), version BIGINT NOT NULL)`);
  await pool.query(`CREATE TABLE ht (a INT, b VARCHAR(10), v TEXT, n DECIMAL(10,2), raw VARBINARY(10), PRIMARY KEY (b, a))`);
  await pool.query(`INSERT INTO ts SELECT seq, CONCAT('v', seq), '2026-01-01 00:00:00' FROM seq_1_to_20`);
  await pool.query(`INSERT INTO vt SELECT seq, CONCAT('v', seq), seq FROM seq_1_to_30`);
  await pool.query(`INSERT INTO ht SELECT seq, CONCAT('k', seq % 4), IF(seq % 5 = 0, NULL, CONCAT('v,', seq)), seq / 3, UNHEX(LPAD(HEX(seq), 6, '0')) FROM seq_1_to_60`);

  const r = await start(db, stateDir, {
    [`${db}.ts`]: { mode: 'timestamp', column: 'updated_at', overlapMs: 3000 },
    [`${db}.vt`]: { mode: 'version', column: 'version', overlap: 100 }, // versions are taken before commit, by concurrent writers
    [`${db}.ht`]: { mode: 'hash', chunkSize: 10 },
  });
  await nextPass(r);

  // timestamp: a row with the watermark's own timestamp, and a transaction committing late.
  await pool.query(`INSERT INTO ts VALUES (100, 'same', '2026-01-01 00:00:00')`);
  const late = await pool.getConnection();
  await late.query('START TRANSACTION');
  await late.query(`INSERT INTO ts VALUES (200, 'late', UTC_TIMESTAMP(6))`);
  await sleep(20);
  await pool.query(`INSERT INTO ts VALUES (201, 'after', UTC_TIMESTAMP(6))`);
  await nextPass(r);
  assert.ok(r.handler.changes.some((e) => e.after?.id === 201));
  await late.query('COMMIT');
  late.release();

  // version and hash under concurrent writers.
  let writing = true;
  let version = 1000;
  // InnoDB picks deadlock victims among concurrent writers of one table: such a statement committed nothing and is run again.
  const q = async (text: string, params: unknown[]) => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await pool.query(text, params);
      } catch (err) {
        if (![1213, 1205].includes((err as { errno?: number }).errno ?? 0) || attempt > 10) throw err;
      }
    }
  };
  const writers = [0, 1, 2].map(async (w) => {
    for (let i = 0; writing; i++) {
      const id = ((i * 7 + w * 13) % 90) + 1;
      await q(`INSERT INTO vt VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v), version = VALUES(version)`, [(id % 40) + 1, `w${w}-${i}`, ++version]);
      const k = i % 10;
      if (k < 4) await q(`INSERT IGNORE INTO ht VALUES (?, ?, 'new', 1, X'00ff')`, [id, `k${id % 4}`]);
      else if (k < 8) await q(`UPDATE ht SET v = CONCAT(COALESCE(v, ''), '.'), n = n + 1 WHERE a = ?`, [id]);
      else await q(`DELETE FROM ht WHERE a = ?`, [id]);
      if (i % 4 === 0) await sleep(5);
    }
  });
  await sleep(2000);
  writing = false;
  await Promise.all(writers);
  await nextPass(r);
  await nextPass(r);

  const seen = (id: number) => r.handler.changes.filter((e) => e.op === 'u' && e.source.table === 'ts' && e.after?.id === id).length;
  assert.equal(seen(100), 1, 'same-timestamp row');
  assert.equal(seen(200), 1, 'late-committing row');
  assert.ok(r.handler.changes.some((e) => e.op === 'd' && e.source.table === 'ht'), 'hash finds deletes');
  await assertConverged(r, db, 'ts', ['id']);
  await assertConverged(r, db, 'vt', ['id']);
  await assertConverged(r, db, 'ht', ['b', 'a']);

  // Idle passes: every chunk's digest compared, none read (the server's digest is the stored one).
  const [checked, read, n] = [r.source.stats.chunksChecked, r.source.stats.chunksRead, r.handler.changes.length];
  await nextPass(r);
  await nextPass(r);
  assert.ok(r.source.stats.chunksChecked > checked);
  assert.equal(r.source.stats.chunksRead, read, 'no chunk read in an idle pass');
  assert.equal(r.handler.changes.length, n, 'nothing emitted in an idle pass');
  await stop(r);
});
