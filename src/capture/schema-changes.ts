/**
 * The record of a pipeline's schema changes: the compacted topic `<changePrefix>.schema.changes`
 * (one partition), key = the change's id, value = the change as JSON; a decision (approve, reject)
 * writes the same key again with its new status, so the topic's last record per key is the truth.
 *
 * Writers: capture records a change (./capture.ts) before it produces any change under the new
 * schema, so whoever reads this topic up to its end after seeing a message with that schema knows
 * the change; `syncline schema approve|reject` and the HTTP API record decisions.
 * Readers: the processor's SchemaGuard (src/process/schema-guard.ts) tails it for as long as it
 * runs; the CLI and the API read it once (readAll).
 *
 * Example record: key 'sc-3f9a1c02b4' → {"id":"sc-3f9a1c02b4","pipeline":"orders","table":"public.items",
 *   "topic":"syncline.cdc.public.items","at":"0000000001a2b3c8:00000000","fromSchemaId":41,"toSchemaId":57,
 *   "breaking":true,"changes":[{"kind":"drop","column":"note","from":"text"}],"registry":{"compatible":true},
 *   "status":"pending","detectedAt":"2026-12-05T19:40:00.000Z"}
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Consumer } from 'kafkajs';
import type { KafkaClient } from '../core/kafka.js';
import { fatal, retriable } from '../core/errors.js';
import { sleep } from '../core/retry.js';
import type { ColumnChange } from './schema-diff.js';

export type SchemaChangeStatus = 'applied' | 'pending' | 'approved' | 'rejected';

export interface SchemaChange {
  id: string;
  pipeline: string;
  /** Source table, canonical (core/names.ts). */
  table: string;
  /** Its change topic. */
  topic: string;
  /** Position (core/envelope.ts position()) from which the table's changes have the new schema. */
  at: string;
  fromSchemaId?: number;
  toSchemaId: number;
  fromKeySchemaId?: number;
  toKeySchemaId?: number;
  breaking: boolean;
  changes: ColumnChange[];
  /** The registry's BACKWARD check of the new value schema against the latest one. */
  registry: { compatible: boolean; reason?: string };
  /** applied: safe, applied automatically; pending: waits for an operator; approved / rejected: decided. */
  status: SchemaChangeStatus;
  detectedAt: string;
  /** The DDL the source saw, when it knows it (PostgreSQL's event trigger). */
  ddl?: string;
  decidedBy?: string;
  decidedAt?: string;
  note?: string;
}

export const schemaChangesTopic = (changePrefix: string): string => `${changePrefix}.schema.changes`;

/** A change's id: stable for one table and position (a capture restarted before Kafka had the change records the same id again). */
export function schemaChangeId(pipeline: string, table: string, at: string): string {
  return 'sc-' + createHash('sha256').update(`${pipeline}\u0000${table}\u0000${at}`).digest('hex').slice(0, 10);
}

export class SchemaChangeLog {
  readonly topic: string;
  private readonly changes = new Map<string, SchemaChange>();
  private consumer?: Consumer;
  private groupId?: string;
  /** Offset after the last record read by the tail (one partition). */
  private next = 0n;
  private listeners: (() => void)[] = [];

  constructor(private readonly kafka: KafkaClient, changePrefix: string) {
    this.topic = schemaChangesTopic(changePrefix);
  }

  ensure(): Promise<void> {
    return this.kafka.ensureTopics([this.topic], { partitions: 1, compact: true });
  }

  async record(change: SchemaChange): Promise<void> {
    await this.ensure();
    await this.kafka.send([{ topic: this.topic, key: Buffer.from(change.id), value: Buffer.from(JSON.stringify(change)) }]);
    this.changes.set(change.id, change);
  }

  /** Called after the tail read records (a decision may have come). */
  onUpdate(fn: () => void): void {
    this.listeners.push(fn);
  }

  /** Start tailing the topic from its beginning (a throw-away group, never committed). */
  async start(): Promise<void> {
    if (this.consumer) return;
    await this.ensure();
    this.groupId = `${this.topic}.reader.${randomBytes(4).toString('hex')}`;
    const consumer = this.kafka.consumer(this.groupId);
    this.consumer = consumer;
    await consumer.connect();
    await consumer.subscribe({ topics: [this.topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) {
          const id = m.key?.toString();
          if (id !== undefined) {
            if (!m.value) this.changes.delete(id);
            else {
              try {
                this.changes.set(id, JSON.parse(m.value.toString()) as SchemaChange);
              } catch {
                /* not one of ours */
              }
            }
          }
          this.next = BigInt(m.offset) + 1n;
        }
        // batch.lastOffset() counts records not handed over (compacted away or markers).
        const last = BigInt(batch.lastOffset()) + 1n;
        if (last > this.next) this.next = last;
        for (const f of this.listeners) f();
      },
    });
  }

  /** Resolves once the tail has read every record written before the call (start() first). */
  async sync(timeoutMs = 30_000): Promise<void> {
    const offsets = await this.kafka.topicOffsets(this.topic);
    const high = BigInt(offsets[0]?.high ?? '0');
    const until = Date.now() + timeoutMs;
    while (this.next < high) {
      if (Date.now() > until) throw retriable('SCHEMA_CHANGES_UNREAD', `could not read ${this.topic} up to offset ${high} within ${timeoutMs / 1000}s`);
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    const c = this.consumer;
    this.consumer = undefined;
    if (!c) return;
    await c.disconnect().catch(() => undefined);
    await this.kafka.deleteGroup(this.groupId!, 3000); // at shutdown: not long
  }

  /** Every change known, oldest first (by detection time). */
  list(filter: { pipeline?: string; status?: SchemaChangeStatus } = {}): SchemaChange[] {
    return [...this.changes.values()]
      .filter((c) => (filter.pipeline === undefined || c.pipeline === filter.pipeline) && (filter.status === undefined || c.status === filter.status))
      .sort((a, b) => a.detectedAt.localeCompare(b.detectedAt) || a.at.localeCompare(b.at));
  }

  get(id: string): SchemaChange | undefined {
    return this.changes.get(id);
  }

  /** The whole log once (CLI, API): start, read to the end, stop. */
  static async readAll(kafka: KafkaClient, changePrefix: string): Promise<SchemaChangeLog> {
    const log = new SchemaChangeLog(kafka, changePrefix);
    try {
      await log.start();
      await log.sync();
    } finally {
      await log.stop();
    }
    return log;
  }

  /**
   * Approve or reject a pending change (the log must have been read: readAll or start + sync).
   * Only a pending change can be decided; an unknown id or a decided change is refused, by name.
   */
  async decide(id: string, status: 'approved' | 'rejected', by: string, note?: string): Promise<SchemaChange> {
    const c = this.changes.get(id);
    if (!c) throw fatal('SCHEMA_CHANGE_UNKNOWN', `no schema change ${id} in ${this.topic}`);
    if (c.status !== 'pending') throw fatal('SCHEMA_CHANGE_DECIDED', `schema change ${id} of ${c.table} is ${c.status}${c.decidedBy ? ` (by ${c.decidedBy} at ${c.decidedAt})` : ''}, not pending`);
    const next: SchemaChange = { ...c, status, decidedBy: by, decidedAt: new Date().toISOString(), ...(note ? { note } : {}) };
    await this.record(next);
    return next;
  }
}
