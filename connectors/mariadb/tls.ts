/**
 * TLS of the MariaDB sink's connections, with the meaning the PostgreSQL connector gives the same
 * options (connectors/postgres/connection.ts): `ssl` on → the server certificate is verified against
 * the system CAs (or `sslCaFile`) and its name against `host` (Node's checks, which mysql2 uses);
 * `sslVerify: false` → encrypted but not authenticated, said once per server as a process warning.
 */
import { readFileSync } from 'node:fs';
import { fatal } from '../../src/core/errors.js';
import type { MariadbSinkConfig } from './spec.js';

const warned = new Set<string>();

/** mysql2's `ssl` option for the sink's settings (undefined: no TLS). */
export function mariaTls(c: Pick<MariadbSinkConfig, 'host' | 'port' | 'ssl' | 'sslVerify' | 'sslCaFile'>, warn?: (msg: string) => void): { ca?: string; rejectUnauthorized: boolean } | undefined {
  if (!c.ssl) return undefined;
  let ca: string | undefined;
  if (c.sslCaFile !== undefined) {
    try {
      ca = readFileSync(c.sslCaFile, 'utf8');
    } catch (err) {
      throw fatal('CONFIG_TLS', `MariaDB ${c.host}:${c.port}: cannot read sslCaFile ${c.sslCaFile}: ${(err as Error).message}`);
    }
  }
  const key = `${c.host}:${c.port}`;
  if (!c.sslVerify && warn && !warned.has(key)) {
    warned.add(key);
    warn(`MariaDB ${key}: TLS without certificate verification (sslVerify: false): encrypted, not authenticated`);
  }
  return { rejectUnauthorized: c.sslVerify, ...(ca !== undefined ? { ca } : {}) };
}
