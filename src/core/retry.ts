/**
 * The one backoff helper. Exponential delay with jitter, bounded attempts, and the error taxonomy:
 * fatal and poison errors are never retried; retriable and unknown ones are retried up to
 * `retries` times, then the last error is thrown to the caller (who dead-letters or stops).
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

export interface RetryOutcome<T> {
  value: T;
  attempts: number;
}

export class RetryExhausted extends Error {
  constructor(readonly last: unknown, readonly attempts: number) {
    super(`gave up after ${attempts} attempts: ${errorMessage(last)}`);
  }
}

/**
 * Run `fn` until it succeeds, a non-retriable error occurs (rethrown as is), or the retries are
 * used up (RetryExhausted carrying the last error and the attempt count).
 */
export async function withRetry<T>(
  cfg: RetryConfig,
  fn: (attempt: number) => Promise<T>,
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void,
  wait: (ms: number) => Promise<void> = sleep,
): Promise<RetryOutcome<T>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return { value: await fn(attempt), attempts: attempt };
    } catch (err) {
      const kind = errorKind(err);
      if (kind === 'fatal' || kind === 'poison') throw err;
      if (attempt > cfg.retries) throw new RetryExhausted(err, attempt);
      const delay = backoffDelay(cfg, attempt);
      onRetry?.(err, attempt, delay);
      await wait(delay);
    }
  }
}
