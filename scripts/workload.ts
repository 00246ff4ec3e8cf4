/**
 * Demo shop data and a concurrent mixed workload (inserts, updates, deletes, multi-row
 * transactions, hot keys) used by `npm run demo` and the convergence test.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';

const SCHEMA = readFileSync(new URL('../schemas/demo.sql', import.meta.url), 'utf8');

export const DEMO_TABLES = [
  { pipeline: 'users-sync', table: 'public.users', key: 'id' },
  { pipeline: 'orders-sync', table: 'public.orders', key: 'id' },
  { pipeline: 'orders-sync', table: 'public.order_items', key: 'order_id, line_no' },
  { pipeline: 'inventory-to-mariadb', table: 'public.inventory', key: 'sku' },
  { pipeline: 'inventory-to-mariadb', table: 'public.warehouses', key: 'id' },
] as const;

export async function createDemoSchema(client: pg.ClientBase): Promise<void> {
  await client.query(SCHEMA);
}

export async function seed(client: pg.ClientBase, sizes = { users: 2000, orders: 1000, skus: 500 }): Promise<void> {
  await client.query(`insert into warehouses (id, name, city) select g, 'WH-' || g, (array['Lyon','Oslo','Porto','Graz','Turku'])[g] from generate_series(1,5) g`);
  await client.query(
    `insert into users (id, email, name, status, balance, tags, profile)
     select g, 'user' || g || '@example.com', 'User ' || g, 'active', (g % 1000) + 0.25,
            array['seed', 'g' || (g % 7)], jsonb_build_object('tier', g % 3, 'note', 'seeded')
       from generate_series(1, $1::int) g`,
    [sizes.users],
  );
  await client.query(
    `insert into orders (id, user_id, status, total, ordered_at)
     select g, 1 + (g % $2::int), 'new', 10 + (g % 90), now() - (g || ' minutes')::interval from generate_series(1, $1::int) g`,
    [sizes.orders, sizes.users],
  );
  await client.query(
    `insert into order_items (order_id, line_no, sku, qty, price)
     select o, l, 'SKU-' || ((o * 3 + l) % $2::int), 1 + (o + l) % 4, 5 + ((o + l) % 20) from generate_series(1, $1::int) o, generate_series(1, 3) l`,
    [sizes.orders, sizes.skus],
  );
  await client.query(
    `insert into inventory (sku, warehouse_id, qty) select 'SKU-' || g, 1 + g % 5, 100 from generate_series(0, $1::int - 1) g`,
    [sizes.skus],
  );
}

export interface WorkloadResult {
  changes: number;
  transactions: number;
  byKind: Record<string, number>;
}

/**
 * Run `workers` concurrent clients until at least `changes` row changes committed. IDs of new rows
 * start above the seeded ranges so workers never collide on inserts.
 */
export async function runWorkload(
  connection: pg.ClientConfig,
  opts: { changes: number; workers?: number; sizes?: { users: number; orders: number; skus: number } },
): Promise<WorkloadResult> {
  const sizes = opts.sizes ?? { users: 2000, orders: 1000, skus: 500 };
  const workers = opts.workers ?? 6;
  let nextUser = sizes.users + 1;
  let nextOrder = sizes.orders + 1;
  const result: WorkloadResult = { changes: 0, transactions: 0, byKind: {} };
  const count = (kind: string, n: number) => {
    result.changes += n;
    result.byKind[kind] = (result.byKind[kind] ?? 0) + n;
  };
  const rnd = (n: number) => 1 + Math.floor(Math.random() * n);

  let failed = false;
  const worker = async (w: number) => {
    const c = new pg.Client(connection);
    await c.connect();
    try {
      while (result.changes < opts.changes && !failed) {
        const pick = Math.random();
        if (pick < 0.2) {
          const id = nextUser++;
          const r = await c.query(`insert into users (id, email, name, balance, tags, profile) values ($1, $2, $3, $4, $5, $6)`, [
            id, `new${id}@example.com`, `New ${id} ✓ "quoted"`, (id % 500) + 0.5, ['new', `w${w}`], JSON.stringify({ w, at: Date.now() }),
          ]);
          count('insert', r.rowCount ?? 0);
        } else if (pick < 0.45) {
          const r = await c.query(`update users set balance = balance + 1.10, status = $2, updated_at = clock_timestamp() where id = $1`, [rnd(nextUser - 1), pick < 0.3 ? 'vip' : 'active']);
          count('update', r.rowCount ?? 0);
        } else if (pick < 0.5) {
          const r = await c.query(`delete from users where id = $1`, [rnd(nextUser - 1)]);
          count('delete', r.rowCount ?? 0);
        } else if (pick < 0.65) {
          // Multi-row transaction: an order with its lines.
          const id = nextOrder++;
          await c.query('begin');
          await c.query(`insert into orders (id, user_id, status, total, ordered_at) values ($1, $2, 'new', 0, clock_timestamp())`, [id, rnd(sizes.users)]);
          const lines = 1 + (id % 4);
          await c.query(
            `insert into order_items (order_id, line_no, sku, qty, price) select $1::bigint, l, 'SKU-' || ($1::bigint + l) % $3::int, 1 + l, 9.99 from generate_series(1, $2::int) l`,
            [id, lines, sizes.skus],
          );
          await c.query(`update orders set total = (select sum(qty * price) from order_items where order_id = $1), updated_at = clock_timestamp() where id = $1`, [id]);
          await c.query('commit');
          result.transactions++;
          count('order', 2 + lines);
        } else if (pick < 0.7) {
          const r = await c.query(`update orders set status = 'shipped', updated_at = clock_timestamp() where id = $1`, [rnd(nextOrder - 1)]);
          count('update', r.rowCount ?? 0);
        } else if (pick < 0.73) {
          const r = await c.query(`delete from order_items where order_id = $1 and line_no = 1`, [rnd(nextOrder - 1)]);
          count('delete', r.rowCount ?? 0);
        } else {
          // Hot keys: a few SKUs updated many times a second.
          const r = await c.query(`update inventory set qty = qty - 1, reserved = reserved + 1, updated_at = clock_timestamp() where sku = $1`, [`SKU-${rnd(10) - 1}`]);
          count('hot-update', r.rowCount ?? 0);
        }
      }
    } catch (err) {
      failed = true; // stop the other workers too
      throw err;
    } finally {
      await c.end();
    }
  };
  await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  return result;
}
