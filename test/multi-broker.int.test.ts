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
import { checksum, PG, sleep, sql, startRuntime, testEnv, waitFor } from './helpers.js';
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
  await src.query(`create table items (id int primary key, seq int not null, v text not null)`);
  await sql(env.targetDb, `create table items (id int primary key, seq int not null, v text not null);
    create table write_log (n bigserial primary key, id int not null, op text not null, seq int not null);
    create function log_write() returns trigger language plpgsql as $$ begin
      if tg_op = 'DELETE' then insert into write_log (id, op, seq) values (old.id, 'D', old.seq); return old; end if;
      insert into write_log (id, op, seq) values (new.id, left(tg_op, 1), new.seq); return new; end $$;
    create trigger log_write after insert or update or delete on items for each row execute function log_write();`);
  await src.query(`insert into items select g, 1, 'v' from generate_series(1, ${KEYS}) g`);
  const seq = new Map<number, number>(Array.from({ length: KEYS }, (_, i) => [i + 1, 1]));
  const present = new Set<number>(seq.keys());

  const { rt, done } = await startRuntime(env);
  let failed: unknown;
  done.catch((err: unknown) => (failed = err));
  const same = async () => {
    const [a, b] = await Promise.all([checksum(env.sourceDb, 'items', 'id'), checksum(env.targetDb, 'items', 'id')]);
    return a.md5 === b.md5;
  };
  await waitFor('the snapshot on the target', same, 120_000, 300);

  await admin.connect();
  const cdc = topics.cdc(env.prefix, 'public', 'items');
  const described = await admin.describeConfigs({ resources: [{ type: 2, name: cdc, configNames: ['min.insync.replicas'] }], includeSynonyms: false });
  assert.equal(described.resources[0]!.configEntries.find((e) => e.configName === 'min.insync.replicas')?.configValue, '2', 'the change topic has min.insync.replicas 2');
  const meta = async () => (await admin.fetchTopicMetadata({ topics: [cdc] })).topics[0]!.partitions;
  for (const p of await meta()) assert.equal(p.replicas.length, 3, `partition ${p.partitionId} has three replicas`);

  // Writers: client c owns the keys ≡ c (mod CLIENTS); every write of a key raises its seq.
  let stop = false;
  let writes = 0;
  const writer = async (c: number) => {
    for (let i = 0; !stop; i++) {
      const ids = [...seq.keys()].filter((k) => k % CLIENTS === c);
      const id = ids[(i * 7919) % ids.length]!;
      const next = seq.get(id)! + 1;
      if (!present.has(id)) {
        await src.query(`insert into items values ($1, $2, 're-inserted')`, [id, next]);
        present.add(id);
      } else if (i % 11 === 5) {
        await src.query(`delete from items where id = $1`, [id]);
        present.delete(id);
        continue; // the delete carries the row's last seq
      } else await src.query(`update items set seq = $2, v = md5(random()::text) where id = $1`, [id, next]);
      seq.set(id, next);
      writes++;
      await sleep(3);
    }
  };
  const writers = Array.from({ length: CLIENTS }, (_, c) => writer(c));
  await sleep(3000);

  // The broker leading the most partitions of the change topic.
  const leaders = new Map<number, number>();
  for (const p of await meta()) leaders.set(p.leader, (leaders.get(p.leader) ?? 0) + 1);
  const victim = [...leaders].sort((a, b) => b[1] - a[1])[0]![0];
  await stack.killKafkaNode(victim);
  const killedAt = Date.now();
  t.diagnostic(`killed broker ${victim} (leader of ${leaders.get(victim)} of 3 partitions of ${cdc}) after ${writes} writes`);
  await sleep(10_000);
  const during = writes;
  await stack.up('kafka');
  t.diagnostic(`broker ${victim} started again after ${((Date.now() - killedAt) / 1000).toFixed(1)} s; ${during} writes by then`);
  await sleep(3000);
  stop = true;
  await Promise.all(writers);

  await waitFor(`broker ${victim} to catch up (every partition of ${cdc} with three in-sync replicas)`, async () => (await meta()).every((p) => p.isr.length === 3), 120_000, 500);
  await waitFor('the target to equal the source', same, 120_000, 300);
  t.diagnostic(`${writes} writes; converged ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill`);

  assert.equal(failed, undefined, `no stage of syncline stopped: ${String(failed)}`);
  const health = rt.observe.health.report();
  assert.equal(health.status, 'ok', JSON.stringify(health));
  assert.ok(health.pipelines.every((p) => p.running), JSON.stringify(health));
  // Every key's writes in order, none twice: I/U raise seq, a delete carries the last one.
  const log = (await sql(env.targetDb, `select id, op, seq from write_log order by n`)).rows as { id: number; op: string; seq: number }[];
  const last = new Map<number, { op: string; seq: number }>();
  const wrong: string[] = [];
  for (const w of log) {
    const prev = last.get(w.id);
    if (prev && (w.op === 'D' ? w.seq < prev.seq : w.seq <= prev.seq)) wrong.push(`${w.id}: ${prev.op}${prev.seq} then ${w.op}${w.seq}`);
    last.set(w.id, w);
  }
  assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} writes out of order or applied twice`);
  t.diagnostic(`${log.length} target writes checked`);
});
