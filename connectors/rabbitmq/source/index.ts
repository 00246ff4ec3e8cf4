/**
 * Registers the RabbitMQ source connector (ADR 0024): one queue of JSON changes (what the RabbitMQ
 * target publishes, or plain rows), acked once Kafka holds each change. It creates nothing in
 * RabbitMQ unless `declare: true` (then the durable queue). Import for the side effect only
 * (connectors/index.ts does).
 */
import { registerSource } from '../../../src/core/registry.js';
import { rabbitWhere } from '../connection.js';
import { rabbitmqSourceSpec } from './spec.js';
import { RabbitmqSource, rabbitStreamId } from './source.js';
import { RabbitmqSourceMonitor } from './monitor.js';

registerSource({
  type: 'rabbitmq',
  description: 'A RabbitMQ queue of JSON changes (the RabbitMQ target\'s messages, or plain rows); manual acks once Kafka holds each change; poison dead-lettered, never requeued',
  spec: rabbitmqSourceSpec,
  create: (config, ctx) => new RabbitmqSource(config, ctx.pipeline, ctx.log),
  // The capture-offsets record: format row's reserved sequence block; the key names the queue.
  streamId: (config) => rabbitStreamId(config),
  monitor: (config, timeoutMs) => new RabbitmqSourceMonitor(config, timeoutMs),
  dependency: (config, pipeline) => ({ kind: 'other', key: `rabbitmq ${rabbitWhere(config.connection)}`, name: `RabbitMQ at ${rabbitWhere(config.connection)} (pipeline ${pipeline} source queue)`, codePrefix: 'RABBITMQ_' }),
  // Two pipelines on one queue would each get some of its messages.
  exclusive: (raw) => (typeof raw.queue === 'string' ? [{ field: 'queue', what: 'RabbitMQ queue', id: raw.queue }] : []),
  where: (config) => `${rabbitWhere(config.connection)} queue ${config.queue}`,
});
