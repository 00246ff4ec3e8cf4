/** Registers the RabbitMQ sink (imported by connectors/index.ts). */
import { registerSink } from '../../src/core/registry.js';
import { rabbitWhere } from './connection.js';
import { RabbitmqSink } from './sink.js';
import { rabbitmqSinkSpec } from './spec.js';

registerSink({
  type: 'rabbitmq',
  description: 'RabbitMQ target: each change a persistent JSON message on one exchange, routing key from a template, publisher confirms before a change counts as applied; unroutable messages dead-lettered.',
  spec: rabbitmqSinkSpec,
  create: (cfg, ctx) => new RabbitmqSink(cfg, { ...ctx, log: ctx.log.child({ sink: 'rabbitmq', pipeline: ctx.pipeline }) }),
  where: (cfg) => `${rabbitWhere(cfg.connection)} exchange ${cfg.exchange}`,
  // The broker gives no row back to compare with: only source-wins can be applied (refused at load otherwise).
  conflictStrategies: ['source-wins'],
  wholeRows: true,
});
