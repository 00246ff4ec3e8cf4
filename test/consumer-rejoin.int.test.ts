/**
 * A consumer stage whose member the group coordinator dropped (a batch took longer than the session
 * timeout, so no heartbeat reached the broker) joins again and goes on from the committed offsets,
 * instead of stopping the stage (and with it the process). Found by the chaos run: after a slow
 * isolation pass, the commit at the end of the batch failed with "The coordinator is not aware of
 * this member", kafkajs stopped the consumer for good and the whole process exited.
 *
 * Real broker, real group coordinator; the slow batch is an output that takes 9 s once (the
 * session timeout is 6 s, the broker's minimum).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KafkaMessage } from 'kafkajs';
import { KafkaClient } from '../src/core/kafka.js';
import { rootLogger } from '../src/core/log.js';
import { ConsumerStage, type Decoder } from '../src/process/processor.js';
import type { Pending } from '../src/sink/applier.js';
import { DeadLetters } from '../src/sink/dead-letters.js';
import { deleteTopics, sleep, uid, waitFor } from './helpers.js';

/** A fresh topic of `partitions` partitions holding messages 0 – 19 (message i on partition i % partitions). */
async function twentyMessages(partitions: number): Promise<{ prefix: string; kafka: KafkaClient; topic: string; groupId: string }> {
  const prefix = uid();
  const kafka = new KafkaClient({ brokers: ['127.0.0.1:9092'], clientId: `t-${prefix}`, partitions, replicationFactor: 1, retentionDays: 1 }, rootLogger.child({ stage: 'kafka' }));
  const topic = `${prefix}.rejoin.in`;
  await kafka.ensureTopics([topic], { partitions });
  await kafka.send(Array.from({ length: 20 }, (_, i) => ({ topic, partition: i % partitions, key: Buffer.from(`k${i}`), value: Buffer.from(String(i)) })));
  return { prefix, kafka, topic, groupId: `${prefix}.rejoin` };
}

test('a consumer the group dropped during a long batch joins again and finishes from the committed offsets', async () => {
  const { prefix, kafka, topic, groupId } = await twentyMessages(1);

  const applied: number[] = [];
  let slowOnce = true;
  // The stage's decoder and output interfaces; what they carry is the message's number.
  const decode: Decoder = async (m: KafkaMessage) => ({ n: Number(m.value!.toString()) }) as unknown as Pending;
  const stage = new ConsumerStage({
    groupId, topics: [topic], kafka, decode, dlq: new DeadLetters(kafka, prefix, 'rejoin'), log: rootLogger.child({ stage: 'test' }),
    sessionTimeoutMs: 6000,
    output: {
      async apply(batch) {
        if (slowOnce) {
          slowOnce = false;
          await sleep(9000); // no heartbeat for longer than the session: the coordinator drops the member
        }
        for (const p of batch) applied.push((p as unknown as { n: number }).n);
      },
    },
  });
  let ended: string | undefined;
  const run = stage.run().then(() => (ended = 'resolved'), (err: Error) => (ended = `rejected: ${err.message}`));
  try {
    await waitFor('every message applied after the rejoin', async () => {
      if (ended) throw new Error(`the stage ended: ${ended}`);
      return stage.rejoins >= 1 && new Set(applied).size === 20;
    }, 60000);
    assert.equal(ended, undefined, 'the stage is still running');
    // The first batch's commit was refused, so it came again after the rejoin (at least once).
    assert.ok(applied.length >= 20, `${applied.length} applied`);
    await waitFor('the offsets committed by the rejoined member', async () => {
      const admin = kafka.kafka.admin();
      await admin.connect();
      try {
        const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
        return t?.partitions[0]?.offset === '20';
      } finally {
        await admin.disconnect();
      }
    }, 20000);
  } finally {
    await stage.stop();
    await run;
    await kafka.close();
    await deleteTopics(prefix);
  }
  assert.equal(ended, 'resolved');
});

test('after a rejoin no partition is applied by two consumers at once: batches still in flight on the old one finish first', async () => {
  const { prefix, kafka, topic, groupId } = await twentyMessages(2);

  const active = new Map<number, number>();
  const overlaps: string[] = [];
  const applied = new Set<number>();
  const slow = new Map([[0, 8000], [1, 14000]]); // both outlast the 6 s session; partition 1's batch ends well after the rejoin
  const decode: Decoder = async (m: KafkaMessage, _topic: string, partition: number) => ({ n: Number(m.value!.toString()), partition }) as unknown as Pending;
  const stage = new ConsumerStage({
    groupId, topics: [topic], kafka, decode, dlq: new DeadLetters(kafka, prefix, 'rejoin'), log: rootLogger.child({ stage: 'test' }),
    sessionTimeoutMs: 6000,
    output: {
      async apply(batch, origin) {
        const part = origin!.partition;
        if ((active.get(part) ?? 0) > 0) overlaps.push(`partition ${part}`);
        active.set(part, (active.get(part) ?? 0) + 1);
        try {
          const ms = slow.get(part);
          if (ms) {
            slow.delete(part);
            await sleep(ms);
          }
          for (const p of batch) applied.add((p as unknown as { n: number }).n);
        } finally {
          active.set(part, active.get(part)! - 1);
        }
      },
    },
  });
  let ended: string | undefined;
  const run = stage.run().then(() => (ended = 'resolved'), (err: Error) => (ended = `rejected: ${err.message}`));
  try {
    await waitFor('every message applied after the rejoin', async () => {
      if (ended) throw new Error(`the stage ended: ${ended}`);
      return stage.rejoins >= 1 && applied.size === 20 && [...active.values()].every((n) => n === 0);
    }, 60000);
    assert.deepEqual(overlaps, [], 'a partition applied by the old and the new consumer at the same time');
  } finally {
    await stage.stop();
    await run;
    await kafka.close();
    await deleteTopics(prefix);
  }
});
