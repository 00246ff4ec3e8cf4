import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { decryptValue, encryptValue, isCiphertext, ValueHasher, type FieldContext } from './field-cipher.js';
import { Keyring, loadKeyring, parseKeyring } from './keyring.js';
import { PipelineCrypto } from './pipeline.js';
import { rowHash } from '../../core/hash.js';
import type { ChangeEvent } from '../../core/envelope.js';

const k1 = crypto.randomBytes(32);
const k2 = crypto.randomBytes(32);
const ring = (active = 'k1', keys: [string, Buffer][] = [['k1', k1], ['k2', k2]]) => new Keyring(new Map(keys), active, 'k1');
const ctx: FieldContext = { scope: 'p', table: 'public.users', column: 'email', key: { id: 7 } };

test('round trip keeps the type of every canonical value; two encryptions differ', () => {
  const r = ring();
  for (const v of ['a@b.c', 42, 12345678901234567890n, Buffer.from([0, 1, 255]), NaN, -Infinity, true, ['x', null, 3n], '12.50']) {
    const a = encryptValue(r, ctx, v);
    assert.ok(isCiphertext(a) && a.startsWith('sl1:k1:'), a);
    assert.deepEqual(decryptValue(r, ctx, a), v);
    assert.notEqual(encryptValue(r, ctx, v), a);
  }
});

test('a ciphertext moved to another row, column, table or pipeline is poison naming where, never the value', () => {
  const r = ring();
  const c = encryptValue(r, ctx, 'secret@example.com');
  for (const other of [{ ...ctx, key: { id: 8 } }, { ...ctx, column: 'phone' }, { ...ctx, table: 'public.other' }, { ...ctx, scope: 'q' }]) {
    assert.throws(() => decryptValue(r, other, c), (e: Error & { kind?: string; code?: string }) => {
      assert.equal(e.kind, 'poison');
      assert.equal(e.code, 'DECRYPT_FAILED');
      assert.ok(e.message.includes(other.table) && e.message.includes(other.column), e.message);
      assert.ok(!e.message.includes('secret'), e.message);
      return true;
    });
  }
  // Relabelled with another key id: the check value of k2 differs → fatal naming k2.
  assert.throws(() => decryptValue(r, ctx, c.replace('sl1:k1:', 'sl1:k2:')), /key 'k2'/);
});

test('missing key id and wrong key are fatal errors naming the id', () => {
  const c = encryptValue(ring(), ctx, 'x');
  assert.throws(() => decryptValue(ring('k2', [['k2', k2]]), ctx, c), (e: Error & { kind?: string; code?: string }) => e.kind === 'fatal' && e.code === 'ENCRYPTION_KEY_MISSING' && e.message.includes("'k1'"));
  assert.throws(() => decryptValue(new Keyring(new Map([['k1', k2]]), 'k1', 'k1'), ctx, c), (e: Error & { kind?: string; code?: string }) => e.kind === 'fatal' && e.code === 'ENCRYPTION_KEY_WRONG' && e.message.includes("'k1'"));
});

test('rotation: values under the old key still decrypt after the active key changed', () => {
  const old = encryptValue(ring('k1'), ctx, 'a');
  const rotated = ring('k2');
  assert.ok(encryptValue(rotated, ctx, 'b').startsWith('sl1:k2:'));
  assert.equal(decryptValue(rotated, ctx, old), 'a');
});

test('keyring text: hex and base64, errors name the entry', () => {
  const m = parseKeyring(`a=${k1.toString('hex')}, b=${k2.toString('base64')}\n# comment\nc=${k1.toString('base64url')}`, 'test');
  assert.deepEqual([...m.keys()], ['a', 'b', 'c']);
  assert.ok(m.get('b')!.equals(k2) && m.get('c')!.equals(k1));
  assert.throws(() => parseKeyring('a=AAAA', 'SYNCLINE_ENCRYPTION_KEYS'), /SYNCLINE_ENCRYPTION_KEYS: key 'a' is 3 bytes/);
  assert.throws(() => parseKeyring('bad id=' + k1.toString('hex'), 'x'), /key id 'bad id'/);
  assert.throws(() => loadKeyring({ activeKey: 'z' }, { SYNCLINE_ENCRYPTION_KEYS: 'a=' + k1.toString('hex') }), /active key 'z' is not in the keyring/);
  assert.throws(() => loadKeyring({ activeKey: 'z' }, {}), /no keys: set SYNCLINE_ENCRYPTION_KEYS/);
});

test('HMAC: per column, equal for equal plaintext, stable across active-key rotation', () => {
  const h = new ValueHasher(ring('k1'));
  const h2 = new ValueHasher(ring('k2')); // hash key stays k1
  assert.equal(h.hmac('p', 't', 'a', 'x'), h2.hmac('p', 't', 'a', 'x'));
  assert.notEqual(h.hmac('p', 't', 'a', 'x'), h.hmac('p', 't', 'b', 'x'));
  assert.notEqual(h.hmac('p', 't', 'a', 'x'), h.hmac('p', 't', 'a', 'y'));
});

test('pipeline: sealed rows hash equal across nonces and equal to the plaintext row a decrypting target holds', () => {
  const pc = new PipelineCrypto('p', 'p', ring(), [{ source: 'public.users', target: 'public.people', columns: { email: 'mail' }, encrypt: ['email', 'n'] }], { decrypt: true });
  const e: ChangeEvent = { op: 'c', before: null, after: { id: 7, email: 'a@b.c', n: 5n, other: 'o' }, source: { db: 'd', schema: 'public', table: 'users', pos: '0/1', commitPos: '0/1', txId: 1, tsMs: 0, snapshot: false, idx: 0 }, tsMs: 0, unchangedToast: [] };
  const s1 = pc.sealEvent('public.users', { id: 7 }, e);
  const s2 = pc.sealEvent('public.users', { id: 7 }, e);
  assert.equal(e.after!.email, 'a@b.c', 'input left alone');
  assert.ok(isCiphertext(s1.after!.email) && s1.after!.email !== s2.after!.email);
  const mapped = (a: typeof s1.after) => ({ id: a!.id!, mail: a!.email!, n: a!.n!, other: a!.other! });
  const strict = pc.hasherFor('public.people', true)!;
  const h1 = strict(mapped(s1.after), { id: 7 });
  assert.equal(h1, strict(mapped(s2.after), { id: 7 }));
  assert.equal(h1, pc.rowHash('public.people', { id: 7, mail: 'a@b.c', n: 5n, other: 'o' }, { id: 7 }), 'plaintext target row');
  assert.notEqual(h1, rowHash(mapped(s1.after)));
  assert.notEqual(h1, pc.rowHash('public.people', { id: 7, mail: 'z@b.c', n: 5n, other: 'o' }, { id: 7 }));
  // Decrypting a record restores the types; a ciphertext of row 7 at row 8 fails (strict hash, decrypt).
  const rec = { table: 'public.people', op: 'upsert' as const, key: { id: 8 }, values: { ...mapped(s1.after), id: 8 }, keep: [], position: 'x', hash: null, sourceTsMs: 0, origin: { topic: 't', partition: 0, offset: '0' } };
  assert.throws(() => strict(rec.values, rec.key), /DECRYPT_FAILED|does not belong/);
  assert.throws(() => pc.decryptRecord(rec), (err: Error & { column?: string }) => err.column === 'email' && /public\.users, column email, key \{"id":8\}/.test(err.message));
  assert.deepEqual(pc.decryptRecord({ ...rec, key: { id: 7 }, values: mapped(s1.after) }).values, { id: 7, mail: 'a@b.c', n: 5n, other: 'o' });
  // lenient (target rows): a foreign ciphertext just differs
  assert.notEqual(pc.rowHash('public.people', rec.values, rec.key), h1);
});
