import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyPgError } from './errors.js';

test('PostgreSQL errors are classified by SQLSTATE class', () => {
  const kind = (code: string) => classifyPgError(Object.assign(new Error('x'), { code }), 'ctx').kind;
  assert.equal(kind('40001'), 'retriable'); // serialization failure
  assert.equal(classifyPgError(Object.assign(new Error('x'), { code: '40P01' }), 'ctx').contended, true); // deadlock: retried key by key
  assert.equal(classifyPgError(Object.assign(new Error('x'), { code: '57P01' }), 'ctx').contended, undefined);
  // A lock timeout's message says "timeout": still contended by its SQLSTATE, not a connection failure.
  const lockTimeout = classifyPgError(Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' }), 'ctx');
  assert.equal(lockTimeout.code, 'PG_55P03');
  assert.equal(lockTimeout.contended, true);
  assert.equal(classifyPgError(Object.assign(new Error('Connection terminated due to connection timeout'), {}), 'ctx').kind, 'retriable');
  assert.equal(classifyPgError(Object.assign(new Error('Query read timeout'), {}), 'ctx').contended, undefined);
  assert.equal(kind('40P01'), 'retriable'); // deadlock
  assert.equal(kind('57P01'), 'retriable'); // admin shutdown
  assert.equal(kind('08006'), 'retriable'); // connection failure
  assert.equal(kind('ECONNREFUSED'), 'retriable');
  assert.equal(kind('28P01'), 'fatal'); // bad password
  assert.equal(kind('42501'), 'fatal'); // insufficient privilege
  assert.equal(kind('3D000'), 'fatal'); // database does not exist
  assert.equal(kind('23505'), 'poison'); // unique violation
  assert.equal(kind('23514'), 'poison'); // check violation
  assert.equal(kind('22P02'), 'poison'); // invalid text representation
  const e = classifyPgError(Object.assign(new Error('violates check'), { code: '23514', detail: 'Failing row contains (1)' }), 'upsert t');
  assert.equal(e.code, 'PG_23514');
  assert.match(e.message, /^upsert t: violates check — Failing row contains \(1\)$/);
});
