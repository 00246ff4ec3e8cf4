/**
 * The hand-off between a separately running processor (`syncline process --stage-output topic`)
 * and sink writer (`syncline sink`): `<prefix>.apply.<pipeline>`, keyed by target table + key so
 * one key stays on one partition (per-key order). Values are JSON with tagged types for what JSON
 * cannot hold exactly: {"$n":"123"} bigint, {"$b":"base64"} bytes, {"$f":"NaN"} non-finite floats.
 * The original change message bytes travel along so dead letters keep them.
 */
import type { Row } from '../core/envelope.js';
import { poison } from '../core/errors.js';
import type { KafkaClient } from '../core/kafka.js';
import type { Pending } from './applier.js';
import { keyString } from './sink.js';
import { parseTagged, stringifyTagged } from '../core/tagged-json.js';

export function encodePending(p: Pending): { key: Buffer; value: Buffer } {
  return {
    key: Buffer.from(p.record.table + '\u0000' + keyString(p.record.key)),
    value: Buffer.from(stringifyTagged({ v: 1, record: p.record, raw: { key: p.raw.key, value: p.raw.value } })),
  };
}

export function decodePending(value: Buffer | null): Pending {
  try {
    const o = parseTagged(value?.toString('utf8') ?? '') as { v: number; record: Pending['record']; raw: Pending['raw'] };
    if (o.v !== 1 || !o.record?.table || !o.record.op) throw new Error('not a syncline apply record');
    o.record.key = o.record.key as Row;
    return { record: o.record, raw: o.raw };
  } catch (err) {
    throw poison('DECODE_FAILED', `apply-topic message is not valid: ${(err as Error).message}`, err);
  }
}

/** Output of a processor running without its sink: produce to the apply topic. */
export class ApplyTopicWriter {
  constructor(private readonly kafka: KafkaClient, readonly topic: string) {}
  async ensure(): Promise<void> {
    await this.kafka.ensureTopics([this.topic]);
  }
  async apply(batch: Pending[]): Promise<void> {
    await this.kafka.send(batch.map((p) => ({ topic: this.topic, ...encodePending(p) })));
  }
}
