/** Integration tests of PostgresSink against the real PostgreSQL at 127.0.0.1:5432, in a database of its own. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pino } from 'pino';
import { PostgresSink } from './sink.js';
import type { PgSinkConfig } from './spec.js';
import { keyString, type SinkRecord } from '../../src/sink/sink.js';
import type { Row } from '../../src/core/envelope.js';
import { SynclineError } from '../../src/core/errors.js';

const DB = `syncline_t_sink_${randomBytes(4).toString('hex')}`;
const conn = { host: '127.0.0.1', port: 5432, user: 'postgres', ssl: false, sslVerify: true };
const log = pino({ level: 'silent' });
let admin: pg.Pool; // verification and setup in the test database
let sink: PostgresSink;

// autoCreate off: these tests create their tables; autocreate.int.test.ts covers creation.
const cfg = (over: Partial<PgSinkConfig> = {}): PgSinkConfig => ({ type: 'postgres', connection: { ...conn, database: DB }, autoCreate: false, autoEvolve: true, poolSize: 2, lockTimeoutMs: 10000, ...over });

before(async () => {
  const c = new pg.Client({ ...conn, database: 'postgres' });
  await c.connect();
  await c.query(`CREATE DATABASE ${DB}`);
  await c.end();
  admin = new pg.Pool({ ...conn, database: DB, max: 2 });
  // An idle admin connection may be terminated by the connection-kill test: not an error here.
  admin.on('error', () => undefined);
  await admin.query(`
    CREATE TABLE public.users (
      id bigint PRIMARY KEY,
      email varchar(50) UNIQUE,
      name text NOT NULL DEFAULT 'anon',
      balance numeric(12,2) CONSTRAINT balance_nonneg CHECK (balance >= 0),
      score double precision,
      n int,
      active boolean,
      created timestamptz,
      born date,
      tags text[],
      data bytea,
      meta jsonb,
      big text
    );
    CREATE TABLE public.pairs (a int, b text, v text, PRIMARY KEY (a, b));
    CREATE TABLE public.gen (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n int, g int GENERATED ALWAYS AS (n * 2) STORED);
    CREATE SCHEMA "Other";
    CREATE TABLE "Other"."Mixed Case" ("Id" int PRIMARY KEY, "Val" text);
  `);
  sink = new PostgresSink(cfg(), { pipeline: 'test', log });
  await sink.connect();
});

after(async () => {
  await sink?.close();
  await admin?.end();
  const c = new pg.Client({ ...conn, database: 'postgres' });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await c.end();
});

let seq = 0;
function rec(table: string, op: SinkRecord['op'], key: Row, values: Row | null = null, keep: string[] = []): SinkRecord {
  seq++;
  return {
    table,
    op,
    key,
    values: op === 'upsert' ? { ...key, ...values } : null,
    keep,
    position: seq.toString(16).padStart(16, '0') + ':00000000',
    hash: null,
    sourceTsMs: Date.now(),
    origin: { topic: 't', partition: 0, offset: String(seq) },
  };
}
const up = (id: number, values: Row, keep: string[] = []) => rec('public.users', 'upsert', { id: BigInt(id) }, values, keep);
const del = (id: number) => rec('public.users', 'delete', { id: BigInt(id) });

async function users(ids?: number[]): Promise<Record<string, string | null>[]> {
  const r = await admin.query(
    `SELECT id::text, email, name, balance::text, n::text, big FROM public.users ${ids ? 'WHERE id = ANY($1::bigint[])' : ''} ORDER BY id`,
    ids ? [ids] : [],
  );
  return r.rows;
}
async function snapshot(table: string): Promise<string> {
  const r = await admin.query(`SELECT coalesce(json_agg(t ORDER BY t::text), '[]')::text AS j FROM ${table} t`);
  return r.rows[0].j;
}

test('upserts, deletes and several records of one key collapse to the last, in one transaction', async () => {
  await admin.query(`INSERT INTO public.users (id, email, name) VALUES (1, 'a@x', 'A'), (2, 'b@x', 'B'), (3, 'c@x', 'C')`);
  const r = await sink.writeBatch([
    up(10, { email: 'j@x', name: 'J0' }),
    up(11, { email: 'k@x', name: 'K' }),
    up(10, { email: 'j2@x', name: 'J1' }),
    del(2),
    up(3, { email: 'c2@x', name: 'C2' }),
    del(3),
    del(12), // never existed
    up(1, { email: 'a@x', name: 'A-gone' }),
    del(1),
    up(1, { name: 'A-back' }), // delete then insert: columns not given fall back to defaults
  ]);
  assert.deepEqual(r.failed, []);
  const rows = await users();
  assert.deepEqual(
    rows.map((x) => [x.id, x.email, x.name]),
    [
      ['1', null, 'A-back'],
      ['10', 'j2@x', 'J1'],
      ['11', 'k@x', 'K'],
    ],
  );
  await admin.query('TRUNCATE public.users');
});

test('re-applying the same batch leaves the target identical (idempotent)', async () => {
  const batch = [
    up(1, { email: 'a@x', name: 'A', balance: '10.50', n: 1, tags: ['x', 'y "q"', null], data: Buffer.from([0, 1, 255]), meta: '{"k": [1, 2]}' }),
    up(2, { email: 'b@x', name: 'B', score: 1.5, created: '2026-11-25T10:00:00.123456Z', born: '2026-11-25', active: true }),
    del(3),
    up(4, { name: 'D' }),
    up(4, { name: 'D2' }),
  ];
  assert.deepEqual((await sink.writeBatch(batch)).failed, []);
  const first = await snapshot('public.users');
  assert.deepEqual((await sink.writeBatch(batch)).failed, []);
  assert.equal(await snapshot('public.users'), first);
  assert.deepEqual((await sink.writeBatch(batch)).failed, []);
  assert.equal(await snapshot('public.users'), first);
  await admin.query('TRUNCATE public.users');
});

test('keep (unchanged TOAST) columns keep the target value, or the value of an earlier upsert in the batch', async () => {
  await admin.query(`INSERT INTO public.users (id, name, big) VALUES (20, 'old', 'BIG-20')`);
  const r = await sink.writeBatch([
    up(20, { name: 'new20', big: 'ignored: kept' }, ['big']),
    up(21, { name: 'n21', big: 'BIG-21' }),
    up(21, { name: 'n21b' }, ['big']),
    up(22, { name: 'n22' }, ['big']), // new row with a kept column: NULL/default
  ]);
  assert.deepEqual(r.failed, []);
  assert.deepEqual(
    (await users()).map((x) => [x.id, x.name, x.big]),
    [
      ['20', 'new20', 'BIG-20'],
      ['21', 'n21b', 'BIG-21'],
      ['22', 'n22', null],
    ],
  );
  await admin.query('TRUNCATE public.users');
});

test('a poison record is isolated: every good record commits, each bad one is reported with table, key and constraint', async () => {
  await admin.query(`INSERT INTO public.users (id, email, name) VALUES (1, 'taken@x', 'T')`);
  const batch: SinkRecord[] = [];
  for (let i = 100; i < 160; i++) batch.push(up(i, { email: `u${i}@x`, name: `U${i}`, balance: '1.00' }));
  batch[5] = up(105, { email: 'u105@x', name: 'U105', balance: '-1.00' }); // CHECK
  batch[17] = up(117, { email: 'u117@x', name: null }); // NOT NULL
  batch[30] = up(130, { email: 'taken@x', name: 'dup' }); // UNIQUE on another column
  batch[44] = up(144, { email: 'u144@x', name: 'U144', n: 'abc' }); // bad value
  batch.push(del(1)); // a good delete in the same batch (after the duplicate: still sequential)
  const before = sink.stats.isolations;
  const r = await sink.writeBatch(batch);
  assert.equal(sink.stats.isolations, before + 1);
  const failedIds = r.failed.map((f) => String(f.record.key.id)).sort();
  assert.deepEqual(failedIds, ['105', '117', '130', '144']);
  for (const f of r.failed) {
    assert.ok(f.error instanceof SynclineError);
    assert.equal(f.error.kind, 'poison');
    assert.match(f.error.message, /public\.users/);
    assert.ok(f.error.message.includes(keyString(f.record.key)), f.error.message);
  }
  const byId = new Map(r.failed.map((f) => [String(f.record.key.id), f.error]));
  assert.match(byId.get('105')!.message, /balance_nonneg/);
  assert.equal(byId.get('105')!.code, 'PG_23514');
  assert.equal(byId.get('117')!.code, 'PG_23502');
  assert.match(byId.get('130')!.message, /users_email_key/);
  assert.equal(byId.get('144')!.code, 'PG_22P02');
  const rows = await users();
  const ids = rows.map((x) => Number(x.id));
  assert.equal(rows.length, 60 - 4 + 0); // 56 good upserts; row 1 deleted
  assert.ok(!ids.includes(1) && !ids.includes(105) && !ids.includes(117) && !ids.includes(130) && !ids.includes(144));
  // a batch of one bad record: no isolation pass needed
  const r1 = await sink.writeBatch([up(300, { name: 'x', balance: '-5' })]);
  assert.equal(r1.failed.length, 1);
  assert.equal(r1.failed[0].error.code, 'PG_23514');
  // records that are invalid before reaching the database
  const r2 = await sink.writeBatch([rec('public.users', 'upsert', { id: null }, { name: 'x' }), up(301, { name: 'ok' })]);
  assert.equal(r2.failed.length, 1);
  assert.equal(r2.failed[0].error.code, 'INVALID_RECORD');
  assert.equal((await users([301])).length, 1);
  await admin.query('TRUNCATE public.users');
});

test('isolation searches only the failing table: a table without a bad record is written in one statement', async () => {
  await sink.writeBatch([up(1, { name: 'warm' }), rec('public.pairs', 'delete', { a: 0, b: '' })]); // metadata cached
  const pairsWrites: string[] = [];
  sink.onQuery = (text) => {
    if (text.includes('"public"."pairs"')) pairsWrites.push(text.split(' ').slice(0, 2).join(' '));
  };
  const batch: SinkRecord[] = [];
  for (let i = 0; i < 64; i++) {
    batch.push(up(2000 + i, { name: `n${i}`, balance: i === 37 ? '-1.00' : '1.00' })); // one CHECK violation
    batch.push(rec('public.pairs', 'upsert', { a: i, b: 'iso' }, { v: `p${i}` }));
  }
  const r = await sink.writeBatch(batch).finally(() => (sink.onQuery = null));
  const pairs = Number((await admin.query(`SELECT count(*) FROM public.pairs WHERE b = 'iso'`)).rows[0].count);
  const users = Number((await admin.query('SELECT count(*) FROM public.users WHERE id >= 2000 AND id < 2064')).rows[0].count);
  await admin.query('TRUNCATE public.users, public.pairs');
  assert.deepEqual(r.failed.map((f) => String(f.record.key.id)), ['2037']);
  // at most the first attempt (the whole batch) and one in the isolation pass (bisecting the whole
  // batch would write pairs rows in every half on the way down to the bad users row: 7 or more)
  assert.ok(pairsWrites.length >= 1 && pairsWrites.length <= 2 && pairsWrites.every((w) => w === 'INSERT INTO'), pairsWrites.join(', '));
  assert.equal(pairs, 64);
  assert.equal(users, 63);
});

test('one round trip per statement kind per table, chunked only beyond 65535 parameters', async () => {
  await sink.writeBatch([up(1, { name: 'warm' }), rec('public.pairs', 'delete', { a: 0, b: '' })]); // metadata cached
  const seen: string[] = [];
  sink.onQuery = (text) => seen.push(text.split(' ').slice(0, 2).join(' '));
  const batch: SinkRecord[] = [];
  for (let i = 0; i < 300; i++) batch.push(up(1000 + i, { name: `n${i}`, balance: '2.00' }));
  for (let i = 0; i < 100; i++) batch.push(del(1000 + i * 3));
  batch.push(rec('public.pairs', 'upsert', { a: 1, b: 'x' }, { v: 'p' }));
  batch.push(rec('public.pairs', 'delete', { a: 2, b: 'y' }));
  const q0 = sink.stats.queries;
  assert.deepEqual((await sink.writeBatch(batch)).failed, []);
  assert.equal(sink.stats.queries - q0, 6);
  assert.deepEqual(seen, ['BEGIN', 'DELETE FROM', 'INSERT INTO', 'DELETE FROM', 'INSERT INTO', 'COMMIT']);
  assert.equal((await users()).length, 1 + 300 - 100);
  // a single statement needs no explicit transaction
  seen.length = 0;
  await sink.writeBatch([up(5000, { name: 'a' }), up(5001, { name: 'b' })]);
  assert.deepEqual(seen, ['INSERT INTO']);
  // 13 columns x 6000 rows = 78000 parameters: two INSERT chunks
  seen.length = 0;
  const big: SinkRecord[] = [];
  const full = (i: number): Row => ({ email: `e${i}@x`, name: 'n', balance: '1', score: 1, n: 1, active: false, created: '2026-01-01T00:00:00Z', born: '2026-01-01', tags: ['a'], data: Buffer.from('x'), meta: '{}', big: 'b' });
  for (let i = 0; i < 6000; i++) big.push(up(10000 + i, full(i)));
  assert.deepEqual((await sink.writeBatch(big)).failed, []);
  assert.deepEqual(seen, ['BEGIN', 'INSERT INTO', 'INSERT INTO', 'COMMIT']);
  assert.equal(Number((await admin.query('SELECT count(*) FROM public.users WHERE id >= 10000')).rows[0].count), 6000);
  // readRows is one round trip (after the first call, which loads the type catalog once)
  await sink.readRows('public.users', [{ id: 1n }]);
  seen.length = 0;
  const got = await sink.readRows('public.users', [{ id: 10001n }, { id: 10002n }, { id: 999999n }]);
  assert.deepEqual(seen, ['SELECT *']);
  assert.equal(got.size, 2);
  sink.onQuery = null;
  await admin.query('TRUNCATE public.users, public.pairs');
});

test('multi-column keys, quoted identifiers, truncate ordering, generated and identity columns', async () => {
  let r = await sink.writeBatch([
    rec('public.pairs', 'upsert', { a: 1, b: 'x' }, { v: 'one' }),
    rec('public.pairs', 'upsert', { a: 1, b: 'y' }, { v: 'two' }),
    rec('public.pairs', 'upsert', { a: 2, b: 'x' }, { v: 'three' }),
    rec('public.pairs', 'delete', { a: 1, b: 'y' }),
    rec('Other."Mixed Case"', 'upsert', { Id: 1 }, { Val: 'q"uote' }), // canonical table name (src/core/names.ts)
    rec('public.gen', 'upsert', { id: 7 }, { n: 5, g: 999 }),
  ]);
  assert.deepEqual(r.failed, []);
  assert.deepEqual((await admin.query('SELECT a, b, v FROM public.pairs ORDER BY a, b')).rows, [
    { a: 1, b: 'x', v: 'one' },
    { a: 2, b: 'x', v: 'three' },
  ]);
  assert.deepEqual((await admin.query(`SELECT * FROM "Other"."Mixed Case"`)).rows, [{ Id: 1, Val: 'q"uote' }]);
  assert.deepEqual((await admin.query(`SELECT * FROM public.gen`)).rows, [{ id: 7, n: 5, g: 10 }]);
  // truncate in the middle: earlier records of the table are moot, later ones apply after it
  r = await sink.writeBatch([
    rec('public.pairs', 'upsert', { a: 3, b: 'z' }, { v: 'before' }),
    rec('public.pairs', 'truncate', {}),
    rec('public.pairs', 'upsert', { a: 4, b: 'z' }, { v: 'after' }),
  ]);
  assert.deepEqual(r.failed, []);
  assert.deepEqual((await admin.query('SELECT a, b, v FROM public.pairs')).rows, [{ a: 4, b: 'z', v: 'after' }]);
  await admin.query('TRUNCATE public.pairs, public.gen');
});

test('an unknown column is added with autoEvolve (hinted type, else text); without autoEvolve it is fatal', async () => {
  const r = await sink.writeBatch([up(1, { name: 'e', nickname: 'nick', extra: 'x' })], { columnTypes: new Map([['public.users', { nickname: 'character varying(30)' }]]) });
  assert.deepEqual(r.failed, []);
  const meta = await sink.tableMeta('public.users');
  assert.equal(meta.columns.find((c) => c.name === 'nickname')?.type, 'character varying(30)');
  assert.equal(meta.columns.find((c) => c.name === 'extra')?.type, 'text');
  assert.deepEqual(meta.primaryKey, ['id']);
  assert.deepEqual((await admin.query('SELECT nickname, extra FROM public.users WHERE id = 1')).rows, [{ nickname: 'nick', extra: 'x' }]);
  // varchar(30) overflow is an error (not silent truncation by a cast)
  const long = await sink.writeBatch([up(2, { name: 'e', nickname: 'x'.repeat(40) })]);
  assert.equal(long.failed[0]?.error.code, 'PG_22001');

  const strict = new PostgresSink(cfg({ autoEvolve: false }), { pipeline: 'test', log });
  try {
    await assert.rejects(strict.writeBatch([up(3, { name: 'e', surprise: 1 })]), (e: unknown) => {
      assert.ok(e instanceof SynclineError);
      assert.equal(e.kind, 'fatal');
      assert.match(e.message, /public\.users/);
      assert.match(e.message, /surprise/);
      return true;
    });
  } finally {
    await strict.close();
  }
  await admin.query('TRUNCATE public.users; ALTER TABLE public.users DROP COLUMN nickname, DROP COLUMN extra');
});

test('a missing target table is fatal and names the table', async () => {
  await assert.rejects(sink.writeBatch([rec('public.nope', 'upsert', { id: 1 }, { v: 'x' })]), (e: unknown) => {
    assert.ok(e instanceof SynclineError);
    assert.equal(e.kind, 'fatal');
    assert.match(e.message, /public\.nope/);
    return true;
  });
  await assert.rejects(sink.readRows('public.nope', [{ id: 1 }]), /public\.nope/);
});

test('readRows returns canonical values keyed by keyString', async () => {
  await admin.query(`INSERT INTO public.users (id, email, name, balance, score, n, active, created, born, tags, data, meta, big) VALUES
    (9007199254740993, 'a@x', 'A', 12.5, 0.1, 42, true, '2026-11-25 10:00:00.12+00', '2026-11-25', '{a,"b c"}', '\\x00ff', '{"k": 1}', NULL),
    (2, NULL, 'B', NULL, 'NaN', NULL, false, '2026-11-25 10:00:00+00', NULL, NULL, NULL, NULL, NULL)`);
  const keys = [{ id: 9007199254740993n }, { id: 2n }, { id: 3n }];
  const rows = await sink.readRows('public.users', keys);
  assert.equal(rows.size, 2);
  const a = rows.get(keyString(keys[0]))!;
  assert.deepEqual(a, {
    id: 9007199254740993n,
    email: 'a@x',
    name: 'A',
    balance: '12.50',
    score: 0.1,
    n: 42,
    active: true,
    created: '2026-11-25T10:00:00.120000Z',
    born: '2026-11-25',
    tags: ['a', 'b c'],
    data: Buffer.from([0, 255]),
    meta: '{"k": 1}',
    big: null,
  });
  const b = rows.get(keyString(keys[1]))!;
  assert.ok(Number.isNaN(b.score));
  assert.equal(b.active, false);
  assert.equal(b.created, '2026-11-25T10:00:00.000000Z');
  // a key given as number still finds its row, keyed as the caller's key
  const byNumber = await sink.readRows('public.users', [{ id: 2 }]);
  assert.deepEqual([...byNumber.keys()], [keyString({ id: 2 })]);
  // multi-column key
  await admin.query(`INSERT INTO public.pairs VALUES (1, 'x', 'v1'), (1, 'y', 'v2')`);
  const pairs = await sink.readRows('public.pairs', [{ a: 1, b: 'y' }]);
  assert.deepEqual(pairs.get(keyString({ a: 1, b: 'y' })), { a: 1, b: 'y', v: 'v2' });
  await admin.query('TRUNCATE public.users, public.pairs');
});

test('values round-trip exactly through the casts (bigint, numeric, timestamps, arrays, bytea, NaN)', async () => {
  const values: Row = {
    email: 'e@x',
    name: 'r',
    balance: '1234567890.12',
    score: Number.NaN,
    n: -2147483648,
    active: true,
    created: '1999-12-31T23:59:59.999999Z',
    born: '0044-03-15',
    tags: ['with,comma', 'with"quote', 'with\\backslash', null, ''],
    data: Buffer.from([0, 1, 2, 254, 255]),
    meta: '{"a": {"b": [1, 2.5, null]}}',
  };
  assert.deepEqual((await sink.writeBatch([up(1, values), rec('public.users', 'upsert', { id: 9223372036854775807n }, { name: 'max' })])).failed, []);
  const got = await sink.readRows('public.users', [{ id: 1n }, { id: 9223372036854775807n }]);
  const r = got.get(keyString({ id: 1n }))!;
  assert.equal(r.balance, '1234567890.12');
  assert.ok(Number.isNaN(r.score));
  assert.equal(r.n, -2147483648);
  assert.equal(r.created, '1999-12-31T23:59:59.999999Z');
  assert.equal(r.born, '0044-03-15');
  assert.deepEqual(r.tags, ['with,comma', 'with"quote', 'with\\backslash', null, '']);
  assert.deepEqual(r.data, Buffer.from([0, 1, 2, 254, 255]));
  assert.equal(r.meta, '{"a": {"b": [1, 2.5, null]}}');
  assert.equal(got.get(keyString({ id: 9223372036854775807n }))?.id, 9223372036854775807n);
  await admin.query('TRUNCATE public.users');
});

test('an unreachable target is a retriable error', async () => {
  const dead = new PostgresSink({ ...cfg(), connection: { ...conn, database: DB, port: 1 } }, { pipeline: 'test', log });
  try {
    await assert.rejects(dead.ping(), (e: unknown) => e instanceof SynclineError && e.retriable);
    await assert.rejects(dead.writeBatch([up(1, { name: 'x' })]), (e: unknown) => e instanceof SynclineError && e.retriable);
  } finally {
    await dead.close();
  }
});

test('a connection killed mid-batch is a retriable error, nothing is half-applied, and the next batch succeeds', async () => {
  await sink.writeBatch([up(5, { name: 'five' })]);
  const locker = await admin.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('SELECT * FROM public.users WHERE id = 5 FOR UPDATE');
    // the batch first inserts row 6, then blocks on row 5
    const pending = sink.writeBatch([up(6, { name: 'six' }), up(5, { name: 'five-b' })]);
    let pid: number | null = null;
    for (let i = 0; i < 100 && pid === null; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const r = await admin.query(`SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'syncline-sink-test' AND wait_event_type = 'Lock'`, [DB]);
      pid = r.rows[0]?.pid ?? null;
    }
    assert.ok(pid, 'sink statement did not block on the lock');
    // Expect the rejection before it can happen: it may arrive while the terminate is still answering.
    const refused = assert.rejects(pending, (e: unknown) => e instanceof SynclineError && e.retriable && e.code === 'PG_57P01');
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    await refused;
    await locker.query('COMMIT');
  } finally {
    locker.release();
  }
  assert.deepEqual((await users([5, 6])).map((x) => [x.id, x.name]), [['5', 'five']]);
  // the caller retries the whole batch
  assert.deepEqual((await sink.writeBatch([up(6, { name: 'six' }), up(5, { name: 'five-b' })])).failed, []);
  assert.deepEqual((await users([5, 6])).map((x) => [x.id, x.name]), [['5', 'five-b'], ['6', 'six']]);
  await admin.query('TRUNCATE public.users');
});

test('an upsert marked absent (the guarded read found no row) does not overwrite a row inserted since: the write fails retriably, nothing of it stays', async () => {
  await admin.query(`DELETE FROM public.users WHERE id IN (9101, 9102, 9103)`);
  const reads = new Map([['public.users', [{ id: 9101n }, { id: 9102n }, { id: 9103n }]]]);
  let calls = 0;
  const write = () =>
    sink.writeGuarded({
      reads,
      decide: async (rows) => {
        calls++;
        // What the applier does: upserts at keys the read found empty are marked absent.
        const batch = [up(9101, { email: 'a9101@x', name: 'ours' }), up(9102, { email: 'a9102@x', name: 'ours' }), up(9103, { email: 'a9103@x', name: 'ours' })];
        for (const r of batch) if (!rows.get('public.users')!.has(keyString(r.key))) r.absent = true;
        // Someone else inserts 9102 between our read and our write (committed before our insert).
        if (calls === 1) await admin.query(`INSERT INTO public.users (id, email, name) VALUES (9102, 'theirs9102@x', 'theirs')`);
        return batch;
      },
    });
  await assert.rejects(write(), (err: SynclineError) => err.code === 'SINK_ROW_APPEARED' && err.kind === 'retriable' && /1 of 3 rows of public\.users/.test(err.message));
  const rows = (await admin.query(`SELECT id::int AS id, name FROM public.users WHERE id IN (9101, 9102, 9103) ORDER BY id`)).rows;
  assert.deepEqual(rows, [{ id: 9102, name: 'theirs' }], 'the failed write left nothing; their row stands');
  // The retry reads their row: 9102 is no longer marked, and the write goes through.
  await write();
  assert.equal(calls, 2);
  assert.deepEqual((await admin.query(`SELECT id::int AS id, name FROM public.users WHERE id IN (9101, 9102, 9103) ORDER BY id`)).rows.map((r) => r.name), ['ours', 'ours', 'ours']);
});

test('a decided delete whose row changed meanwhile: an older row still loses to it, a later one is kept and re-published (two-way, multi-way)', async () => {
  await admin.query(`CREATE TABLE public.decided (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL)`);
  const origin = `syncline:tsink${randomBytes(3).toString('hex')}:decided`;
  const two = new PostgresSink(cfg(), { pipeline: 'decided', log, origin });
  await two.connect();
  try {
    const deleteAt = Date.parse('2026-06-01T12:00:00.500Z');
    // Read when the delete was decided: each row at 12:00:00.100; since then both changed.
    await admin.query(`INSERT INTO public.decided VALUES (1, 'older', '2026-06-01T12:00:00.300Z'), (2, 'later', '2026-06-01T12:00:00.600Z'), (3, 'same ms', '2026-06-01T12:00:00.500999Z'), (4, 'unchanged', '2026-06-01T12:00:00.100Z')`);
    const guard = { updated_at: '2026-06-01T12:00:00.100000Z' };
    const kept = await two.republishDelete('public.decided', [1, 2, 3, 4].map((id) => ({ key: { id }, guard })), deleteAt);
    const left = (await admin.query(`SELECT id, v FROM public.decided ORDER BY id`)).rows;
    assert.deepEqual(left, [{ id: 2, v: 'later' }, { id: 3, v: 'same ms' }], 'the row changed to an earlier time than the delete is deleted; later ones (and a tie) stay');
    assert.deepEqual(kept.map((k) => k.id), [2, 3], 'the kept rows are re-published');
  } finally {
    await two.close();
    await admin.query(`SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE starts_with(roname, $1)`, [origin]).catch(() => undefined);
  }
});
