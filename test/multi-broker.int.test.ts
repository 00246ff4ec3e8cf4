/**
 * npm test: alone (a private three-node Kafka, one of its brokers killed).
 *
 * Kafka's own replication carries syncline through the loss of a broker (issue 25): a private
 * cluster of three KRaft nodes (scripts/stack.sh --brokers 3), syncline's topics created with
 * replication factor 3 and min.insync.replicas 2 (kafka.minInsyncReplicas). Under a write load
 * (updates, inserts, deletes and re-inserts; each key written by one client, its `seq` rising with
 * every write), the broker leading the most partitions of the change topic is killed (-9), then
 * started again 10 s later. Checked: the process never stops (no stage failure), the broker catches
 * up (every partition back to three in-sync replicas), the target equals the source, and the
 * target's write log (a trigger) shows every key's writes in order with none applied twice.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import { PG, sleep, startRuntime, testEnv, waitFor } from './helpers.js';
import { itemsEqual, KeyedWriter, writeLogProblems } from './keyed-writes.js';
import { privateStack } from './private-stack.js';
import { topics } from '../src/core/kafka.js';

const KEYS = 300;
const CLIENTS = 3;

test('three brokers, RF 3, min.insync.replicas 2: kill -9 of the busiest leader mid-stream; syncline goes on, nothing lost or applied twice, the broker comes back and catches up', async (t) => {
  const stack = await privateStack({ kafkaNodes: 3 });
  t.after(() => stack.down());
  t.diagnostic(await stack.up('kafka').then((o) => o.split('\n').filter((l) => l.includes('kafka')).join(' | ')));
  const brokers = stack.brokers.split(',');
  const env = await testEnv([{ name: 'mb', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' } }], {
    kafka: { brokers, replicationFactor: 3, minInsyncReplicas: 2, sessionTimeoutMs: 10_000 },
    retry: { retries: 20, initialDelayMs: 100, maxDelayMs: 2000 },
  });
  const src = new pg.Pool({ ...PG, database: env.sourceDb, max: CLIENTS + 1 });
  src.on('error', () => undefined);
  const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING, clientId: 'multi-broker-test' }).admin();
  t.after(async () => {
    await admin.disconnect().catch(() => undefined);
    await src.end().catch(() => undefined);
    await env.cleanup();
  });
  const load = new KeyedWriter(src, KEYS);
  await load.seed(env.targetDb);

  const { rt, done } = await startRuntime(env);
  let failed: unknown;
  done.catch((err: unknown) => (failed = err));
  const same = itemsEqual(env);
  await waitFor('the snapshot on the target', same, 120_000, 300);

  await admin.connect();
  const cdc = topics.cdc(env.prefix, 'public', 'items');
  const described = await admin.describeConfigs({ resources: [{ type: 2, name: cdc, configNames: ['min.insync.replicas'] }], includeSynonyms: false });
  assert.equal(described.resources[0]!.configEntries.find((e) => e.configName === 'min.insync.replicas')?.configValue, '2', 'the change topic has min.insync.replicas 2');
  const meta = async () => (await admin.fetchTopicMetadata({ topics: [cdc] })).topics[0]!.partitions;
  for (const p of await meta()) assert.equal(p.replicas.length, 3, `partition ${p.partitionId} has three replicas`);

  load.start(CLIENTS);
  await sleep(3000);

  // The broker leading the most partitions of the change topic.
  const leaders = new Map<number, number>();
  for (const p of await meta()) leaders.set(p.leader, (leaders.get(p.leader) ?? 0) + 1);
  const victim = [...leaders].sort((a, b) => b[1] - a[1])[0]![0];
  await stack.killKafkaNode(victim);
  const killedAt = Date.now();
  t.diagnostic(`killed broker ${victim} (leader of ${leaders.get(victim)} of 3 partitions of ${cdc}) after ${load.writes} writes`);
  await sleep(10_000);
  const during = load.writes;
  await stack.up('kafka');
  t.diagnostic(`broker ${victim} started again after ${((Date.now() - killedAt) / 1000).toFixed(1)} s; ${during} writes by then`);
  await sleep(3000);
  await load.stop();

  await waitFor(`broker ${victim} to catch up (every partition of ${cdc} with three in-sync replicas)`, async () => (await meta()).every((p) => p.isr.length === 3), 120_000, 500);
  await waitFor('the target to equal the source', same, 120_000, 300);
  t.diagnostic(`${load.writes} writes; converged ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill`);

  assert.equal(failed, undefined, `no stage of syncline stopped: ${String(failed)}`);
  const health = rt.observe.health.report();
  assert.equal(health.status, 'ok', JSON.stringify(health));
  assert.ok(health.pipelines.every((p) => p.running), JSON.stringify(health));
  // Every key's writes in order, none twice.
  const { problems, writes } = await writeLogProblems(env.targetDb);
  assert.deepEqual(problems.slice(0, 10), [], `${problems.length} writes out of order or applied twice`);
  t.diagnostic(`${writes} target writes checked`);
});
