/**
 * A consumer stage with `chunk` (the processor and sink stages in front of the Applier: the sink's
 * batch.size) decodes and hands on a fetched batch in chunks, on a real broker: each chunk carries
 * the offset after its own last message, invalid messages are dead-lettered with their chunk, the
 * partition's offset is committed once the last chunk is applied, and a chunk that fails brings
 * the batch again from that chunk: the offset after the chunks already applied is committed first
 * (applied again against a Redis that lost its state, they could write a change the target has
 * moved past; docs/reliability.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KafkaMessage } from 'kafkajs';
import { KafkaClient, topics } from '../src/core/kafka.js';
import { poison, SynclineError } from '../src/core/errors.js';
import { rootLogger } from '../src/core/log.js';
import { ConsumerStage, type BatchOrigin, type Decoder } from '../src/process/processor.js';
import type { Pending } from '../src/sink/applier.js';
import { DeadLetters } from '../src/sink/dead-letters.js';
import { deleteTopics, readTopic, uid, waitFor } from './helpers.js';

async function committed(kafka: KafkaClient, groupId: string, topic: string): Promise<string | undefined> {
  const admin = kafka.kafka.admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return t?.partitions[0]?.offset;
  } finally {
    await admin.disconnect();
  }
}

test('a fetched batch goes to the output in chunks, then one offset commit; a failed chunk brings the batch again from that chunk', async () => {
  const prefix = uid();
  const kafka = new KafkaClient({ brokers: ['127.0.0.1:9092'], clientId: `t-${prefix}`, partitions: 1, replicationFactor: 1, retentionDays: 1 }, rootLogger.child({ stage: 'kafka' }));
  const topic = `${prefix}.chunks.in`;
  const groupId = `${prefix}.chunks`;
  await kafka.ensureTopics([topic], { partitions: 1 });
  // 20 messages in one fetch; message 9 cannot be decoded (poison).
  await kafka.send(Array.from({ length: 20 }, (_, i) => ({ topic, partition: 0, key: Buffer.from(`k${i}`), value: Buffer.from(i === 9 ? 'garbage' : String(i)) })));
  const decode: Decoder = async (m: KafkaMessage) => {
    const n = Number(m.value!.toString());
    if (Number.isNaN(n)) throw poison('BAD_MESSAGE', `message at offset ${m.offset} is not a number`);
    return { n, record: { op: 'insert' } } as unknown as Pending;
  };
  const calls: { n: number[]; next: string | undefined }[] = [];
  let failOnce = true;
  const stage = new ConsumerStage({
    groupId, topics: [topic], kafka, decode, dlq: new DeadLetters(kafka, prefix, 'chunks'), log: rootLogger.child({ stage: 'test' }),
    chunk: 7,
    output: {
      async apply(batch: Pending[], origin?: BatchOrigin) {
        const n = batch.map((p) => (p as unknown as { n: number }).n);
        calls.push({ n, next: origin?.next });
        // The second chunk fails once, retriably: the first is committed, the batch comes again from the second.
        if (failOnce && n[0] === 7) {
          failOnce = false;
          throw new SynclineError('retriable', 'TEST_DOWN', 'target down for a moment');
        }
      },
    },
  });
  const run = stage.run();
  try {
    await waitFor('offset 20 committed', async () => (await committed(kafka, groupId, topic)) === '20', 60000);
    const chunks = [
      { n: [0, 1, 2, 3, 4, 5, 6], next: '7' },
      { n: [7, 8, 10, 11, 12, 13], next: '14' }, // 9 dead-lettered
      { n: [14, 15, 16, 17, 18, 19], next: '20' },
    ];
    // First pass: chunk 1, chunk 2 fails; the batch comes again from offset 7, chunk 1 not again.
    assert.deepEqual(calls, [chunks[0], chunks[1], chunks[1], chunks[2]]);
    // The undecodable message is in the dead-letter topic (once per pass), with its origin.
    const letters = await readTopic(topics.dlq(prefix, 'chunks'));
    assert.equal(letters.length, 2, 'message 9, once per pass of its chunk');
    for (const l of letters) {
      assert.equal(l.value?.toString(), 'garbage');
      assert.equal(l.headers['syncline.error.code'], 'BAD_MESSAGE');
      assert.equal(l.headers['syncline.original.offset'], '9');
    }
  } finally {
    await stage.stop();
    await run;
    await kafka.close();
    await deleteTopics(prefix);
  }
});

test("a stage that fails on one partition ends only after the other partitions' batches in flight are applied", async () => {
  const prefix = uid();
  const kafka = new KafkaClient({ brokers: ['127.0.0.1:9092'], clientId: `t-${prefix}`, partitions: 2, replicationFactor: 1, retentionDays: 1 }, rootLogger.child({ stage: 'kafka' }));
  const topic = `${prefix}.quiesce.in`;
  await kafka.ensureTopics([topic], { partitions: 2 });
  await kafka.send([0, 1].map((partition) => ({ topic, partition, key: Buffer.from(`k${partition}`), value: Buffer.from(String(partition)) })));
  const events: string[] = [];
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let slowStarted = false;
  const stage = new ConsumerStage({
    groupId: `${prefix}.quiesce`, topics: [topic], kafka, dlq: new DeadLetters(kafka, prefix, 'quiesce'), log: rootLogger.child({ stage: 'test' }),
    decode: async (m: KafkaMessage) => ({ n: Number(m.value!.toString()), record: { op: 'insert' } }) as unknown as Pending,
    output: {
      async apply(_batch: Pending[], origin?: BatchOrigin) {
        if (origin?.partition === 1) {
          // Partition 1's batch is applying (its state commit waits for Redis, say) when partition 0 fails.
          slowStarted = true;
          await released;
          events.push('partition 1 applied');
          return;
        }
        await waitFor('partition 1 applying', async () => slowStarted, 30000);
        throw new SynclineError('fatal', 'TEST_FATAL', 'partition 0 cannot go on');
      },
    },
  });
  const run = stage.run().then(
    () => events.push('run resolved'),
    (err: SynclineError) => events.push(`run rejected ${err.code}`),
  );
  try {
    await waitFor('partition 0 failed', async () => slowStarted, 30000);
    await new Promise((r) => setTimeout(r, 1500)); // the stage has had time to end, were it not waiting
    events.push('released');
    release();
    await run;
    // A stage started again after its failure (in this process) fetches from the committed offsets:
    // it must not meet a batch the failed one is still applying.
    assert.deepEqual(events, ['released', 'partition 1 applied', 'run rejected TEST_FATAL']);
  } finally {
    release();
    await stage.stop();
    await kafka.close();
    await deleteTopics(prefix);
  }
});
