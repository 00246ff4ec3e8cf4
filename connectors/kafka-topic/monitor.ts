/**
 * Readiness and lag of a Kafka topic source: ping lists the broker's topics and checks the
 * configured ones exist; lag is the records not yet committed by the source's consumer group
 * (high watermark − committed offset, summed over every partition of every topic; a record counts
 * as one, the field is named in bytes for every source). One admin client, opened on first use.
 */
import type { Admin } from 'kafkajs';
import pino from 'pino';
import { KafkaClient } from '../../src/core/kafka.js';
import { retriable, withDeadline } from '../../src/core/errors.js';
import type { SourceLag, SourceMonitor } from '../../src/capture/source.js';
import type { KafkaTopicSourceConfig } from './spec.js';

export class KafkaTopicSourceMonitor implements SourceMonitor {
  private client?: KafkaClient;
  private admin?: Promise<Admin>;

  constructor(private readonly config: KafkaTopicSourceConfig, private readonly group: string, private readonly timeoutMs: number) {}

  private getAdmin(): Promise<Admin> {
    if (!this.admin) {
      this.client = new KafkaClient({ brokers: this.config.brokers, clientId: 'syncline-kafka-topic-monitor', partitions: 1, replicationFactor: 1, retentionDays: 1 }, pino({ level: 'silent' }));
      this.admin = this.client.getAdmin();
      this.admin.catch(() => (this.admin = undefined));
    }
    return this.admin;
  }

  async ping(): Promise<void> {
    const at = this.config.brokers.join(',');
    const names = await withDeadline(this.getAdmin().then((a) => a.listTopics()), this.timeoutMs, () => retriable('KAFKA_TIMEOUT', `Kafka at ${at} did not answer within ${this.timeoutMs} ms`));
    const missing = this.config.topics.map((t) => t.topic).filter((t) => !names.includes(t));
    if (missing.length > 0) throw new Error(`Kafka at ${at} has no topic ${missing.join(', ')}`);
  }

  async lag(): Promise<SourceLag | null> {
    const admin = await this.getAdmin();
    let lag = 0;
    for (const { topic } of this.config.topics) {
      const high = await admin.fetchTopicOffsets(topic);
      const committed = (await admin.fetchOffsets({ groupId: this.group, topics: [topic] }))[0]?.partitions ?? [];
      for (const h of high) {
        const c = committed.find((p) => p.partition === h.partition);
        const from = c && Number(c.offset) >= 0 ? Number(c.offset) : Number(h.low);
        lag += Math.max(0, Number(h.high) - from);
      }
    }
    return { lagBytes: lag, retainedBytes: null, active: true };
  }

  async close(): Promise<void> {
    await this.client?.close().catch(() => undefined);
  }
}
