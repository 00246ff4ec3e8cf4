/**
 * The one backoff helper (see docs/adr/0006-retry-policy.md for why it is ours and not a library's).
 * Exponential delay with jitter, bounded attempts, the error taxonomy, and a server's Retry-After:
 *  - fatal and poison errors are never retried (rethrown at once);
 *  - retriable and unknown errors are retried up to `retries` times, then RetryExhausted carries the
 *    last error and the attempt count to the caller, who dead-letters the records;
 *  - delay before retry n (1-based) = min(maxDelayMs, initialDelayMs × multiplier^(n-1)), spread by
 *    ±jitter, never above maxDelayMs; a Retry-After from the server replaces the computed delay.
 * Time and randomness are injectable so tests check the exact delays without waiting.
 */
import type { RetryConfig } from './config/schema.js';
import { errorKind, errorMessage } from './errors.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Delay before retry number `attempt` (1-based), with jitter drawn from `random` in [0,1). */
export function backoffDelay(cfg: RetryConfig, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(cfg.maxDelayMs, cfg.initialDelayMs * cfg.multiplier ** (attempt - 1));
  const spread = base * cfg.jitter;
  return Math.max(0, Math.min(cfg.maxDelayMs, Math.round(base - spread + 2 * spread * random())));
}

/** The delay actually waited: the server's Retry-After when the error carries one, else the backoff. */
export function retryDelay(cfg: RetryConfig, attempt: number, err: unknown, random: () => number = Math.random): number {
  const after = (err as { retryAfterMs?: unknown })?.retryAfterMs;
  if (typeof after === 'number' && Number.isFinite(after) && after >= 0) return Math.round(after);
  return backoffDelay(cfg, attempt, random);
}

export interface RetryOutcome<T> {
  value: T;
  attempts: number;
}

export class RetryExhausted extends Error {
  constructor(readonly last: unknown, readonly attempts: number) {
    super(`gave up after ${attempts} attempts: ${errorMessage(last)}`);
  }
}

export interface RetryHooks {
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Waits `ms`; tests pass a fake clock. */
  wait?: (ms: number) => Promise<void>;
  random?: () => number;
  /** Number of the first attempt, when earlier attempts of the same work were made elsewhere (default 1). */
  firstAttempt?: number;
}

/**
 * Run `fn` until it succeeds, a non-retriable error occurs (rethrown as is), or the retries are
 * used up (RetryExhausted carrying the last error and the number of attempts made: retries + 1).
 */
export async function withRetry<T>(cfg: RetryConfig, fn: (attempt: number) => Promise<T>, hooks: RetryHooks = {}): Promise<RetryOutcome<T>> {
  const wait = hooks.wait ?? sleep;
  for (let attempt = hooks.firstAttempt ?? 1; ; attempt++) {
    try {
      return { value: await fn(attempt), attempts: attempt };
    } catch (err) {
      const kind = errorKind(err);
      if (kind === 'fatal' || kind === 'poison') throw err;
      if (attempt > cfg.retries) throw new RetryExhausted(err, attempt);
      const delay = retryDelay(cfg, attempt, err, hooks.random);
      hooks.onRetry?.(err, attempt, delay);
      await wait(delay);
    }
  }
}
