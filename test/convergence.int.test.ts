/**
 * The three example pipelines under a concurrent mixed workload of ≥ 10,000 changes converge
 * (source and target checksums equal); then the processor's consumer group is reset to the earliest
 * offset and run again: the target is unchanged and every replayed change is counted as skipped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kafka, logLevel } from 'kafkajs';
import { checksum, deleteGroups, startRuntime, testEnv, waitFor, withClient } from './helpers.js';
import { createDemoSchema, DEMO_TABLES, runWorkload, seed } from '../scripts/workload.js';
import { groups, topics } from '../src/core/kafka.js';
import type { ApplyStats } from '../src/sink/applier.js';

const PIPELINES = [
  { name: 'users-sync', tables: [{ source: 'public.users' }] },
  { name: 'orders-sync', tables: [{ source: 'public.orders' }, { source: 'public.order_items' }] },
  { name: 'inventory-sync', tables: [{ source: 'public.inventory', key: ['sku'] }, { source: 'public.warehouses' }] },
];

async function allConverged(sourceDb: string, targetDb: string) {
  for (const t of DEMO_TABLES) {
    const [s, d] = await Promise.all([checksum(sourceDb, t.table, t.key), checksum(targetDb, t.table, t.key)]);
    if (s.md5 !== d.md5 || s.count !== d.count) return false;
  }
  return true;
}

test('three pipelines converge under ≥10,000 concurrent changes, and a replay from the earliest offset changes nothing', async (t) => {
  const env = await testEnv(PIPELINES);
  t.after(() => env.cleanup());
  await withClient(env.sourceDb, async (c) => {
    await createDemoSchema(c);
    await seed(c);
  });
  await withClient(env.targetDb, (c) => createDemoSchema(c));

  const { rt } = await startRuntime(env);
  const wl = await runWorkload({ host: '127.0.0.1', user: 'postgres', database: env.sourceDb }, { changes: 10_000, workers: 6 });
  assert.ok(wl.changes >= 10_000, `workload committed ${wl.changes} changes`);
  await waitFor('source and target to converge', () => allConverged(env.sourceDb, env.targetDb), 240_000, 1000);

  const before = new Map<string, string>();
  for (const t of DEMO_TABLES) before.set(t.table, (await checksum(env.targetDb, t.table, t.key)).md5);
  const appliedFirstRun = rt.pipelines.reduce((n, h) => n + (h.applier?.stats.applied ?? 0), 0);
  const firstStats = rt.pipelines.map((h) => ({ ...h.applier!.stats }));
  assert.ok(appliedFirstRun > 0);
  await rt.stop();

  // Every processor group back to the earliest offset (deleted: the processors subscribe from the earliest).
  const kafka = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  let total = 0;
  for (const p of PIPELINES) {
    for (const tb of p.tables) {
      const [schema, table] = tb.source.split('.');
      const topic = topics.cdc(env.prefix, schema!, table!);
      // Every message but the end-of-snapshot markers (one per partition: control records, not changes).
      for (const o of await admin.fetchTopicOffsets(topic)) total += Number(o.high) - Number(o.low) - 1;
    }
  }
  await admin.disconnect();
  await deleteGroups(PIPELINES.map((p) => groups.processor(env.prefix, p.name)));

  const second = await startRuntime(env, ['process', 'sink']);
  const settled = (s: ApplyStats) => s.applied + s.skippedStale + s.skippedUnchanged + s.conflicts + s.deadLettered;
  await waitFor('the replay to be consumed', async () => second.rt.pipelines.reduce((n, h) => n + settled(h.applier!.stats), 0) >= total, 180_000, 500);
  const stats = second.rt.pipelines.map((h) => h.applier!.stats);
  const received = stats.reduce((n, s) => n + s.received, 0);
  const skipped = stats.reduce((n, s) => n + s.skippedStale + s.skippedUnchanged, 0);
  const applied = stats.reduce((n, s) => n + s.applied, 0);
  assert.equal(received, total, 'every message of the change topics was replayed');
  assert.equal(applied, 0, 'a replay applies nothing');
  assert.equal(skipped, received, `the skipped count equals the replayed count: ${JSON.stringify(stats)} first run: ${JSON.stringify(firstStats)}`);
  for (const t of DEMO_TABLES) assert.equal((await checksum(env.targetDb, t.table, t.key)).md5, before.get(t.table), `${t.table} unchanged by the replay`);
});
