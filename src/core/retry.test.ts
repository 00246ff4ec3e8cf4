import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, RetryExhausted, retryDelay, withRetry } from './retry.js';
import { classifyHttpStatus, fatal, poison, retriable } from './errors.js';
import type { RetryConfig } from './config/schema.js';

const DEFAULTS: RetryConfig = { retries: 3, initialDelayMs: 1000, maxDelayMs: 30000, multiplier: 2, jitter: 0.2 };

/** A clock that records the delays asked for and returns at once. */
function fakeClock() {
  const waits: number[] = [];
  return { waits, wait: async (ms: number) => void waits.push(ms) };
}

test('the delay sequence doubles from the initial delay (no jitter at the midpoint)', () => {
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffDelay(DEFAULTS, n, () => 0.5)), [1000, 2000, 4000, 8000, 16000]);
});

test('jitter stays within ±20 % and reaches both bounds', () => {
  assert.equal(backoffDelay(DEFAULTS, 2, () => 0), 1600);
  assert.equal(backoffDelay(DEFAULTS, 2, () => 0.999999), 2400);
  for (let i = 0; i < 1000; i++) {
    const d = backoffDelay(DEFAULTS, 3);
    assert.ok(d >= 3200 && d <= 4800, `delay ${d} outside 4000 ± 20 %`);
  }
});

test('no delay ever exceeds maxDelayMs, jitter included', () => {
  const cfg = { ...DEFAULTS, maxDelayMs: 5000 };
  assert.equal(backoffDelay(cfg, 10, () => 0.5), 5000);
  assert.equal(backoffDelay(cfg, 10, () => 0.99), 5000);
  assert.equal(backoffDelay(cfg, 10, () => 0), 4000);
});

test("a server's Retry-After replaces the computed delay", () => {
  const err = classifyHttpStatus(429, 'POST /orders', '7');
  assert.equal(err.kind, 'retriable');
  assert.equal(retryDelay(DEFAULTS, 1, err, () => 0.5), 7000);
  const date = classifyHttpStatus(503, 'POST /orders', new Date(Date.now() + 60_000).toUTCString());
  assert.ok(retryDelay(DEFAULTS, 1, date) > 58_000 && retryDelay(DEFAULTS, 1, date) <= 60_000);
  assert.equal(retryDelay(DEFAULTS, 1, retriable('X', 'no header'), () => 0.5), 1000);
});

test('retriable errors are retried with the configured delays, then RetryExhausted after retries + 1 attempts', async () => {
  const clock = fakeClock();
  let calls = 0;
  await assert.rejects(
    withRetry(DEFAULTS, async () => {
      calls++;
      throw retriable('NET_ECONNREFUSED', 'down');
    }, { wait: clock.wait, random: () => 0.5 }),
    (err: unknown) => err instanceof RetryExhausted && err.attempts === 4 && (err.last as Error).message === 'down',
  );
  assert.equal(calls, 4);
  assert.deepEqual(clock.waits, [1000, 2000, 4000]);
});

test('success after failures returns the value and the attempts made', async () => {
  const clock = fakeClock();
  const out = await withRetry(DEFAULTS, async (attempt) => {
    if (attempt < 3) throw retriable('PG_40001', 'serialization failure');
    return 'ok';
  }, { wait: clock.wait, random: () => 0.5 });
  assert.deepEqual(out, { value: 'ok', attempts: 3 });
  assert.deepEqual(clock.waits, [1000, 2000]);
});

test('fatal and poison errors are never retried; unknown errors are retried', async () => {
  for (const err of [fatal('PG_28P01', 'bad password'), poison('PG_23505', 'duplicate key')]) {
    let calls = 0;
    await assert.rejects(withRetry(DEFAULTS, async () => {
      calls++;
      throw err;
    }, { wait: async () => undefined }), (e) => e === err);
    assert.equal(calls, 1);
  }
  let calls = 0;
  await assert.rejects(withRetry({ ...DEFAULTS, retries: 2 }, async () => {
    calls++;
    throw new Error('something odd');
  }, { wait: async () => undefined }), RetryExhausted);
  assert.equal(calls, 3);
});

test('HTTP statuses map onto the taxonomy', () => {
  assert.equal(classifyHttpStatus(500, 'x').kind, 'retriable');
  assert.equal(classifyHttpStatus(429, 'x').kind, 'retriable');
  assert.equal(classifyHttpStatus(408, 'x').kind, 'retriable');
  assert.equal(classifyHttpStatus(401, 'x').kind, 'fatal');
  assert.equal(classifyHttpStatus(403, 'x').kind, 'fatal');
  assert.equal(classifyHttpStatus(400, 'x').kind, 'poison');
  assert.equal(classifyHttpStatus(422, 'x').kind, 'poison');
  assert.equal(classifyHttpStatus(422, 'x', '5').retryAfterMs, undefined, 'Retry-After only matters for retriable errors');
});
