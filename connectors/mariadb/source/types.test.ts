/** Unit tests of the MariaDB type mapping, canonical values, binlog positions and DDL parsing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalValue, columnTypeOf, isZeroDate, selectExpression, type MariadbColumnInfo } from './types.js';
import { binlogLsn, ddlTarget, fileNumber } from './mariadb-source.js';
import { checkServer } from './prepare.js';
import { defaultServerId, mariadbSourceSpec } from './spec.js';
import { position } from '../../../src/core/envelope.js';
import { errorCode } from '../../../src/core/errors.js';

const col = (dataType: string, columnType = dataType, extra: Partial<MariadbColumnInfo> = {}): MariadbColumnInfo => ({ name: 'c', dataType, columnType, precision: null, scale: null, charLength: null, json: false, ...extra });

test('column types: kinds and the PostgreSQL types a target creates', () => {
  const t = (c: MariadbColumnInfo) => { const x = columnTypeOf('db.t', c); return `${x.kind} ${x.pgType}`; };
  assert.equal(t(col('tinyint', 'tinyint(3) unsigned')), 'int smallint');
  assert.equal(t(col('smallint', 'smallint(5) unsigned')), 'int integer');
  assert.equal(t(col('int', 'int(11)')), 'int integer');
  assert.equal(t(col('int', 'int(10) unsigned')), 'long bigint');
  assert.equal(t(col('bigint', 'bigint(20)')), 'long bigint');
  assert.equal(t(col('bigint', 'bigint(20) unsigned')), 'decimal numeric(20,0)');
  assert.equal(t(col('decimal', 'decimal(12,3)', { precision: 12, scale: 3 })), 'decimal numeric(12,3)');
  assert.equal(t(col('varchar', 'varchar(20)', { charLength: 20 })), 'string varchar(20)');
  assert.equal(t(col('longtext', 'longtext', { json: true })), 'json json');
  assert.equal(t(col('bit', 'bit(10)')), 'bytes bytea');
  assert.equal(t(col('time', 'time(6)')), 'text interval');
  assert.equal(t(col('datetime', 'datetime(6)')), 'timestamp timestamp');
  assert.equal(t(col('timestamp', 'timestamp(6)')), 'timestamptz timestamptz');
  assert.equal(t(col('enum', "enum('a','b')")), 'enum text');
  assert.throws(() => columnTypeOf('db.t', col('point')), /column c has type point/);
  assert.equal(selectExpression('f`x', { kind: 'float', pgType: 'real' }), 'CAST(`f``x` AS DOUBLE) AS `f``x`');
});

test('canonical values from either reader', () => {
  const long = { kind: 'long' as const, pgType: 'bigint' };
  assert.equal(canonicalValue('-9223372036854775808', long), -9223372036854775808n);
  assert.equal(canonicalValue(4294967295, long), 4294967295n);
  assert.equal(canonicalValue(18446744073709551615n, { kind: 'decimal', pgType: 'numeric(20,0)' }), '18446744073709551615');
  assert.equal(canonicalValue(1.2345677614212036, { kind: 'float', pgType: 'real' }), Math.fround(1.2345678));
  assert.equal(canonicalValue('2024-02-29 12:34:56.5', { kind: 'timestamptz', pgType: 'timestamptz' }), '2024-02-29T12:34:56.500000Z');
  assert.equal(canonicalValue('2024-02-29 12:34:56', { kind: 'timestamp', pgType: 'timestamp' }), '2024-02-29T12:34:56.000000');
  let zero = 0;
  assert.equal(canonicalValue('0000-00-00 00:00:00', { kind: 'timestamp', pgType: 'timestamp' }, () => zero++), null);
  assert.equal(canonicalValue('2024-00-10', { kind: 'date', pgType: 'date' }, () => zero++), null);
  assert.equal(zero, 2);
  assert.ok(!isZeroDate('2024-01-10'));
  assert.equal(canonicalValue(null, long), null);
});

test('binlog positions sort in binlog order across files', () => {
  assert.equal(binlogLsn('mysql-bin.000002', 0x788cc), '2/788CC');
  assert.equal(fileNumber('mysql-bin.1000000'), 1000000);
  assert.ok(position(binlogLsn('mysql-bin.000001', 0xffffffff), 5) < position(binlogLsn('mysql-bin.000002', 4), 0));
  assert.ok(position(binlogLsn('mysql-bin.000009', 4), 0) < position(binlogLsn('mysql-bin.000010', 4), 0));
});

test('DDL targets', () => {
  assert.deepEqual(ddlTarget('`my db`.`t``x`', 'd'), { schema: 'my db', table: 't`x' });
  assert.deepEqual(ddlTarget('items', 'shop'), { schema: 'shop', table: 'items' });
  assert.deepEqual(ddlTarget('shop . items', 'x'), { schema: 'shop', table: 'items' });
});

test('spec: defaults, a stable server id per pipeline, unknown options refused', () => {
  const c = mariadbSourceSpec.parse({ type: 'mariadb', connection: { database: 'shop' } });
  assert.equal(c.connection.port, 3306);
  assert.equal(c.snapshot, 'initial');
  assert.equal(defaultServerId('orders'), defaultServerId('orders'));
  assert.notEqual(defaultServerId('orders'), defaultServerId('orders2'));
  assert.ok(defaultServerId('x') >= 100000 && defaultServerId('x') <= 4294967295);
  assert.throws(() => mariadbSourceSpec.parse({ type: 'mariadb', connection: { database: 'shop' }, slot: 'x' }));
});

test('server checks name the setting', async () => {
  const server = (v: Record<string, string>, grants = ['GRANT ALL PRIVILEGES ON *.* TO `root`@`%`']) => ({
    query: async (q: string) => [q.startsWith('SHOW GRANTS') ? grants.map((g) => ({ g })) : [{ log_bin: '1', format: 'ROW', image: 'FULL', ...v }]],
  }) as never;
  const c = mariadbSourceSpec.parse({ type: 'mariadb', connection: { database: 'shop', user: 'cdc' } }).connection;
  await checkServer(server({}), c);
  await assert.rejects(checkServer(server({ format: 'MIXED' }), c), (e) => errorCode(e) === 'MARIADB_BINLOG_FORMAT' && /binlog_format=ROW/.test((e as Error).message));
  await assert.rejects(checkServer(server({ image: 'MINIMAL' }), c), (e) => errorCode(e) === 'MARIADB_BINLOG_ROW_IMAGE');
  await assert.rejects(checkServer(server({ log_bin: '0' }), c), (e) => errorCode(e) === 'MARIADB_BINLOG_OFF');
  await assert.rejects(checkServer(server({}, ['GRANT REPLICATION SLAVE ON *.* TO `cdc`@`%`']), c), /lacks REPLICATION CLIENT .*GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON \*\.\* TO 'cdc'/);
  await checkServer(server({}, ['GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `cdc`@`%`']), c);
});
