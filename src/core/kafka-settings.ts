/** What the Kafka client (./kafka.ts) and its optional librdkafka producer (./rdkafka.ts) share. */
import type { Message } from 'kafkajs';

export interface KafkaSettings {
  brokers: string[];
  clientId: string;
  partitions: number;
  replicationFactor: number;
  retentionDays: number;
  /** Client of the producer send() uses (config kafka.producer). */
  producer?: 'kafkajs' | 'librdkafka';
}

/** What send() needs of a producer: kafkajs' own, or librdkafka's (src/core/rdkafka.ts). */
export interface BatchProducer {
  /** Resolves when every message is acknowledged by all in-sync replicas. */
  sendBatch(topicMessages: { topic: string; messages: Message[] }[]): Promise<void>;
  disconnect(): Promise<void>;
}
