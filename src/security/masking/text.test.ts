import { test } from 'node:test';
import assert from 'node:assert/strict';
import { maskPolicy } from './policy.js';
import { maskErrorText } from './text.js';

const policy = maskPolicy({ pipelines: { p: { tables: [{ source: 'public.users', target: 'app.users', mask: ['email'], encrypt: ['phone'] }, { source: 'public.items' }] } } });
const m = (text: string, table?: string, row?: Record<string, string | null>) => maskErrorText(text, policy, table, row);

test('PostgreSQL key details: values of sensitive columns masked, others kept', () => {
  assert.equal(m('duplicate key value violates unique constraint "u" — Key (email)=(a@x.io) already exists.', 'public.users'), 'duplicate key value violates unique constraint "u" — Key (email)=(***) already exists.');
  assert.equal(m('Key (tenant, email)=(7, a (b) c@x.io) already exists.'), 'Key (tenant, email)=(***) already exists.', 'no table: sensitive in some table');
  assert.equal(m('Key (id)=(42) already exists.', 'public.users'), 'Key (id)=(42) already exists.');
  assert.equal(m('Key (email)=(a@x.io) is not present in table "users".', 'public.items'), 'Key (email)=(a@x.io) is not present in table "users".', 'email is not sensitive in items');
  assert.equal(m('new row violates check constraint "c" — Failing row contains (1, a@x.io, null).'), 'new row violates check constraint "c" — Failing row contains (***).');
});

test('MariaDB duplicate entries and column values; JSON bodies; values of the record', () => {
  assert.equal(m("Duplicate entry 'a@x.io' for key 'email'", 'app.users'), "Duplicate entry '***' for key 'email'");
  assert.equal(m("Duplicate entry '7' for key 'PRIMARY'", 'app.users'), "Duplicate entry '7' for key 'PRIMARY'");
  assert.equal(m("Duplicate entry 'x' for key 'sku'", 'public.items'), "Duplicate entry 'x' for key 'sku'");
  assert.equal(m("Incorrect integer value: 'a@x.io' for column `db`.`users`.`email` at row 1", 'app.users'), "Incorrect integer value: '***' for column `db`.`users`.`email` at row 1");
  assert.equal(m('HTTP 409: {"error":"exists","email": "a@x.io","password":"pw123","n":3}'), 'HTTP 409: {"error":"exists","email": "***","password":"***","n":3}', 'listed columns and the default patterns');
  assert.equal(m('target said: user a@x.io exists (phone 555-0101)', 'app.users', { id: '1', email: 'a@x.io', phone: '555-0101', name: 'ann' }), 'target said: user *** exists (phone ***)');
  assert.equal(m('plain text, nothing to hide', 'app.users'), 'plain text, nothing to hide');
});
