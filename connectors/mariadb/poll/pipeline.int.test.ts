/**
 * End to end: a real pipeline polling MariaDB (mariadb-poll, SELECT only) → Kafka → MariaDB (sink,
 * autoCreate). Capture runs as a child process (`syncline capture`), the processor and sink here.
 * A snapshot, then concurrent writers (inserts, updates, deletes of a table in hash mode with most
 * MariaDB types; inserts and updates of a table in timestamp mode), the capture killed with SIGKILL
 * twice and started again meanwhile: the target converges to the source row for row (the source read
 * as the MariaDB source reads it, the target as the MariaDB sink fixture reads it: two readers), and
 * nothing is dead-lettered. Run in a non-UTC time zone, written by sessions in +05:30.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { sleep, soak, waitFor } from '../../../test/helpers.js';
import { canon, contractEnv, deadLetters, kill9, stat } from '../../../test/contract/env.js';
import { rowDiff } from '../../../test/contract/sink-contract.js';
import { mariadbSink, readMariadbTarget } from '../contract-fixtures.js';
import { MARIA, mariadbSource, readMariadbSource } from '../source/contract-fixtures.js';

process.env.TZ = 'Pacific/Pago_Pago';

const COLS = ['id', 'gen', 'label', 'tiny', 'uint', 'big', 'price', 'f', 'd', 'born', 'tm', 'dt', 'ts', 'mood', 'flags', 'bits', 'raw', 'doc', 'note'];
const ITEMS = (db: string) => `CREATE TABLE \`${db}\`.items (
  id BIGINT PRIMARY KEY, gen INT NOT NULL, label VARCHAR(60) NOT NULL, tiny TINYINT UNSIGNED, uint INT UNSIGNED,
  big BIGINT UNSIGNED, price DECIMAL(12,2), f FLOAT, d DOUBLE, born DATE, tm TIME(6), dt DATETIME(6),
  ts TIMESTAMP(6) NULL DEFAULT NULL, mood ENUM('sad','ok','happy ✓'), flags SET('a','b','c'),
  bits BIT(10), raw VARBINARY(40), doc JSON, note TEXT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`;
const EVENTS = (db: string) => `CREATE TABLE \`${db}\`.events (id INT, kind VARCHAR(10), payload TEXT,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), PRIMARY KEY (kind, id)) ENGINE=InnoDB`;

function itemValues(id: number, gen: number): unknown[] {
  const k = id * 7 + gen * 13;
  const t = new Date(Date.UTC(2001, 0, 1) + k * 1_000_003).toISOString();
  const micros = String(k % 1000).padStart(3, '0');
  return [
    id, gen, `item ${id} g${gen} 😀 'q' \\ ,`, k % 256, 4294967295 - k, (18446744073709551615n - BigInt(k)).toString(),
    `${k % 100000}.${String(k % 100).padStart(2, '0')}`, k / 3, -k / 7, t.slice(0, 10), `${String(k % 800).padStart(2, '0')}:01:02.${String(k % 1_000_000).padStart(6, '0')}`,
    `${t.slice(0, 10)} ${t.slice(11, 23)}${micros}`, `${t.slice(0, 10)} ${t.slice(11, 23)}${micros}`,
    ['sad', 'ok', 'happy ✓'][k % 3], ['', 'a', 'a,c', 'b,c'][k % 4], k % 1024, Buffer.from(`\u0000${id}:${gen}\u00ff`, 'latin1'),
    JSON.stringify({ id, gen, e: '😀' }), id % 5 === 0 ? null : `note ${gen}\nline`,
  ];
}

const KILLS = soak(1, 2);
test(`a pipeline polling MariaDB converges on a MariaDB target through concurrent writes and ${KILLS === 1 ? 'a kill -9' : `${KILLS} kill -9`} of capture`, async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), 'syncline-poll-state-'));
  let db = '';
  const env = await contractEnv({
    source: async (id) => {
      const s = await mariadbSource.createSource(id);
      db = s.database;
      return {
        ...s,
        config: () => ({
          type: 'mariadb-poll', connection: { ...MARIA, database: s.database }, intervalMs: 200, pageSize: 300, stateDir, lingerMs: 5,
          tables: { [`${s.database}.items`]: { mode: 'hash', chunkSize: 200 }, [`${s.database}.events`]: { mode: 'timestamp', column: 'updated_at', overlapMs: 2000 } },
        }),
      };
    },
    target: (id) => mariadbSink.createTarget(id),
  }, ['items', 'events']);
  t.after(async () => {
    await env.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const conn = await mysql.createConnection({ ...MARIA, database: db, charset: 'UTF8MB4_GENERAL_CI' });
  t.after(() => conn.end());
  await conn.query(`SET time_zone = '+05:30'`);
  await conn.query(ITEMS(db));
  await conn.query(EVENTS(db));
  const INSERT = `INSERT INTO items (${COLS.join(', ')}) VALUES (${COLS.map(() => '?').join(', ')})`;
  for (let i = 1; i <= 1000; i++) await conn.query(INSERT, itemValues(i, 1));
  await conn.query(`INSERT INTO events (id, kind, payload) SELECT seq, CONCAT('k', seq % 3), CONCAT('p', seq) FROM seq_1_to_300`);

  await env.start(['process', 'sink']);
  const rt = env.runtimes[0]!;
  let capture = env.spawnCapture();

  let writing = true;
  let txs = 0;
  const writers = Array.from({ length: 3 }, async (_, w) => {
    const c = await mysql.createConnection({ ...MARIA, database: db, charset: 'UTF8MB4_GENERAL_CI' });
    await c.query(`SET time_zone = '+05:30'`);
    let next = 2000 + w;
    try {
      for (let i = 0; writing; i++) {
        const r = (i * 7 + w) % 10;
        const id = ((i * 37 + w * 11) % 1000) + 1;
        if (r < 3) await c.query(INSERT, itemValues((next += 3), 1));
        else if (r < 6) await c.query(`UPDATE items SET ${COLS.slice(1).map((x) => `${x} = ?`).join(', ')} WHERE id = ?`, [...itemValues(id, i + 2).slice(1), id]);
        else if (r < 7) await c.query(`DELETE FROM items WHERE id = ?`, [id]);
        else if (r < 9) await c.query(`UPDATE events SET payload = CONCAT(payload, '!') WHERE id = ?`, [(i % 300) + 1]);
        else await c.query(`INSERT IGNORE INTO events (id, kind, payload) VALUES (?, 'w', 'new')`, [(next += 3)]);
        txs++;
        if (i % 10 === 0) await sleep(5);
      }
    } finally {
      await c.end();
    }
  });
  await waitFor('the snapshot to reach the target', async () => (await readMariadbTarget(env.target.database, 'items', ['id'])).length >= 900, 90_000, 300);
  for (let round = 0; round < KILLS; round++) {
    await sleep(1500);
    await kill9(capture);
    await sleep(300);
    capture = env.spawnCapture();
  }
  await sleep(1500);
  writing = false;
  await Promise.all(writers);
  assert.ok(txs > 100, `${txs} writes`);

  for (const [table, key] of [['items', ['id']], ['events', ['kind', 'id']]] as const) {
    let diff: string[] = [];
    await waitFor(`${table}: target row for row as the source`, async () => {
      const [src, dst] = [await readMariadbSource(db, table, [...key]), await readMariadbTarget(env.target.database, table, [...key])];
      diff = rowDiff(src, dst);
      return canon(src) === canon(dst);
    }, 120_000, 500).catch((err: Error) => assert.fail(`${err.message}\n${diff.slice(0, 20).join('\n')}`));
  }
  assert.equal(stat(rt, 'deadLettered'), 0);
  assert.deepEqual((await deadLetters(env)).map((l) => `${l.key}: ${l.errorCode} ${l.errorMessage}`), []);
  const n = (await readMariadbSource(db, 'items', ['id'])).length;
  console.log(`mariadb-poll → mariadb: ${n} item rows, ${txs} concurrent writes, capture killed twice`);
});
