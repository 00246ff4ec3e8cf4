/**
 * The position header: capture writes each keyed change's position into a `syncline.pos` Kafka
 * header, so the processor tells a stale change (a redelivery, a replay) from its key and that header
 * without decoding the value. A change whose header does not match its value is poison (dead-lettered
 * as invalid with POSITION_MISMATCH), never applied; a copy with its true header is skipped as stale.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kafka, logLevel, type KafkaMessage } from 'kafkajs';
import { POSITION_HEADER } from '../src/core/envelope.js';
import { headerString, topics } from '../src/core/kafka.js';
import { sql, startRuntime, testEnv, waitFor } from './helpers.js';

test('the position header decides staleness; a header that does not match its value is dead-lettered, never applied', async (t) => {
  const P = 'items-sync';
  const env = await testEnv([{ name: P, tables: [{ source: 'public.items' }] }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, `create table items (id int primary key, qty int not null)`);
  await sql(env.targetDb, `create table items (id int primary key, qty int not null)`);
  const { rt } = await startRuntime(env);
  const h = rt.pipelines[0]!;
  const stats = () => h.applier!.stats;
  await waitFor('snapshot done', async () => (h.capture?.stats.confirmedLsn ?? '0/0') !== '0/0');

  await sql(env.sourceDb, `insert into items select g, g from generate_series(1, 5) g`);
  await waitFor('5 applied', async () => stats().applied === 5);

  // Every keyed change in the topic carries its position.
  const topic = topics.cdc(env.prefix, 'public', 'items');
  const kafka = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `${env.prefix}.peek` });
  const seen: KafkaMessage[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({ eachMessage: async ({ message }) => void seen.push(message) });
  await waitFor('the 5 changes read back', async () => seen.length >= 5);
  await consumer.disconnect();
  const keyed = seen.filter((m) => m.key !== null);
  assert.equal(keyed.length, 5);
  for (const m of keyed) assert.match(headerString(m.headers, POSITION_HEADER) ?? '', /^[0-9a-f]{16}:[0-9a-f]{8}$/, 'a position header on every keyed change');

  const producer = kafka.producer();
  await producer.connect();
  t.after(() => producer.disconnect());
  const one = keyed[0]!;
  const truePos = headerString(one.headers, POSITION_HEADER)!;

  // The same change again with its true header: stale, skipped, nothing written.
  const staleBefore = stats().skippedStale;
  await producer.send({ topic, messages: [{ key: one.key, value: one.value, headers: { [POSITION_HEADER]: truePos } }] });
  await waitFor('the copy skipped as stale', async () => stats().skippedStale === staleBefore + 1);

  // The same change with a header claiming a later position: not stale by its header, so its value
  // is decoded, and the mismatch makes it poison.
  const invalidBefore = h.processor!.invalid.count;
  await producer.send({ topic, messages: [{ key: one.key, value: one.value, headers: { [POSITION_HEADER]: 'ffffffffffffffff:00000000' } }] });
  await waitFor('the lying header dead-lettered', async () => h.processor!.invalid.count === invalidBefore + 1);
  assert.equal(stats().applied, 5, 'nothing applied from the copies');

  const dlq = topics.dlq(env.prefix, P);
  const letters: KafkaMessage[] = [];
  const reader = kafka.consumer({ groupId: `${env.prefix}.dlq-peek` });
  await reader.connect();
  await reader.subscribe({ topic: dlq, fromBeginning: true });
  await reader.run({ eachMessage: async ({ message }) => void letters.push(message) });
  await waitFor('the dead letter read back', async () => letters.length >= 1);
  await reader.disconnect();
  const codes = letters.map((m) => headerString(m.headers, 'syncline.error.code'));
  assert.deepEqual(codes, ['POSITION_MISMATCH'], `dead letters: ${JSON.stringify(letters.map((m) => m.headers))}`);
  await rt.stop();
});
