/**
 * The hand-off between a separately running processor (`syncline process --stage-output topic`)
 * and sink writer (`syncline sink`): `<prefix>.apply.<pipeline>`, keyed by target table + key so
 * one key stays on one partition (per-key order). Values are JSON with tagged types for what JSON
 * cannot hold exactly: {"$n":"123"} bigint, {"$b":"base64"} bytes, {"$f":"NaN"} non-finite floats.
 * The original change message bytes travel along so dead letters keep them.
 *
 * Keyless control records (a truncate, the end of a table's snapshot) go to every partition, each
 * copy saying which one it is (SinkRecord.copy). By key they would all land on one partition, and
 * its consumer would act on them while the consumers of the others may still be applying what came
 * before them (a sweep deleting rows whose re-snapshot rows wait there) or have already applied what
 * came after (a truncate wiping rows inserted after it).
 */
import type { Row } from '../core/envelope.js';
import { classifyNetworkError, fatal, poison, retriable } from '../core/errors.js';
import type { KafkaClient } from '../core/kafka.js';
import type { Producer } from 'kafkajs';
import type { BatchOrigin, Decoder } from '../process/processor.js';
import type { Pending } from './applier.js';
import { keyString } from './sink.js';
import { parseTagged, stringifyTagged } from '../core/tagged-json.js';

export function encodePending(p: Pending): { key: Buffer; value: Buffer } {
  return {
    key: Buffer.from(p.record.table + '\u0000' + keyString(p.record.key)),
    value: Buffer.from(stringifyTagged({ v: 1, record: p.record, raw: { key: p.raw.key, value: p.raw.value } })),
  };
}

export interface ApplyMessage {
  topic: string;
  key: Buffer;
  value: Buffer;
  /** Set for the copies of a control record; a change goes where its key hashes. */
  partition?: number;
}

/** The sink writer's decoder (split deployment): an apply-topic message is a decoded Pending already. */
export const applyTopicDecoder: Decoder = async (m) => decodePending(m.value);

export function decodePending(value: Buffer | null): Pending {
  try {
    const o = parseTagged(value?.toString('utf8') ?? '') as { v: number; record: Pending['record']; raw: Pending['raw'] };
    if (o.v !== 1 || !o.record?.table || !o.record.op) throw new Error('not a syncline apply record');
    o.record.key = o.record.key as Row;
    // Written by an earlier version, `decided: true` meant kept over a delete (see Decided).
    if ((o.record.decided as unknown) === true) o.record.decided = 'delete';
    return { record: o.record, raw: o.raw };
  } catch (err) {
    throw poison('DECODE_FAILED', `apply-topic message is not valid: ${(err as Error).message}`, err);
  }
}

/**
 * Output of a processor running without its sink: produce to the apply topic. With a
 * transactionalId, each batch and the processor's offset for it are committed in one Kafka
 * transaction (read_committed consumers — the sink — never see a batch twice or half of one; a
 * restarted processor with the same id fences and aborts what its predecessor left open). Batches
 * of different partitions take turns on the one transactional producer.
 */
export class ApplyTopicWriter {
  private producer?: Producer;
  private turn: Promise<unknown> = Promise.resolve();
  private partitions = 0;

  constructor(private readonly kafka: KafkaClient, readonly topic: string, private readonly opts: { transactionalId?: string } = {}) {}

  async ensure(): Promise<void> {
    await this.kafka.ensureTopics([this.topic]);
    this.partitions = await this.kafka.partitionCount(this.topic);
    if (this.partitions < 1) throw retriable('APPLY_TOPIC_METADATA', `apply topic ${this.topic}: the broker reports no partitions for it yet`);
  }

  /** The messages for a batch: a change by its key, a control record once per partition. */
  private messages(batch: Pending[]): ApplyMessage[] {
    if (this.partitions < 1) throw fatal('APPLY_TOPIC_NOT_READY', `apply topic ${this.topic}: ensure() must run before apply() (its partition count is not known)`);
    const out: ApplyMessage[] = [];
    for (const p of batch) {
      const op = p.record.op;
      if (op !== 'truncate' && op !== 'sweep') {
        out.push({ topic: this.topic, ...encodePending(p) });
        continue;
      }
      for (let partition = 0; partition < this.partitions; partition++) {
        const copy: Pending = { record: { ...p.record, copy: { partition, of: this.partitions } }, raw: p.raw };
        out.push({ topic: this.topic, partition, ...encodePending(copy) });
      }
    }
    return out;
  }

  async apply(batch: Pending[], origin?: BatchOrigin): Promise<'committed' | undefined> {
    const messages = this.messages(batch);
    if (!this.opts.transactionalId || !origin) {
      await this.kafka.send(messages);
      return undefined;
    }
    const run = this.turn.then(() => this.inTransaction(messages, origin));
    this.turn = run.catch(() => undefined);
    await run;
    return 'committed';
  }

  private async inTransaction(messages: ApplyMessage[], origin: BatchOrigin): Promise<void> {
    if (!this.producer) {
      // Back-to-back transactions: the broker answers the next one's first send with
      // CONCURRENT_TRANSACTIONS while it finishes the previous commit (a few ms). kafkajs's first retry
      // waits 300 ms (≈ 165 ms per transaction measured here); the Java client waits 20 ms for this
      // error. 25 ms doubling over 9 retries (≈ 13 s in all) made it ≈ 28 ms per transaction.
      const p = this.kafka.kafka.producer({ transactionalId: this.opts.transactionalId, idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, retry: { initialRetryTime: 25, retries: 9 } });
      try {
        await p.connect();
      } catch (err) {
        throw classifyNetworkError(err, `cannot connect the transactional producer ${this.opts.transactionalId}`);
      }
      this.producer = p;
    }
    const tx = await this.producer.transaction();
    try {
      // At most ~512 KB per request (see KafkaClient.send), all in the one transaction.
      let chunk: Omit<ApplyMessage, 'topic'>[] = [];
      let bytes = 0;
      for (const m of messages) {
        if (bytes + m.value.length > 512 * 1024 && chunk.length > 0) {
          await tx.send({ topic: this.topic, messages: chunk, acks: -1 });
          chunk = [];
          bytes = 0;
        }
        chunk.push(m.partition === undefined ? { key: m.key, value: m.value } : { key: m.key, value: m.value, partition: m.partition });
        bytes += m.value.length + m.key.length;
      }
      if (chunk.length > 0) await tx.send({ topic: this.topic, messages: chunk, acks: -1 });
      await tx.sendOffsets({ consumerGroupId: origin.groupId, topics: [{ topic: origin.topic, partitions: [{ partition: origin.partition, offset: origin.next }] }] });
      await tx.commit();
    } catch (err) {
      await tx.abort().catch(() => undefined);
      // The producer may be fenced or in a bad state: start a fresh one on the next batch.
      await this.producer?.disconnect().catch(() => undefined);
      this.producer = undefined;
      throw classifyNetworkError(err, `apply-topic transaction on ${this.topic}`);
    }
  }

  async close(): Promise<void> {
    await this.turn.catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
    this.producer = undefined;
  }
}
