/** PostgreSQL errors onto the one taxonomy (src/core/errors.ts): retriable, fatal or poison. */
import { contended, fatal, NETWORK_CODES, poison, retriable, SynclineError } from '../../src/core/errors.js';

/** What to set when TLS is refused (connectors/postgres/connection.ts). */
export const TLS_HINT = '(TLS: set connection.sslCaFile to the CA that signed the server certificate, check host matches its name, or sslVerify: false to encrypt without verifying; ssl: false when the server has no TLS)';

/** Node's TLS verification failures (tls.connect), as node-postgres passes them on. */
const TLS_CODES = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/**
 * Classify an error raised by PostgreSQL (node-postgres) by SQLSTATE class.
 * https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export function classifyPgError(err: unknown, context: string): SynclineError {
  if (err instanceof SynclineError) return err;
  const e = err as { code?: string; message?: string; detail?: string; constraint?: string; table?: string; column?: string };
  const code = e?.code ?? '';
  const detail = [e?.message ?? String(err), e?.detail].filter(Boolean).join(' — ');
  const msg = `${context}: ${detail}`;
  // TLS refused: the certificate is not trusted or not for this host, or the server has no TLS.
  // Waiting does not help: fatal, with what to set (connectors/postgres/connection.ts).
  if (TLS_CODES.has(code) || /does not support SSL|certificate/i.test(e?.message ?? '')) {
    return fatal('PG_TLS', `${msg} ${TLS_HINT}`, err);
  }
  // A server error has an SQLSTATE and is classified by it below (a lock timeout, 55P03, says "timeout"
  // but is a contended row, retried key by key); only client-side failures are read from the message.
  const sqlstate = /^[0-9A-Z]{5}$/.test(code);
  if (NETWORK_CODES.has(code) || (!sqlstate && /Connection terminated|timeout|ECONNRESET/i.test(e?.message ?? ''))) return retriable(`PG_${code || 'CONNECTION'}`, msg, err);
  const cls = code.slice(0, 2);
  switch (cls) {
    case '40': // transaction rollback: serialization failure, deadlock
    case '55': // object not in prerequisite state (lock not available)
      return contended(`PG_${code}`, msg, err);
    case '08': // connection exception
    case '53': // insufficient resources
    case '57': // operator intervention: admin shutdown, cannot connect now
    case '58': // system error
      return retriable(`PG_${code}`, msg, err);
    case '28': // invalid authorization
    case '3D': // invalid catalog name (database does not exist)
    case '42':
      // 42501 insufficient privilege, 42P01 undefined table, 42703 undefined column: config or schema mismatch.
      return fatal(`PG_${code}`, msg, err);
    case '23': // integrity constraint violation
    case '22': // data exception (bad value for the column type)
      return poison(`PG_${code}`, msg, err);
    default:
      return retriable(`PG_${code || 'UNKNOWN'}`, msg, err);
  }
}
