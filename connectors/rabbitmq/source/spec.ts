/** Config spec of the RabbitMQ source (registered in ./index.ts; ADR 0024). */
import { z } from 'zod';
import { declaredTableIssues } from '../../../src/capture/declared-tables.js';
import { rabbitmqConnectionSpec } from '../spec.js';

export const queueTableSpec = z
  .object({
    table: z.string().min(1).describe('The pipeline table (its `source` name in `tables`, e.g. public.items). Format syncline: the message\'s `table` must be this name.').meta({ examples: ['public.items'] }),
    key: z.array(z.string().min(1)).min(1).describe('Key columns of the table (every message must carry them).'),
    columns: z
      .record(z.string(), z.string().min(1))
      .describe('The table\'s columns in order, each with its PostgreSQL type name (int4, int8, numeric(12,2), text, boolean, timestamptz, jsonb, bytea, uuid, …): the change topic\'s schema and the value conversion follow them. Fields of a message that are not listed are ignored.')
      .meta({ examples: [{ id: 'int8', name: 'text', price: 'numeric(12,2)' }] }),
  })
  .strict();

export const rabbitmqSourceSpec = z
  .object({
    type: z.literal('rabbitmq'),
    connection: rabbitmqConnectionSpec,
    queue: z.string().min(1).max(255).describe('The queue consumed (the pipeline\'s own: no other consumer may read it).').meta({ examples: ['shop.changes.to-reporting'] }),
    declare: z.boolean().default(false).describe('Declare the queue (durable) at start if it does not exist. false: it must exist; a missing one stops the pipeline (RABBITMQ_404).'),
    format: z
      .enum(['syncline', 'row'])
      .default('syncline')
      .describe('What a message body is: syncline (the JSON the RabbitMQ target publishes, format 1: op, table, key, values, position, tagged values; its position is the change\'s position) or row (a plain JSON object, the row; AMQP type property `delete` deletes the row of its key; positions from a sequence of the source\'s own).'),
    prefetch: z.number().int().min(1).max(65535).default(500).describe('Messages delivered and not yet acknowledged at most (channel prefetch): what the source holds between RabbitMQ and Kafka.'),
    tables: z.array(queueTableSpec).min(1).describe('The tables the messages are changes of. Format row: one table, or the message header `syncline-table` names it.'),
    batchSize: z.number().int().min(1).max(100000).default(500).describe('Changes per Kafka produce batch.'),
    lingerMs: z.number().int().min(0).max(10000).default(20).describe('How long capture waits to fill a batch before producing it (and so before messages are acknowledged).'),
  })
  .strict()
  .superRefine((c, ctx) => {
    declaredTableIssues(c.tables, 'tables', 'table', ctx);
  })
  .describe('A RabbitMQ queue of JSON changes (what the RabbitMQ target publishes, or plain rows), acknowledged once Kafka holds each change; poison messages dead-lettered and never requeued (ADR 0024).');

export type RabbitmqSourceConfig = z.infer<typeof rabbitmqSourceSpec>;
export type QueueTable = z.infer<typeof queueTableSpec>;
