/**
 * autoCreate on the real stack: a pipeline into an empty target database converges with its tables
 * created (primary keys and column types as the source's), including an empty source table and a
 * column added later; a target user without the CREATE right gets the refusal with the GRANT, and
 * converges once granted; with autoCreate off a missing table stays SINK_TABLE_MISSING. Two-way: an
 * empty side gets its tables from the pipeline writing it, and its own capture waits for them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PgSinkConfig } from '../connectors/postgres/spec.js';
import { SynclineError } from '../src/core/errors.js';
import { checksum, sql, startRuntime, testEnv, waitFor } from './helpers.js';

const SOURCE_DDL = `
  create type mood as enum ('sad', 'ok', 'happy');
  create table items (
    id bigint primary key, name varchar(50) not null, price numeric(10,2), qty int, small smallint,
    ratio real, score double precision, ok boolean, born date, at timestamp, atz timestamptz(3),
    u uuid, doc jsonb, j json, raw bytea, tags text[], nums int[], code char(3), dur interval,
    ip inet, feeling mood, updated_at timestamptz not null default now()
  );
  create table pairs (a int, b text, v text, updated_at timestamptz default now(), primary key (b, a));
  create table empty_one (id int primary key, v text, updated_at timestamptz);
  create table logs (k text not null, v text, updated_at timestamptz);
  alter table logs replica identity full;`;

const ITEM = `insert into items (id, name, price, qty, small, ratio, score, ok, born, at, atz, u, doc, j, raw, tags, nums, code, dur, ip, feeling)
  values ($1::bigint, 'item ' || $1::bigint, 12.5, 3, 2, 0.25, 1e-300, true, '2024-02-29', '2024-01-01 10:00:00.123456', '2024-01-01 10:00:00.123+02',
          'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{ "b" : 1 }', '\\x00ff', '{x,NULL,"y z"}', '{1,2,3}', 'ab', '1 day 02:03:04', '10.0.0.1/8', 'happy')`;

/** name → format_type of a table's columns, in order, and its primary key columns in key order. */
async function shape(db: string, table: string): Promise<{ columns: string[]; key: string[] }> {
  const cols = await sql(db, `select a.attname || ' ' || format_type(a.atttypid, a.atttypmod) as c from pg_attribute a where a.attrelid = $1::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum`, [table]);
  const key = await sql(db, `select a.attname from pg_index i join lateral unnest(i.indkey) with ordinality k(attnum, ord) on true join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum where i.indrelid = $1::regclass and i.indisprimary order by k.ord`, [table]);
  return { columns: cols.rows.map((r) => r.c as string), key: key.rows.map((r) => r.attname as string) };
}

test('an empty target database: tables created with the source keys and types, rows converge, a new column follows', async (t) => {
  const env = await testEnv([
    { name: 'shop_sync-1', tables: [{ source: 'public.items' }, { source: 'public.pairs' }, { source: 'public.empty_one' }, { source: 'public.logs', key: ['k'] }] },
  ]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, SOURCE_DDL);
  for (let id = 1; id <= 20; id++) await sql(env.sourceDb, ITEM, [id]);
  await sql(env.sourceDb, `insert into pairs (a, b, v) select g, 'b' || (g % 3), 'v' || g from generate_series(1, 30) g`);
  await sql(env.sourceDb, `insert into logs (k, v) values ('one', 'first'), ('two', 'second')`);
  const { rt, done } = await startRuntime(env);
  const same = (table: string, order: string) => async () => {
    const [a, b] = await Promise.all([checksum(env.sourceDb, table, order), checksum(env.targetDb, table, order).catch(() => null)]);
    return b !== null && a.count === b.count && a.md5 === b.md5;
  };
  await waitFor('snapshot converged', async () => (await same('items', 'id')()) && (await same('pairs', 'b, a')()) && (await same('logs', 'k')()));
  // Streaming into the created tables: inserts, updates, deletes.
  for (let id = 21; id <= 30; id++) await sql(env.sourceDb, ITEM, [id]);
  await sql(env.sourceDb, `update items set name = 'renamed', tags = '{}' where id <= 5`);
  await sql(env.sourceDb, `delete from items where id between 6 and 8`);
  await sql(env.sourceDb, `delete from pairs where a = 1; update logs set v = 'changed' where k = 'two'`);
  await waitFor('streaming converged', async () => (await same('items', 'id')()) && (await same('pairs', 'b, a')()) && (await same('logs', 'k')()));

  // Keys and types as the source's; the enum the target lacks became text.
  const srcItems = await shape(env.sourceDb, 'public.items');
  const dstItems = await shape(env.targetDb, 'public.items');
  assert.deepEqual(dstItems.key, ['id']);
  assert.deepEqual(dstItems.columns, srcItems.columns.map((c) => (c === 'feeling mood' ? 'feeling text' : c)));
  assert.ok(srcItems.columns.includes('atz timestamp(3) with time zone') && srcItems.columns.includes('code character(3)'));
  assert.deepEqual(await shape(env.targetDb, 'public.pairs'), await shape(env.sourceDb, 'public.pairs'));
  assert.deepEqual((await shape(env.targetDb, 'public.pairs')).key, ['b', 'a']);
  assert.deepEqual(await shape(env.targetDb, 'public.logs'), { columns: ['k text', 'v text', 'updated_at timestamp with time zone'], key: ['k'] }); // configured key → primary key
  // An empty source table: created from its end-of-snapshot marker.
  assert.deepEqual(await shape(env.targetDb, 'public.empty_one'), await shape(env.sourceDb, 'public.empty_one'));
  assert.equal((await sql(env.targetDb, 'select count(*)::int as n from empty_one')).rows[0].n, 0);

  // A column added at the source later: the target gains it with the same type (autoEvolve).
  await sql(env.sourceDb, `alter table items add column extra varchar(10); update items set extra = 'x' || id where id = 1`);
  await waitFor('the new column converged', async () => same('items', 'id')());
  assert.ok((await shape(env.targetDb, 'public.items')).columns.includes('extra character varying(10)'));
  const h = rt.pipelines[0]!;
  assert.equal(h.applier!.stats.deadLettered, 0);
  await rt.stop();
  await done;
});

test('a target user without CREATE: the pipeline stops with the table, the right and the GRANT; granted, it converges', async (t) => {
  const env = await testEnv([{ name: 'grants-sync', tables: [{ source: 'public.items' }] }]);
  const role = `syncline_t_${env.id}_nocreate`;
  await sql('postgres', `create role ${role} login`);
  t.after(async () => {
    await env.cleanup();
    await sql('postgres', `drop role if exists ${role}`);
  });
  await sql(env.sourceDb, SOURCE_DDL);
  for (let id = 1; id <= 5; id++) await sql(env.sourceDb, ITEM, [id]);
  (env.config.pipelines['grants-sync']!.target as PgSinkConfig).connection.user = role;

  const first = await startRuntime(env);
  await assert.rejects(first.done, (e: unknown) => {
    assert.ok(e instanceof SynclineError, String(e));
    assert.equal(e.code, 'SINK_CREATE_DENIED');
    assert.equal(e.kind, 'fatal');
    assert.ok(e.message.includes('target table public.items does not exist and autoCreate cannot create it'), e.message);
    assert.ok(e.message.includes(`user ${role} lacks CREATE on schema "public"`), e.message);
    assert.ok(e.message.includes(`GRANT CREATE ON SCHEMA "public" TO "${role}";`), e.message);
    assert.ok(e.message.includes('CREATE TABLE "public"."items" ("id" int8 NOT NULL'), e.message);
    return true;
  });
  assert.equal((await sql(env.targetDb, `select to_regclass('public.items') as t`)).rows[0].t, null);

  await sql(env.targetDb, `grant create on schema public to ${role}`);
  await startRuntime(env);
  await waitFor('converged once granted', async () => {
    const [a, b] = await Promise.all([checksum(env.sourceDb, 'items', 'id'), checksum(env.targetDb, 'items', 'id').catch(() => null)]);
    return b !== null && a.md5 === b.md5 && a.count === 5;
  });
  assert.equal((await sql(env.targetDb, `select tableowner from pg_tables where tablename = 'items'`)).rows[0].tableowner, role);
});

test('autoCreate off: a missing target table stops the pipeline with SINK_TABLE_MISSING', async (t) => {
  const env = await testEnv([{ name: 'strict-sync', tables: [{ source: 'public.pairs' }] }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, SOURCE_DDL);
  await sql(env.sourceDb, `insert into pairs (a, b, v) values (1, 'x', 'y')`);
  (env.config.pipelines['strict-sync']!.target as PgSinkConfig).autoCreate = false;
  const { done } = await startRuntime(env);
  await assert.rejects(done, (e: unknown) => {
    assert.ok(e instanceof SynclineError, String(e));
    assert.equal(e.code, 'SINK_TABLE_MISSING');
    assert.match(e.message, /target table public\.pairs does not exist/);
    return true;
  });
  assert.equal((await sql(env.targetDb, `select to_regclass('public.pairs') as t`)).rows[0].t, null);
});

test('two-way with an empty side: A → B creates B\'s tables, B → A waits for them, then edits flow both ways', async (t) => {
  const conflict = { strategy: 'latest-timestamp', field: 'updated_at' };
  const env = await testEnv([
    { name: 'a-to-b', tables: [{ source: 'public.pairs' }, { source: 'public.empty_one' }], conflict, peer: 'b-to-a' },
    { name: 'b-to-a', tables: [{ source: 'public.pairs' }, { source: 'public.empty_one' }], conflict, peer: 'a-to-b', reverse: true },
  ]);
  t.after(() => env.cleanup());
  const A = env.sourceDb;
  const B = env.targetDb;
  await sql(A, SOURCE_DDL);
  await sql(A, `insert into pairs (a, b, v) select g, 'b', 'v' || g from generate_series(1, 50) g`);
  const { rt } = await startRuntime(env);
  const same = async () => {
    const [a, b] = await Promise.all([checksum(A, 'pairs', 'b, a'), checksum(B, 'pairs', 'b, a').catch(() => null)]);
    return b !== null && a.count === b.count && a.md5 === b.md5;
  };
  await waitFor('B has A\'s tables and rows', async () => (await same()) && (await sql(B, `select to_regclass('public.empty_one') as t`)).rows[0].t !== null);
  const back = rt.pipelines.find((p) => p.name === 'b-to-a')!;
  await waitFor('B → A streaming', async () => (back.capture?.stats.confirmed ?? '') !== '');
  await sql(B, `update pairs set v = 'from B', updated_at = clock_timestamp() where a = 7; insert into empty_one (id, v, updated_at) values (1, 'B made it', clock_timestamp())`);
  await sql(A, `update pairs set v = 'from A', updated_at = clock_timestamp() where a = 9`);
  await waitFor('edits of both sides on both sides', async () => {
    const a = await sql(A, `select (select v from pairs where a = 7) as v7, (select v from pairs where a = 9) as v9, (select v from empty_one where id = 1) as e`);
    const b = await sql(B, `select (select v from pairs where a = 7) as v7, (select v from pairs where a = 9) as v9, (select v from empty_one where id = 1) as e`);
    return JSON.stringify(a.rows[0]) === JSON.stringify({ v7: 'from B', v9: 'from A', e: 'B made it' }) && JSON.stringify(b.rows[0]) === JSON.stringify(a.rows[0]);
  });
  assert.ok(await same());
});
