/** The canonical form, the hash and the masking of audit entries (pure; the store is tested in audit.int.test.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { canonicalEntry, canonicalJson, checkpointValid, entryHash, GENESIS, signCheckpoint } from './chain.js';
import { maskDetails } from './recorder.js';
import { parseSince } from '../../cli/audit.js';

test('canonical JSON sorts keys at every level, no whitespace', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [3, { z: null, y: 'é' }], c: true } }), '{"a":{"c":true,"d":[3,{"y":"é","z":null}]},"b":1}');
});

test('the hash is SHA-256 of the previous hash and the canonical entry', () => {
  const e = { seq: 1, id: '00000000-0000-4000-8000-000000000001', at: '2026-12-05T23:01:02.345Z', actor: 'alice', role: null, action: 'dlq.discard', object: 'dlq:p/1', details: { kind: 'invalid' } };
  assert.equal(canonicalEntry(e), '{"action":"dlq.discard","actor":"alice","at":"2026-12-05T23:01:02.345Z","details":{"kind":"invalid"},"id":"00000000-0000-4000-8000-000000000001","object":"dlq:p/1","role":null,"seq":1}');
  assert.equal(entryHash(GENESIS, e), createHash('sha256').update(GENESIS + canonicalEntry(e)).digest('hex'));
  assert.notEqual(entryHash(GENESIS, { ...e, actor: 'bob' }), entryHash(GENESIS, e));
});

test('a checkpoint verifies with its key only, and not once altered', () => {
  const k = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519');
  const c = signCheckpoint({ seq: 7, hash: 'a'.repeat(64), at: '2026-12-05T00:00:00.000Z' }, k.privateKey, k.publicKey);
  assert.equal(checkpointValid(c, k.publicKey), true);
  assert.equal(checkpointValid(c, other.publicKey), false);
  assert.equal(checkpointValid({ ...c, seq: 8 }, k.publicKey), false);
});

test('details keep ids and counts; data and secrets become hashes', () => {
  const d = maskDetails({ pipeline: 'p', count: 3, key: '{"id":1}', note: 'free text', merged: { email: 'a@b.c' }, nested: { password: 'x', ok: 1n }, long: 'x'.repeat(400), skip: undefined });
  assert.equal(d.pipeline, 'p');
  assert.equal(d.count, 3);
  for (const k of ['key', 'note', 'merged']) assert.match(String(d[k]), /^sha256:[0-9a-f]{16}$/, k);
  assert.deepEqual(Object.keys(d.nested as object), ['password', 'ok']);
  assert.match(String((d.nested as Record<string, unknown>).password), /^sha256:/);
  assert.equal((d.nested as Record<string, unknown>).ok, '1');
  assert.match(String(d.long), /…\(400 chars\)$/);
  assert.ok(!('skip' in d));
});

test('--since takes an ISO time or a duration, and names a bad one', () => {
  const now = new Date('2026-12-05T12:00:00Z');
  assert.equal(parseSince('24h', now), '2026-12-04T12:00:00.000Z');
  assert.equal(parseSince('2026-12-01', now), '2026-12-01T00:00:00.000Z');
  assert.throws(() => parseSince('yesterday', now), /--since must be an ISO time .* got 'yesterday'/);
});
