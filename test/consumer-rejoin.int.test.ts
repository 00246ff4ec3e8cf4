/**
 * Group membership around long batches, on a real broker and group coordinator (session timeout
 * 6 s, the broker's minimum):
 *  - a batch that takes longer than the session while the process is alive (a slow target, a long
 *    isolation pass) keeps the membership: the stage heartbeats while it applies. Found by the chaos
 *    run: a re-snapshot's rejected rows took a minute per batch to isolate, the coordinator dropped
 *    the member each time, and the batch was done again from the start, for ever;
 *  - a member the coordinator dropped anyway (the process stalled: no heartbeat could be sent) joins
 *    again and goes on from the committed offsets, instead of stopping the stage (and with it the
 *    process: kafkajs stops the consumer for good when a commit inside a batch fails with "The
 *    coordinator is not aware of this member").
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

/** Block the event loop (a stalled process: GC, CPU starvation): not even a heartbeat goes out. */
function stall(ms: number): void {
  for (const end = Date.now() + ms; Date.now() < end; );
}

/**
 * A stage on a fresh one-partition topic of twenty messages (6 s session) whose first batch runs
 * `slow` before it applies; `applied` lists the message numbers as applied, redeliveries included.
 */
async function stageWithOneSlowBatch(slow: () => Promise<void> | void) {
  const { prefix, kafka, topic, groupId } = await twentyMessages(1);
  const applied: number[] = [];
  let slowOnce = true;
  // The stage's decoder and output interfaces; what they carry is the message's number (and the op the stage reads: a truncate is told its offset).
  const decode: Decoder = async (m: KafkaMessage) => ({ n: Number(m.value!.toString()), record: { op: 'insert' } }) as unknown as Pending;
  const stage = new ConsumerStage({
    groupId, topics: [topic], kafka, decode, dlq: new DeadLetters(kafka, prefix, 'rejoin'), log: rootLogger.child({ stage: 'test' }),
    sessionTimeoutMs: 6000,
    output: {
      async apply(batch) {
        if (slowOnce) {
          slowOnce = false;
          await slow();
        }
        for (const p of batch) applied.push((p as unknown as { n: number }).n);
      },
    },
  });
  return { prefix, kafka, topic, groupId, applied, stage };
}

test('a batch longer than the session keeps the membership: the stage heartbeats while it applies', async () => {
  const { prefix, kafka, applied, stage } = await stageWithOneSlowBatch(() => sleep(10_000));
  const run = stage.run();
  try {
    await waitFor('every message applied', async () => new Set(applied).size === 20, 60000);
    await sleep(2000); // a refused commit would show as a rejoin and the batch applied again
    assert.equal(stage.rejoins, 0, 'the member was not dropped');
    assert.equal(applied.length, 20, 'no message applied twice');
  } finally {
    await stage.stop();
    await run;
    await kafka.close();
    await deleteTopics(prefix);
  }
});

test('a consumer the group dropped during a stalled batch joins again and finishes from the committed offsets', async () => {
  // No heartbeat for longer than the session: the coordinator drops the member.
  const { prefix, kafka, topic, groupId, applied, stage } = await stageWithOneSlowBatch(() => stall(9000));
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
  // Partition 0's batch stalls the process past the 6 s session (the member is dropped); partition 1's
  // is merely slow and ends well after the rejoin.
  const slow = new Map([[0, 8000], [1, 14000]]);
  const decode: Decoder = async (m: KafkaMessage, _topic: string, partition: number) => ({ n: Number(m.value!.toString()), partition, record: { op: 'insert' } }) as unknown as Pending;
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
            if (part === 0) stall(ms);
            else await sleep(ms);
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
