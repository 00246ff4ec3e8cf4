import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, Redis } from 'ioredis';
import { createRedis, keySlot, redisConfigPath, redisWhere } from './redis.js';
import { classifyRedisError } from './errors.js';

test('keySlot is Redis Cluster\'s CRC16 slot, of the hash tag when there is one', () => {
  // Values from CLUSTER KEYSLOT on redis-server 7.0.
  assert.equal(keySlot('foo'), 12182);
  assert.equal(keySlot('123456789'), 12739);
  assert.equal(keySlot('syncline:{orders}:v:public.users:[7]'), keySlot('orders'));
  assert.equal(keySlot('syncline:{orders}:t:public.users'), keySlot('syncline:{orders}:cols'));
  assert.equal(keySlot('a{}b'), keySlot('a{}b'), 'an empty tag hashes the whole key');
  assert.notEqual(keySlot('x:{}:y'), keySlot(''));
});

test('the configured Redis is named with its config path', () => {
  assert.equal(redisWhere({ url: 'redis://u:secret@h:6380' }), 'Redis at h:6380 (redis.url)');
  assert.equal(redisWhere({ url: 'redis://127.0.0.1:6379', cluster: { nodes: ['a:7000', 'b:7000'] } }), 'Redis Cluster at a:7000,b:7000 (redis.cluster.nodes)');
  assert.equal(redisConfigPath({ url: 'redis://x', cluster: { nodes: ['a:1'] } }), 'redis.cluster.nodes');
});

test('createRedis: a single server or a cluster client; a bad node is refused naming its index', () => {
  const one = createRedis({ url: 'redis://127.0.0.1:6379' }, { maxRetriesPerRequest: 1 });
  assert.ok(one instanceof Redis);
  one.disconnect();
  const c = createRedis({ url: 'redis://user:pw@ignored:1', cluster: { nodes: ['127.0.0.1:7000', '[::1]:7001'] } }, { maxRetriesPerRequest: 1 });
  assert.ok(c instanceof Cluster);
  assert.equal(c.options.redisOptions?.username, 'user');
  assert.equal(c.options.redisOptions?.password, 'pw');
  c.disconnect();
  assert.throws(() => createRedis({ url: 'redis://x', cluster: { nodes: ['a:1', 'nohost'] } }, { maxRetriesPerRequest: 1 }), /redis\.cluster\.nodes\[1\]: 'nohost' is not host:port/);
});

test('cluster replies that no retry fixes are fatal, naming what to configure', () => {
  const moved = classifyRedisError(new Error('MOVED 11819 127.0.0.1:7003'), 'version state: commit');
  assert.equal(moved.kind, 'fatal');
  assert.equal(moved.code, 'REDIS_CLUSTER_MODE');
  assert.match(moved.message, /redis\.cluster\.nodes instead of redis\.url/);
  assert.equal(classifyRedisError(new Error("CROSSSLOT Keys in request don't hash to the same slot"), 'x').code, 'REDIS_CROSSSLOT');
  const all = Object.assign(new Error('Failed to refresh slots cache.'), { lastNodeError: new Error('ERR This instance has cluster support disabled') });
  const e = classifyRedisError(all, 'Redis Cluster at h:6379 (redis.cluster.nodes)');
  assert.equal(e.code, 'REDIS_NOT_CLUSTER');
  assert.equal(e.kind, 'fatal');
  const down = classifyRedisError(Object.assign(new Error('Failed to refresh slots cache.'), { lastNodeError: new Error('Connection is closed.') }), 'c');
  assert.equal(down.kind, 'retriable');
});
