import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { createRequire } from 'node:module';
import { classifyKafkaError, KafkaClient, leaderless, metadataLagging, onlyAlreadyExists, producerStateLost, type BatchProducer } from './kafka.js';

// kafkajs's own error classes (its index exports only some of them).
const { KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError } = createRequire(import.meta.url)('kafkajs/src/errors.js') as {
  KafkaJSNumberOfRetriesExceeded: new (e: Error, o: { retryCount: number; retryTime: number }) => Error;
  KafkaJSProtocolError: new (e: { type: string; code: number; retriable: boolean; message: string }) => Error;
};

// A broker that lost an idempotent producer's state cannot be made on purpose (it takes a kill -9
// of the broker at the wrong moment): the producer here fails the way kafkajs's does then.
const lostState = () => new KafkaJSNumberOfRetriesExceeded(new KafkaJSProtocolError({ type: 'OUT_OF_ORDER_SEQUENCE_NUMBER', code: 45, retriable: false, message: 'The broker received an out of order sequence number' }), { retryCount: 5, retryTime: 100 });

test('a producer whose state the broker lost is replaced; other failures keep it', async () => {
  const client = new KafkaClient({ brokers: ['127.0.0.1:1'], clientId: 't', partitions: 1, replicationFactor: 1, retentionDays: 1 }, pino({ level: 'silent' }));
  let made = 0;
  let disconnected = 0;
  const failures: unknown[] = [lostState(), new Error('broker not reachable')];
  const sent: number[] = [];
  (client as unknown as { getProducer(): Promise<BatchProducer> }).getProducer = async () => {
    const self = client as unknown as { producer?: BatchProducer };
    if (!self.producer) {
      const id = ++made;
      self.producer = {
        async sendBatch(topicMessages) {
          const f = failures.shift();
          if (f) throw f;
          sent.push(id, ...topicMessages.map((t) => t.messages.length));
        },
        async disconnect() {
          disconnected++;
        },
      };
    }
    return self.producer;
  };
  const msg = { topic: 't', key: null, value: Buffer.from('v') };
  await assert.rejects(client.send([msg]), /out of order sequence/);
  assert.equal(disconnected, 1, 'the producer with the lost state was dropped');
  await assert.rejects(client.send([msg]), /broker not reachable/);
  assert.equal(disconnected, 1, 'an outage keeps the producer');
  await client.send([msg]);
  assert.deepEqual(sent, [2, 1], 'sent by a new producer');
  assert.equal(made, 2);
  assert.equal(producerStateLost(new Error('x')), false);
  assert.equal(producerStateLost(new KafkaJSProtocolError({ type: 'UNKNOWN_PRODUCER_ID', code: 59, retriable: false, message: 'unknown' })), true);
});

test('topic readiness: a topic is ready when its metadata shows a leader for every partition', () => {
  const md = [
    { name: 'a', partitions: [{ leader: 1 }, { leader: 1 }] },
    { name: 'b', partitions: [{ leader: 1 }, { leader: -1 }] },
    { name: 'c', partitions: [] },
  ];
  assert.deepEqual(leaderless(['a', 'b', 'c', 'd'], md), ['b', 'c', 'd']);
  assert.deepEqual(leaderless(['a'], md), []);
});

test('topic creation: TOPIC_ALREADY_EXISTS (alone or for every topic) is success; metadata lag is waited for', () => {
  const exists = new KafkaJSProtocolError({ type: 'TOPIC_ALREADY_EXISTS', code: 36, retriable: false, message: 'Topic with this name already exists' });
  const factor = new KafkaJSProtocolError({ type: 'INVALID_REPLICATION_FACTOR', code: 38, retriable: false, message: 'Replication-factor is invalid' });
  assert.equal(onlyAlreadyExists(exists), true);
  assert.equal(onlyAlreadyExists(Object.assign(new Error('Topic creation errors'), { errors: [exists, exists] })), true);
  assert.equal(onlyAlreadyExists(Object.assign(new Error('Topic creation errors'), { errors: [exists, factor] })), false);
  const unknown = new KafkaJSProtocolError({ type: 'UNKNOWN_TOPIC_OR_PARTITION', code: 3, retriable: true, message: 'This server does not host this topic-partition' });
  assert.equal(metadataLagging(unknown), true);
  assert.equal(metadataLagging(new KafkaJSNumberOfRetriesExceeded(unknown, { retryCount: 8, retryTime: 100 })), true);
  assert.equal(metadataLagging(factor), false);
  assert.equal(metadataLagging(new Error('x')), false);
});

test('classifyKafkaError: unreachable and not-ready are retriable, refusals fatal, each naming Kafka and its address', () => {
  const brokers = ['127.0.0.1:9092'];
  const refused = classifyKafkaError(Object.assign(new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092'), { name: 'KafkaJSConnectionError', retriable: true }), 'cannot connect', brokers);
  assert.equal(refused.code, 'NET_ECONNREFUSED');
  assert.equal(refused.message, 'Kafka at 127.0.0.1:9092 (kafka.brokers): cannot connect: Connection error: connect ECONNREFUSED 127.0.0.1:9092');
  const coordinator = new KafkaJSProtocolError({ type: 'GROUP_COORDINATOR_NOT_AVAILABLE', code: 15, retriable: true, message: 'The group coordinator is not available' });
  assert.equal(classifyKafkaError(new KafkaJSNumberOfRetriesExceeded(coordinator, { retryCount: 5, retryTime: 100 }), 'join', brokers).code, 'KAFKA_UNAVAILABLE');
  const factor = classifyKafkaError(new KafkaJSProtocolError({ type: 'INVALID_REPLICATION_FACTOR', code: 38, retriable: false, message: 'Replication-factor is invalid' }), 'cannot create topics t', brokers);
  assert.equal(factor.kind, 'fatal');
  assert.equal(factor.code, 'KAFKA_INVALID_REPLICATION_FACTOR');
});
