/** What the Kafka client (./kafka.ts) and its optional librdkafka producer (./rdkafka.ts) share. */
import type { Message } from 'kafkajs';

export interface KafkaSettings {
  brokers: string[];
  clientId: string;
  partitions: number;
  replicationFactor: number;
  /** min.insync.replicas of the topics syncline creates (config kafka.minInsyncReplicas); unset: the broker's default. */
  minInsyncReplicas?: number;
  retentionDays: number;
  /** Client of the producer send() uses (config kafka.producer). */
  producer?: 'kafkajs' | 'librdkafka';
  /** TLS to the brokers (config kafka.ssl); absent: plaintext. */
  ssl?: { caFile?: string; verify: boolean };
  /** SASL (config kafka.sasl). */
  sasl?: { mechanism: 'scram-sha-512' | 'scram-sha-256' | 'plain'; username: string; password: string };
}

/** What send() needs of a producer: kafkajs' own, or librdkafka's (src/core/rdkafka.ts). */
export interface BatchProducer {
  /** Resolves when every message is acknowledged by all in-sync replicas. */
  sendBatch(topicMessages: { topic: string; messages: Message[] }[]): Promise<void>;
  disconnect(): Promise<void>;
}
