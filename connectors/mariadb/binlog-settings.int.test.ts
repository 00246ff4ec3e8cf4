/**
 * The MariaDB of the local stack has what binlog CDC (the MariaDB source, a later slice) needs:
 * scripts/stack.sh `up` puts these settings in force (restarting MariaDB once when they are not).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mysql from 'mysql2/promise';

test('MariaDB runs with the binlog settings binlog CDC needs (scripts/stack.sh up mariadb)', async () => {
  const c = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root' });
  try {
    const [rows] = await c.query("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image', 'server_id', 'gtid_strict_mode')");
    const v = Object.fromEntries((rows as { Variable_name: string; Value: string }[]).map((r) => [r.Variable_name, r.Value]));
    assert.deepEqual({ log_bin: v.log_bin, binlog_format: v.binlog_format, binlog_row_image: v.binlog_row_image, gtid_strict_mode: v.gtid_strict_mode }, { log_bin: 'ON', binlog_format: 'ROW', binlog_row_image: 'FULL', gtid_strict_mode: 'ON' });
    assert.ok(Number(v.server_id) > 0, `server_id is set (${v.server_id})`);
    // GTIDs are MariaDB's own: the binlog position is a GTID list once anything was written.
    const [gtid] = await c.query('SELECT @@global.gtid_binlog_pos AS pos, @@global.gtid_domain_id AS domain');
    assert.match(String((gtid as { pos: string }[])[0]!.pos), /^$|^\d+-\d+-\d+(,\d+-\d+-\d+)*$/);
  } finally {
    await c.end();
  }
});
