/**
 * End to end: a real pipeline MariaDB (binlog source) → Kafka → MariaDB (sink, autoCreate), run
 * in-process with the Runtime (capture, process, sink). A snapshot of existing rows, then four
 * concurrent writers inserting, updating and deleting, then re-inserts of every deleted key (some
 * as delete + re-insert in one transaction). The two sides converge: every row's hash of its
 * canonical values is the same on both, the source's read as the source's snapshot reads it
 * (./source/contract-fixtures.ts readMariadbSource: canonicalValue), the target's as the sink reads it
 * (./contract-fixtures.ts readMariadbTarget: fromMaria) — two independent readers; and nothing was
 * dead-lettered. Run in a non-UTC time zone (node's TZ) and written by sessions in +05:30.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import mysql from 'mysql2/promise';
import type { Row } from '../../src/core/envelope.js';
import { sleep, waitFor } from '../../test/helpers.js';
import { canon, contractEnv, deadLetters, stat } from '../../test/contract/env.js';
import { rowDiff } from '../../test/contract/sink-contract.js';
import { mariadbSink, readMariadbTarget } from './contract-fixtures.js';
import { MARIA, mariadbSource, readMariadbSource } from './source/contract-fixtures.js';
import { quoteIdent } from './ddl.js';

process.env.TZ = 'Pacific/Pago_Pago';

const TABLE = 'items';

const DDL = (db: string) => `CREATE TABLE ${quoteIdent(db)}.${TABLE} (
  id BIGINT PRIMARY KEY, gen INT NOT NULL, label VARCHAR(60) NOT NULL, tiny TINYINT UNSIGNED, uint INT UNSIGNED,
  big BIGINT UNSIGNED, price DECIMAL(12,2), f FLOAT, d DOUBLE, born DATE, tm TIME(6), dt DATETIME(6),
  ts TIMESTAMP(6) NULL DEFAULT NULL, yr YEAR, mood ENUM('sad','ok','happy ✓'), flags SET('a','b','c'),
  bits BIT(10), raw VARBINARY(40), doc JSON, note TEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`;

const COLS = ['id', 'gen', 'label', 'tiny', 'uint', 'big', 'price', 'f', 'd', 'born', 'tm', 'dt', 'ts', 'yr', 'mood', 'flags', 'bits', 'raw', 'doc', 'note'];

/** One row's values; `gen` varies every column (and NULLs some). */
function rowValues(id: number, gen: number): unknown[] {
  const k = id * 7 + gen * 13;
  const t = new Date(Date.UTC(2001, 0, 1) + k * 1_000_003).toISOString(); // 'YYYY-MM-DDTHH:MM:SS.mmmZ'
  const micros = String(k % 1000).padStart(3, '0');
  const h = (k % 1677) - 838;
  const tm = `${h < 0 ? '-' : ''}${String(Math.abs(h)).padStart(2, '0')}:${String(k % 60).padStart(2, '0')}:${String((k * 7) % 60).padStart(2, '0')}.${String(k % 1_000_000).padStart(6, '0')}`;
  return [
    id, gen, `item ${id} g${gen} 😀 ✓ 'q' \\`, k % 256, 4294967295 - k,
    (18446744073709551615n - BigInt(k)).toString(), `${k % 100000}.${String(k % 100).padStart(2, '0')}`, k / 3, -k / 7,
    t.slice(0, 10), tm, `${t.slice(0, 10)} ${t.slice(11, 23)}${micros}`,
    `${t.slice(0, 10)} ${t.slice(11, 23)}${micros}`, // in the writers' zone (+05:30)
    1901 + (k % 255), ['sad', 'ok', 'happy ✓'][k % 3], ['', 'a', 'a,c', 'b,c'][k % 4],
    k % 1024, Buffer.from(`\u0000${id}:${gen}\u00ff`, 'latin1'), JSON.stringify({ id, gen, e: '😀', n: [1, 2.5, null] }),
    id % 5 === 0 ? null : `note ${gen}\nline`,
  ];
}

const INSERT = (db: string) => `INSERT INTO ${quoteIdent(db)}.${TABLE} (${COLS.join(', ')}) VALUES (${COLS.map(() => '?').join(', ')})`;
const UPDATE = (db: string) => `UPDATE ${quoteIdent(db)}.${TABLE} SET ${COLS.slice(1).map((c) => `${c} = ?`).join(', ')} WHERE id = ?`;

type Op = { kind: 'insert' | 'update' | 'delete'; id: number; gen: number };

/** A writer's session: one transaction per call, run again whole if InnoDB picks it as a deadlock victim. */
async function session(db: string) {
  const c = await mysql.createConnection({ ...MARIA, database: db, charset: 'UTF8MB4_GENERAL_CI' });
  await c.query(`SET time_zone = '+05:30'`);
  return {
    async tx(ops: Op[]) {
      for (let attempt = 0; ; attempt++) {
        try {
          await c.query('START TRANSACTION');
          for (const o of ops) {
            if (o.kind === 'insert') await c.query(INSERT(db), rowValues(o.id, o.gen));
            else if (o.kind === 'update') await c.query(UPDATE(db), [...rowValues(o.id, o.gen).slice(1), o.id]);
            else await c.query(`DELETE FROM ${quoteIdent(db)}.${TABLE} WHERE id = ?`, [o.id]);
          }
          await c.query('COMMIT');
          return;
        } catch (err) {
          await c.query('ROLLBACK').catch(() => undefined);
          if (![1213, 1205].includes((err as { errno?: number }).errno ?? 0) || attempt > 10) throw err;
        }
      }
    },
    close: () => c.end(),
  };
}

/** Key → hash of the row's canonical values. */
const hashes = (rows: Row[]) => new Map(rows.map((r) => [String(r.id), createHash('sha1').update(canon(r)).digest('hex')]));

test('a pipeline MariaDB → Kafka → MariaDB converges: snapshot, concurrent inserts/updates/deletes, re-inserts; per-row canonical hashes equal, no dead letter', async (t) => {
  const env = await contractEnv({ source: (id) => mariadbSource.createSource(id), target: (id) => mariadbSink.createTarget(id) }, [TABLE]);
  t.after(() => env.cleanup());
  const db = env.source.database;

  // Snapshot rows: 1..2000, generation 1.
  const c = await mysql.createConnection({ ...MARIA, database: db });
  await c.query(DDL(db));
  await c.end();
  const setup = await session(db);
  for (let i = 0; i < 2000; i += 200) await setup.tx(Array.from({ length: 200 }, (_, k) => ({ kind: 'insert', id: i + k + 1, gen: 1 })));
  await setup.close();

  const rt = await env.start(['capture', 'process', 'sink']);

  // Four writers, each owning the keys id % 4 === w: inserts of new keys, updates and deletes of its
  // live keys, while the snapshot is read and after.
  const deleted: number[] = [];
  let writing = true;
  let txs = 0;
  const writers = Array.from({ length: 4 }, async (_, w) => {
    const s = await session(db);
    const alive = Array.from({ length: 500 }, (_, i) => 4 * i + w + 1);
    const gen = new Map<number, number>();
    let next = 2000 + w + 1;
    try {
      while (writing) {
        const ops: Op[] = [];
        for (let i = 0; i < 3; i++) {
          next += 4;
          ops.push({ kind: 'insert', id: next, gen: 1 });
          alive.push(next);
        }
        for (let i = 0; i < 3; i++) {
          const id = alive[Math.floor(Math.random() * alive.length)]!;
          const g = (gen.get(id) ?? 1) + 1;
          gen.set(id, g);
          ops.push({ kind: 'update', id, gen: g });
        }
        const victim = alive.splice(Math.floor(Math.random() * alive.length), 1)[0]!;
        ops.push({ kind: 'delete', id: victim, gen: 0 });
        deleted.push(victim);
        await s.tx(ops);
        txs++;
      }
    } finally {
      await s.close();
    }
  });
  await waitFor('the snapshot to reach the target', async () => (await readMariadbTarget(env.target.database, TABLE, ['id'])).length >= 2000, 60_000, 300);
  await sleep(3000);
  writing = false;
  await Promise.all(writers);

  // Re-inserts of every deleted key with new values: half one by one, half as delete + re-insert of
  // a live key and re-insert of a deleted one in one transaction.
  const s = await session(db);
  try {
    for (let i = 0; i < deleted.length; i++) {
      const id = deleted[i]!;
      if (i % 2 === 0) await s.tx([{ kind: 'insert', id, gen: 100 }]);
      else await s.tx([{ kind: 'insert', id, gen: 101 }, { kind: 'delete', id, gen: 0 }, { kind: 'insert', id, gen: 102 }]);
    }
  } finally {
    await s.close();
  }
  assert.ok(txs > 50 && deleted.length > 50, `writers committed ${txs} transactions, deleted ${deleted.length} keys`);

  // Catches: a change lost or applied twice/out of order anywhere on the way (binlog read, Kafka,
  // sink), a type carried lossily between the two MariaDBs (the hashes cover every column), the
  // deleted keys' re-inserts skipped as stale, a delete applied after the re-insert.
  let diff: string[] = [];
  const differing = async () => {
    const [src, dst] = [await readMariadbSource(db, TABLE, ['id']), await readMariadbTarget(env.target.database, TABLE, ['id'])];
    const [hs, hd] = [hashes(src), hashes(dst)];
    const keys = new Set([...hs.keys(), ...hd.keys()]);
    diff = rowDiff(src, dst);
    return [...keys].filter((k) => hs.get(k) !== hd.get(k));
  };
  await waitFor('every row of the target hashes as the source row', async () => (await differing()).length === 0, 90_000, 500).catch((err: Error) => assert.fail(`${err.message}\n${diff.slice(0, 20).join('\n')}`));

  const src = await readMariadbSource(db, TABLE, ['id']);
  // Catches a comparison that proves nothing: the source holds every re-inserted key with its last values.
  assert.equal(src.length, 2000 + txs * 3, 'every key alive at the end (deletes all re-inserted)');
  for (const id of deleted.slice(0, 2)) assert.equal(Number(src.find((r) => String(r.id) === String(id))?.gen), 100 + 2 * (deleted.indexOf(id) % 2));
  // Catches a row refused by the sink (a value MariaDB → MariaDB cannot carry) dead-lettered instead of applied.
  assert.equal(stat(rt, 'deadLettered'), 0, 'the applier dead-lettered nothing');
  assert.deepEqual((await deadLetters(env)).map((l) => `${l.key}: ${l.errorCode} ${l.errorMessage}`), [], 'no dead letter in the store');
  // The comparison itself can fail: one microsecond more in one target row is one differing row.
  const m = await mysql.createConnection({ ...MARIA, database: env.target.database });
  await m.query(`UPDATE ${TABLE} SET dt = dt + INTERVAL 1 MICROSECOND WHERE id = 7`);
  await m.end();
  assert.deepEqual(await differing(), ['7'], 'a changed target row is told apart');
  assert.deepEqual(diff, ['id=7 dt: expected "' + String(src.find((r) => String(r.id) === '7')!.dt) + '", got "' + String((await readMariadbTarget(env.target.database, TABLE, ['id'])).find((r) => String(r.id) === '7')!.dt) + '"']);
  console.log(`mariadb → mariadb: ${src.length} rows, ${txs} concurrent transactions, ${deleted.length} deletes re-inserted`);
});
