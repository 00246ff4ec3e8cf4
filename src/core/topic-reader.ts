/**
 * Reading a bounded range of a topic (the dead-letter store, replay) without touching any live
 * consumer group: a throw-away group `<groupPrefix>.<random>` is joined, each partition is sought
 * to its start offset, messages are handed over in batches until every partition reached its end
 * offset, then the group is deleted. Offsets are never committed.
 */
import { randomBytes } from 'node:crypto';
import type { KafkaMessage } from 'kafkajs';
import type { KafkaClient } from './kafka.js';

export interface ReadRange {
  topic: string;
  partition: number;
  /** First offset read (inclusive). */
  from: bigint;
  /** End offset (exclusive). */
  to: bigint;
}

/** [low, high) of every partition of a topic (missing topic: none). */
export async function topicBounds(kafka: KafkaClient, topic: string): Promise<{ partition: number; low: bigint; high: bigint }[]> {
  const admin = await kafka.getAdmin();
  const existing = await admin.listTopics();
  if (!existing.includes(topic)) return [];
  const offsets = await kafka.topicOffsets(topic);
  return offsets.map((o) => ({ partition: o.partition, low: BigInt(o.low), high: BigInt(o.high) })).sort((a, b) => a.partition - b.partition);
}

/** First offset of each partition whose message time is at or after `ms` (the high watermark when none is). */
export async function offsetsAtTime(kafka: KafkaClient, topic: string, ms: number): Promise<Map<number, bigint>> {
  const bounds = await topicBounds(kafka, topic);
  const at = await kafka.topicOffsetsAt(topic, ms);
  const out = new Map<number, bigint>();
  for (const b of bounds) {
    const o = at.find((x) => x.partition === b.partition);
    const off = o && Number(o.offset) >= 0 ? BigInt(o.offset) : b.high;
    out.set(b.partition, off < b.low ? b.low : off);
  }
  return out;
}

export interface ReadProgress {
  read: number;
  total: number;
}

/**
 * Hand every message of the ranges to `onBatch` (per partition, in offset order; partitions may
 * interleave). Resolves when all ranges are read; rejects with the first error of onBatch.
 */
export async function readRanges(
  kafka: KafkaClient,
  ranges: ReadRange[],
  onBatch: (topic: string, partition: number, messages: KafkaMessage[]) => Promise<void>,
  opts: { groupPrefix: string; onProgress?: (p: ReadProgress) => void },
): Promise<void> {
  const todo = ranges.filter((r) => r.to > r.from);
  if (todo.length === 0) return;
  const total = todo.reduce((n, r) => n + Number(r.to - r.from), 0);
  const progress = { read: 0, total };
  const key = (t: string, p: number) => `${t}\u0000${p}`;
  const pending = new Map(todo.map((r) => [key(r.topic, r.partition), r]));
  const groupId = `${opts.groupPrefix}.${randomBytes(4).toString('hex')}`;
  const consumer = kafka.consumer(groupId);
  let finish!: () => void;
  let reject!: (e: unknown) => void;
  let failed = false;
  const done = new Promise<void>((res, rej) => {
    finish = res;
    reject = rej;
  });
  // It may fail before it is awaited (a crash while joining): not an unhandled rejection.
  done.catch(() => undefined);
  const fail = (e: unknown) => {
    failed = true;
    reject(e);
  };
  // Kafka's own failures classified (a leader not elected yet for a topic just created is retriable:
  // the stage's supervisor waits for it); what onBatch throws passes as it is.
  const what = `reading ${[...new Set(todo.map((r) => r.topic))].join(', ')}`;
  consumer.on(consumer.events.CRASH, (e) => fail(kafka.classify(e.payload.error, what)));
  const kafkaStep = <T>(p: Promise<T>): Promise<T> => p.catch((err: unknown) => {
    throw kafka.classify(err, what);
  });
  try {
    await kafkaStep(consumer.connect());
    await kafkaStep(consumer.subscribe({ topics: [...new Set(todo.map((r) => r.topic))], fromBeginning: true }));
    await kafkaStep(consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, pause }) => {
        // Partitions outside the ranges, and those read to their end, are paused: nothing is
        // resolved for them, so they would otherwise be fetched again and again until the end.
        // After a failure nothing more is handed over (the partition would be fetched again from
        // the unresolved offset and the failed batch handed over again while disconnecting).
        const r = pending.get(key(batch.topic, batch.partition));
        if (!r || failed) {
          pause();
          return;
        }
        const inRange = batch.messages.filter((m) => {
          const o = BigInt(m.offset);
          return o >= r.from && o < r.to;
        });
        try {
          if (inRange.length > 0) await onBatch(batch.topic, batch.partition, inRange);
        } catch (err) {
          pause();
          fail(err);
          return;
        }
        progress.read += inRange.length;
        opts.onProgress?.(progress);
        const last = batch.messages[batch.messages.length - 1];
        if (last) resolveOffset(last.offset);
        await heartbeat();
        // batch.lastOffset() also counts records not handed over (transaction markers), which may end a range.
        if (BigInt(batch.lastOffset()) >= r.to - 1n) {
          pause();
          pending.delete(key(batch.topic, batch.partition));
          if (pending.size === 0) finish();
        }
      },
    }));
    for (const r of todo) consumer.seek({ topic: r.topic, partition: r.partition, offset: r.from.toString() });
    await done;
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await kafka.deleteGroup(groupId);
  }
}
