import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromMaria, inferKind, literal, mariaTypeOf, readTypeOf, type ColumnInfo } from './types.js';
import { SynclineError } from '../../src/core/errors.js';

const col = (dataType: string, pgType = 'text'): ColumnInfo => ({ name: 'c', dataType, read: readTypeOf(pgType) });

test('source types map to MariaDB types; keys get bounded lengths', () => {
  const cases: [string, string, string?][] = [
    ['int2', 'SMALLINT'], ['int4', 'INT'], ['int8', 'BIGINT'], ['numeric(38,10)', 'DECIMAL(38,10)'], ['numeric', 'DECIMAL(65,30)'], ['numeric(70,2)', 'DECIMAL(65,30)'],
    ['float4', 'FLOAT'], ['float8', 'DOUBLE'], ['bool', 'BOOLEAN'], ['text', 'LONGTEXT', 'VARCHAR(255)'], ['varchar(20)', 'VARCHAR(20)', 'VARCHAR(20)'],
    ['varchar(1000)', 'LONGTEXT', 'VARCHAR(768)'], ['char(3)', 'VARCHAR(3)'], ['bytea', 'LONGBLOB', 'VARBINARY(255)'], ['date', 'DATE'], ['time(3)', 'TIME(6)'],
    ['timestamp', 'DATETIME(6)'], ['timestamptz(3)', 'DATETIME(6)'], ['uuid', 'CHAR(36) CHARACTER SET ascii'], ['jsonb', 'JSON', 'VARCHAR(255)'], ['int4[]', 'JSON'],
    ['interval', 'LONGTEXT'], ['public.mood', 'LONGTEXT'], ['public.citext', 'LONGTEXT'],
  ];
  for (const [pg, maria, key] of cases) {
    assert.equal(mariaTypeOf(pg, false), maria, pg);
    if (key) assert.equal(mariaTypeOf(pg, true), key, `${pg} as key`);
  }
  assert.equal(mariaTypeOf(undefined, false), 'LONGTEXT');
  assert.deepEqual(readTypeOf('int8[]'), { kind: 'array', items: { kind: 'long' } });
  assert.deepEqual(readTypeOf('timestamptz(3)'), { kind: 'timestamptz' });
  assert.deepEqual(readTypeOf('numeric'), { kind: 'vdecimal' });
  assert.deepEqual(inferKind('tinyint', 'tinyint(1)'), { kind: 'bool' });
  assert.deepEqual(inferKind('timestamp', 'timestamp(6)'), { kind: 'timestamptz' });
  assert.deepEqual(inferKind('varbinary', 'varbinary(16)'), { kind: 'bytes' });
});

test('literals: numbers unquoted and exact, strings with doubled quotes only, timestamps in UTC, arrays as JSON', () => {
  assert.equal(literal(9223372036854775807n, col('bigint')), '9223372036854775807');
  assert.equal(literal('-12345678901234567890123456789012345678', col('decimal')), '-12345678901234567890123456789012345678');
  assert.equal(literal(0.1, col('double')), '0.1');
  assert.equal(literal(true, col('tinyint')), '1');
  assert.equal(literal("it's a \\ back", col('longtext')), "'it''s a \\ back'");
  assert.equal(literal(Buffer.from([0, 255]), col('longblob')), "X'00ff'");
  assert.equal(literal(Buffer.alloc(0), col('longblob')), "''");
  assert.equal(literal('2024-01-02T03:04:05.000001Z', col('datetime')), "'2024-01-02 03:04:05.000001'");
  assert.equal(literal('2024-01-02T05:04:05.5+02:00', col('datetime')), "'2024-01-02 03:04:05.500000'");
  assert.equal(literal('2024-01-02T03:04:05.123456', col('datetime')), "'2024-01-02 03:04:05.123456'");
  assert.equal(literal([1n, null, Buffer.from('a'), 'x'], col('longtext')), `'["1",null,"YQ==","x"]'`);
  assert.equal(literal(null, col('int')), 'NULL');
});

test('values MariaDB cannot hold are poison naming the column', () => {
  for (const [v, c] of [[NaN, col('double')], [Infinity, col('float')], ['NaN', col('decimal')], ['infinity', col('datetime')], ['2024-01-01T00:00:00.000000 BC', col('datetime')], ['10000-01-01T00:00:00.000000', col('datetime')], ['0044-03-15 BC', col('date')], [[NaN], col('longtext')]] as const) {
    assert.throws(() => literal(v as never, c), (e: SynclineError) => e.kind === 'poison' && e.code === 'MARIADB_UNREPRESENTABLE' && e.column === 'c', String(v));
  }
});

test('values read back become the canonical forms of src/core/types.ts', () => {
  const b = (s: string) => Buffer.from(s);
  assert.equal(fromMaria(b('-9223372036854775808'), { kind: 'long' }), -9223372036854775808n);
  assert.equal(fromMaria(b('0.10000000149011612'), { kind: 'float' }), Math.fround(0.1));
  assert.equal(fromMaria(b('1'), { kind: 'bool' }), true);
  assert.equal(fromMaria(b('12.50'), { kind: 'decimal' }), '12.50');
  assert.equal(fromMaria(b('1.500000000000000000000000000000'), { kind: 'vdecimal' }), '1.5');
  assert.equal(fromMaria(b('42.000000000000000000000000000000'), { kind: 'vdecimal' }), '42');
  assert.equal(fromMaria(b('12:34:56.500000'), { kind: 'time' }), '12:34:56.5');
  assert.equal(fromMaria(b('12:34:56.000000'), { kind: 'time' }), '12:34:56');
  assert.equal(fromMaria(b('2024-01-02 03:04:05.000001'), { kind: 'timestamptz' }), '2024-01-02T03:04:05.000001Z');
  assert.equal(fromMaria(b('2024-01-02 03:04:05'), { kind: 'timestamp' }), '2024-01-02T03:04:05.000000');
  assert.equal(fromMaria(b('1B4E28BA-2FA1-11D2-883F-0016D3CCA427'), { kind: 'uuid' }), '1b4e28ba-2fa1-11d2-883f-0016d3cca427');
  assert.deepEqual(fromMaria(b('["1",null]'), { kind: 'array', items: { kind: 'long' } }), [1n, null]);
  assert.deepEqual(fromMaria(b('[[1.5],[null]]'), { kind: 'array', items: { kind: 'double' } }), [[1.5], [null]]);
  assert.deepEqual(fromMaria(Buffer.from([0, 1]), { kind: 'bytes' }), Buffer.from([0, 1]));
  assert.equal(fromMaria(null, { kind: 'int' }), null);
});
