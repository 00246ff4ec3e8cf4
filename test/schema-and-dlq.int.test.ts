/**
 * Schema change mid-stream (ALTER TABLE ADD COLUMN registers a new compatible schema version and
 * keeps flowing), a record the target rejects lands in the DLQ with its reason while the rest flows
 * on, unchanged TOASTed values survive, and a table without a usable key is refused by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checksum, readTopic, sleep, startRuntime, testEnv, waitFor, withClient, sql } from './helpers.js';
import { topics } from '../src/core/kafka.js';

test('ALTER TABLE ADD COLUMN mid-stream registers a new schema version and keeps flowing', async (t) => {
  const env = await testEnv([{ name: 'accounts-sync', tables: [{ source: 'public.accounts' }] }]);
  t.after(() => env.cleanup());
  const ddl = `create table accounts (id int primary key, name text not null, updated_at timestamptz not null default clock_timestamp())`;
  await sql(env.sourceDb, ddl);
  await sql(env.targetDb, ddl);
  await sql(env.sourceDb, `insert into accounts (id, name) select g, 'a' || g from generate_series(1, 100) g`);

  const { rt } = await startRuntime(env);
  await waitFor('snapshot applied', async () => (await checksum(env.targetDb, 'accounts', 'id')).count === 100);

  await sql(env.sourceDb, `update accounts set name = name || '!' where id <= 10`);
  await sql(env.sourceDb, `alter table accounts add column score numeric(8,3)`);
  await sql(env.sourceDb, `insert into accounts (id, name, score) select g, 'b' || g, g / 7.0 from generate_series(101, 150) g`);
  await sql(env.sourceDb, `update accounts set score = 1.5 where id <= 20`);

  await waitFor('target has the new column and every row', async () => {
    const cols = await sql(env.targetDb, `select 1 from information_schema.columns where table_name = 'accounts' and column_name = 'score'`);
    if (cols.rowCount === 0) return false;
    const [s, d] = await Promise.all([
      sql(env.sourceDb, `select md5(string_agg(id || ':' || name || ':' || coalesce(score::text, '-'), ',' order by id)) m from accounts`),
      sql(env.targetDb, `select md5(string_agg(id || ':' || name || ':' || coalesce(score::text, '-'), ',' order by id)) m from accounts`),
    ]);
    return s.rows[0].m === d.rows[0].m;
  });
  const res = await fetch(`${env.config.schemaRegistry.url}/subjects/${topics.cdc(env.prefix, 'public', 'accounts')}-value/versions`);
  const versions = (await res.json()) as number[];
  assert.ok(versions.length >= 2, `value subject has ${versions.length} versions`);
});

test('a record the target rejects goes to the DLQ with its reason; the rest flows on', async (t) => {
  const env = await testEnv([{ name: 'orders-sync', tables: [{ source: 'public.orders' }], conflict: { strategy: 'source-wins' } }]); // no updated_at to compare
  t.after(() => env.cleanup());
  await sql(env.sourceDb, `create table orders (id int primary key, qty int not null, note text)`);
  // The target refuses negative quantities.
  await sql(env.targetDb, `create table orders (id int primary key, qty int not null check (qty >= 0), note text)`);
  const { rt } = await startRuntime(env);

  await sql(env.sourceDb, `insert into orders select g, g, 'ok' from generate_series(1, 50) g`);
  await sql(env.sourceDb, `insert into orders values (51, -5, 'rejected by the target')`);
  await sql(env.sourceDb, `insert into orders select g, g, 'after' from generate_series(52, 100) g`);

  await waitFor('the good rows to arrive', async () => (await checksum(env.targetDb, 'orders', 'id')).count === 99);
  const dlqTopic = topics.dlq(env.prefix, 'orders-sync');
  const letters = await waitFor('a dead letter', async () => {
    const m = await readTopic(dlqTopic).catch(() => []);
    return m.length > 0 ? m : false;
  });
  assert.equal(letters.length, 1);
  const h = letters[0]!.headers;
  assert.equal(h['syncline.dlq.kind'], 'failed');
  assert.equal(h['syncline.error.code'], 'PG_23514');
  assert.match(h['syncline.error.message']!, /check constraint/i);
  assert.equal(h['syncline.original.topic'], topics.cdc(env.prefix, 'public', 'orders'));
  assert.ok(h['syncline.original.partition'] !== undefined && h['syncline.original.offset'] !== undefined);
  assert.ok(Number(h['syncline.attempts']) >= 1);
  assert.ok(!Number.isNaN(Date.parse(h['syncline.time']!)));
  const missing = await sql(env.targetDb, `select count(*)::int n from orders where id = 51`);
  assert.equal(missing.rows[0].n, 0);
  const dl = rt.pipelines[0]!.applier!.stats.deadLettered;
  assert.equal(dl, 1);
});

test('an unchanged TOASTed value is kept on the target when another column changes', async (t) => {
  const env = await testEnv([{ name: 'docs-sync', tables: [{ source: 'public.docs' }], conflict: { strategy: 'source-wins' } }]); // no updated_at to compare
  t.after(() => env.cleanup());
  const ddl = `create table docs (id int primary key, title text, body text)`;
  await sql(env.sourceDb, ddl);
  await sql(env.sourceDb, `alter table docs alter column body set storage external`);
  await sql(env.targetDb, ddl);
  const { rt } = await startRuntime(env);
  const big = 'lorem ipsum '.repeat(20_000); // ~240 kB: stored out of line (TOAST)
  await sql(env.sourceDb, `insert into docs values (1, 'first', $1), (2, 'second', $1)`, [big]);
  await waitFor('insert applied', async () => (await checksum(env.targetDb, 'docs', 'id')).count === 2);
  await sql(env.sourceDb, `update docs set title = 'renamed' where id = 1`);
  await waitFor('update applied', async () => (await sql(env.targetDb, `select title from docs where id = 1`)).rows[0]?.title === 'renamed');
  const r = await sql(env.targetDb, `select length(body) as n from docs where id = 1`);
  assert.equal(r.rows[0].n, big.length, 'the TOASTed body was not turned into NULL');
  const [s, d] = await Promise.all([checksum(env.sourceDb, 'docs', 'id'), checksum(env.targetDb, 'docs', 'id')]);
  assert.equal(d.md5, s.md5);
});

test('a table without a primary key (and no REPLICA IDENTITY FULL + key) is refused by name', async (t) => {
  const env = await testEnv([{ name: 'logs-sync', tables: [{ source: 'public.logs' }] }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, `create table logs (at timestamptz, line text)`);
  await sql(env.targetDb, `create table logs (at timestamptz, line text)`);
  const { rt, done } = await startRuntime(env, ['capture']);
  await assert.rejects(done, (err: Error & { code?: string }) => {
    assert.equal(err.code, 'SOURCE_NO_KEY');
    assert.match(err.message, /public\.logs has no primary key/);
    return true;
  });
  await sleep(10);
});
