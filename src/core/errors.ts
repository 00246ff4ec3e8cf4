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
  /** A server's own word on when to try again (HTTP Retry-After), in ms; the retry policy honours it. */
  retryAfterMs?: number;
  /**
   * A value error: the column whose value it is about, where that is known (capture's encoder, the
   * processor's decoder, a target's type error). Dead letters carry it (header syncline.column).
   */
  column?: string;
  /**
   * A retriable error of concurrency in the target (deadlock, lock wait timeout, serialization
   * failure, a row that appeared): a batch that keeps failing with it is retried key by key
   * (src/sink/applier.ts), so one hot key does not hold the rest. Set by the connector's error mapping.
   */
  contended?: boolean;
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
/** A retriable error of concurrency in the target (see SynclineError.contended). */
export const contended = (code: string, message: string, cause?: unknown) => Object.assign(retriable(code, message, cause), { contended: true });

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
export const NETWORK_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);

/** Classify a Node/network error from any client (Kafka, Redis, HTTP). */
export function classifyNetworkError(err: unknown, context: string): SynclineError {
  if (err instanceof SynclineError) return err;
  const code = networkCode(err) ?? (err as { code?: string })?.code ?? 'UNKNOWN';
  if (NETWORK_CODES.has(code)) return retriable(`NET_${code}`, `${context}: ${errorMessage(err)}`, err);
  return retriable(code, `${context}: ${errorMessage(err)}`, err);
}

/**
 * A Redis reply refusing who the client is or what it may do (WRONGPASS, NOAUTH, NOPERM: an ACL
 * changed, a password rotated): [code, the rest of the reply], or null. No retry makes it right.
 */
export function redisRefusal(err: unknown): [string, string] | null {
  const m = /^(WRONGPASS|NOAUTH|NOPERM)\s+([\s\S]*)$/.exec(errorMessage(err));
  return m ? [m[1]!, m[2]!] : null;
}

/**
 * Classify an error of a Redis call: a refusal of credentials or rights is fatal (REDIS_NOPERM, …:
 * the process stops with the reply instead of retrying the batch for ever); anything else
 * (connection lost, timeout, LOADING, OOM) is retriable, its code prefixed REDIS_ unless it is a
 * network one (NET_…).
 */
export function classifyRedisError(err: unknown, context: string): SynclineError {
  if (err instanceof SynclineError) return err;
  // ioredis Cluster: "Failed to refresh slots cache." carries what the last node answered (a refusal, "cluster support disabled").
  const lastNode = (err as { lastNodeError?: unknown } | null)?.lastNodeError;
  if (lastNode instanceof Error) {
    const inner = classifyRedisError(lastNode, context);
    return new SynclineError(inner.kind, inner.code, `${inner.message} (no node of the cluster answered the slots query: ${errorMessage(err)})`, err);
  }
  const refused = redisRefusal(err);
  if (refused) return fatal(`REDIS_${refused[0]}`, `${context}: Redis refused the credentials or rights of redis.url: ${refused[0]} ${refused[1]}`, err);
  const tls = tlsFailure(err);
  if (tls) return fatal('REDIS_TLS', `${context}: ${tls} (redis.caFile, redis.url rediss://)`, err);
  // Cluster misconfiguration: no retry makes a single-node client follow MOVED, nor a cluster client use a non-cluster server.
  const msg = errorMessage(err);
  if (/^(MOVED|ASK) \d+ /.test(msg)) return fatal('REDIS_CLUSTER_MODE', `${context}: the server is a Redis Cluster node (it answered ${msg}): list the cluster's nodes in redis.cluster.nodes instead of redis.url`, err);
  if (/^CROSSSLOT /.test(msg)) return fatal('REDIS_CROSSSLOT', `${context}: ${msg} (a command of syncline touched keys of different Redis Cluster slots: every key of a pipeline must carry its hash tag {<pipeline>}; a bug, please report it)`, err);
  if (/cluster support disabled/i.test(msg)) return fatal('REDIS_NOT_CLUSTER', `${context}: redis.cluster.nodes name a Redis that is not in cluster mode (${msg}): remove redis.cluster and use redis.url, or point redis.cluster.nodes at cluster nodes`, err);
  // ioredis commandTimeout (redis.commandTimeoutMs): the server took the command and has not answered.
  if (msg === 'Command timed out') return retriable('REDIS_TIMEOUT', `${context}: Redis did not answer within redis.commandTimeoutMs`, err);
  const e = classifyNetworkError(err, context);
  return e.code.startsWith('NET_') || e.code.startsWith('REDIS_') ? e : new SynclineError('retriable', `REDIS_${e.code}`, e.message, err);
}

/**
 * The Node network error code (ECONNREFUSED, ETIMEDOUT, …) behind a client library's error: its own
 * `code`, or that of the error it wraps (kafkajs `originalError`/`cause`, AggregateError `errors`),
 * or one named in its message ("Connection error: connect ECONNREFUSED 127.0.0.1:9092").
 */
export function networkCode(err: unknown, depth = 0): string | undefined {
  if (err == null || typeof err !== 'object' || depth > 4) return undefined;
  const e = err as { code?: unknown; cause?: unknown; originalError?: unknown; errors?: unknown; message?: unknown };
  if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return e.code;
  for (const inner of [e.originalError, e.cause, ...(Array.isArray(e.errors) ? e.errors : [])]) {
    const c = networkCode(inner, depth + 1);
    if (c) return c;
  }
  const m = typeof e.message === 'string' ? /\b(E[A-Z_]{3,})\b/.exec(e.message) : null;
  return m && NETWORK_CODES.has(m[1]!) ? m[1] : undefined;
}

/**
 * Retry-After header value → ms from `now`: either delay-seconds ("120") or an HTTP-date.
 * Returns undefined for a missing or unparsable value; a date in the past gives 0.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value == null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/**
 * Classify an HTTP response status from a target or service: 429 and 5xx are retriable (with the
 * server's Retry-After when it sent one), 401/403 fatal (credentials or permissions will not fix
 * themselves), 408 retriable, any other 4xx poison (this request will never be accepted).
 */
export function classifyHttpStatus(status: number, context: string, retryAfter?: string | null, now?: number): SynclineError {
  const msg = `${context}: HTTP ${status}`;
  let err: SynclineError;
  if (status === 429 || status === 408 || status >= 500) err = retriable(`HTTP_${status}`, msg);
  else if (status === 401 || status === 403) err = fatal(`HTTP_${status}`, msg);
  else if (status >= 400) err = poison(`HTTP_${status}`, msg);
  else err = retriable(`HTTP_${status}`, `${msg} (unexpected status)`);
  const after = parseRetryAfter(retryAfter, now);
  if (after !== undefined && err.kind === 'retriable') err.retryAfterMs = after;
  return err;
}

/**
 * `p`, or the error `onTimeout()` builds when `p` has not settled after `ms` (the operation itself
 * is not cancelled). For calls into clients that can wait forever on a peer that accepted the
 * connection but never answers.
 */
export function withDeadline<T>(p: Promise<T>, ms: number, onTimeout: () => SynclineError): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
    timer.unref?.();
  });
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}

/** An HTTP API's refusal with its status (404 unknown, 409 busy, 400 bad request…): src/observe/http.ts answers it as JSON; the APIs' own errors extend it. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
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
