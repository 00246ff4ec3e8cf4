import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeChanges, diffColumns, isWidening } from './schema-diff.js';
import type { SourceColumn } from './source.js';
import type { ColumnKind } from '../core/types.js';
import { verdictOf } from '../process/schema-guard.js';
import type { SchemaChange } from './schema-changes.js';

const col = (name: string, pgType: string, kind: ColumnKind = 'string'): SourceColumn => ({ name, type: { kind, pgType } });
const base = [col('id', 'int4', 'int'), col('name', 'varchar(20)'), col('price', 'numeric(10,2)', 'decimal')];

test('widening: integers up, float4 → float8, varchar longer or text, numeric precision up with the same scale', () => {
  for (const [f, t] of [['int2', 'int4'], ['int4', 'int8'], ['int2', 'int8'], ['float4', 'float8'], ['varchar(20)', 'varchar(40)'], ['varchar(20)', 'text'], ['char(3)', 'text'], ['numeric(10,2)', 'numeric(12,2)'], ['numeric(10,2)', 'numeric']]) {
    assert.ok(isWidening(f!, t!), `${f} → ${t} widens`);
  }
  for (const [f, t] of [['int8', 'int4'], ['float8', 'float4'], ['varchar(40)', 'varchar(20)'], ['text', 'varchar(20)'], ['numeric(10,2)', 'numeric(12,3)'], ['numeric(12,2)', 'numeric(10,2)'], ['int4', 'text'], ['text', 'int4'], ['char(3)', 'varchar(3)'], ['int4', 'float8']]) {
    assert.ok(!isWidening(f!, t!), `${f} → ${t} does not widen`);
  }
});

test('added columns and widening are safe', () => {
  const d = diffColumns(base, [col('id', 'int8', 'long'), col('name', 'text'), base[2]!, col('note', 'text')]);
  assert.equal(d.breaking, false);
  assert.deepEqual(d.changes.map((c) => `${c.kind}:${c.column}`), ['widen:id', 'widen:name', 'add:note']);
  assert.equal(describeChanges(d.changes), 'widen id int4 → int8; widen name varchar(20) → text; add column note (text)');
});

test('a dropped column, a retype, a key change and a rename are breaking', () => {
  const drop = diffColumns(base, base.slice(0, 2));
  assert.deepEqual([drop.breaking, drop.changes], [true, [{ kind: 'drop', column: 'price', from: 'numeric(10,2)' }]]);
  const retype = diffColumns(base, [base[0]!, col('name', 'int4', 'int'), base[2]!]);
  assert.deepEqual([retype.breaking, retype.changes.map((c) => c.kind)], [true, ['retype']]);
  const narrow = diffColumns(base, [base[0]!, col('name', 'varchar(5)'), base[2]!]);
  assert.deepEqual([narrow.breaking, narrow.changes.map((c) => c.kind)], [true, ['retype']]);
  const key = diffColumns(base, base, { keyBefore: ['id'], keyAfter: ['id', 'name'] });
  assert.deepEqual([key.breaking, key.changes], [true, [{ kind: 'key', from: 'id', to: 'id,name' }]]);
  const rename = diffColumns(base, base, { renamedFrom: 'public.a', renamedTo: 'public.b' });
  assert.deepEqual([rename.breaking, describeChanges(rename.changes)], [true, 'rename table public.a → public.b']);
  // A safe change next to a breaking one: the change as a whole is breaking.
  assert.equal(diffColumns(base, [...base.slice(0, 2), col('note', 'text')]).breaking, true);
  assert.deepEqual(diffColumns(base, base), { changes: [], breaking: false });
});

const change = (c: Partial<SchemaChange>): SchemaChange => ({ id: 'x', pipeline: 'p', table: 'public.t', topic: 't', at: '0002', toSchemaId: 2, breaking: true, changes: [], registry: { compatible: true }, status: 'pending', detectedAt: '', ...c });

test('verdict: the latest breaking change at or below the position decides; safe ones never hold', () => {
  assert.deepEqual(verdictOf([], 't', '0005'), { action: 'apply' });
  const pending = change({ id: 'a', at: '0002' });
  assert.equal(verdictOf([pending], 't', '0001').action, 'apply', 'before the change');
  assert.equal(verdictOf([pending], 't', '0002').action, 'hold', 'at the change');
  assert.equal(verdictOf([pending], 'other', '0009').action, 'apply', 'another table');
  assert.equal(verdictOf([{ ...pending, status: 'approved' }], 't', '0003').action, 'apply');
  assert.equal(verdictOf([{ ...pending, status: 'rejected' }], 't', '0003').action, 'reject');
  assert.equal(verdictOf([change({ at: '0002', breaking: false, status: 'applied' })], 't', '0003').action, 'apply');
  // A later pending change after an approved one holds from its own position.
  const two = [{ ...pending, status: 'approved' as const }, change({ id: 'b', at: '0004' })];
  assert.equal(verdictOf(two, 't', '0003').action, 'apply');
  assert.equal(verdictOf(two, 't', '0004').action, 'hold');
  // A rejected change stays in force past a later safe one.
  assert.equal(verdictOf([{ ...pending, status: 'rejected' }, change({ at: '0004', breaking: false, status: 'applied' })], 't', '0005').action, 'reject');
});
