/** Config specs of the PostgreSQL source and sink connectors (registered in ./index.ts). */
import { z } from 'zod';
import { retryOverrideSpec } from '../../src/core/config/schema.js';

export const pgConnectionSpec = z
  .object({
    host: z.string().default('127.0.0.1').describe('Host name or address of the PostgreSQL server.'),
    port: z.number().int().min(1).max(65535).default(5432).describe('TCP port.'),
    database: z.string().min(1).describe('Database name.').meta({ examples: ['shop'] }),
    user: z.string().min(1).default('postgres').describe('User name.'),
    password: z.string().optional().describe('Password; use ${ENV_VAR} interpolation, never a literal.').meta({ secret: true }),
    ssl: z.boolean().default(false).describe('Connect with TLS.'),
  })
  .strict()
  .describe('PostgreSQL connection.');

export type PgConnection = z.infer<typeof pgConnectionSpec>;

export const pgSourceSpec = z
  .object({
    type: z.literal('postgres'),
    connection: pgConnectionSpec,
    slot: z.string().regex(/^[a-z0-9_]{1,63}$/, 'lower-case letters, digits and _ only (at most 63)').describe('Logical replication slot name (created if missing).').meta({ examples: ['syncline_users'] }),
    publication: z.string().regex(/^[A-Za-z0-9_]{1,63}$/).describe('Publication name (created for the configured tables if missing).').meta({ examples: ['syncline_users'] }),
    snapshot: z.enum(['initial', 'never']).default('initial').describe('initial: copy every table once from the slot\'s exported snapshot, then stream; never: stream only.'),
    heartbeatMs: z.number().int().min(100).default(10000).describe('How often an idle slot\'s confirmed position is advanced so it does not retain WAL.'),
    batchSize: z.number().int().min(1).max(100000).default(2000).describe('Changes per Kafka produce batch.'),
    lingerMs: z.number().int().min(0).max(10000).default(20).describe('How long capture waits to fill a batch before producing it.'),
  })
  .strict()
  .describe('PostgreSQL source read through logical replication (pgoutput).');

export const pgSinkSpec = z
  .object({
    type: z.literal('postgres'),
    connection: pgConnectionSpec,
    autoEvolve: z.boolean().default(true).describe('Add target columns that appear in the source (ALTER TABLE ADD COLUMN).'),
    poolSize: z.number().int().min(1).max(100).default(4).describe('Connections in the writer pool.'),
    lockTimeoutMs: z.number().int().min(0).default(10000).describe('A write waiting longer than this for a row lock held by someone else fails with a retriable error: it is retried while the other keys of its batch go on (0 waits forever).'),
    retry: retryOverrideSpec.optional().describe('Retry policy of writes to this target; overrides the pipeline and default policy option by option.'),
  })
  .strict()
  .describe('PostgreSQL target written with batched multi-row upserts and deletes.');

export type PgSourceConfig = z.infer<typeof pgSourceSpec>;
export type PgSinkConfig = z.infer<typeof pgSinkSpec>;
