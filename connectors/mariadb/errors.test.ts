import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyMariaError, errorColumn } from './errors.js';

const e = (errno: number, sqlMessage: string, code = 'ER_X') => Object.assign(new Error(sqlMessage), { errno, sqlMessage, code });

test('server errors map onto the taxonomy by errno', () => {
  const cases: [number, 'retriable' | 'poison' | 'fatal'][] = [
    [1213, 'retriable'], [1205, 'retriable'], [2006, 'retriable'], [2013, 'retriable'], [1040, 'retriable'],
    [1406, 'poison'], [1264, 'poison'], [1048, 'poison'], [1062, 'poison'], [1451, 'poison'], [1452, 'poison'], [4025, 'poison'], [1366, 'poison'], [1292, 'poison'],
    [1045, 'fatal'], [1044, 'fatal'], [1142, 'fatal'], [1227, 'fatal'], [1049, 'fatal'], [1698, 'fatal'],
    [1999, 'retriable'], // unknown: retried by the policy, then dead-lettered
  ];
  for (const [errno, kind] of cases) {
    const c = classifyMariaError(e(errno, 'x'), 'ctx');
    assert.equal(c.kind, kind, `errno ${errno}`);
    assert.equal(c.code, `MARIADB_${errno}`);
    assert.match(c.message, /^ctx: x/);
  }
});

test('connection errors are retriable', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', errno: -111 });
  assert.deepEqual([classifyMariaError(refused, 'c').kind, classifyMariaError(refused, 'c').code], ['retriable', 'NET_ECONNREFUSED']);
  const lost = Object.assign(new Error('Connection lost: The server closed the connection.'), { code: 'PROTOCOL_CONNECTION_LOST', fatal: true });
  assert.deepEqual([classifyMariaError(lost, 'c').kind, classifyMariaError(lost, 'c').code], ['retriable', 'MARIADB_PROTOCOL_CONNECTION_LOST']);
});

test('value errors name their column', () => {
  assert.equal(classifyMariaError(e(1406, "Data too long for column 'short' at row 2"), 'c').column, 'short');
  assert.equal(classifyMariaError(e(1264, "Out of range value for column 'n' at row 1"), 'c').column, 'n');
  assert.equal(classifyMariaError(e(1048, "Column 'name' cannot be null"), 'c').column, 'name');
  assert.equal(errorColumn("Incorrect integer value: 'abc' for column `db`.`t`.`n` at row 1"), 'n');
  assert.equal(errorColumn('CONSTRAINT `pos` failed for `db`.`t`'), undefined);
  assert.equal(classifyMariaError(e(1045, "Access denied for user 'x'@'localhost'"), 'c').column, undefined);
});

test('TLS the server cannot meet is fatal, with what to change', () => {
  const noTls = Object.assign(new Error('Server does not support secure connection'), { code: 'HANDSHAKE_NO_SSL_SUPPORT', fatal: true });
  const c = classifyMariaError(noTls, 'c');
  assert.deepEqual([c.kind, c.code], ['fatal', 'MARIADB_HANDSHAKE_NO_SSL_SUPPORT']);
  assert.match(c.message, /ssl: false/);
  const cert = Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  assert.deepEqual([classifyMariaError(cert, 'c').kind, classifyMariaError(cert, 'c').code], ['fatal', 'MARIADB_TLS_DEPTH_ZERO_SELF_SIGNED_CERT']);
});
