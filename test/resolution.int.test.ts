/**
 * Delta detection and latest-timestamp resolution on the real stack: an update that changes
 * nothing is skipped and counted (no target write), and a change older than the target's row
 * (the target was edited independently, later) leaves the target as it is and is counted as a
 * conflict, while newer changes still apply.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql, startRuntime, testEnv, waitFor } from './helpers.js';

const DDL = `create table prices (sku text primary key, price numeric(10,2) not null, updated_at timestamptz not null)`;

test('a no-op update is skipped as unchanged; an older source change loses to a newer target row (latest-timestamp)', async (t) => {
  const env = await testEnv([{ name: 'prices-sync', tables: [{ source: 'public.prices' }], conflict: { strategy: 'latest-timestamp', field: 'updated_at' } }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into prices values ('A', 10, '2026-01-01T00:00:00Z'), ('B', 20, '2026-01-01T00:00:00Z')`);
  const { rt } = await startRuntime(env);
  const stats = () => rt.pipelines[0]!.applier!.stats;
  await waitFor('snapshot applied', async () => (await sql(env.targetDb, `select count(*)::int n from prices`)).rows[0].n === 2);

  // 1. An UPDATE that rewrites the same values: same canonical hash → skipped, counted, not written.
  const xminBefore = (await sql(env.targetDb, `select xmin::text from prices where sku = 'A'`)).rows[0].xmin;
  await sql(env.sourceDb, `update prices set price = price where sku = 'A'`);
  await waitFor('the no-op to be counted', async () => stats().skippedUnchanged === 1);
  const xminAfter = (await sql(env.targetDb, `select xmin::text from prices where sku = 'A'`)).rows[0].xmin;
  assert.equal(xminAfter, xminBefore, 'the target row was not rewritten');

  // 2. The target row of B is edited independently with a later timestamp; the source then changes
  //    B with an older timestamp: the target keeps its version and a conflict is counted.
  await sql(env.targetDb, `update prices set price = 99, updated_at = '2026-06-01T00:00:00Z' where sku = 'B'`);
  await sql(env.sourceDb, `update prices set price = 21, updated_at = '2026-02-01T00:00:00Z' where sku = 'B'`);
  await waitFor('the conflict to be counted', async () => stats().conflicts === 1);
  const b = (await sql(env.targetDb, `select price::text, updated_at from prices where sku = 'B'`)).rows[0];
  assert.equal(b.price, '99.00', 'the newer target row won');

  // 3. A newer source change of B still applies.
  await sql(env.sourceDb, `update prices set price = 22, updated_at = '2026-07-01T00:00:00Z' where sku = 'B'`);
  await waitFor('the newer change to apply', async () => (await sql(env.targetDb, `select price::text from prices where sku = 'B'`)).rows[0].price === '22.00');
  assert.equal(stats().conflicts, 1);
  assert.equal(stats().deadLettered, 0);
});
