/**
 * The one way syncline connects to PostgreSQL: capture's replication and snapshot connections, the
 * probe, `pipeline drop` and the sink's pools all take their options from pgClientConfig, so the
 * connection settings, and TLS above all, mean the same thing on every side.
 *
 * TLS (`connection.ssl`):
 *   false                no TLS
 *   true                 TLS; the server certificate is verified against the system's CAs, or
 *                        `sslCaFile`, and its name against `host` (libpq's sslmode=verify-full)
 *   with sslVerify false TLS without verifying the certificate (libpq's sslmode=require): the
 *                        connection is encrypted but not authenticated; a warning says so once
 */
import pg from 'pg';
import { clientTls } from '../../src/core/tls.js';
import type { PgConnection } from './spec.js';

/** Session settings of every syncline connection to PostgreSQL (text formats are parsed exactly). */
export const SESSION_OPTIONS = '-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3 -c IntervalStyle=postgres -c bytea_output=hex';

/** Parsers disabled: every text value arrives as PostgreSQL prints it (binary results keep pg's parser). */
export const rawTypes = {
  getTypeParser: (oid: number, format?: string) => (format === 'binary' ? pg.types.getTypeParser(oid, 'binary') : (v: string) => v),
} as unknown as pg.CustomTypesConfig;

/** The driver's `ssl` option for a connection's TLS settings (src/core/tls.ts: the same meaning on every connector). */
export function pgTls(c: PgConnection, warn?: (msg: string) => void): { rejectUnauthorized: boolean; ca?: string } | undefined {
  return clientTls('PostgreSQL', c, warn);
}

/** Client options for one connection to `c`; `extra` sets the purpose-specific ones (application_name, timeouts, types, replication). */
export function pgClientConfig(c: PgConnection, extra: Partial<pg.ClientConfig> = {}): pg.ClientConfig {
  return {
    host: c.host,
    port: c.port,
    database: c.database,
    user: c.user,
    password: c.password,
    ssl: pgTls(c, (msg) => process.emitWarning(msg, { code: 'SYNCLINE_TLS_UNVERIFIED' })),
    options: SESSION_OPTIONS,
    application_name: 'syncline',
    connectionTimeoutMillis: 10000,
    ...extra,
  };
}
