/** Integration tests of VersionState against the real Redis at 127.0.0.1:6379 (own key prefix, cleaned up). */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { VersionState, DELETED } from './version-state.js';
import { position } from '../core/envelope.js';
import { SynclineError } from '../core/errors.js';
import { setTimeout as sleep } from 'node:timers/promises';

const prefix = `syncline_t_vs_${randomBytes(4).toString('hex')}`;
let redis: Redis;

before(() => {
  redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: false });
});

after(async () => {
  // Safety net: remove anything this file wrote.
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
  await redis.quit();
});

/** Count the commands the client sends (MULTI/pipelines count each command; MGET is one). */
function countCommands(r: Redis): { n: number; names: string[]; restore(): void } {
  const orig = r.sendCommand.bind(r);
  const c = {
    n: 0,
    names: [] as string[],
    restore() {
      r.sendCommand = orig;
    },
  };
  r.sendCommand = ((cmd: { name: string }, ...rest: unknown[]) => {
    c.n++;
    c.names.push(cmd.name);
    return (orig as (...a: unknown[]) => unknown)(cmd, ...rest);
  }) as typeof r.sendCommand;
  return c;
}

const P = (lsn: string, idx = 0) => position(lsn, idx);

test('key layout shares one hash tag per pipeline', () => {
  const vs = new VersionState(redis, prefix, 'orders');
  assert.equal(vs.keyOf('public.users', '[7]'), `${prefix}:{orders}:v:public.users:[7]`);
  assert.equal(vs.truncateKeyOf('public.users'), `${prefix}:{orders}:t:public.users`);
  assert.throws(() => new VersionState(redis, prefix, 'a{b}'));
});

test('commitMany is compare-and-set: never moves backwards, equal positions are no-ops', async () => {
  const vs = new VersionState(redis, prefix, 'cas');
  await vs.commitMany([{ table: 'public.t', key: '[1]', pos: P('0/200'), hash: 'h2' }]);
  // older change: ignored
  await vs.commitMany([{ table: 'public.t', key: '[1]', pos: P('0/100'), hash: 'h1' }]);
  let [s] = await vs.getMany([{ table: 'public.t', key: '[1]' }]);
  assert.equal(s?.pos, P('0/200'));
  assert.equal(s?.hash, 'h2');
  // same position again (redelivery): ignored
  await vs.commitMany([{ table: 'public.t', key: '[1]', pos: P('0/200'), hash: 'other' }]);
  [s] = await vs.getMany([{ table: 'public.t', key: '[1]' }]);
  assert.equal(s?.hash, 'h2');
  // newer, including a later index in the same transaction and a higher LSN segment
  await vs.commitMany([{ table: 'public.t', key: '[1]', pos: P('0/200', 1), hash: 'h3' }]);
  [s] = await vs.getMany([{ table: 'public.t', key: '[1]' }]);
  assert.equal(s?.hash, 'h3');
  await vs.commitMany([
    { table: 'public.t', key: '[1]', pos: P('1/0'), hash: 'h5' },
    { table: 'public.t', key: '[1]', pos: P('0/FFFFFFFF'), hash: 'h4' }, // older, same call: ignored
    { table: 'public.t', key: '[2]', pos: P('0/10'), hash: DELETED },
  ]);
  const [a, b, c] = await vs.getMany([
    { table: 'public.t', key: '[1]' },
    { table: 'public.t', key: '[2]' },
    { table: 'public.t', key: '[3]' },
  ]);
  assert.equal(a?.pos, P('1/0'));
  assert.equal(a?.hash, 'h5');
  assert.equal(a?.truncated, false);
  assert.ok(a!.ts > Date.now() - 60_000);
  assert.equal(b?.hash, DELETED);
  assert.equal(c, null);
  // hashes may contain the separator
  await vs.commitMany([{ table: 'public.t', key: '[9]', pos: P('0/1'), hash: 'a|b|c' }]);
  const [d] = await vs.getMany([{ table: 'public.t', key: '[9]' }]);
  assert.equal(d?.hash, 'a|b|c');
  await assert.rejects(vs.commitMany([{ table: 'public.t', key: '[1]', pos: '0/200', hash: 'x' }]), (e: unknown) => e instanceof SynclineError);
  await vs.clear();
});

test('getMany is one round trip (one MGET) for many keys and tables; commitMany is one EVALSHA', async () => {
  const vs = new VersionState(redis, prefix, 'rt');
  const items = Array.from({ length: 500 }, (_, i) => ({ table: i % 2 ? 'public.a' : 'public.b', key: `[${i}]`, pos: P('0/1', i), hash: `h${i}` }));
  await vs.commitMany(items.slice(0, 1)); // make sure the script is cached
  let c = countCommands(redis);
  await vs.commitMany(items);
  c.restore();
  assert.deepEqual(c.names, ['evalsha']);
  c = countCommands(redis);
  const got = await vs.getMany(items);
  c.restore();
  assert.deepEqual(c.names, ['mget']);
  assert.equal(got.length, 500);
  got.forEach((g, i) => assert.equal(g?.hash, `h${i}`));
  assert.deepEqual(await vs.getMany([]), []);
  await vs.clear();
});

test('truncate watermark: keys below it read as deleted, newer keys win, watermark never moves back', async () => {
  const vs = new VersionState(redis, prefix, 'trunc');
  await vs.commitMany([
    { table: 'public.t', key: '[1]', pos: P('0/100'), hash: 'h1' },
    { table: 'public.t', key: '[2]', pos: P('0/300'), hash: 'h2' },
    { table: 'public.u', key: '[1]', pos: P('0/100'), hash: 'u1' },
  ]);
  await vs.truncateTable('public.t', P('0/200'));
  await vs.truncateTable('public.t', P('0/150')); // older: ignored
  const [k1, k2, k3, u1] = await vs.getMany([
    { table: 'public.t', key: '[1]' },
    { table: 'public.t', key: '[2]' },
    { table: 'public.t', key: '[3]' },
    { table: 'public.u', key: '[1]' },
  ]);
  assert.deepEqual({ pos: k1?.pos, hash: k1?.hash, truncated: k1?.truncated }, { pos: P('0/200'), hash: DELETED, truncated: true });
  assert.deepEqual({ pos: k2?.pos, hash: k2?.hash, truncated: k2?.truncated }, { pos: P('0/300'), hash: 'h2', truncated: false });
  assert.deepEqual({ pos: k3?.pos, hash: k3?.hash, truncated: k3?.truncated }, { pos: P('0/200'), hash: DELETED, truncated: true });
  assert.equal(u1?.hash, 'u1'); // other tables unaffected
  // a change after the truncate makes the key live again
  await vs.commitMany([{ table: 'public.t', key: '[1]', pos: P('0/250'), hash: 'h1b' }]);
  const [k1b] = await vs.getMany([{ table: 'public.t', key: '[1]' }]);
  assert.equal(k1b?.hash, 'h1b');
  assert.equal(k1b?.truncated, false);
  const removed = await vs.clear();
  assert.equal(removed, 4); // three keys + one watermark
  assert.deepEqual(await vs.getMany([{ table: 'public.t', key: '[1]' }]), [null]);
});

test('truncate barrier: waits until every partition arrived, one claimer runs it, a lapsed or released claim is taken again, done once the watermark is set', async () => {
  const vs = new VersionState(redis, prefix, 'barrier');
  const T = P('0/500');
  const arrive = (from: string, token: string, leaseMs = 10_000) => vs.truncateBarrier('public.t', T, from, 3, token, leaseMs);
  assert.deepEqual(await arrive('0', 'a'), { verdict: 'wait', arrived: 1 });
  assert.deepEqual(await arrive('0', 'a'), { verdict: 'wait', arrived: 1 }, 'a redelivered copy counts once');
  assert.deepEqual(await arrive('1', 'a'), { verdict: 'wait', arrived: 2 });
  assert.equal((await vs.truncateBarrier('public.t', T, '', 3, 'x', 10_000, false)).verdict, 'wait', 'peeking records nothing');
  assert.deepEqual(await arrive('2', 'b', 150), { verdict: 'run', arrived: 3 }, 'the last arrival claims it');
  assert.equal((await arrive('0', 'a')).verdict, 'wait', 'another process waits while the claim lives');
  assert.equal((await arrive('2', 'b', 150)).verdict, 'run', 'the claimer itself may run it again (its batch retried)');
  await sleep(250);
  assert.equal((await vs.truncateBarrier('public.t', T, '', 3, 'x', 10_000, false)).verdict, 'claimable', 'a lapsed claim can be taken');
  assert.equal((await arrive('0', 'a')).verdict, 'run', 'and is taken by the next arrival');
  assert.equal(await vs.truncateClaim('public.t', T, 'b', 'renew', 10_000), false, 'the lapsed claimer no longer holds it');
  assert.equal(await vs.truncateClaim('public.t', T, 'a', 'release'), true);
  assert.equal((await arrive('1', 'c')).verdict, 'run', 'a released claim is taken again');
  await vs.truncateTable('public.t', T);
  assert.deepEqual(await arrive('2', 'a'), { verdict: 'done', arrived: 0 }, 'the watermark at the truncate: done');
  // Settled without a watermark (the truncate was dead-lettered): done too.
  const T2 = P('0/600');
  await vs.truncateClaim('public.t', T2, 'a', 'done');
  assert.equal((await vs.truncateBarrier('public.t', T2, '0', 3, 'b', 10_000)).verdict, 'done');
  // A later truncate waits again.
  assert.equal((await vs.truncateBarrier('public.t', P('0/700'), '0', 2, 'b', 10_000)).verdict, 'wait');
});

test('script is reloaded after SCRIPT FLUSH (NOSCRIPT → EVAL fallback)', async () => {
  const vs = new VersionState(redis, prefix, 'flush');
  await vs.commitMany([{ table: 'public.t', key: '[1]', pos: P('0/1'), hash: 'a' }]);
  await redis.script('FLUSH');
  const c = countCommands(redis);
  await vs.commitMany([{ table: 'public.t', key: '[1]', pos: P('0/2'), hash: 'b' }]);
  c.restore();
  assert.deepEqual(c.names, ['evalsha', 'eval']);
  const [s] = await vs.getMany([{ table: 'public.t', key: '[1]' }]);
  assert.equal(s?.hash, 'b');
  // and the script is cached again: the next call is a single EVALSHA
  const c2 = countCommands(redis);
  await vs.commitMany([{ table: 'public.t', key: '[1]', pos: P('0/3'), hash: 'c' }]);
  c2.restore();
  assert.deepEqual(c2.names, ['evalsha']);
  // the script that also keeps last-synced rows (and truncates) reloads the same way
  await redis.script('FLUSH');
  const c3 = countCommands(redis);
  await vs.truncateTable('public.t', P('0/4'));
  await vs.truncateTable('public.t', P('0/5'));
  c3.restore();
  assert.deepEqual(c3.names, ['evalsha', 'eval', 'evalsha']);
  await vs.clear();
});

test('Redis errors surface as retriable SynclineErrors', async () => {
  const dead = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  dead.on('error', () => {});
  const vs = new VersionState(dead, prefix, 'dead');
  await assert.rejects(vs.getMany([{ table: 'public.t', key: '[1]' }]), (e: unknown) => e instanceof SynclineError && e.retriable);
  await assert.rejects(vs.commitMany([{ table: 'public.t', key: '[1]', pos: P('0/1'), hash: 'a' }]), (e: unknown) => e instanceof SynclineError && e.retriable);
  dead.disconnect();
});

test('a Redis refusal of rights mid-run (an ACL changed) is fatal, naming the reply; state reads still work', async () => {
  const user = `syncline_t_acl_${randomBytes(4).toString('hex')}`;
  await redis.call('ACL', 'SETUSER', user, 'on', '>pw-1', `~${prefix}:*`, '+@all');
  const limited = new Redis({ host: '127.0.0.1', port: 6379, username: user, password: 'pw-1', lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await limited.connect();
    const vs = new VersionState(limited, prefix, 'acl');
    await vs.commitMany([{ table: 'public.t', key: '[1]', pos: P('0/1'), hash: 'a' }]);
    // The operator takes scripting away from the pipeline's user while it runs.
    await redis.call('ACL', 'SETUSER', user, '-@scripting');
    await assert.rejects(vs.commitMany([{ table: 'public.t', key: '[1]', pos: P('0/2'), hash: 'b' }]), (e: unknown) => {
      assert.ok(e instanceof SynclineError);
      assert.equal(e.kind, 'fatal');
      assert.equal(e.code, 'REDIS_NOPERM');
      assert.match(e.message, /version state: commit of 1 keys: Redis refused the credentials or rights of redis\.url: NOPERM .*evalsha/i);
      return true;
    });
    assert.equal((await vs.getMany([{ table: 'public.t', key: '[1]' }]))[0]?.pos, P('0/1'), 'nothing written; reads allowed');
    // Keys outside its pattern: refused too.
    const other = new VersionState(limited, `${prefix}x`, 'acl');
    await assert.rejects(other.getMany([{ table: 'public.t', key: '[1]' }]), (e: unknown) => e instanceof SynclineError && e.code === 'REDIS_NOPERM' && e.kind === 'fatal');
    await vs.clear();
  } finally {
    limited.disconnect();
    await redis.call('ACL', 'DELUSER', user);
  }
});
