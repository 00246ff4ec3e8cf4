import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideKey, type KeyFacts } from './table-key.js';

const facts = (f: Partial<KeyFacts>): KeyFacts => ({ columns: ['id', 'sku', 'note'], primaryKey: ['id'], replicaIdentity: 'd', ...f });

test('the primary key unless a key is configured', () => {
  assert.deepEqual(decideKey('p', 'public.t', undefined, facts({})), { ok: true, key: ['id'] });
  assert.deepEqual(decideKey('p', 'public.t', ['id'], facts({})), { ok: true, key: ['id'] });
});

test('a configured key other than the primary key needs REPLICA IDENTITY FULL', () => {
  const refused = decideKey('p', 'public.t', ['sku'], facts({}));
  assert.equal(refused.ok, false);
  assert.equal(!refused.ok && refused.code, 'SOURCE_KEY_IDENTITY');
  assert.match(!refused.ok ? refused.message : '', /ALTER TABLE public\.t REPLICA IDENTITY FULL/);
  assert.deepEqual(decideKey('p', 'public.t', ['sku'], facts({ replicaIdentity: 'f' })), { ok: true, key: ['sku'] });
  assert.deepEqual(decideKey('p', 'public.t', ['sku'], facts({ primaryKey: [], replicaIdentity: 'f' })), { ok: true, key: ['sku'] });
  // The primary key's columns in another order are another key.
  assert.equal(decideKey('p', 'public.t', ['sku', 'id'], facts({ primaryKey: ['id', 'sku'] })).ok, false);
});

test('no primary key and no configured key; a configured column that does not exist', () => {
  const none = decideKey('p', 'public.t', undefined, facts({ primaryKey: [], replicaIdentity: 'f' }));
  assert.equal(!none.ok && none.code, 'SOURCE_NO_KEY');
  const unknown = decideKey('p', 'public.t', ['id', 'nope'], facts({}));
  assert.equal(!unknown.ok && unknown.code, 'SOURCE_KEY_UNKNOWN');
  assert.match(!unknown.ok ? unknown.message : '', /'nope'/);
});
