import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { canonicalJson, rowHash } from './hash.js';
import type { Row } from './envelope.js';

test('canonicalJson sorts keys and tags non-JSON values', () => {
  const json = canonicalJson({ b: 1, a: 'x', c: null, d: true, e: 12n, f: Buffer.from('hi'), g: [1, [2n, null]], h: NaN, i: -Infinity, j: Infinity, k: -0 });
  assert.equal(
    json,
    '{"a":"x","b":1,"c":null,"d":true,"e":{"$n":"12"},"f":{"$b":"aGk="},"g":[1,[{"$n":"2"},null]],' +
      '"h":{"$f":"NaN"},"i":{"$f":"-Infinity"},"j":{"$f":"Infinity"},"k":0}',
  );
  assert.doesNotThrow(() => JSON.parse(json));
});

test('same content ⇒ same hash regardless of key order', () => {
  const a = { id: 1n, name: 'n', tags: ['x', null], amount: '12.50', data: Buffer.from([0, 1]) };
  const b = { data: Buffer.from([0, 1]), amount: '12.50', tags: ['x', null], name: 'n', id: 1n };
  assert.equal(rowHash(a), rowHash(b));
  assert.equal(rowHash({ x: 0 }), rowHash({ x: -0 }));
  assert.equal(rowHash(a), crypto.createHash('sha1').update(canonicalJson(a)).digest('hex'));
  assert.match(rowHash(a), /^[0-9a-f]{40}$/);
});

test('canonicalJson of rows in many key orders (more than its cache of sorted orders holds), each seen again', () => {
  const names = ['id', 'b', 'a', 'zz', 'c'];
  const perms: string[][] = [];
  const permute = (done: string[], rest: string[]) => {
    if (rest.length === 0) perms.push(done);
    rest.forEach((n, i) => permute([...done, n], [...rest.slice(0, i), ...rest.slice(i + 1)]));
  };
  permute([], names);
  assert.equal(perms.length, 120);
  const want = '{"a":3,"b":2,"c":5,"id":1,"zz":4}';
  const value = { id: 1, b: 2, a: 3, zz: 4, c: 5 } as Record<string, number>;
  for (let round = 0; round < 3; round++) {
    for (const order of perms) {
      const row: Row = {};
      for (const n of order) row[n] = value[n]!;
      assert.equal(canonicalJson(row), want, order.join(','));
    }
  }
  // Same keys, other lengths: not mistaken for a cached order.
  assert.equal(canonicalJson({ b: 1, a: 2 }), '{"a":2,"b":1}');
  assert.equal(canonicalJson({ b: 1, a: 2, c: undefined as never }), '{"a":2,"b":1}');
});

test('different types or content ⇒ different hashes', () => {
  const variants: Row[] = [
    { v: 5n },
    { v: 5 },
    { v: '5' },
    { v: '5n' },
    { v: '{"$n":"5"}' },
    { v: Buffer.from('5') },
    { v: [5] },
    { v: null },
    { v: true },
    { v: 'true' },
    { v: NaN },
    { v: 'NaN' },
    {},
    { v: ['a,b'] },
    { v: ['a', 'b'] },
    { w: 5n },
  ];
  const hashes = new Set(variants.map((r) => rowHash(r)));
  assert.equal(hashes.size, variants.length);
  assert.notEqual(rowHash({ a: 'x', b: 'y' }), rowHash({ a: 'y', b: 'x' }));
});

test('escaping of strings and keys', () => {
  const row = { 'we"ird\nkey': 'line\nbreak "quoted" \\ 😀 \u0001' };
  assert.deepEqual(JSON.parse(canonicalJson(row)), row);
});
