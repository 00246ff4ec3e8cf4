/**
 * TLS of a client connection, one meaning for every connector (connectors/<system>/connection.ts):
 * `ssl` off → no TLS; on → the server certificate verified against the system CAs (or `sslCaFile`)
 * and its name against `host`; `sslVerify: false` → encrypted but not authenticated, said once per
 * server through `warn`. An unreadable CA file is a fatal config error naming it.
 */
import { readFileSync } from 'node:fs';
import { fatal } from './errors.js';

export interface TlsSettings {
  host: string;
  port: number;
  ssl: boolean;
  sslCaFile?: string;
  sslVerify: boolean;
}

const warned = new Set<string>();

/** Node's TLS options for `c` (undefined: no TLS); `system` names the server in messages ('PostgreSQL'). */
export function clientTls(system: string, c: TlsSettings, warn?: (msg: string) => void): { rejectUnauthorized: boolean; ca?: string } | undefined {
  if (!c.ssl) return undefined;
  let ca: string | undefined;
  if (c.sslCaFile !== undefined) {
    try {
      ca = readFileSync(c.sslCaFile, 'utf8');
    } catch (err) {
      throw fatal('CONFIG_TLS', `${system} ${c.host}:${c.port}: cannot read sslCaFile ${c.sslCaFile}: ${(err as Error).message}`);
    }
  }
  const key = `${system} ${c.host}:${c.port}`;
  if (!c.sslVerify && warn && !warned.has(key)) {
    warned.add(key);
    warn(`${key}: TLS without certificate verification (sslVerify: false): encrypted, not authenticated`);
  }
  return { rejectUnauthorized: c.sslVerify, ...(ca !== undefined ? { ca } : {}) };
}
