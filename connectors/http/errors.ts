/** Errors of the HTTP sink onto the taxonomy (src/core/errors.ts). */
import { classifyHttpStatus, classifyNetworkError, retriable, SynclineError } from '../../src/core/errors.js';

/** How much of a refused request's response body an error (and so a dead letter) carries. */
export const BODY_EXCERPT = 1024;

/**
 * A non-2xx response: 429/408/5xx retriable (Retry-After on retryAfterMs), 401/403 fatal, other 4xx
 * poison; the message names the request and carries the first KB of the body.
 */
export function classifyResponse(status: number, context: string, retryAfter: string | null, body: string): SynclineError {
  const e = classifyHttpStatus(status, context, retryAfter);
  const excerpt = body.length > BODY_EXCERPT ? body.slice(0, BODY_EXCERPT) + '…' : body;
  if (excerpt) e.message += `: ${excerpt}`;
  if (e.kind === 'fatal') e.message += ' (the target refuses the credentials or rights: check target.headers)';
  return e;
}

/** A request that got no response: a timeout or a network error, retriable. */
export function classifyTransport(err: unknown, context: string): SynclineError {
  if (err instanceof SynclineError) return err;
  const name = (err as { name?: string })?.name;
  if (name === 'TimeoutError' || name === 'AbortError') return retriable('HTTP_TIMEOUT', `${context}: no response within the timeout`, err);
  const cause = (err as { cause?: unknown })?.cause;
  return classifyNetworkError(cause ?? err, context);
}
