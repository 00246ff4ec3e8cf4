/** PostgreSQL errors onto the one taxonomy (src/core/errors.ts): retriable, fatal or poison. */
import { fatal, NETWORK_CODES, poison, retriable, SynclineError } from '../../src/core/errors.js';

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
  if (NETWORK_CODES.has(code) || /Connection terminated|timeout|ECONNRESET/i.test(e?.message ?? '')) return retriable(`PG_${code || 'CONNECTION'}`, msg, err);
  const cls = code.slice(0, 2);
  switch (cls) {
    case '08': // connection exception
    case '40': // transaction rollback: serialization failure, deadlock
    case '53': // insufficient resources
    case '55': // object not in prerequisite state (lock not available)
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
