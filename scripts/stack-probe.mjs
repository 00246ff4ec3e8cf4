#!/usr/bin/env node
/**
 * Does the Kafka broker really accept work? `scripts/stack.sh up` returns only once this says so:
 * an open port or a "Kafka Server started" log line come before a fresh broker can create a topic,
 * elect its leader, take a message and run a consumer group (its coordinator and __consumer_offsets
 * come last), and the first start of syncline on such a broker met each of those in turn.
 *
 *   node scripts/stack-probe.mjs 127.0.0.1:9092[,host:port…] [deadlineMs]
 *
 * Creates the topic `syncline.stack.probe` (1 partition, 1 h retention) if missing, waits for its
 * leader, produces one message (an idempotent producer, acks=all), then reads it back through a consumer group of its own
 * (deleted afterwards). Retried until it works or the deadline (default 120 s) passes. Exit 0 when
 * it worked, 1 with the last error otherwise. Plain JavaScript: it runs before anything is built.
 */
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';

const broker = process.argv[2] ?? '127.0.0.1:9092';
const deadline = Date.now() + Number(process.argv[3] ?? 120_000);
const TOPIC = 'syncline.stack.probe';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([p, new Promise((_, reject) => (t = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

async function probeOnce(kafka) {
  const token = randomBytes(8).toString('hex');
  const group = `syncline-stack-probe-${token}`;
  const admin = kafka.admin();
  // Idempotent, as syncline's: its producer id comes from a coordinator that loads on first use.
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 100, allowAutoTopicCreation: false });
  try {
    await admin.connect();
    if (!(await admin.listTopics()).includes(TOPIC)) {
      await admin.createTopics({ waitForLeaders: false, topics: [{ topic: TOPIC, numPartitions: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }] }).catch((err) => {
        if (err?.type !== 'TOPIC_ALREADY_EXISTS' && !(err?.errors ?? []).every?.((e) => e?.type === 'TOPIC_ALREADY_EXISTS')) throw err;
      });
    }
    for (;;) {
      const md = await admin.fetchTopicMetadata({ topics: [TOPIC] }).catch(() => null);
      if (md?.topics[0]?.partitions.length && md.topics[0].partitions.every((p) => p.leader >= 0)) break;
      await sleep(200);
    }
    await producer.connect();
    await producer.send({ topic: TOPIC, acks: -1, messages: [{ value: token }] });
    await consumer.connect();
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
    await new Promise((resolve, reject) => {
      consumer.on(consumer.events.CRASH, (e) => reject(e.payload.error));
      consumer.run({ eachMessage: async ({ message }) => void (message.value?.toString() === token && resolve()) }).catch(reject);
    });
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
    await admin.deleteGroups([group]).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  }
}

const kafka = new Kafka({ brokers: broker.split(','), clientId: 'syncline-stack-probe', logLevel: logLevel.NOTHING, connectionTimeout: 3000, retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 2000 } });
let last;
for (let attempt = 1; Date.now() < deadline; attempt++) {
  try {
    await withTimeout(probeOnce(kafka), Math.max(1000, Math.min(30_000, deadline - Date.now())), `probe of Kafka at ${broker}`);
    process.exit(0);
  } catch (err) {
    last = err;
    if (attempt === 1 || attempt % 10 === 0) process.stderr.write(`[stack] Kafka at ${broker} does not accept work yet (${err?.message ?? err}); retrying\n`);
    await sleep(500);
  }
}
process.stderr.write(`[stack] Kafka at ${broker} did not accept work: ${last?.message ?? last}\n`);
process.exit(1);
