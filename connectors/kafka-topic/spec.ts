/** Config spec of the Kafka topic source connector (registered in ./index.ts; ADR 0021). */
import { z } from 'zod';
import { declaredTableIssues } from '../../src/capture/declared-tables.js';

export const topicTableSpec = z
  .object({
    topic: z.string().min(1).describe('The Kafka topic to read (written by someone else: Debezium, an application, another pipeline).'),
    table: z.string().min(1).describe('The pipeline table (its `source` name in `tables`, e.g. public.items) the records of this topic are changes of.').meta({ examples: ['public.items'] }),
    key: z.array(z.string().min(1)).min(1).describe('Key columns of the table (the target upserts and deletes by them; every record must carry them).'),
    columns: z
      .record(z.string(), z.string().min(1))
      .describe('The table\'s columns in order, each with its PostgreSQL type name (int4, int8, numeric(12,2), text, boolean, timestamptz, jsonb, bytea, uuid, date, timestamp, float8, …): the change topic\'s schema and the value conversion follow them. Fields of a record that are not listed are ignored.')
      .meta({ examples: [{ id: 'int8', name: 'text', price: 'numeric(12,2)', updated_at: 'timestamptz' }] }),
  })
  .strict();

export const kafkaTopicSourceSpec = z
  .object({
    type: z.literal('kafka-topic'),
    brokers: z.array(z.string().min(1)).min(1).describe('Bootstrap brokers of the Kafka cluster that holds the topics (may be the pipeline\'s own).').meta({ examples: [['127.0.0.1:9092']] }),
    group: z.string().min(1).describe('Consumer group the source reads the topics with, the pipeline\'s own (no other reader may use it): its committed offsets are the source\'s position.').meta({ examples: ['syncline.orders-from-debezium'] }),
    format: z.enum(['json', 'avro']).default('json').describe('How record keys and values are encoded: json (UTF-8 JSON, with or without Kafka Connect\'s {schema, payload} wrapper) or avro (Confluent wire format: magic byte 0, 4-byte schema id, read from `registryUrl`).'),
    envelope: z.enum(['debezium', 'row']).default('debezium').describe('What a value is: debezium (a change event {op, before, after, source, ts_ms}; its tombstones are skipped) or row (the row itself: every value an upsert, a tombstone — null value — a delete of the record key\'s row).'),
    registryUrl: z.string().url().optional().describe('Confluent-compatible schema registry the Avro records\' schema ids are read from (format avro). Default: the pipeline config\'s schemaRegistry.url is not known to a source, so set it (e.g. http://127.0.0.1:8081/apis/ccompat/v7).'),
    startFrom: z.enum(['earliest', 'latest']).default('earliest').describe('Where a new consumer group starts on each partition (a group with committed offsets resumes from them).'),
    numericTimestamps: z.enum(['micros', 'millis']).default('micros').describe('Unit of a number in a timestamp/timestamptz column when the record carries no schema saying it (Debezium\'s default for PostgreSQL timestamp(6) is microseconds, io.debezium.time.MicroTimestamp).'),
    commitIntervalMs: z.number().int().min(10).max(60000).default(200).describe('How often the acknowledged offsets are committed for the group (and at stop). A crash redelivers at most this long of records, which the version state makes no-ops.'),
    sessionTimeoutMs: z.number().int().min(6000).max(300000).default(30000).describe('Consumer group session timeout: after a crash, how long the group waits for the dead member before the restarted source gets the partitions (at least the broker\'s group.min.session.timeout.ms, 6000 by default).'),
    topics: z.array(topicTableSpec).min(1).describe('The topics read, each the changes of one pipeline table.'),
    batchSize: z.number().int().min(1).max(100000).default(2000).describe('Changes per Kafka produce batch.'),
    lingerMs: z.number().int().min(0).max(10000).default(20).describe('How long capture waits to fill a batch before producing it.'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.format === 'avro' && !c.registryUrl) ctx.addIssue({ code: 'custom', path: ['registryUrl'], message: 'format avro needs registryUrl (the registry the records\' schema ids are in)' });
    declaredTableIssues(c.topics, 'topics', 'topic', ctx);
  })
  .describe('An existing Kafka topic written by someone else: Debezium change events (JSON or Avro) or plain rows, applied with syncline\'s validation, conflicts, dead letters and replay. Position: the topic partition and offset (ADR 0021).');

export type KafkaTopicSourceConfig = z.infer<typeof kafkaTopicSourceSpec>;
export type TopicTable = z.infer<typeof topicTableSpec>;
