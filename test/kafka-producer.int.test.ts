/**
 * The producer behind KafkaClient.send (config kafka.producer): kafkajs, or librdkafka through the
 * optional package @confluentinc/kafka-javascript. Each writes the same messages (explicit
 * partitions, headers, a 2 MB value) to a real topic and a kafkajs consumer reads them back in order.
 * Where the optional package is not installed (a fresh machine: it is not a dependency), the
 * librdkafka case checks instead that configuring it fails at once, fatally, saying how to install it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel, type KafkaMessage } from 'kafkajs';
import pino from 'pino';
import { errorCode, errorKind } from '../src/core/errors.js';
import { headerString, KafkaClient, type OutMessage } from '../src/core/kafka.js';
import { loadRdkafka, RDKAFKA_PACKAGE } from '../src/core/rdkafka.js';
import { waitFor } from './helpers.js';

const log = pino({ level: 'silent' });
const settings = (producer: 'kafkajs' | 'librdkafka') => ({ brokers: ['127.0.0.1:9092'], clientId: 'syncline-test', partitions: 3, replicationFactor: 1, retentionDays: 1, producer });

async function roundTrip(producer: 'kafkajs' | 'librdkafka'): Promise<void> {
  const topic = `t${randomBytes(4).toString('hex')}.producer-${producer}`;
  const client = new KafkaClient(settings(producer), log);
  const raw = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING });
  try {
    await client.ensureTopics([topic]);
    const big = randomBytes(2 * 1024 * 1024);
    const out: OutMessage[] = [];
    for (let i = 0; i < 3000; i++) {
      out.push({ topic, partition: i % 3, key: Buffer.from(`k${i}`), value: i === 1500 ? big : Buffer.from(`v${i}`), headers: { 'syncline.pos': String(i).padStart(8, '0') } });
    }
    await client.send(out);
    const seen: KafkaMessage[][] = [[], [], []];
    const consumer = raw.consumer({ groupId: `${topic}.reader`, maxBytesPerPartition: 4 * 1024 * 1024 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({ eachMessage: async ({ partition, message }) => void seen[partition]!.push(message) });
    await waitFor('every message read back', async () => seen.reduce((n, p) => n + p.length, 0) >= 3000);
    await consumer.disconnect();
    for (let p = 0; p < 3; p++) {
      const got = seen[p]!.map((m) => Number(headerString(m.headers, 'syncline.pos')));
      const want = out.map((_, i) => i).filter((i) => i % 3 === p);
      assert.deepEqual(got, want, `partition ${p}: every message once, in order`);
    }
    const bigBack = seen[0]!.find((m) => m.key?.toString() === 'k1500');
    assert.ok(bigBack?.value?.equals(big), 'the 2 MB value arrived whole');
  } finally {
    await client.close();
  }
}

test('kafkajs producer: explicit partitions, headers, a 2 MB value; every message once, in order', async () => {
  await roundTrip('kafkajs');
});

test(`librdkafka producer (${RDKAFKA_PACKAGE}): the same, or a fatal error saying how to install it when the package is absent`, async () => {
  const { api, error } = await loadRdkafka();
  if (api) {
    await roundTrip('librdkafka');
    return;
  }
  const client = new KafkaClient(settings('librdkafka'), log);
  await assert.rejects(client.send([{ topic: 'never-created', key: null, value: Buffer.from('x') }]), (err: unknown) => {
    assert.equal(errorKind(err), 'fatal');
    assert.equal(errorCode(err), 'KAFKA_PRODUCER_UNAVAILABLE');
    assert.match((err as Error).message, new RegExp(`npm install ${RDKAFKA_PACKAGE.replace('/', '\\/')}`));
    assert.ok((err as Error).message.includes(error!), 'the load error is quoted');
    return true;
  });
  await client.close();
});

test('the admin client: concurrent first callers share one connection; close() also closes one still connecting', async () => {
  const log = pino({ level: 'silent' });
  const client = new KafkaClient(settings('kafkajs'), log);
  const admins = await Promise.all([client.getAdmin(), client.getAdmin(), client.getAdmin()]);
  assert.ok(admins[1] === admins[0] && admins[2] === admins[0], 'one admin client for the three callers (each made its own before, and two leaked)');
  assert.equal(await client.getAdmin(), admins[0]);
  await client.close();
  // Closed while connecting: the client connected meanwhile is closed too, nothing left behind.
  const other = new KafkaClient(settings('kafkajs'), log);
  const connecting = other.getAdmin();
  await other.close();
  const late = await connecting;
  // Disconnected: a request fails (kafkajs says so in several ways, e.g. "not connected", or a
  // TypeError on the cluster metadata it dropped); a client left connected would answer.
  await assert.rejects(late.listTopics(), /disconnected|closed|not connected|Connection|topicMetadata/i);
});
