/**
 * Capture progress that must outlive the process and Redis: whether the initial snapshot of a
 * source's stream completed, and, for sources whose server keeps no position for us (a binlog
 * reader), the last acknowledged position. Stored in the compacted topic `<prefix>.capture.offsets`,
 * key = the stream's id (PostgreSQL: the slot name; the same idea as Kafka Connect's offsets topic).
 * PostgreSQL keeps its streaming position in its replication slot itself.
 *
 * Example record: key 'syncline_users' → {"slot":"syncline_users","snapshot":"done",
 *   "consistentPoint":"0/1A2B3C8","tables":["public.users"],"at":"2026-11-25T10:00:00.000Z"}
 * On crash mid-snapshot the record says "started" (or nothing): the next start drops the slot and
 * snapshots again; snapshot rows are idempotent downstream (version state + hash delta).
 */
import { randomUUID } from 'node:crypto';
import type { KafkaClient } from '../core/kafka.js';
import { topics } from '../core/kafka.js';
import type { CaptureOffset, OffsetStore } from './source.js';

export type { CaptureOffset };


export class CaptureOffsets implements OffsetStore {
  private readonly topic: string;
  constructor(private readonly kafka: KafkaClient, prefix: string) {
    this.topic = topics.captureOffsets(prefix);
  }

  async read(slot: string): Promise<CaptureOffset | null> {
    return this.readRecord<CaptureOffset>(slot);
  }

  /** The last record under `key` (null: none, or deleted). Other keys of the topic: backfill state (./backfill.ts). */
  async readRecord<T>(slot: string): Promise<T | null> {
    await this.kafka.ensureTopics([this.topic], { partitions: 1, compact: true });
    const offsets = await this.kafka.topicOffsets(this.topic);
    const high = offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0);
    if (high === 0) return null;
    const consumer = this.kafka.kafka.consumer({ groupId: `syncline-offsets-reader-${randomUUID()}`, maxWaitTimeInMs: 100 });
    let found: T | null = null;
    try {
      await consumer.connect();
      await consumer.subscribe({ topic: this.topic, fromBeginning: true });
      const target = new Map(offsets.map((o) => [o.partition, Number(o.high)]));
      await new Promise<void>((resolve, reject) => {
        const done = new Set<number>();
        for (const [p, h] of target) if (h === 0) done.add(p);
        const timer = setTimeout(() => reject(new Error(`timed out reading ${this.topic}`)), 30000);
        consumer
          .run({
            autoCommit: false,
            eachMessage: async ({ partition, message }) => {
              if (message.key?.toString() === slot) {
                found = message.value ? (JSON.parse(message.value.toString()) as T) : null;
              }
              if (Number(message.offset) + 1 >= (target.get(partition) ?? 0)) done.add(partition);
              if (done.size >= target.size) {
                clearTimeout(timer);
                resolve();
              }
            },
          })
          .catch(reject);
      });
    } finally {
      await consumer.disconnect().catch(() => undefined);
    }
    return found;
  }

  async write(offset: CaptureOffset): Promise<void> {
    await this.writeRecord(offset.slot, offset);
  }

  async writeRecord(key: string, value: unknown): Promise<void> {
    await this.kafka.ensureTopics([this.topic], { partitions: 1, compact: true });
    await this.kafka.send([{ topic: this.topic, key: Buffer.from(key), value: Buffer.from(JSON.stringify(value)) }]);
  }
}
