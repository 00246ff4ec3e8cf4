/** Config spec of the MariaDB sink connector (registered in ./index.ts). */
import { z } from 'zod';
import { retryOverrideSpec } from '../../src/core/config/schema.js';
import { mariadbConnectionSpec } from './connection.js';

export const mariadbSinkSpec = z
  .object({
    type: z.literal('mariadb'),
    connection: mariadbConnectionSpec,
    poolSize: z.number().int().min(1).max(100).default(4).describe('Connections in the writer pool.'),
    autoCreate: z
      .boolean()
      .default(true)
      .describe(
        "Create a target table that does not exist (and its database), from the source's schema as the changes carry it: the pipeline's key as primary key, every column with the MariaDB type the source type maps to (connectors/mariadb/README.md: Types). Needs CREATE on the database. false: a missing target table stops the pipeline (SINK_TABLE_MISSING).",
      ),
    autoEvolve: z.boolean().default(true).describe('Add target columns that appear in the source (ALTER TABLE ADD COLUMN), with the same type mapping as autoCreate.'),
    lockTimeoutS: z
      .number()
      .int()
      .min(1)
      .max(31536000)
      .default(10)
      .describe('innodb_lock_wait_timeout of the sessions: a write waiting longer than this many seconds for a row lock held by someone else fails with a retriable error and is retried.'),
    retry: retryOverrideSpec.optional().describe('Retry policy of writes to this target; overrides the pipeline and default policy option by option.'),
  })
  .strict()
  .describe('MariaDB target (10.6 or later) written with batched multi-row INSERT … ON DUPLICATE KEY UPDATE and deletes, one transaction per batch (connectors/mariadb/README.md).');

export type MariadbSinkConfig = z.infer<typeof mariadbSinkSpec>;
