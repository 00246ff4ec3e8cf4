/**
 * A truncate and an end of snapshot reach every partition of the table's change topic, and a sink
 * acts on them once it has counted a copy from each (the truncate barrier, ADR 0041; the sweep).
 * Partitions added to the topic after capture wrote those copies have none: the count a sink needs
 * is the one capture wrote them to (the `syncline.partitions` header), not the topic's count when
 * the sink reads them. Counting the topic's partitions, this truncate waited for a fourth copy that
 * never comes, in 30-second rounds, for ever, and the rows inserted after it were never written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kafka, logLevel } from 'kafkajs';
import { topics } from '../src/core/kafka.js';
import { PARTITIONS_HEADER } from '../src/core/envelope.js';
import { checksum, readTopic, sql, startRuntime, testEnv, waitFor } from './helpers.js';

const DDL = `create table items (id int primary key, v text not null, updated_at timestamptz not null default clock_timestamp())`;

test('a truncate written before the change topic gained a partition still runs (its copies say how many there are)', async (t) => {
  const env = await testEnv([{ name: 'items-sync', tables: [{ source: 'public.items' }] }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into items (id, v) select g, 'seed' from generate_series(1, 100) g`);
  const converged = async () => {
    const [s, d] = await Promise.all([checksum(env.sourceDb, 'items', 'id'), checksum(env.targetDb, 'items', 'id')]);
    return s.md5 === d.md5 && s.count === d.count;
  };
  const all = await startRuntime(env);
  await waitFor('the snapshot to converge', converged, 60_000, 300);
  await all.rt.stop();

  // Capture alone writes the truncate (to each of the topic's 3 partitions) and the rows after it.
  const capture = await startRuntime(env, ['capture']);
  await sql(env.sourceDb, `truncate items`);
  await sql(env.sourceDb, `insert into items (id, v) select g, 'after the truncate' from generate_series(1001, 1050) g`);
  const topic = topics.cdc(env.prefix, 'public', 'items');
  const control = await waitFor('the truncate in every partition of the change topic', async () => {
    const ms = await readTopic(topic);
    const control = ms.filter((m) => m.key === null); // 3 end-of-snapshot markers, then 3 truncates
    return ms.filter((m) => m.key !== null).length >= 150 && control.length >= 6 ? control : false;
  }, 60_000, 500);
  await capture.rt.stop();
  assert.deepEqual(control.map((m) => m.headers[PARTITIONS_HEADER]), ['3', '3', '3', '3', '3', '3'], 'each control copy says it was written to 3 partitions');

  // The topic gains a partition while no sink has read the truncate yet.
  const kafka = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] });
  } finally {
    await admin.disconnect();
  }

  await startRuntime(env);
  await waitFor('the truncate to run and the rows after it to be written', converged, 60_000, 300);
  assert.deepEqual((await sql(env.targetDb, `select v, count(*)::int n from items group by v`)).rows, [{ v: 'after the truncate', n: 50 }]);
});
