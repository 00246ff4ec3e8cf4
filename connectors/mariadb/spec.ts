/** Config spec of the MariaDB sink connector (registered in ./index.ts). */
import { z } from 'zod';
import { retryOverrideSpec } from '../../src/core/config/schema.js';

export const mariadbSinkSpec = z
  .object({
    type: z.literal('mariadb'),
    host: z.string().default('127.0.0.1').describe('Host name or address of the MariaDB server.'),
    port: z.number().int().min(1).max(65535).default(3306).describe('TCP port.'),
    user: z.string().min(1).default('root').describe('User name.'),
    password: z.string().optional().describe('Password; use ${ENV_VAR} interpolation, never a literal.').meta({ secret: true }),
    database: z
      .string()
      .min(1)
      .describe(
        "Database the connections open (it must exist). Tables are written to the database named by the schema part of their target name: target 'shop.users' is table users of database shop (MariaDB has no schemas inside a database).",
      )
      .meta({ examples: ['shop'] }),
    ssl: z.boolean().default(false).describe("Connect with TLS. The server certificate is verified against the system CAs (or sslCaFile) and its name against host, as the postgres connector's ssl does."),
    sslCaFile: z.string().optional().describe('PEM file of the CA certificate(s) that signed the server certificate (a private CA), instead of the system CAs.').meta({ examples: ['/etc/syncline/mariadb-ca.pem'] }),
    sslVerify: z.boolean().default(true).describe('false: TLS without verifying the server certificate: encrypted but not authenticated; a warning says so. For tests, not production.'),
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
