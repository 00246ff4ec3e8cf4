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

/**
 * Node's codes of a TLS handshake that failed on the certificate or the protocol: no retry makes
 * them right (a wrong CA, a name that does not match, TLS spoken to a plaintext port).
 */
const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_SIGNATURE_FAILURE', 'CERT_REVOKED', 'CERT_UNTRUSTED',
  'CERT_REJECTED', 'INVALID_CA', 'ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH', 'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
]);

/**
 * The TLS failure behind a client library's error (its own `code`, or that of the error it wraps:
 * kafkajs `cause`/`originalError`, ioredis, fetch's `cause`), as "TLS certificate verification
 * failed (CODE: message)" or "TLS handshake failed (…)"; undefined when it is not one.
 */
export function tlsFailure(err: unknown, depth = 0): string | undefined {
  if (!err || typeof err !== 'object' || depth > 6) return undefined;
  const e = err as { code?: unknown; cause?: unknown; originalError?: unknown; errors?: unknown; message?: unknown };
  if (typeof e.code === 'string' && TLS_CODES.has(e.code)) {
    const what = e.code.startsWith('ERR_SSL_') ? 'TLS handshake failed' : 'TLS certificate verification failed';
    return `${what} (${e.code}: ${String(e.message ?? '')})`;
  }
  for (const inner of [e.cause, e.originalError, ...(Array.isArray(e.errors) ? e.errors : [])]) {
    const found = tlsFailure(inner, depth + 1);
    if (found) return found;
  }
  // kafkajs keeps only the message of the socket's error ("Connection error: self-signed certificate …").
  if (typeof e.message === 'string' && /self[- ]signed certificate|unable to verify the first certificate|unable to get (local )?issuer certificate|certificate has expired|Hostname\/IP does not match certificate|wrong version number|tlsv1 alert unknown ca|certificate required/i.test(e.message)) {
    return `TLS certificate verification failed (${e.message})`;
  }
  return undefined;
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
