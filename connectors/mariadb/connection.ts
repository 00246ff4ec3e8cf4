/**
 * The one way syncline connects to MariaDB/MySQL: the source's snapshot, check and binlog connections
 * and the sink's pool take their options from mariadbOptions, so the connection settings, TLS above
 * all, mean the same on every side, and what the PostgreSQL connector's do
 * (connectors/postgres/connection.ts): `ssl` on → the server certificate is verified against the
 * system CAs (or `sslCaFile`) and its name against `host` (Node's checks, which mysql2 uses);
 * `sslVerify: false` → encrypted but not authenticated, said once per server as a process warning.
 */
import type { ConnectionOptions } from 'mysql2';
import { z } from 'zod';
import { clientTls } from '../../src/core/tls.js';

export const mariadbConnectionSpec = z
  .object({
    host: z.string().default('127.0.0.1').describe('Host name or address of the MariaDB server.'),
    port: z.number().int().min(1).max(65535).default(3306).describe('TCP port.'),
    user: z.string().min(1).default('root').describe('User name (a source needs SELECT on the captured tables, REPLICATION SLAVE and BINLOG MONITOR / REPLICATION CLIENT on *.*; a sink INSERT, UPDATE, DELETE, SELECT, and CREATE, ALTER for autoCreate/autoEvolve).'),
    password: z.string().optional().describe('Password; use ${ENV_VAR} interpolation, never a literal.').meta({ secret: true }),
    database: z.string().min(1).describe("Database the connections open (it must exist). Tables are named `database.table` (the schema part of a table name is the MariaDB database: 'shop.users' is table users of database shop).").meta({ examples: ['shop'] }),
    ssl: z.boolean().default(false).describe("Connect with TLS, on every connection syncline opens to this server. The server certificate is verified against the system CAs (or sslCaFile) and its name against host, as the postgres connector's ssl does."),
    sslCaFile: z.string().optional().describe('PEM file of the CA certificate(s) that signed the server certificate (a private CA), instead of the system CAs.').meta({ examples: ['/etc/syncline/mariadb-ca.pem'] }),
    sslVerify: z.boolean().default(true).describe('false: TLS without verifying the server certificate: encrypted but not authenticated; a warning says so. For tests, not production.'),
  })
  .strict()
  .describe('MariaDB connection.');

export type MariadbConnection = z.infer<typeof mariadbConnectionSpec>;

/** mysql2 options of one connection (or pool) to `c`; `extra` adds the purpose-specific ones. */
export function mariadbOptions<T extends ConnectionOptions>(c: MariadbConnection, extra: T): ConnectionOptions & T {
  return {
    host: c.host,
    port: c.port,
    user: c.user,
    password: c.password ?? '',
    database: c.database,
    ssl: mariaTls(c, (msg) => process.emitWarning(msg, { code: 'SYNCLINE_TLS_UNVERIFIED' })),
    charset: 'UTF8MB4_GENERAL_CI',
    connectTimeout: 10_000,
    ...extra,
  };
}

/** The driver's `ssl` option for a connection's TLS settings (src/core/tls.ts: the same meaning on every connector). */
export function mariaTls(c: Pick<MariadbConnection, 'host' | 'port' | 'ssl' | 'sslVerify' | 'sslCaFile'>, warn?: (msg: string) => void): { rejectUnauthorized: boolean; ca?: string } | undefined {
  return clientTls('MariaDB', c, warn);
}
