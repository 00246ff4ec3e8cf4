/**
 * One error taxonomy for every stage, decided where the error is raised:
 *  - retriable: the same operation may succeed later (network, timeouts, serialization failures,
 *    deadlocks, 429/5xx). Retried with bounded backoff, then dead-lettered.
 *  - fatal: retrying cannot help and continuing would be wrong (bad credentials, permissions, bad
 *    config). The process stops with a clear message and a non-zero exit; no restart loop.
 *  - poison: this record can never be processed (undecodable, invalid, constraint violation).
 *    Dead-lettered at once, the pipeline moves on.
 * An error that is not a SynclineError is 'unknown': retried a few times, then dead-lettered.
 */
export type ErrorKind = 'retriable' | 'fatal' | 'poison';

export class SynclineError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  override readonly cause?: unknown;
  constructor(kind: ErrorKind, code: string, message: string, cause?: unknown) {
    super(message);
    this.name = 'SynclineError';
    this.kind = kind;
    this.code = code;
    this.cause = cause;
  }
  get retriable(): boolean {
    return this.kind === 'retriable';
  }
}

export const retriable = (code: string, message: string, cause?: unknown) => new SynclineError('retriable', code, message, cause);
export const fatal = (code: string, message: string, cause?: unknown) => new SynclineError('fatal', code, message, cause);
export const poison = (code: string, message: string, cause?: unknown) => new SynclineError('poison', code, message, cause);

/** Kind of any thrown value: SynclineError keeps its own; anything else is 'unknown'. */
export function errorKind(err: unknown): ErrorKind | 'unknown' {
  return err instanceof SynclineError ? err.kind : 'unknown';
}

export function errorCode(err: unknown): string {
  if (err instanceof SynclineError) return err.code;
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Network-level error codes from Node that mean "try again later". */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);

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

/** Classify a Node/network error from any client (Kafka, Redis, HTTP). */
export function classifyNetworkError(err: unknown, context: string): SynclineError {
  if (err instanceof SynclineError) return err;
  const code = (err as { code?: string })?.code ?? 'UNKNOWN';
  if (NETWORK_CODES.has(code)) return retriable(`NET_${code}`, `${context}: ${errorMessage(err)}`, err);
  return retriable(code, `${context}: ${errorMessage(err)}`, err);
}
