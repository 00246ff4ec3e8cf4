/**
 * Multi-way sync across connectors (ADR 0040, docs/conflicts.md Multi-way sync): A (PostgreSQL),
 * B (MariaDB) and C (PostgreSQL) in a mesh, a pipeline each way between every two (six pipelines,
 * peers pairwise, latest-timestamp on updated_at); the second pipeline leaving each database
 * follows the first, so each database has one capture (B's a binlog reader). The same keys edited
 * on all three at once with known times: the latest wins everywhere, a tie goes to the same row
 * everywhere, a later delete (on MariaDB, or on PostgreSQL) removes the row everywhere, an earlier
 * one loses to a later edit everywhere, and every capture left out what the other pipelines wrote
 * into its database. Rows are compared through each side's sink (canonical values).
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
import { settledWhen } from '../../test/helpers.js';
import { PostgresSink } from '../postgres/sink.js';
import { MariadbSink } from './sink.js';
import { createDb, deleteTopics, dropDb, dropSlots, PG, sql, uid, waitFor } from '../../test/helpers.js';

const MARIA = { host: '127.0.0.1', port: 3306, user: 'root' };
const log = pino({ level: 'silent' });
const SEED_TS = '2024-01-01 00:00:00.123456';
const PG_DDL = `create table items (id int primary key, name text not null, qty int not null, updated_at timestamptz not null default clock_timestamp())`;
const MARIA_DDL = `CREATE TABLE items (id INT PRIMARY KEY, name TEXT NOT NULL, qty INT NOT NULL, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`;
const ROWS = 20;

async function mesh(t: TestContext) {
  const id = uid();
  const prefix = `t${id}`;
  const A = `syncline_t_${id}_a`;
  const B = `syncline_t_${id}_b`;
  const C = `syncline_t_${id}_c`;
  await createDb(A);
  await createDb(C);
  const admin = await mysql.createConnection(MARIA);
  await admin.query(`CREATE DATABASE ${B}`);
  await admin.query(`USE ${B}`);
  await admin.query(`SET time_zone = '+00:00'`);
  const pgSink = (database: string) => new PostgresSink({ type: 'postgres', connection: { ...PG, database, ssl: false, sslVerify: true }, autoCreate: false, autoEvolve: false, poolSize: 2, lockTimeoutMs: 10000 }, { pipeline: 'check', log });
  const readers = { A: pgSink(A), C: pgSink(C), B: new MariadbSink({ type: 'mariadb', connection: { ...MARIA, database: B, ssl: false, sslVerify: true }, poolSize: 2, autoCreate: false, autoEvolve: false, lockTimeoutS: 10 }, { pipeline: 'check', log }) };
  let rt: Runtime | undefined;
  t.after(async () => {
    await rt?.stop().catch(() => undefined);
    await Promise.allSettled(Object.values(readers).map((r) => r.close()));
    await dropSlots(prefix);
    await sql('postgres', `select pg_replication_origin_drop(roname) from pg_replication_origin where roname like $1`, [`syncline:${prefix}:%`]).catch(() => undefined);
    await dropDb(A);
    await dropDb(C);
    await deleteTopics(prefix).catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${B}`);
    await admin.end();
  });

  // The same seed rows on all three (each snapshot meets identical rows: unchanged).
  for (const d of [A, C]) {
    await sql(d, PG_DDL);
    await sql(d, `insert into items (id, name, qty, updated_at) select g, 'item ' || g, g, timestamptz '${SEED_TS}+00' from generate_series(1, ${ROWS}) g`);
  }
  await admin.query(MARIA_DDL);
  await admin.query(`INSERT INTO items (id, name, qty, updated_at) VALUES ${Array.from({ length: ROWS }, (_, i) => `(${i + 1}, 'item ${i + 1}', ${i + 1}, '${SEED_TS}')`).join(',')}`);

  const conflict = { strategy: 'latest-timestamp', field: 'updated_at' };
  const pgSource = (database: string, side: string) => ({ type: 'postgres', connection: { ...PG, database }, slot: `${prefix}_${side}`, publication: `${prefix}_${side}`, snapshot: 'initial', heartbeatMs: 1000, lingerMs: 5 });
  const pgTarget = (database: string) => ({ type: 'postgres', connection: { ...PG, database } });
  const mariaTarget = { type: 'mariadb', connection: { ...MARIA, database: B }, poolSize: 4 };
  const fromPg = [{ source: 'public.items' }];
  const pgToMaria = [{ source: 'public.items', target: `${B}.items` }];
  const mariaToPg = [{ source: `${B}.items`, target: 'public.items' }];
  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 3 },
    defaults: { retry: { retries: 3, initialDelayMs: 200, maxDelayMs: 2000 }, batch: { size: 500 } },
    pipelines: {
      'a-to-b': { source: pgSource(A, 'a'), target: mariaTarget, peer: 'b-to-a', tables: pgToMaria, conflict },
      'a-to-c': { follows: 'a-to-b', target: pgTarget(C), peer: 'c-to-a', tables: fromPg, conflict },
      'b-to-a': {
        // A replica server id of its own (the default derives from the pipeline name, which other tests share).
        source: { type: 'mariadb', connection: { ...MARIA, database: B }, serverId: 100000 + parseInt(id.slice(0, 6), 16), snapshot: 'initial', heartbeatMs: 1000, lingerMs: 5 },
        target: pgTarget(A), peer: 'a-to-b', changeTopicPrefix: `${prefix}.b`, tables: mariaToPg, conflict,
      },
      'b-to-c': { follows: 'b-to-a', target: pgTarget(C), peer: 'c-to-b', tables: mariaToPg, conflict },
      'c-to-a': { source: pgSource(C, 'c'), target: pgTarget(A), peer: 'a-to-c', changeTopicPrefix: `${prefix}.c`, tables: fromPg, conflict },
      'c-to-b': { follows: 'c-to-a', target: mariaTarget, peer: 'b-to-c', tables: pgToMaria, conflict },
    },
  };
  const text = JSON.stringify(doc, null, 2);
  const file = join(mkdtempSync(join(tmpdir(), 'syncline-mesh-maria-')), 'config.yaml');
  writeFileSync(file, text);
  rt = new Runtime(parseConfig(text, file, {}), new Set(['capture', 'process', 'sink']));
  const { done } = await rt.start();
  done.catch(() => undefined);

  /** Every id on any side → the row's hash on A, B, C (canonical values through each side's sink), where they differ. */
  const diff = async () => {
    const ids = new Set<number>();
    for (const d of [A, C]) for (const r of (await sql(d, 'select id from items')).rows) ids.add(Number(r.id));
    const [mrows] = (await admin.query(`SELECT id FROM ${B}.items`)) as unknown as [{ id: number }[]];
    for (const r of mrows) ids.add(Number(r.id));
    const keys = [...ids].sort((x, y) => x - y).map((i) => ({ id: i }));
    const [ra, rb, rc] = await Promise.all([readers.A.readRows('public.items', keys), readers.B.readRows(`${B}.items`, keys), readers.C.readRows('public.items', keys)]);
    const out: string[] = [];
    for (const k of keys) {
      const hashes = [ra, rb, rc].map((m) => m.get(keyString(k))).map((r) => (r ? rowHash(r) : 'none'));
      if (hashes[0] !== hashes[1] || hashes[1] !== hashes[2]) out.push(`${k.id}`);
    }
    return out;
  };
  const same = async () => (await diff()).length === 0;
  const names = async (id: number) => {
    const [m] = (await admin.query(`SELECT name FROM ${B}.items WHERE id = ?`, [id])) as unknown as [{ name: string }[]];
    const pgName = async (d: string) => ((await sql(d, 'select name from items where id = $1', [id])).rows[0]?.name as string | undefined) ?? 'none';
    return [await pgName(A), m[0]?.name ?? 'none', await pgName(C)].join(' | ');
  };
  const h = (n: string) => rt!.pipelines.find((p) => p.name === n)!;
  await waitFor('the three snapshots applied', async () => ['a-to-b', 'b-to-a', 'c-to-a'].every((n) => (h(n).applier?.stats.received ?? 0) >= ROWS), 120000);
  assert.ok(await same(), 'A, B and C start identical');
  return { A, B, C, admin, rt, settled: settledWhen(rt, same), names, diff };
}

test('A (PostgreSQL), B (MariaDB), C (PostgreSQL) edit the same keys at once: the latest write wins on all three, a tie the same row, a later delete everywhere, an earlier one nowhere', async (t) => {
  const { A, B, C, admin, rt, settled, names, diff } = await mesh(t);
  const base = Date.now() + 60_000; // later than every row's updated_at: these edits are the newest
  const at = (ms: number) => new Date(base + ms).toISOString();
  const mariaAt = (ms: number) => at(ms).replace('T', ' ').replace('Z', ''); // the session is in UTC
  const put = (d: string, id: number, name: string, ms: number) => sql(d, 'update items set name = $2, updated_at = $3 where id = $1', [id, name, at(ms)]);
  const putB = (id: number, name: string, ms: number) => admin.query(`UPDATE ${B}.items SET name = ?, updated_at = ? WHERE id = ?`, [name, mariaAt(ms), id]);
  await Promise.all([
    // 1: three edits, B's (MariaDB) is the latest.
    put(A, 1, 'A 1', 10), putB(1, 'B 1', 30), put(C, 1, 'C 1', 20),
    // 2: A and B at the same time (a tie across connectors: the greater content hash wins, the same on every node), C earlier.
    put(A, 2, 'A 2', 40), putB(2, 'B 2', 40), put(C, 2, 'C 2', 5),
    // 3: edits on A and C (times ahead of now), deleted on B (timed by its commit, now): C's edit wins everywhere.
    put(A, 3, 'A 3', 10), put(C, 3, 'C 3', 50), admin.query(`DELETE FROM ${B}.items WHERE id = 3`),
    // 4: an edit on B with a time in the past, deleted on A and C: the delete is later and wins everywhere.
    admin.query(`UPDATE ${B}.items SET name = 'B 4', updated_at = NOW(6) - INTERVAL 1 HOUR WHERE id = 4`), sql(A, 'delete from items where id = 4'), sql(C, 'delete from items where id = 4'),
    // 5: an edit on A with a time in the past, deleted on C only: the delete wins everywhere.
    sql(A, `update items set name = 'A 5', updated_at = now() - interval '1 hour' where id = 5`), sql(C, 'delete from items where id = 5'),
    // 100: inserted on all three with different times: the latest (C's) everywhere.
    sql(A, 'insert into items values (100, $1, 1, $2)', ['A 100', at(70)]), admin.query(`INSERT INTO ${B}.items VALUES (100, 'B 100', 1, ?)`, [mariaAt(80)]), sql(C, 'insert into items values (100, $1, 1, $2)', ['C 100', at(90)]),
  ]);
  await waitFor('A, B and C agree and nothing moves', settled, 120000).catch(async (err: Error) => {
    const rows = await Promise.all([1, 2, 3, 4, 5, 100].map(async (id) => `${id}: ${await names(id)}`));
    const stats = rt.pipelines.map((p) => `${p.name} ${JSON.stringify({ ...p.applier!.stats, captured: p.capture?.stats.changes, echo: p.capture?.stats.echoSkipped })}`);
    throw new Error(`${err.message}; differing ids ${(await diff()).join(',')}; rows (A | B | C): ${rows.join('; ')}; ${stats.join('; ')}`);
  });
  assert.equal(await names(1), 'B 1 | B 1 | B 1');
  const tie = await names(2);
  assert.ok(tie === 'A 2 | A 2 | A 2' || tie === 'B 2 | B 2 | B 2', `one of the tied rows on every side: ${tie}`);
  assert.equal(await names(3), 'C 3 | C 3 | C 3', 'the later edit outlives the earlier delete (made on MariaDB)');
  assert.equal(await names(4), 'none | none | none', 'the later deletes remove the row everywhere');
  assert.equal(await names(5), 'none | none | none', 'the later delete on C removes the row everywhere');
  assert.equal(await names(100), 'C 100 | C 100 | C 100');
  for (const p of rt.pipelines.filter((x) => x.capture)) {
    t.diagnostic(`${p.name}: captured ${p.capture!.stats.changes}, echo skipped ${p.capture!.stats.echoSkipped}`);
    assert.ok(p.capture!.stats.echoSkipped > 0, `${p.name}'s capture skipped the writes syncline made into its database`);
  }
  for (const p of rt.pipelines) assert.equal(p.applier!.stats.deadLettered, 0, `${p.name}: nothing dead-lettered`);
});
