/**
 * Content-based routing (tables[].route, ADR 0038) on the real stack, PostgreSQL → Kafka → PostgreSQL:
 *  - orders (REPLICA IDENTITY FULL) routed `by: region` into orders_eu / orders_us, no default: snapshot
 *    rows and inserts land in their route's table; updates that move a row delete it from the old
 *    route's table (found from the old row) and upsert it into the new one, a row moving there and
 *    back; a delete reaches the route the row was in; a row matching no route is dead-lettered
 *    (ROUTE_UNMATCHED) and a later update moving it into a route creates it there;
 *  - parcels (REPLICA IDENTITY DEFAULT: no old row) routed by `cases` with a default: a moving update
 *    deletes the row from every other route table;
 *  - the runtime stopped mid-way and started again (changes made while it was down);
 *  - a replay from the beginning onto emptied targets and version state gives the same tables.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { readTopic, runCli, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import { topics } from '../src/core/kafka.js';

const P = 'route-sync';

test('routing: snapshot and streamed rows to their route, moves between routes and back, deletes, unmatched rows, restart, replay', async (t) => {
  const env = await testEnv([
    {
      name: P,
      tables: [
        { source: 'public.orders', route: { by: 'region', to: { eu: 'public.orders_eu', us: 'public.orders_us' } } },
        {
          source: 'public.parcels',
          route: { cases: [{ when: 'weight >= 10', table: 'public.parcels_heavy' }, { when: "region = 'eu'", table: 'public.parcels_eu' }], default: 'public.parcels_other' },
        },
        // Numeric values route by their exact value (1.00 → '1'), deletes included.
        { source: 'public.tiers', route: { by: 'tier', to: { '1': 'public.tiers_1', '2': 'public.tiers_2' }, default: 'public.tiers_other' } },
      ],
      conflict: { strategy: 'source-wins' },
    },
  ]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, `
    create table orders (id bigint primary key, region text, amount int);
    alter table orders replica identity full;
    create table parcels (id bigint primary key, region text, weight int);
    create table tiers (id bigint primary key, tier numeric(6,2));
    alter table tiers replica identity full;`);
  await sql(env.targetDb, `
    create table orders_eu (id bigint primary key, region text, amount int);
    create table orders_us (id bigint primary key, region text, amount int);
    create table parcels_heavy (id bigint primary key, region text, weight int);
    create table parcels_eu (id bigint primary key, region text, weight int);
    create table parcels_other (id bigint primary key, region text, weight int);
    create table tiers_1 (id bigint primary key, tier numeric(6,2));
    create table tiers_2 (id bigint primary key, tier numeric(6,2));
    create table tiers_other (id bigint primary key, tier numeric(6,2));`);
  const TABLES = ['orders_eu', 'orders_us', 'parcels_heavy', 'parcels_eu', 'parcels_other', 'tiers_1', 'tiers_2', 'tiers_other'];
  /** Every target table's rows, as 'id:region:amount|weight' lists. */
  const contents = async () => {
    const out: Record<string, string[]> = {};
    for (const table of TABLES) {
      const col = table.startsWith('orders') ? 'amount' : 'weight';
      const text = table.startsWith('tiers') ? `id || ':' || tier` : `id || ':' || coalesce(region, '-') || ':' || ${col}`;
      out[table] = (await sql(env.targetDb, `select ${text} as r from ${table} order by id`)).rows.map((r) => r.r as string);
    }
    return out;
  };
  const reaches = async (what: string, want: Record<string, string[]>) => {
    let last: Record<string, string[]> = {};
    try {
      await waitFor(what, async () => JSON.stringify((last = await contents())) === JSON.stringify(want));
    } catch (err) {
      assert.deepEqual(last, want, `${what}: ${(err as Error).message}`);
    }
  };

  // Snapshot: 3 matches no route (dead-lettered).
  await sql(env.sourceDb, `insert into orders values (1, 'eu', 10), (2, 'us', 20), (3, 'xx', 30)`);
  await sql(env.sourceDb, `insert into parcels values (1, 'eu', 1), (2, 'us', 20), (3, 'us', 1)`);
  await sql(env.sourceDb, `insert into tiers values (1, 1.00), (2, 2), (3, 3.5)`);
  let { rt } = await startRuntime(env);
  await reaches('snapshot routed', {
    orders_eu: ['1:eu:10'],
    orders_us: ['2:us:20'],
    parcels_heavy: ['2:us:20'],
    parcels_eu: ['1:eu:1'],
    parcels_other: ['3:us:1'],
    tiers_1: ['1:1.00'],
    tiers_2: ['2:2.00'],
    tiers_other: ['3:3.50'],
  });

  // Streamed, first half.
  await sql(env.sourceDb, `insert into orders values (4, 'eu', 40), (5, 'us', 50)`);
  await sql(env.sourceDb, `update orders set region = 'us', amount = 11 where id = 1`); // eu → us
  await sql(env.sourceDb, `update orders set region = 'eu', amount = 21 where id = 2`); // us → eu …
  await sql(env.sourceDb, `update orders set amount = 41 where id = 4`); // stays in eu
  await sql(env.sourceDb, `update parcels set weight = 30 where id = 1`); // eu → heavy (no old row)
  await sql(env.sourceDb, `update parcels set region = 'eu' where id = 3`); // other → eu
  await sql(env.sourceDb, `update tiers set tier = 2.0 where id = 1`); // 1 → 2
  await sql(env.sourceDb, `delete from tiers where id = 2`); // the old row's 2.00 routes to tiers_2
  await reaches('first half applied', {
    orders_eu: ['2:eu:21', '4:eu:41'],
    orders_us: ['1:us:11', '5:us:50'],
    parcels_heavy: ['1:eu:30', '2:us:20'],
    parcels_eu: ['3:eu:1'],
    parcels_other: [],
    tiers_1: [],
    tiers_2: ['1:2.00'],
    tiers_other: ['3:3.50'],
  });

  // Stopped mid-way; the second half happens while it is down.
  await rt.stop();
  await sql(env.sourceDb, `update orders set region = 'us', amount = 22 where id = 2`); // … and back to us
  await sql(env.sourceDb, `delete from orders where id = 5`); // from us only (old row)
  await sql(env.sourceDb, `update orders set region = 'eu' where id = 3`); // from no route into eu
  await sql(env.sourceDb, `insert into orders values (6, 'zz', 60)`); // matches nothing: dead-lettered
  await sql(env.sourceDb, `update parcels set region = 'us' where id = 3`); // eu → other (no old row)
  await sql(env.sourceDb, `delete from parcels where id = 2`); // no old row: every route table
  ({ rt } = await startRuntime(env));
  const final = {
    orders_eu: ['3:eu:30', '4:eu:41'],
    orders_us: ['1:us:11', '2:us:22'],
    parcels_heavy: ['1:eu:30'],
    parcels_eu: [],
    parcels_other: ['3:us:1'],
    tiers_1: [],
    tiers_2: ['1:2.00'],
    tiers_other: ['3:3.50'],
  };
  await reaches('second half applied after the restart', final);

  // The two orders that match no route, each dead-lettered once with the reason.
  const letters = await waitFor('two dead letters', async () => {
    const m = await readTopic(topics.dlq(env.prefix, P)).catch(() => []);
    return m.length >= 2 ? m : false;
  });
  const shown = letters.map((l) => `${l.headers['syncline.dlq.kind']} ${l.headers['syncline.error.code']}: ${l.headers['syncline.error.message']}`).sort();
  assert.deepEqual(shown, [
    `invalid ROUTE_UNMATCHED: public.orders key ["3"]: public.orders: the row matches no route of by "region" (to: eu, us) and the route has no default (values: region='xx')`,
    `invalid ROUTE_UNMATCHED: public.orders key ["6"]: public.orders: the row matches no route of by "region" (to: eu, us) and the route has no default (values: region='zz')`,
  ]);

  // Replay from the beginning onto empty targets and no version state: the same tables.
  await rt.stop();
  await sql(env.targetDb, `truncate ${TABLES.join(', ')}`);
  const redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true });
  await redis.connect();
  try {
    const keys = await redis.keys(`${env.prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
  assert.deepEqual(await contents(), Object.fromEntries(TABLES.map((x) => [x, []])));
  const r = await runCli(['replay', '--pipeline', P, '-c', env.configFile, '--from', 'beginning']);
  assert.equal(r.code, 0, r.err + r.out);
  assert.deepEqual(await contents(), final);
});
