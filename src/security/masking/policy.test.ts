import { test } from 'node:test';
import assert from 'node:assert/strict';
import { maskEntry, maskPolicy, MASK } from './policy.js';
import { entryJson, revealEntry } from '../../dlq/api.js';
import type { DlqEntry } from '../../dlq/store.js';

const config = {
  masking: { patterns: ['^phone'] },
  pipelines: {
    p: {
      tables: [{ source: 'public.users', target: 'public.people', columns: { email: 'mail' }, mask: ['email'], encrypt: ['salary'] }],
      validation: { mask: ['note'] },
    },
  },
};

const entry = (): DlqEntry => ({
  id: 'x', pipeline: 'p', kind: 'conflict', reason: 'conflict', state: 'open', table: 'public.people', key: '[7]', time: 't',
  errorCode: 'E', errorMessage: 'duplicate key value (mail)=(alice@example.com) and phone 555-1234', attempts: 1,
  violations: [{ field: 'mail', rule: 'format', value: 'alice@example.com' }, { field: 'name', rule: 'maxLength', value: 'Al' }],
  conflict: {
    strategy: 'manual', op: 'upsert', key: { id: 7 },
    source: { id: 7, name: 'Al', mail: 'alice@example.com', phone_home: '555-1234', salary: 'sl1:k1:AAAA', password_hash: 'h' },
    target: { id: 7, name: 'Al', mail: 'old@example.com', phone_home: null, salary: null, password_hash: 'h' },
    lastSynced: null,
    diff: [{ field: 'mail', source: 'alice@example.com', target: 'old@example.com', lastSynced: null }, { field: 'name', source: 'Al', target: 'Bo', lastSynced: null }],
  },
  dlq: { topic: 't', partition: 0, offset: '0' },
  raw: { key: Buffer.from('k'), value: Buffer.from('alice@example.com') },
  history: [],
});

test('one policy: table mask (source and target names), encrypted columns, global patterns and defaults, validation.mask', () => {
  const p = maskPolicy(config);
  for (const c of ['email', 'mail', 'salary', 'phone_home', 'password_hash']) assert.ok(p.sensitive(c, 'public.people'), c);
  assert.ok(p.sensitive('email', 'public.users'));
  assert.ok(p.sensitive('note', 'public.other'), 'validation.mask: every table');
  assert.ok(!p.sensitive('name', 'public.people'));
  assert.ok(!p.sensitive('mail', 'public.other'), 'a table mask is of its table');
  assert.ok(!maskPolicy({ ...config, masking: { defaults: false } }).sensitive('password_hash', 'public.other'));
});

test('a dead letter shown by the CLI/API holds no sensitive value; revealEntry gives it whole', () => {
  const p = maskPolicy(config);
  const shown = JSON.stringify(entryJson(entry(), p));
  for (const secret of ['alice@example.com', 'old@example.com', '555-1234', 'sl1:k1:AAAA']) assert.ok(!shown.includes(secret), `${secret} in ${shown}`);
  const m = maskEntry(entry(), p);
  assert.equal(m.conflict!.source!.mail, MASK);
  assert.equal(m.conflict!.source!.name, 'Al');
  assert.equal(m.conflict!.target!.phone_home, null, 'null stays null');
  assert.deepEqual(m.conflict!.diff[1], entry().conflict!.diff[1]);
  assert.equal((m.violations![0] as { value: string }).value, MASK);
  assert.equal(m.raw.value, null);
  assert.equal(m.rawWithheld, true);
  assert.match(m.errorMessage, /\(mail\)=\(\*\*\*\) and phone \*\*\*/);
  const revealed = JSON.stringify(revealEntry(entry()));
  assert.ok(revealed.includes('alice@example.com') && revealed.includes(Buffer.from('alice@example.com').toString('base64')));
});

test('the merged row of a resolve kept in the history is masked like the versions', () => {
  const p = maskPolicy(config);
  const e = { ...entry(), state: 'resolved' as const, history: [{ id: 'x', action: 'resolved' as const, by: 'ann', at: 't', choice: 'merged' as const, merged: { id: 7, name: 'Al', mail: 'new@example.com', salary: 'sl1:k1:BBBB' } }] };
  const shown = JSON.stringify(entryJson(e, p));
  for (const secret of ['new@example.com', 'sl1:k1:BBBB']) assert.ok(!shown.includes(secret), `${secret} in ${shown}`);
  assert.deepEqual(maskEntry(e, p).history[0]!.merged, { id: 7, name: 'Al', mail: MASK, salary: MASK });
  assert.ok(JSON.stringify(revealEntry(e)).includes('new@example.com'), 'revealed whole');
});
