import { test } from 'node:test';
import assert from 'node:assert/strict';
import { valueErrorColumn } from './value-errors.js';

// Errors as node-postgres reports them (fields copied from PostgreSQL 15's answers).
const cols = ['id', 'qty', 'price', 'code', 'note'];
const param = (n: number) => cols[(n - 1) % cols.length];
const written = [
  { name: 'id', type: 'integer' },
  { name: 'qty', type: 'smallint' },
  { name: 'price', type: 'numeric(3,2)' },
  { name: 'code', type: 'character varying(3)' },
  { name: 'note', type: 'character varying(3)' },
];

test('the column a target type error is about: its own field, the parameter, or the one column of the type named', () => {
  // A parameter that does not convert: PostgreSQL names it in `where` (VALUES of several rows: row-major).
  assert.equal(valueErrorColumn({ code: '22003', message: 'value "40000" is out of range for type smallint', where: "unnamed portal parameter $2 = '...'" }, param, written), 'qty');
  assert.equal(valueErrorColumn({ code: '22P02', message: 'invalid input syntax for type integer: "NaN"', where: "unnamed portal parameter $6 = '...'" }, param, written), 'id');
  // NOT NULL and friends carry the column.
  assert.equal(valueErrorColumn({ code: '23502', message: 'null value in column "note" violates not-null constraint', column: 'note' }, param, written), 'note');
  // An assignment refused by the type's modifier: the one written column of that type …
  assert.equal(valueErrorColumn({ code: '22003', message: 'numeric field overflow', detail: 'A field with precision 3, scale 2 must round to an absolute value less than 10^1.' }, param, written), 'price');
  assert.equal(valueErrorColumn({ code: '22003', message: 'numeric field overflow', detail: 'A field with precision 3, scale 2 cannot hold an infinite value.' }, param, written), 'price');
  // … but not when two columns share it, or none has it.
  assert.equal(valueErrorColumn({ code: '22001', message: 'value too long for type character varying(3)' }, param, written), undefined);
  assert.equal(valueErrorColumn({ code: '22001', message: 'value too long for type character varying(3)' }, param, written.slice(0, 4)), 'code');
  assert.equal(valueErrorColumn({ code: '22026', message: 'bit string length 3 does not match type bit(4)' }, param, written), undefined);
  // A CHECK constraint names its constraint, not a column; no error, no column.
  assert.equal(valueErrorColumn({ code: '23514', message: 'new row for relation "t" violates check constraint "t_qty_check"' }, param, written), undefined);
  assert.equal(valueErrorColumn(undefined, param, written), undefined);
  // A parameter beyond what the statement maps: fall back to the type named (none here).
  assert.equal(valueErrorColumn({ code: '22P02', message: 'invalid input syntax for type integer', where: "unnamed portal parameter $3 = '...'" }, () => undefined, written), undefined);
});
