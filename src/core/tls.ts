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

/** A PEM file of the config, read; an unreadable one is a fatal config error naming the field and file. */
export function readPem(file: string, field: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw fatal('CONFIG_TLS', `cannot read ${field} ${file}: ${(err as Error).message}`);
  }
}

/** Node TLS options of a client from a config section's `caFile`/`verify` (`field`: 'kafka.ssl', 'redis', …). */
export function tlsOptions(name: string, field: string, c: { caFile?: string; verify: boolean }, warn?: (msg: string) => void): { rejectUnauthorized: boolean; ca?: string } {
  if (!c.verify && warn && !warned.has(name)) {
    warned.add(name);
    warn(`${name}: TLS without certificate verification (${field}.verify: false): encrypted, not authenticated`);
  }
  return { rejectUnauthorized: c.verify, ...(c.caFile !== undefined ? { ca: readPem(c.caFile, `${field}.caFile`) } : {}) };
}

/** The Redis section of the config, as far as the connection goes. */
export interface RedisConnection {
  url: string;
  caFile?: string;
  verify?: boolean;
  username?: string;
  password?: string;
}

/**
 * ioredis options for the config's redis section: TLS for rediss:// (CA file, verification), the
 * ACL user and password when set (they take precedence over the URL's). A caFile or verify:false
 * with a redis:// URL is a fatal config error: it would be silently plaintext.
 */
export function redisSecurity(r: RedisConnection, warn?: (msg: string) => void): { tls?: { rejectUnauthorized: boolean; ca?: string }; username?: string; password?: string } {
  const tlsUrl = /^rediss:/i.test(r.url);
  if (!tlsUrl && (r.caFile !== undefined || r.verify === false)) {
    throw fatal('CONFIG_TLS', `redis.caFile / redis.verify are set but redis.url is not rediss://… (${r.url.replace(/\/\/[^@/]*@/, '//…@')}): write rediss:// for TLS`);
  }
  return {
    ...(tlsUrl ? { tls: tlsOptions(`Redis at ${r.url.replace(/^rediss?:\/\/([^@/]*@)?/i, '')}`, 'redis', { caFile: r.caFile, verify: r.verify ?? true }, warn) } : {}),
    ...(r.username !== undefined ? { username: r.username } : {}),
    ...(r.password !== undefined ? { password: r.password } : {}),
  };
}
