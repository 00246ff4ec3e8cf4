import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createGrant, createTableSql, isQualifiedType, newTableColumns, quoteTable, targetType } from './ddl.js';

test('built-in types are used as printed; qualified ones only when the target has them, else text', () => {
  for (const t of ['int8', 'varchar(200)', 'numeric(12,2)', 'timestamptz(3)', 'interval day to second(3)', 'text[]', '"char"', 'bit(3)']) {
    assert.equal(isQualifiedType(t), false, t);
    assert.equal(targetType(t, undefined), t);
  }
  for (const t of ['public.mood', '"My Schema".mood', 'public."Mood"[]', 'ext.citext']) assert.equal(isQualifiedType(t), true, t);
  assert.equal(targetType('public.mood', undefined), 'text');
  assert.equal(targetType('public.mood[]', undefined), 'text[]');
  assert.equal(targetType('public.mood', 'mood'), 'mood');
  assert.equal(targetType(undefined, undefined), 'text');
});

test('CREATE TABLE: source column order, key columns NOT NULL and primary key in key order, names quoted', () => {
  const types = { id: 'int8', 'Line No': 'int4', note: 'varchar(20)', mood: 'public.mood', tags: 'public.mood[]' };
  const cols = newTableColumns(['id', 'Line No'], types, ['id', 'extra'], new Map([['public.mood', 'mood']]));
  assert.deepEqual(cols, [
    { name: 'id', type: 'int8' },
    { name: 'Line No', type: 'int4' },
    { name: 'note', type: 'varchar(20)' },
    { name: 'mood', type: 'mood' },
    { name: 'tags', type: 'text[]' },
    { name: 'extra', type: 'text' },
  ]);
  assert.equal(
    createTableSql('"Quoted"" . Schema".Table', cols.slice(0, 3), ['Line No', 'id']),
    'CREATE TABLE "Quoted"" . Schema"."Table" ("id" int8 NOT NULL, "Line No" int4 NOT NULL, "note" varchar(20), PRIMARY KEY ("Line No", "id"))',
  );
  assert.equal(quoteTable('public.users'), '"public"."users"');
});

test('a refused creation names the right and the grant', () => {
  assert.deepEqual(createGrant('public.t', 'app', 'shop', true), { missing: 'CREATE on schema "public"', grant: 'GRANT CREATE ON SCHEMA "public" TO "app";' });
  const g = createGrant('"New Schema".t', 'a"b', 'shop', false);
  assert.equal(g.grant, 'GRANT CREATE ON DATABASE "shop" TO "a""b";');
  assert.match(g.missing, /schema "New Schema" does not exist/);
});
