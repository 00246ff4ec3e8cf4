import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keyString, keyStringOf } from './sink.js';

const reference = (values: unknown[]) => JSON.stringify(values, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));

test('keyStringOf writes exactly what JSON.stringify (bigints as strings) writes: version-state keys must never change', () => {
  const cases: unknown[][] = [
    [1], [-0], [0.1], [1e21], [-1.5e-7], [Number.MAX_SAFE_INTEGER], [NaN], [Infinity],
    ['a'], [''], ['quote " backslash \\ newline \n tab \t'], ['ünïcödé ✓ \u2028 \ud83d\ude00'], ['\u0000\u001f'],
    [12345678901234567890n], [-5n], [true, false], [null], [1, 'x', null, 7n, true],
    [new Date(0)], [Buffer.from('ab')], [undefined], [{ a: 1 }], [],
  ];
  for (const c of cases) assert.equal(keyStringOf(c), reference(c), JSON.stringify(c, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)));
});

test('keyString remembers the string on the key row without showing it to spreads, entries or JSON', () => {
  const key = { id: 7, region: 'eu' };
  assert.equal(keyString(key), '[7,"eu"]');
  assert.equal(keyString(key), '[7,"eu"]');
  assert.deepEqual(Object.keys(key), ['id', 'region']);
  assert.deepEqual({ ...key }, { id: 7, region: 'eu' });
  assert.equal(JSON.stringify(key), '{"id":7,"region":"eu"}');
  assert.deepStrictEqual(key, { id: 7, region: 'eu' });
});
