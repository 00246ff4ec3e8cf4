/**
 * npm test: alone (the binlog is the server's: a neighbour's writes would move the end it checks).
 * The MariaDB source's monitor against the real server: ping, and lag measured from an acknowledged
 * binlog position (what syncline_slot_lag_bytes / _retained_bytes show for a MariaDB pipeline).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { MariadbSourceMonitor } from './monitor.js';
import { binlogLsn } from './mariadb-source.js';
import { mariadbSourceSpec } from './spec.js';

test('MariaDB monitor: ping answers; lag is the binlog written after the acknowledged position', async () => {
  const db = `syncline_t_${randomBytes(4).toString('hex')}_mon`;
  const admin = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', multipleStatements: true });
  await admin.query(`CREATE DATABASE ${db}; CREATE TABLE ${db}.t (id INT PRIMARY KEY, v TEXT)`);
  const config = mariadbSourceSpec.parse({ type: 'mariadb', connection: { database: db } });
  const monitor = new MariadbSourceMonitor(config, 5000);
  try {
    await monitor.ping();
    assert.equal(await monitor.lag(''), null, 'no acknowledged position: no lag series');
    const [[status]] = await admin.query<mysql.RowDataPacket[]>('SHOW MASTER STATUS');
    const at = binlogLsn(String(status!.File), Number(status!.Position));
    const before = await monitor.lag(at);
    assert.ok(before && before.lagBytes === 0, `nothing written after the server's end: ${JSON.stringify(before)}`);
    await admin.query(`INSERT INTO ${db}.t VALUES ${Array.from({ length: 200 }, (_, i) => `(${i}, '${'x'.repeat(100)}')`).join(',')}`);
    const after = await monitor.lag(at);
    assert.ok(after && after.lagBytes! > 200 * 100, `200 rows of 100 bytes written since: ${JSON.stringify(after)}`);
    assert.ok(after.retainedBytes! >= after.lagBytes!, 'the files from the position on hold at least the lag');
    assert.equal(after.active, true);
    // A position at the server's new end: caught up again.
    const [[now]] = await admin.query<mysql.RowDataPacket[]>('SHOW MASTER STATUS');
    assert.equal((await monitor.lag(binlogLsn(String(now!.File), Number(now!.Position))))!.lagBytes, 0);
  } finally {
    await monitor.close();
    await admin.query(`DROP DATABASE IF EXISTS ${db}`);
    await admin.end();
  }
});

test('MariaDB monitor: an unreachable server fails ping naming it', async () => {
  const monitor = new MariadbSourceMonitor(mariadbSourceSpec.parse({ type: 'mariadb', connection: { database: 'x', port: 1 } }), 2000);
  await assert.rejects(monitor.ping(), /mariadb 127\.0\.0\.1:1\/x/);
  await monitor.close();
});
