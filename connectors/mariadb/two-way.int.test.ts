/**
 * Two-way sync PostgreSQL A ⇄ MariaDB B on the real stack: a-to-b (PostgreSQL source, MariaDB
 * target) and b-to-a (MariaDB binlog source, PostgreSQL target), each the other's peer, B's change
 * topics under their own changeTopicPrefix, latest-timestamp on updated_at both ways. The MariaDB
 * sink tags its sessions with server ids registered in B's syncline_origins (./origins.ts), the
 * MariaDB source reports those names, and the capture stages skip the peer's writes / mark the
 * re-published ones exactly as for a PostgreSQL pair.
 *
 * Cases: identical seed rows, then ~15 s of concurrent random updates, upserts and deletes on both
 * sides: A and B end equal row for row (canonical values, read through each side's sink), the
 * captures skipped the peer's writes (echoSkipped > 0 on both) and nothing keeps moving, no dead
 * letter; and the deterministic sequences insert / delete / re-insert on the other side / delete in
 * both directions (neither side keeps the row).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { pino } from 'pino';
import '../index.js';
import { parseConfig } from '../../src/core/config/load.js';
import { Runtime } from '../../src/runtime.js';
import { rowHash } from '../../src/core/hash.js';
import { keyString } from '../../src/sink/sink.js';
import { PostgresSink } from '../postgres/sink.js';
import { MariadbSink } from './sink.js';
import { ORIGINS_TABLE } from './origins.js';
import { createDb, deleteTopics, dropDb, dropSlots, PG, sleep, sql, uid, waitFor, withClient } from '../../test/helpers.js';

const MARIA = { host: '127.0.0.1', port: 3306, user: 'root' };
const log = pino({ level: 'silent' });
const SEED_TS = '2024-01-01 00:00:00.123456';

const PG_DDL = `create table items (id int primary key, name text not null, qty int not null, updated_at timestamptz not null default clock_timestamp())`;
const MARIA_DDL = `CREATE TABLE items (id INT PRIMARY KEY, name TEXT NOT NULL, qty INT NOT NULL, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`;

async function maria(database?: string): Promise<mysql.Connection> {
  const c = await mysql.createConnection({ ...MARIA, ...(database ? { database } : {}) });
  await c.query(`SET time_zone = '+00:00'`);
  return c;
}

/** A (PostgreSQL) ⇄ B (MariaDB), `rows` identical rows on both, running, both snapshots applied. */
async function pair(t: TestContext, rows: number) {
  const id = uid();
  const prefix = `t${id}`;
  const A = `syncline_t_${id}_a`;
  const B = `syncline_t_${id}_b`;
  await createDb(A);
  const admin = await maria();
  await admin.query(`CREATE DATABASE ${B}`);
  const pgRead = new PostgresSink({ type: 'postgres', connection: { ...PG, database: A, ssl: false, sslVerify: true }, autoCreate: false, autoEvolve: false, poolSize: 2, lockTimeoutMs: 10000 }, { pipeline: 'check', log });
  const mariaRead = new MariadbSink({ type: 'mariadb', connection: { ...MARIA, database: B, ssl: false, sslVerify: true }, poolSize: 2, autoCreate: false, autoEvolve: false, lockTimeoutS: 10 }, { pipeline: 'check', log });
  let rt: Runtime | undefined;
  t.after(async () => {
    await rt?.stop().catch(() => undefined);
    await Promise.allSettled([pgRead.close(), mariaRead.close()]);
    await dropSlots(prefix);
    await sql('postgres', `select pg_replication_origin_drop(roname) from pg_replication_origin where roname like $1`, [`syncline:${prefix}:%`]).catch(() => undefined);
    await dropDb(A);
    await deleteTopics(prefix).catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${B}`);
    await admin.end();
  });

  await sql(A, PG_DDL);
  await sql(A, `insert into items (id, name, qty, updated_at) select g, 'item ' || g, g, timestamptz '${SEED_TS}+00' from generate_series(1, $1::int) g`, [rows]);
  await admin.query(`USE ${B}`);
  await admin.query(`SET time_zone = '+00:00'`);
  await admin.query(MARIA_DDL);
  if (rows > 0) await admin.query(`INSERT INTO items (id, name, qty, updated_at) VALUES ${Array.from({ length: rows }, (_, i) => `(${i + 1}, 'item ${i + 1}', ${i + 1}, '${SEED_TS}')`).join(',')}`);

  const conflict = { strategy: 'latest-timestamp', field: 'updated_at' };
  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 3 },
    defaults: { retry: { retries: 3, initialDelayMs: 200, maxDelayMs: 2000 }, batch: { size: 500 } },
    pipelines: {
      'a-to-b': {
        source: { type: 'postgres', connection: { ...PG, database: A }, slot: `${prefix}_a_to_b`, publication: `${prefix}_a_to_b`, snapshot: 'initial', heartbeatMs: 1000, lingerMs: 5 },
        target: { type: 'mariadb', connection: { ...MARIA, database: B }, poolSize: 4 },
        peer: 'b-to-a',
        tables: [{ source: 'public.items', target: `${B}.items` }],
        conflict,
      },
      'b-to-a': {
        // A replica server id of its own (the default derives from the pipeline name, which other tests share).
        source: { type: 'mariadb', connection: { ...MARIA, database: B }, serverId: 100000 + parseInt(id.slice(0, 6), 16), snapshot: 'initial', heartbeatMs: 1000, lingerMs: 5 },
        target: { type: 'postgres', connection: { ...PG, database: A } },
        peer: 'a-to-b',
        changeTopicPrefix: `${prefix}.b`,
        tables: [{ source: `${B}.items`, target: 'public.items' }],
        conflict,
      },
    },
  };
  const file = join(mkdtempSync(join(tmpdir(), 'syncline-twoway-maria-')), 'config.yaml');
  writeFileSync(file, JSON.stringify(doc, null, 2));
  rt = new Runtime(parseConfig(JSON.stringify(doc, null, 2), file, {}), new Set(['capture', 'process', 'sink']));
  const { done } = await rt.start();
  done.catch(() => undefined);
  const h = (n: string) => rt!.pipelines.find((p) => p.name === n)!;

  /** Every id on either side → [A's row hash, B's row hash] (canonical values through the sinks' readRows). */
  const compare = async () => {
    const idsA = (await sql(A, 'select id from items')).rows.map((r) => r.id as number);
    const [mrows] = (await admin.query(`SELECT id FROM ${B}.items`)) as unknown as [{ id: number }[]];
    const keys = [...new Set([...idsA, ...mrows.map((r) => Number(r.id))])].sort((x, y) => x - y).map((i) => ({ id: i }));
    const [ra, rb] = await Promise.all([pgRead.readRows('public.items', keys), mariaRead.readRows(`${B}.items`, keys)]);
    const diff: string[] = [];
    for (const k of keys) {
      const ks = keyString(k);
      const a = ra.get(ks);
      const b = rb.get(ks);
      if ((a ? rowHash(a) : 'none') !== (b ? rowHash(b) : 'none')) diff.push(`${k.id}: ${a ? JSON.stringify(a) : 'none'} | ${b ? JSON.stringify(b) : 'none'}`);
    }
    return { count: keys.length, rowsA: ra.size, rowsB: rb.size, diff };
  };
  const same = async () => (await compare()).diff.length === 0;
  // Both snapshots went through (each side's rows met the identical other side: unchanged).
  await waitFor('both snapshots applied', async () => (h('a-to-b').applier?.stats.received ?? 0) >= rows && (h('b-to-a').applier?.stats.received ?? 0) >= rows, 120000);
  assert.ok(await same(), 'A and B start identical');
  return { A, B, h, same, compare, admin, rt };
}

test('A (PostgreSQL) ⇄ B (MariaDB): ~15 s of concurrent random updates, upserts and deletes on both sides end with A = B, no echo, no ping-pong, nothing dead-lettered', async (t) => {
  const ROWS = 300;
  const KEYS = 400;
  const { A, B, h, compare, admin } = await pair(t, ROWS);
  const tagged = (await admin.query(`SELECT origin FROM ${B}.${ORIGINS_TABLE} ORDER BY origin`)) as unknown as [{ origin: string }[]];
  t.diagnostic(`origins registered in B: ${tagged[0].map((r) => r.origin).join(', ')}`);

  const ops: Record<string, number> = {};
  const done = { A: 0, B: 0, failed: 0 };
  const until = Date.now() + 15000;
  const RATE = 60; // transactions per second per side
  const CLIENTS = 3;
  const everyMs = (1000 * CLIENTS) / RATE;
  const pick = () => {
    const dice = Math.random();
    const op = dice < 0.45 ? 'update' : dice < 0.8 ? 'upsert' : 'delete';
    ops[op] = (ops[op] ?? 0) + 1;
    return { id: 1 + Math.floor(Math.random() * KEYS), op };
  };
  const paced = async (run: (i: number) => Promise<void>) => {
    let next = Date.now() + Math.random() * everyMs;
    let i = 0;
    while (next < until) {
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      next += everyMs;
      await run(++i);
    }
  };
  const clientA = (n: number) =>
    withClient(A, (c) =>
      paced(async (i) => {
        const { id, op } = pick();
        const name = `A${n}-${i}`;
        try {
          if (op === 'update') await c.query(`update items set name = $2, qty = qty + 1, updated_at = clock_timestamp() where id = $1`, [id, name]);
          else if (op === 'upsert') await c.query(`insert into items (id, name, qty) values ($1, $2, 0) on conflict (id) do update set name = excluded.name, qty = items.qty + 1, updated_at = clock_timestamp()`, [id, name]);
          else await c.query(`delete from items where id = $1`, [id]);
          done.A++;
        } catch {
          done.failed++; // a deadlock between two clients of one side: the statement did nothing
        }
      }),
    );
  const clientB = async (n: number) => {
    const c = await maria(B);
    try {
      await paced(async (i) => {
        const { id, op } = pick();
        const name = `B${n}-${i}`;
        try {
          if (op === 'update') await c.query(`UPDATE items SET name = ?, qty = qty + 1, updated_at = NOW(6) WHERE id = ?`, [name, id]);
          else if (op === 'upsert') await c.query(`INSERT INTO items (id, name, qty, updated_at) VALUES (?, ?, 0, NOW(6)) ON DUPLICATE KEY UPDATE name = VALUES(name), qty = qty + 1, updated_at = NOW(6)`, [id, name]);
          else await c.query(`DELETE FROM items WHERE id = ?`, [id]);
          done.B++;
        } catch {
          done.failed++;
        }
      });
    } finally {
      await c.end();
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, (_, n) => [clientA(n), clientB(n)]).flat());
  t.diagnostic(`clients stopped: A ${done.A} tx, B ${done.B} tx, ${done.failed} failed; ops ${JSON.stringify(ops)}`);

  // Quiescence: equal, and nothing applied (or decided) for 4 s.
  const moved = () => ['a-to-b', 'b-to-a'].reduce((n, p) => n + (h(p).applier?.stats.applied ?? 0) + (h(p).applier?.stats.conflicts ?? 0), 0);
  const stoppedAt = Date.now();
  let convergedAfterS: number | null = null;
  let last = await compare();
  while (Date.now() - stoppedAt < 180000) {
    const before = moved();
    last = await compare();
    if (last.diff.length === 0) {
      await sleep(4000);
      last = await compare();
      if (moved() === before && last.diff.length === 0) {
        convergedAfterS = (Date.now() - stoppedAt - 4000) / 1000;
        break;
      }
      continue;
    }
    await sleep(500);
  }
  const sAB = h('a-to-b').applier!.stats;
  const sBA = h('b-to-a').applier!.stats;
  const cAB = h('a-to-b').capture!.stats;
  const cBA = h('b-to-a').capture!.stats;
  t.diagnostic(`converged after ${convergedAfterS} s; rows A ${last.rowsA}, B ${last.rowsB}; a-to-b: captured ${cAB.changes} (echo skipped ${cAB.echoSkipped}), applied ${sAB.applied}, unchanged ${sAB.skippedUnchanged}, conflicts ${sAB.conflicts}, republished ${sAB.republished}, dead-lettered ${sAB.deadLettered}; b-to-a: captured ${cBA.changes} (echo skipped ${cBA.echoSkipped}), applied ${sBA.applied}, unchanged ${sBA.skippedUnchanged}, conflicts ${sBA.conflicts}, republished ${sBA.republished}, dead-lettered ${sBA.deadLettered}`);
  assert.deepEqual(last.diff, [], 'A and B hold the same rows');
  assert.notEqual(convergedAfterS, null, 'A and B agreed and nothing moved for 4 s (no ping-pong)');
  assert.ok(done.A + done.B > 1000, `${done.A + done.B} transactions`);
  assert.ok(last.rowsA > 100, `${last.rowsA} rows left`);
  assert.ok(cAB.echoSkipped > 0 && cBA.echoSkipped > 0, `both captures skipped the peer's writes (A ${cAB.echoSkipped}, B ${cBA.echoSkipped})`);
  // What each capture read is the users' changes on its side, the snapshot, and the rows/deletes the
  // peer re-published: anything more would be an echo.
  assert.ok(cAB.changes <= ROWS + 1 + done.A + sBA.republished, `A's capture read ${cAB.changes} changes for ${done.A} user changes and ${sBA.republished} re-published`);
  assert.ok(cBA.changes <= ROWS + 1 + done.B + sAB.republished, `B's capture read ${cBA.changes} changes for ${done.B} user changes and ${sAB.republished} re-published`);
  assert.ok(sAB.conflicts + sBA.conflicts > 0, 'simultaneous edits met as conflicts');
  assert.equal(sAB.deadLettered + sBA.deadLettered, 0, 'nothing dead-lettered');
});

/**
 * A delete of a key whose version state already says "deleted" is a change like any other: the other
 * side may have re-created the row since (issue 17; test/two-way.int.test.ts for PostgreSQL pairs).
 */
for (const [first, second] of [['A', 'B'], ['B', 'A']] as const) {
  test(`insert on ${first}, delete on ${first}, re-insert on ${second}, delete on ${first}: neither side keeps the row`, async (t) => {
    const { A, h, same, admin, B } = await pair(t, 10);
    const X = 2001;
    const run = async (side: 'A' | 'B', pgText: string, mariaText: string) => {
      if (side === 'A') await sql(A, pgText, [X]);
      else await admin.query(mariaText.replace(/\$TABLE/g, `${B}.items`), [X]);
    };
    const has = async (side: 'A' | 'B') =>
      side === 'A' ? (await sql(A, `select 1 from items where id = $1`, [X])).rowCount === 1 : ((await admin.query(`SELECT 1 FROM ${B}.items WHERE id = ?`, [X])) as unknown as [unknown[]])[0].length === 1;
    const arrived = (what: string, cond: () => Promise<boolean>) => waitFor(what, cond, 60000);
    await run(first, `insert into items (id, name, qty) values ($1, 'first', 1)`, `INSERT INTO $TABLE (id, name, qty, updated_at) VALUES (?, 'first', 1, NOW(6))`);
    await arrived(`the insert on ${first} reached ${second}`, () => has(second));
    await run(first, `delete from items where id = $1`, `DELETE FROM $TABLE WHERE id = ?`);
    await arrived(`the delete on ${first} reached ${second}`, async () => !(await has(second)));
    await run(second, `insert into items (id, name, qty) values ($1, 'again', 2)`, `INSERT INTO $TABLE (id, name, qty, updated_at) VALUES (?, 'again', 2, NOW(6))`);
    await arrived(`the re-insert on ${second} reached ${first}`, () => has(first));
    await run(first, `delete from items where id = $1`, `DELETE FROM $TABLE WHERE id = ?`);
    await arrived(`the second delete on ${first} reached ${second}`, async () => !(await has(second)));
    await waitFor('A and B identical', same, 30000);
    // Nothing brings it back.
    await sleep(3000);
    assert.equal(await has('A'), false, 'A keeps no row');
    assert.equal(await has('B'), false, 'B keeps no row');
    const cAB = h('a-to-b').capture!.stats;
    const cBA = h('b-to-a').capture!.stats;
    t.diagnostic(`echo skipped: A ${cAB.echoSkipped}, B ${cBA.echoSkipped}`);
    assert.ok(cAB.echoSkipped > 0 && cBA.echoSkipped > 0, "both captures skipped the peer's writes");
    assert.equal(h('a-to-b').applier!.stats.deadLettered + h('b-to-a').applier!.stats.deadLettered, 0);
  });
}

test('a row kept by a conflict on MariaDB is re-published (one update, the row as it is) and reaches A', async (t) => {
  const { A, B, h, same, admin } = await pair(t, 5);
  const X = 3;
  // B's row is newer than A's update: a-to-b keeps B's row and re-publishes it, b-to-a carries it to A.
  // b-to-a cannot apply B's update before A's (A's table lock), so each side meets the other's version.
  const captured0 = h('b-to-a').capture!.stats.changes;
  await withClient(A, async (a) => {
    await a.query('begin');
    await a.query('lock table items in exclusive mode');
    const capturedB = h('b-to-a').capture!.stats.changes;
    await admin.query(`UPDATE ${B}.items SET name = 'B newer', qty = 100, updated_at = NOW(6) + INTERVAL 1 HOUR WHERE id = ?`, [X]);
    await waitFor("B's update captured", async () => h('b-to-a').capture!.stats.changes > capturedB, 30000);
    await a.query(`update items set name = 'A older', qty = 50, updated_at = clock_timestamp() where id = $1`, [X]);
    await a.query('commit');
  });
  // a-to-b meets B's newer row with A's update and keeps it (re-published), b-to-a carries that back.
  await waitFor("a-to-b kept B's row and re-published it", async () => h('a-to-b').applier!.stats.republished >= 1, 60000);
  // B's capture: B's own update and the re-published row (its change and change back folded into one update).
  await waitFor('b-to-a captured the re-published row', async () => h('b-to-a').capture!.stats.changes >= captured0 + 2, 30000);
  await waitFor('A and B identical', same, 60000);
  assert.equal((await sql(A, `select name from items where id = $1`, [X])).rows[0]?.name, 'B newer');
  const [[rowB]] = (await admin.query(`SELECT name, qty FROM ${B}.items WHERE id = ?`, [X])) as unknown as [{ name: string; qty: number }[]];
  assert.deepEqual({ ...rowB }, { name: 'B newer', qty: 100 }, "B's row is as it was (changed and changed back)");
  const sAB = h('a-to-b').applier!.stats;
  t.diagnostic(`a-to-b: conflicts ${sAB.conflicts}, republished ${sAB.republished}`);
  assert.ok(sAB.conflicts >= 1, "a-to-b met B's newer row");
  const applied = () => h('a-to-b').applier!.stats.applied + h('b-to-a').applier!.stats.applied;
  const before = applied();
  await sleep(3000);
  assert.equal(applied(), before, 'no writes after convergence');
  assert.equal(h('b-to-a').capture!.stats.changes, captured0 + 2, "B's capture read B's update and one update for the re-published row, nothing else");
});

/**
 * Found by the storm above (about one run in four): the binlog keeps whole seconds, so a MariaDB delete
 * is timed at the end of its second. B deletes a key and inserts it again within that second; b-to-a
 * deletes A's row with B's delete and carries that delete back with its (end-of-second) time; back on
 * B it met B's re-inserted row, looked later than it, and removed it there only: A kept the row
 * (it had B's insert), B did not, for ever (A's later updates were deferred to a delete nobody carried).
 * A delete coming home meets a row this side wrote itself after that delete: the row stays.
 */
test('delete and re-insert on B within one second: the delete coming back from A does not remove the re-inserted row', async (t) => {
  const { A, B, h, same, admin } = await pair(t, 5);
  // B's table locked by one session meanwhile, so that the delete carried back waits at B's sink until
  // the re-insert is there (on the storm's loaded machine it came later by itself); early in a second,
  // so that the delete, a pause in which b-to-a applies it alone and carries it back, and the insert
  // share it. When B's delete does not reach A within that second (a slow first batch), the case was
  // not made: tried again with another key, up to three keys.
  const tried: number[] = [];
  let made = false;
  for (const X of [4, 5, 3]) {
    tried.push(X);
    const s = await maria(B);
    let reached = false;
    try {
      await s.query('LOCK TABLES items WRITE');
      while (Date.now() % 1000 > 50) await sleep(5);
      await s.query(`DELETE FROM items WHERE id = ?`, [X]);
      reached = await waitFor("B's delete reached A", async () => (await sql(A, `select 1 from items where id = $1`, [X])).rowCount === 0, 800).then(() => true, () => false);
      await sleep(Math.max(0, 700 - (Date.now() % 1000)));
      await s.query(`INSERT INTO items (id, name, qty, updated_at) VALUES (?, 'again on B', 7, NOW(6))`, [X]);
      await s.query('UNLOCK TABLES');
    } finally {
      await s.end();
    }
    t.diagnostic(`key ${X}: B's delete ${reached ? 'reached' : 'did not reach'} A within its second`);
    await waitFor('the re-insert reached A', async () => (await sql(A, `select name from items where id = $1`, [X])).rows[0]?.name === 'again on B', 30000);
    await waitFor('A and B identical', same, 30000);
    if (reached) {
      made = true;
      break;
    }
  }
  assert.ok(made, `B's delete reached A within its second for one of the keys ${tried.join(', ')}`);
  await sleep(3000); // the delete carried back has had its time to arrive
  assert.ok(await same(), 'A and B identical after the carried-back delete');
  for (const X of tried) {
    const [[rowB]] = (await admin.query(`SELECT name FROM ${B}.items WHERE id = ?`, [X])) as unknown as [{ name: string }[]];
    assert.equal(rowB?.name, 'again on B', `B keeps its re-inserted row ${X}`);
  }
  assert.equal(h('a-to-b').applier!.stats.deadLettered + h('b-to-a').applier!.stats.deadLettered, 0);
});
