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

// kafkajs's admin and producer remember every topic they were asked offsets of or sent to (their
// "target topics") and ask the broker for all of them before each createTopics, offsets read and
// send; a remembered topic the broker no longer knows (deleted by another process: `syncline
// pipeline drop`, an operator; or asked about before it existed and not forgotten after a refresh
// that timed out) failed each of those with "This server does not host this topic-partition", for
// good. A first run on a cold, slow machine ended so (the demo's dead-letter topic never created).
// Deleting a topic is the way to make that state for real; KafkaClient.withAdmin and send() mend it.
test('a topic deleted behind the client does not block creating other topics, sending to them nor reading their offsets', async (t) => {
  const prefix = `t${uid()}`;
  t.after(() => deleteTopics(prefix));
  const settings = { brokers: ['127.0.0.1:9092'], clientId: 'ensure-test', partitions: 1, replicationFactor: 1, retentionDays: 1 };
  const client = new KafkaClient(settings, pino({ level: 'silent' }));
  t.after(() => client.close());
  const gone = `${prefix}.cdc.public.gone`;
  await client.ensureTopics([gone]);
  await client.send([{ topic: gone, key: null, value: Buffer.from('x') }]);
  assert.equal((await client.topicOffsets(gone))[0]?.high, '1');
  // Deleted by someone else.
  const other = new KafkaClient(settings, pino({ level: 'silent' }));
  await (await other.getAdmin()).deleteTopics({ topics: [gone] });
  await other.close();
  const next = `${prefix}.dlq.next`;
  await client.ensureTopics([next]);
  await client.send([{ topic: next, key: null, value: Buffer.from('y') }]);
  assert.equal((await client.topicOffsets(next))[0]?.high, '1', 'offsets of the new topic read with the same client');
});
