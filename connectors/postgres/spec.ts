/** Config specs of the PostgreSQL source and sink connectors (registered in ./index.ts). */
import { z } from 'zod';
import { retryOverrideSpec } from '../../src/core/config/schema.js';
import { NAME_RE, NAME_RULE, pgSlotName } from '../../src/core/names.js';

export const pgConnectionSpec = z
  .object({
    host: z.string().default('127.0.0.1').describe('Host name or address of the PostgreSQL server.'),
    port: z.number().int().min(1).max(65535).default(5432).describe('TCP port.'),
    database: z.string().min(1).describe('Database name.').meta({ examples: ['shop'] }),
    user: z.string().min(1).default('postgres').describe('User name.'),
    password: z.string().optional().describe('Password; use ${ENV_VAR} interpolation, never a literal.').meta({ secret: true }),
    ssl: z.boolean().default(false).describe('Connect with TLS, on every connection syncline opens to this server (capture, snapshot, probe, sink). The server certificate is verified against the system CAs (or sslCaFile) and its name against host, like libpq\'s sslmode=verify-full.'),
    sslCaFile: z.string().optional().describe('PEM file of the CA certificate(s) that signed the server certificate (a private CA), instead of the system CAs.').meta({ examples: ['/etc/syncline/pg-ca.pem'] }),
    sslVerify: z.boolean().default(true).describe('false: TLS without verifying the server certificate (libpq\'s sslmode=require): encrypted but not authenticated; a warning says so. For tests, not production.'),
  })
  .strict()
  .describe('PostgreSQL connection.');

export type PgConnection = z.infer<typeof pgConnectionSpec>;

export const pgSourceSpec = z
  .object({
    type: z.literal('postgres'),
    connection: pgConnectionSpec,
    slot: z
      .string()
      .regex(NAME_RE, NAME_RULE)
      .describe(`Logical replication slot name (created if missing): ${NAME_RULE}, as pipeline names. PostgreSQL allows only lower-case letters, digits and _ in slot names, so the slot is created with every - written as _ (orders-sync → orders_sync; two pipelines whose slots would then be one are refused).`)
      .meta({ examples: ['syncline_users'] })
      .transform(pgSlotName),
    publication: z.string().regex(NAME_RE, NAME_RULE).describe(`Publication name (created for the configured tables if missing): ${NAME_RULE}, as pipeline names.`).meta({ examples: ['syncline_users'] }),
    snapshot: z.enum(['initial', 'never']).default('initial').describe('initial: copy every table once from the slot\'s exported snapshot, then stream; never: stream only.'),
    heartbeatMs: z.number().int().min(100).default(10000).describe('How often an idle slot\'s confirmed position is advanced so it does not retain WAL.'),
    batchSize: z.number().int().min(1).max(100000).default(2000).describe('Changes per Kafka produce batch.'),
    lingerMs: z.number().int().min(0).max(10000).default(20).describe('How long capture waits to fill a batch before producing it.'),
    standbyPollMs: z.number().int().min(100).max(60000).default(1000).describe('Standby capture (several capture processes for one pipeline): the one holding the pipeline\'s advisory lock on the source database captures; the others try to take it this often (ms), and the one holding it checks its lock connection this often. A killed holder\'s lock is free at once, so a standby takes over within about this interval plus its start.'),
  })
  .strict()
  .describe('PostgreSQL source read through logical replication (pgoutput).');

export const pgSinkSpec = z
  .object({
    type: z.literal('postgres'),
    connection: pgConnectionSpec,
    autoCreate: z
      .boolean()
      .default(true)
      .describe(
        "Create a target table that does not exist, from the source's schema as the changes carry it: the pipeline's key as primary key, every column with the source column's SQL type (user-defined types the target lacks become text; README: Types). Needs CREATE on the target schema (and on the database for a missing schema); without it the pipeline stops with the GRANT to run. false: a missing target table stops the pipeline (SINK_TABLE_MISSING).",
      ),
    autoEvolve: z.boolean().default(true).describe('Add target columns that appear in the source (ALTER TABLE ADD COLUMN), with the same type mapping as autoCreate.'),
    poolSize: z.number().int().min(1).max(100).default(4).describe('Connections in the writer pool.'),
    lockTimeoutMs: z.number().int().min(0).default(10000).describe('A write waiting longer than this for a row lock held by someone else fails with a retriable error: it is retried while the other keys of its batch go on (0 waits forever).'),
    retry: retryOverrideSpec.optional().describe('Retry policy of writes to this target; overrides the pipeline and default policy option by option.'),
  })
  .strict()
  .describe('PostgreSQL target written with batched multi-row upserts and deletes.');

export type PgSourceConfig = z.infer<typeof pgSourceSpec>;
export type PgSinkConfig = z.infer<typeof pgSinkSpec>;
