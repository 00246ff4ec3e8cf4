/**
 * Staleness from the key and the envelope's leading fields: `op` and `source` come first in the
 * value schema, so the processor reads a change's position without decoding its rows, and a stale
 * change (a redelivery, a replay) is skipped with its rows never decoded. The test proves it with a
 * copy of a real change whose bytes after `source` are garbage: under its own key (stale) it is
 * skipped; under a key with no state it is decoded in full, and the garbage makes it poison.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kafka, logLevel, type KafkaMessage } from 'kafkajs';
import { AvroCodec } from '../src/core/codec.js';
import { headerString, topics } from '../src/core/kafka.js';
import { sql, startRuntime, testEnv, waitFor } from './helpers.js';

test('a stale change is skipped from its key and position alone; its rows are decoded only when it applies', async (t) => {
  const P = 'items-sync';
  const env = await testEnv([{ name: P, tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' } }]); // no updated_at to compare
  t.after(() => env.cleanup());
  await sql(env.sourceDb, `create table items (id int primary key, qty int not null)`);
  await sql(env.targetDb, `create table items (id int primary key, qty int not null)`);
  const { rt } = await startRuntime(env);
  const h = rt.pipelines[0]!;
  const stats = () => h.applier!.stats;
  await waitFor('snapshot done', async () => (h.capture?.stats.confirmed ?? '') !== '');
  await sql(env.sourceDb, `insert into items select g, g from generate_series(1, 5) g`);
  await waitFor('5 applied', async () => stats().applied === 5);

  const topic = topics.cdc(env.prefix, 'public', 'items');
  const kafka = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `${env.prefix}.peek` });
  const seen: KafkaMessage[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({ eachMessage: async ({ message }) => void seen.push(message) });
  await waitFor('the 5 changes read back', async () => seen.filter((m) => m.key !== null).length >= 5);
  await consumer.disconnect();
  const one = seen.find((m) => m.key !== null)!;
  assert.deepEqual(Object.keys(one.headers ?? {}), [], 'no headers: the position is in the value');

  // The change's bytes up to the end of `source`, then garbage where ts_ms and the rows were.
  const codec = new AvroCodec(env.config.schemaRegistry.url);
  await codec.decode(one.value);
  const type = codec.knownType(one.value!.readInt32BE(1))! as unknown as { fields: { name: string; type: { decode(b: Buffer, p: number): { offset: number } } }[] };
  assert.deepEqual(type.fields.slice(0, 2).map((f) => f.name), ['op', 'source'], 'op and source lead the envelope');
  let end = 5;
  for (const f of type.fields.slice(0, 2)) end = f.type.decode(one.value!, end).offset;
  const garbage = Buffer.concat([one.value!.subarray(0, end), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]);

  const producer = kafka.producer();
  await producer.connect();
  t.after(() => producer.disconnect());
  const staleBefore = stats().skippedStale;
  const invalidBefore = h.processor!.invalid.count;
  await producer.send({ topic, messages: [{ key: one.key, value: garbage }] });
  await waitFor('the stale copy skipped', async () => stats().skippedStale === staleBefore + 1);
  assert.equal(h.processor!.invalid.count, invalidBefore, 'its rows were never decoded');

  // The same bytes under a key syncline has no state for: not stale, decoded in full, poison.
  const newKey = await codec.encode(one.key!.readInt32BE(1), { id: 999 });
  await producer.send({ topic, messages: [{ key: newKey, value: garbage }] });
  await waitFor('the undecodable change dead-lettered', async () => h.processor!.invalid.count === invalidBefore + 1);
  assert.equal(stats().applied, 5, 'nothing applied from the copies');

  const letters: KafkaMessage[] = [];
  const reader = kafka.consumer({ groupId: `${env.prefix}.dlq-peek` });
  await reader.connect();
  await reader.subscribe({ topic: topics.dlq(env.prefix, P), fromBeginning: true });
  await reader.run({ eachMessage: async ({ message }) => void letters.push(message) });
  await waitFor('the dead letter read back', async () => letters.length >= 1);
  await reader.disconnect();
  assert.deepEqual(letters.map((m) => headerString(m.headers, 'syncline.error.code')), ['DECODE_FAILED']);
  await rt.stop();
});
