/**
 * Topic creation under concurrency, on the real broker: the stages of one process, and other
 * processes, ask for the same new topics at once (capture and the processor of a pipeline both need
 * its change topics and its dead-letter topic). Every caller returns only once each topic has a
 * leader for every partition, none fails on a creation another one made, and a send right after
 * succeeds. Before one creation per topic was kept in flight and TOPIC_ALREADY_EXISTS counted as
 * success, such a start failed with "cannot create topics …: This server does not host this
 * topic-partition" (test/many-tables.int.test.ts shows it on a whole pipeline).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { KafkaClient } from '../src/core/kafka.js';
import { deleteTopics, uid } from './helpers.js';

test('concurrent ensureTopics of the same new topics, in one client and across clients, all succeed with leaders ready', async (t) => {
  const prefix = `t${uid()}`;
  t.after(() => deleteTopics(prefix));
  const settings = { brokers: ['127.0.0.1:9092'], clientId: 'ensure-test', partitions: 2, replicationFactor: 1, retentionDays: 1 };
  const log = pino({ level: 'silent' });
  const clients = [new KafkaClient(settings, log), new KafkaClient(settings, log)];
  t.after(() => Promise.all(clients.map((c) => c.close())));
  const names = Array.from({ length: 20 }, (_, i) => `${prefix}.cdc.public.t${i}`);
  const dlq = `${prefix}.dlq.p`;
  // Like the stages of two processes starting at once: overlapping sets, each asked several times.
  const calls = clients.flatMap((c) => [
    c.ensureTopics(names),
    c.ensureTopics([dlq], { partitions: 1 }),
    c.ensureTopics([...names.slice(5), dlq]),
    c.ensureTopics([dlq], { partitions: 1 }),
    c.ensureTopics(names.slice(0, 3)),
  ]);
  const results = await Promise.allSettled(calls);
  assert.deepEqual(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason?.message)), [], 'no caller failed');
  // Ready means ready: every partition takes a message at once.
  await Promise.all(clients.map((c, i) => c.send([...names, dlq].flatMap((topic) => [0, 1].filter((p) => p === 0 || topic !== dlq).map((partition) => ({ topic, partition, key: null, value: Buffer.from(`c${i}`) }))))));
  for (const n of [...names, dlq]) assert.equal(await clients[0]!.partitionCount(n), n === dlq ? 1 : 2, n);
});
