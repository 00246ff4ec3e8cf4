/**
 * Acme errors onto the one taxonomy (src/core/errors.ts), decided where they are raised:
 * retriable (the same call may succeed later), fatal (stop: credentials, rights, config, TLS),
 * poison (this record can never be written: dead-lettered, the rest goes on).
 * Compare connectors/postgres/errors.ts (by SQLSTATE class).
 */
import { fatal, NETWORK_CODES, poison, retriable, SynclineError } from '../../../src/core/errors.js';

const TLS_CODES = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED']);

export function classifyAcmeError(err: unknown, context: string): SynclineError {
  if (err instanceof SynclineError) return err;
  const code = String((err as { code?: unknown })?.code ?? '');
  const msg = `${context}: ${err instanceof Error ? err.message : String(err)}`;
  if (TLS_CODES.has(code)) return fatal('ACME_TLS', `${msg} (set connection.sslCaFile to the CA of the server certificate, or sslVerify: false)`, err);
  if (NETWORK_CODES.has(code)) return retriable(`ACME_${code}`, msg, err);
  switch (code) {
    case 'AUTH_FAILED':
    case 'ACCESS_DENIED':
    case 'NO_SUCH_DATABASE':
    case 'NO_SUCH_TABLE':
      return fatal(`ACME_${code}`, msg, err);
    case 'BAD_VALUE':
    case 'CONSTRAINT':
      return poison(`ACME_${code}`, msg, err);
    default: // BUSY, TIMEOUT, SHUTTING_DOWN, anything unknown: try again
      return retriable(`ACME_${code || 'UNKNOWN'}`, msg, err);
  }
}
