/**
 * The config spec: the single source for validation (with file and line of each mistake, see
 * load.ts), for the TypeScript types (z.infer) and for docs/config.md (scripts/gen-config-docs.ts).
 * Connector sections (`source`, `target`) come from the connector registry.
 */
import { z } from 'zod';
import { registeredSinks, registeredSources } from '../registry.js';

const qualifiedTable = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*$/, "must be 'schema.table'")
  .describe("Qualified table name 'schema.table'.");

export const conflictSpec = z
  .object({
    strategy: z
      .enum(['source-wins', 'target-wins', 'latest-timestamp', 'manual', 'custom'])
      .default('latest-timestamp')
      .describe('How a change is resolved when the target row was modified independently or is newer.'),
    field: z.string().default('updated_at').describe('Timestamp column compared by latest-timestamp.'),
    module: z.string().optional().describe('Path of the module exporting resolve() for strategy custom.'),
  })
  .strict()
  .describe('Conflict resolution.');

const retryFields = {
  retries: z.number().int().min(0).max(100).describe('Retries after the first attempt (attempts = retries + 1).'),
  initialDelayMs: z.number().int().min(0).describe('Delay before the first retry.'),
  maxDelayMs: z.number().int().min(0).describe('Upper bound of any computed delay.'),
  multiplier: z.number().min(1).describe('Growth factor of the delay.'),
  jitter: z.number().min(0).max(1).describe('Random spread of each delay, as a fraction (0.2 = ±20 %).'),
};
const delaysOrdered = (r: { initialDelayMs?: number; maxDelayMs?: number }) =>
  r.initialDelayMs === undefined || r.maxDelayMs === undefined || r.initialDelayMs <= r.maxDelayMs;
const delaysMessage = { message: 'initialDelayMs must not exceed maxDelayMs', path: ['initialDelayMs'] };

export const retrySpec = z
  .object({
    retries: retryFields.retries.default(3),
    initialDelayMs: retryFields.initialDelayMs.default(1000),
    maxDelayMs: retryFields.maxDelayMs.default(30000),
    multiplier: retryFields.multiplier.default(2),
    jitter: retryFields.jitter.default(0.2),
  })
  .strict()
  .refine(delaysOrdered, delaysMessage)
  .describe('Retry policy for retriable errors (then the record is dead-lettered). A server\'s Retry-After replaces the computed delay.');

/** Overrides of the retry policy (pipeline or connector level): only the options given change. */
export const retryOverrideSpec = z
  .object(retryFields)
  .partial()
  .strict()
  .refine(delaysOrdered, delaysMessage)
  .describe('Overrides of defaults.retry; options not given are inherited.');

export const batchSpec = z
  .object({
    size: z.number().int().min(1).max(50000).default(1000).describe('Most records written to a target in one transaction.'),
  })
  .strict()
  .describe('Sink batching.');

export const tableSpec = z
  .object({
    source: qualifiedTable.describe('Source table.').meta({ examples: ['public.users'] }),
    target: qualifiedTable.optional().describe('Target table; defaults to the source name.'),
    key: z.array(z.string().min(1)).min(1).optional().describe('Key columns; default: the primary key. Required for a table without one (with REPLICA IDENTITY FULL).'),
    columns: z.record(z.string(), z.string()).optional().describe('Column renames source → target.'),
    conflict: conflictSpec.optional().describe('Per-table override of the pipeline conflict settings.'),
  })
  .strict()
  .describe('One captured table and how it maps to the target.');

function unionOf(specs: z.ZodObject[], what: string): z.ZodType {
  if (specs.length === 0) throw new Error(`no ${what} connector registered (import connectors/index.ts first)`);
  if (specs.length === 1) return specs[0]!;
  return z.discriminatedUnion('type', specs as [z.ZodObject, z.ZodObject, ...z.ZodObject[]]);
}

/** Built lazily because connectors register themselves at import time. */
export function configSpec() {
  const source = unionOf(registeredSources().map((r) => r.spec), 'source');
  const target = unionOf(registeredSinks().map((r) => r.spec), 'sink');
  const pipeline = z
    .object({
      enabled: z.boolean().default(true).describe('Run this pipeline.'),
      source,
      target,
      tables: z.array(tableSpec).min(1).describe('Tables captured and how they map to the target.'),
      conflict: conflictSpec.optional().describe('Defaults to defaults.conflict.'),
      retry: retryOverrideSpec.optional().describe('Overrides of defaults.retry for this pipeline (a target connector can override again).'),
      batch: batchSpec.optional().describe('Defaults to defaults.batch.'),
    })
    .strict()
    .describe('One pipeline: changes of the listed tables, captured from the source, are written to the target.');
  return z
    .object({
      version: z.literal(1).describe('Config format version.'),
      topicPrefix: z.string().regex(/^[A-Za-z0-9_-]+$/).default('syncline').describe('Prefix of every topic: <prefix>.cdc.<schema>.<table>, <prefix>.dlq.<pipeline>.'),
      kafka: z
        .object({
          brokers: z.array(z.string()).min(1).default(['127.0.0.1:9092']).describe('Bootstrap brokers host:port.'),
          clientId: z.string().default('syncline').describe('Client id sent to Kafka.'),
          partitions: z.number().int().min(1).max(1000).default(3).describe('Partitions of each change topic created by syncline.'),
          replicationFactor: z.number().int().min(1).default(1).describe('Replication factor of topics created by syncline.'),
          retentionDays: z.number().int().min(1).default(90).describe('Retention of change topics (they are the change log for replay).'),
        })
        .strict()
        .prefault({})
        .describe('Kafka cluster.'),
      schemaRegistry: z
        .object({
          url: z.string().url().default('http://127.0.0.1:8081/apis/ccompat/v7').describe('Base URL of a Confluent-compatible schema registry API.'),
        })
        .strict()
        .prefault({})
        .describe('Schema registry (Confluent API: Confluent, Apicurio ccompat, Redpanda, Karapace).'),
      redis: z
        .object({
          url: z.string().default('redis://127.0.0.1:6379').describe('Redis URL holding per-key version state.'),
          keyPrefix: z.string().optional().describe('Prefix of every Redis key; defaults to topicPrefix (version state belongs to one deployment).'),
        })
        .strict()
        .prefault({})
        .describe('Redis.'),
      defaults: z
        .object({
          conflict: conflictSpec.prefault({}),
          retry: retrySpec.prefault({}),
          batch: batchSpec.prefault({}),
        })
        .strict()
        .prefault({})
        .describe('Pipeline defaults.'),
      pipelines: z.record(z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'lower-case letters, digits and -'), pipeline).describe('Pipelines by name.'),
    })
    .strict();
}

export type SynclineConfig = z.infer<ReturnType<typeof configSpec>>;
export type PipelineConfig = SynclineConfig['pipelines'][string];
export type TableConfig = z.infer<typeof tableSpec>;
export type ConflictConfig = z.infer<typeof conflictSpec>;
export type RetryConfig = z.infer<typeof retrySpec>;
