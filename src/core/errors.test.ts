import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyRedisError, parseRetryAfter, redisRefusal } from './errors.js';

test('Retry-After: delay-seconds and HTTP-date', () => {
  const now = Date.parse('2026-11-25T10:00:00Z');
  assert.equal(parseRetryAfter('120', now), 120_000);
  assert.equal(parseRetryAfter('Wed, 25 Nov 2026 10:00:30 GMT', now), 30_000);
  assert.equal(parseRetryAfter('Wed, 25 Nov 2026 09:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter(undefined, now), undefined);
});

test('classifyRedisError: refused credentials or rights are fatal, the rest retriable', () => {
  const reply = (m: string) => Object.assign(new Error(m), { name: 'ReplyError' });
  const noperm = classifyRedisError(reply("NOPERM User u has no permissions to run the 'evalsha' command"), 'version state: commit');
  assert.equal(noperm.kind, 'fatal');
  assert.equal(noperm.code, 'REDIS_NOPERM');
  assert.match(noperm.message, /^version state: commit: Redis refused the credentials or rights of redis\.url: NOPERM User u has no permissions/);
  assert.equal(classifyRedisError(reply('WRONGPASS invalid username-password pair or user is disabled.'), 'c').code, 'REDIS_WRONGPASS');
  assert.equal(classifyRedisError(reply('NOAUTH Authentication required.'), 'c').kind, 'fatal');
  const loading = classifyRedisError(reply('LOADING Redis is loading the dataset in memory'), 'c');
  assert.deepEqual([loading.kind, loading.code], ['retriable', 'REDIS_UNKNOWN']);
  const reset = classifyRedisError(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), 'c');
  assert.deepEqual([reset.kind, reset.code], ['retriable', 'NET_ECONNRESET']);
  assert.equal(classifyRedisError(reply('ERR NOPERM is not at the start'), 'c').kind, 'retriable');
  assert.deepEqual(redisRefusal(reply('NOPERM this user has no permissions to access one of the keys')), ['NOPERM', 'this user has no permissions to access one of the keys']);
});
