/**
 * Per-table transforms on the real stack (PostgreSQL → Kafka → PostgreSQL), snapshot and streamed
 * rows: a row filter over REPLICA IDENTITY DEFAULT (no old row: an update leaving the filter sends a
 * delete) and FULL (the old row decides; onLeave keep leaves the target row), rows moving into and
 * out of the filter, inserts, updates, deletes; the column steps (exclude, compute, set, cast,
 * extract, map, timezone); a custom transform in a worker, one change throwing and one looping
 * (both dead-lettered with the reason, the pipeline goes on).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readTopic, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import { topics } from '../src/core/kafka.js';
import { currentVersion } from '../src/process/transform/versions.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/transforms.mjs', import.meta.url));

const ORDERS_STEPS = [
  { where: "status != 'draft' and region = 'eu'" },
  { exclude: ['notes'] },
  { compute: { total: 'price * qty' } },
  { set: { origin: 'eu-shop' } },
  { cast: { age: 'integer' } },
  { extract: { sku: "payload->>'sku'" } },
  { map: { code: { values: { '1': 'new', '2': 'paid' }, otherwise: 'invalid' } } },
  { timezone: { columns: ['at'], to: 'Europe/Berlin' } },
  { exclude: ['payload'] },
];

test('transforms: filters in and out (DEFAULT and FULL identity), column steps, a custom transform that throws or loops', async (t) => {
  const env = await testEnv([
    {
      name: 'orders-sync',
      tables: [
        { source: 'public.orders', transform: ORDERS_STEPS },
        { source: 'public.tickets', transform: [{ where: "state = 'open'" }] },
        { source: 'public.kept', transform: [{ where: "state = 'open'", onLeave: 'keep' }] },
        { source: 'public.customs', transform: [{ custom: { module: FIXTURE, timeoutMs: 2000 } }] },
      ],
      conflict: { strategy: 'source-wins' },
    },
  ]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, `
    create table orders (id bigint primary key, status text, region text, code int, price numeric(10,2), qty int, age text, payload jsonb, at timestamptz, notes text);
    create table tickets (id bigint primary key, state text, title text);
    alter table tickets replica identity full;
    create table kept (id bigint primary key, state text, title text);
    alter table kept replica identity full;
    create table customs (id bigint primary key, note text);`);
  await sql(env.targetDb, `
    create table orders (id bigint primary key, status text, region text, code text, price numeric(10,2), qty int, age int, at timestamp, total numeric, origin text, sku text);
    create table tickets (id bigint primary key, state text, title text);
    create table kept (id bigint primary key, state text, title text);
    create table customs (id bigint primary key, note text);`);
  const order = (id: number, status: string, region: string, code = 2) =>
    sql(env.sourceDb, `insert into orders values ($1, $2, $3, $4, 10.50, 3, '42', $5, '2024-07-01T10:00:00.5Z', 'secret')`, [id, status, region, code, JSON.stringify({ sku: `SKU-${id}` })]);

  // Snapshot: 1 and 8 in the filter, 2 (draft) and 3 (us) out, 4 in but with an unknown status code (dead-lettered).
  await order(1, 'paid', 'eu');
  await order(2, 'draft', 'eu');
  await order(3, 'paid', 'us');
  await order(4, 'paid', 'eu', 9);
  await order(8, 'paid', 'eu', 1);
  await sql(env.sourceDb, `insert into tickets values (1, 'open', 'a'), (2, 'closed', 'b'), (5, 'open', 'e')`);
  await sql(env.sourceDb, `insert into kept values (1, 'open', 'a'), (2, 'closed', 'b'), (3, 'open', 'c')`);
  await sql(env.sourceDb, `insert into customs values (1, 'hi'), (2, 'throw')`);

  await startRuntime(env);
  const ids = async (table: string) => (await sql(env.targetDb, `select coalesce(array_agg(id order by id)::int[], '{}') ids from ${table}`)).rows[0].ids as number[];
  await waitFor('snapshot applied', async () => JSON.stringify(await ids('orders')) === '[1,8]' && JSON.stringify(await ids('tickets')) === '[1,5]' && JSON.stringify(await ids('kept')) === '[1,3]' && JSON.stringify(await ids('customs')) === '[1]');
  const row8 = (await sql(env.targetDb, `select id, status, region, code, price::text, qty, age, at::text, total::text, origin, sku from orders where id = 8`)).rows[0];
  assert.deepEqual(row8, { id: '8', status: 'paid', region: 'eu', code: 'new', price: '10.50', qty: 3, age: 42, at: '2024-07-01 12:00:00.5', total: '31.5', origin: 'eu-shop', sku: 'SKU-8' });

  // Streamed.
  await order(5, 'paid', 'eu'); // in
  await order(6, 'draft', 'eu'); // out
  await sql(env.sourceDb, `update orders set status = 'paid' where id = 2`); // moves in: upserted
  await sql(env.sourceDb, `update orders set status = 'draft' where id = 1`); // moves out (no old row): deleted
  await sql(env.sourceDb, `update orders set price = 11 where id = 3`); // never in: a delete of nothing
  await sql(env.sourceDb, `delete from orders where id = 5`);
  await sql(env.sourceDb, `update orders set qty = 4 where id = 6`); // still out
  await order(7, 'paid', 'eu', 1);
  await sql(env.sourceDb, `update tickets set state = 'closed' where id = 1`); // moves out (old row known): deleted
  await sql(env.sourceDb, `update tickets set state = 'open', title = 'b2' where id = 2`); // moves in
  await sql(env.sourceDb, `delete from tickets where id = 5`);
  await sql(env.sourceDb, `update kept set state = 'closed', title = 'a2' where id = 1`); // leaves, keep: the target keeps 'a'
  await sql(env.sourceDb, `update kept set state = 'open' where id = 2`); // moves in
  await sql(env.sourceDb, `update kept set state = 'closed' where id = 3`); // leaves (kept on the target)…
  await sql(env.sourceDb, `delete from kept where id = 3`); // …and its delete still reaches the target
  await sql(env.sourceDb, `insert into customs values (3, 'loop'), (4, 'ok')`);
  // Barrier: 30 keys cover every partition of each topic (each is applied in order).
  await sql(env.sourceDb, `insert into kept select g, 'open', 'barrier' from generate_series(100, 129) g`);

  await waitFor('streamed changes applied', async () =>
    JSON.stringify(await ids('orders')) === '[2,7,8]' && JSON.stringify(await ids('tickets')) === '[2]' && (await ids('kept')).length === 32 && JSON.stringify(await ids('customs')) === '[1,4]');
  assert.deepEqual((await sql(env.targetDb, `select id, status, code, total::text, sku from orders where id in (2, 7) order by id`)).rows, [
    { id: '2', status: 'paid', code: 'paid', total: '31.5', sku: 'SKU-2' },
    { id: '7', status: 'paid', code: 'new', total: '31.5', sku: 'SKU-7' },
  ]);
  assert.deepEqual((await sql(env.targetDb, `select id, state, title from tickets`)).rows, [{ id: '2', state: 'open', title: 'b2' }]);
  assert.deepEqual((await sql(env.targetDb, `select id, state, title from kept where id < 100 order by id`)).rows, [
    { id: '1', state: 'open', title: 'a' },
    { id: '2', state: 'open', title: 'b' },
  ]);
  assert.deepEqual((await sql(env.targetDb, `select id, note from customs order by id`)).rows, [{ id: '1', note: 'HI!' }, { id: '4', note: 'OK!' }]);

  // Dead letters: the unknown status code, the throw, the loop; each names table, step and reason.
  const letters = await waitFor('three dead letters', async () => {
    const m = await readTopic(topics.dlq(env.prefix, 'orders-sync')).catch(() => []);
    return m.length >= 3 ? m : false;
  });
  assert.equal(letters.length, 3);
  const version = currentVersion('orders-sync', env.config.pipelines['orders-sync']!).hash;
  assert.deepEqual(letters.map((l) => l.headers['syncline.transforms']), [version, version, version], 'each letter names the transforms version that ran');
  const shown = letters.map((l) => `${l.headers['syncline.dlq.kind']} ${l.headers['syncline.table']} ${l.headers['syncline.error.code']}: ${l.headers['syncline.error.message']}`).sort();
  assert.equal(shown.length, 3);
  assert.match(shown[0]!, /^invalid public\.customs TRANSFORM_FAILED: public\.customs key \["2"\]: public\.customs step 1 \(custom\) .*transforms\.mjs#transform threw: Error: refused note$/);
  assert.match(shown[1]!, /^invalid public\.customs TRANSFORM_TIMEOUT: public\.customs key \["3"\]: public\.customs step 1 \(custom\) .*#transform took longer than 2000 ms/);
  assert.match(shown[2]!, /^invalid public\.orders TRANSFORM_FAILED: public\.orders key \["4"\]: public\.orders step 7 \(map\): column code: number 9 is not in the value map$/);
});
