/**
 * Registers the Kafka topic source connector (ADR 0021): a topic someone else writes (Debezium's
 * change events in JSON or Avro, or plain rows) read with a consumer group of its own. It creates
 * nothing in the source system but that consumer group (its committed offsets are its position),
 * which `resources` lists for `syncline pipeline drop`. Import for the side effect only (connectors/index.ts does).
 */
import { registerSource } from '../../src/core/registry.js';
import { kafkaTopicSourceSpec } from './spec.js';
import { KafkaTopicSource } from './source.js';
import { KafkaTopicSourceMonitor } from './monitor.js';
import { kafkaTopicResources } from './resources.js';

registerSource({
  type: 'kafka-topic',
  description: 'An existing Kafka topic: Debezium change events (JSON, Avro through the registry) or plain JSON/Avro rows; position = partition/offset',
  spec: kafkaTopicSourceSpec,
  create: (config, ctx) => new KafkaTopicSource(config, ctx.pipeline, ctx.log),
  // The capture-offsets record this source keeps: none (its position is its consumer group's offsets); the key names the group.
  streamId: (config) => config.group,
  monitor: (config, timeoutMs) => new KafkaTopicSourceMonitor(config, config.group, timeoutMs),
  dependency: (config, pipeline) => ({ kind: 'other', key: `kafka-topic ${config.brokers.join(',')}`, name: `Kafka at ${config.brokers.join(',')} (pipeline ${pipeline} source topics)`, codePrefix: 'KAFKA_' }),
  // Two pipelines in one consumer group would split the topics' partitions between them.
  exclusive: (raw) => (typeof raw.group === 'string' ? [{ field: 'group', what: 'consumer group', id: raw.group }] : []),
  resources: kafkaTopicResources,
  where: (config) => `kafka ${config.brokers.join(',')} topics ${config.topics.map((t) => t.topic).join(', ')}`,
});
