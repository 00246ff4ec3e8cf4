import { test } from 'node:test';
import assert from 'node:assert/strict';
import { account, granted, parseGrants, serverFindings, signalTableFindings, targetFindings } from './doctor.js';

test('grants: global, database (LIKE wildcards, escaped _), table; column grants and roles do not count', () => {
  const g = parseGrants([
    "GRANT USAGE ON *.* TO `u`@`%`",
    'GRANT SELECT, INSERT ON `shop\\_1`.* TO `u`@`%`',
    'GRANT UPDATE ON `app%`.* TO `u`@`%`',
    'GRANT DELETE, SELECT (`a`, `b`), ALTER ON `crm`.`odd``name` TO `u`@`%`',
    'GRANT `reader` TO `u`@`%`',
  ]);
  assert.equal(granted(g, 'SELECT', 'shop_1', 't'), true);
  assert.equal(granted(g, 'SELECT', 'shopX1', 't'), false, 'an escaped _ is a literal _');
  assert.equal(granted(g, 'UPDATE', 'app_prod', 't'), true);
  assert.equal(granted(g, 'UPDATE', 'shop_1', 't'), false);
  assert.equal(granted(g, 'DELETE', 'crm', 'odd`name'), true);
  assert.equal(granted(g, 'ALTER', 'crm', 'odd`name'), true);
  assert.equal(granted(g, 'SELECT', 'crm', 'odd`name'), false, 'a column grant does not cover the table');
  assert.equal(granted(g, 'CREATE', 'crm'), false);
  const all = parseGrants(['GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION']);
  assert.equal(granted(all, 'BINLOG REPLAY', '*'), true);
  assert.equal(granted(all, 'DROP', 'x', 'y'), true);
  assert.equal(account("syncline@%"), "'syncline'@'%'");
  assert.equal(account("o'k@local@host"), "'o\\'k@local'@'host'");
});

test('server: binlog off, not ROW, not FULL, server_id 0 each fail with what to set', () => {
  const ok = serverFindings('s', { logBin: '1', format: 'ROW', image: 'FULL', serverId: 1 }, 'h:3306');
  assert.deepEqual(ok.map((f) => [f.check, f.ok]), [['log_bin', true], ['binlog_format', true], ['binlog_row_image', true], ['server_id', true]]);
  const off = serverFindings('s', { logBin: '0', format: 'MIXED', image: 'FULL', serverId: 1 }, 'h:3306');
  assert.deepEqual(off.filter((f) => !f.ok).map((f) => f.check), ['log_bin']);
  const bad = serverFindings('s', { logBin: 'ON', format: 'MIXED', image: 'MINIMAL', serverId: 0 }, 'h:3306');
  assert.deepEqual(bad.filter((f) => !f.ok).map((f) => f.check), ['binlog_format', 'binlog_row_image', 'server_id']);
  assert.match(bad.find((f) => f.check === 'binlog_format')!.fix![0]!, /^SET GLOBAL binlog_format = 'ROW';/);
});

test('target: missing table with and without CREATE, rights incl. DROP for TRUNCATE, key, columns, two-way', () => {
  const d = { source: 'src.items', table: 'dst.items', key: ['id'], columns: [{ name: 'id', pgType: 'integer', notNull: true }, { name: 'note', pgType: 'text', notNull: false }] };
  const none = parseGrants([]);
  const opts = { autoCreate: true, autoEvolve: true, twoWay: false, originsDatabase: 'dst' };
  const missing = targetFindings('t', [d], [{ table: 'dst.items', columns: null, uniqueKeys: [] }], none, "'w'@'%'", opts)[0]!;
  assert.equal(missing.ok, false);
  assert.equal(missing.fix![0], "GRANT CREATE, SELECT, INSERT, UPDATE, DELETE, DROP ON `dst`.* TO 'w'@'%';   -- or create it and grant SELECT, INSERT, UPDATE, DELETE, DROP on it:");
  assert.match(missing.fix![1]!, /^CREATE TABLE IF NOT EXISTS `dst`\.`items` \(`id` INT NOT NULL .*PRIMARY KEY \(`id`\)\) ENGINE=InnoDB/);
  // CREATE alone is not enough: the new table is written under the database's grants.
  assert.equal(targetFindings('t', [d], [{ table: 'dst.items', columns: null, uniqueKeys: [] }], parseGrants(['GRANT CREATE ON `dst`.* TO `w`@`%`']), "'w'@'%'", opts)[0]!.ok, false);
  assert.equal(targetFindings('t', [d], [{ table: 'dst.items', columns: null, uniqueKeys: [] }], parseGrants(['GRANT CREATE, SELECT, INSERT, UPDATE, DELETE, DROP ON `dst`.* TO `w`@`%`']), "'w'@'%'", opts)[0]!.ok, true);
  const some = parseGrants(['GRANT SELECT, INSERT ON `dst`.`items` TO `w`@`%`']);
  const bad = targetFindings('t', [d], [{ table: 'dst.items', columns: ['id'], uniqueKeys: [] }], some, "'w'@'%'", opts)[0]!;
  assert.deepEqual(bad.fix, [
    "GRANT UPDATE, DELETE, DROP ON `dst`.`items` TO 'w'@'%';",
    "ALTER TABLE `dst`.`items` ADD COLUMN IF NOT EXISTS `note` LONGTEXT NULL COMMENT 'pg:text';",
    'ALTER TABLE `dst`.`items` ADD PRIMARY KEY (`id`);',
  ]);
  const rights = parseGrants(['GRANT SELECT, INSERT, UPDATE, DELETE, DROP, ALTER ON `dst`.* TO `w`@`%`']);
  assert.equal(targetFindings('t', [d], [{ table: 'dst.items', columns: ['id'], uniqueKeys: [['id']] }], rights, "'w'@'%'", opts)[0]!.ok, true);
  const twoWay = targetFindings('t', [], [], rights, "'w'@'%'", { ...opts, twoWay: true })[0]!;
  assert.equal(twoWay.ok, false);
  assert.deepEqual(twoWay.fix, ["GRANT BINLOG REPLAY ON *.* TO 'w'@'%';   -- (SUPER before MariaDB 10.5.2)", "GRANT CREATE, SELECT, INSERT ON `dst`.* TO 'w'@'%';"]);
});

test('backfill signal table: the table or CREATE, INSERT and DELETE; a fail only when added tables are backfilled (snapshot: initial)', () => {
  const u = "'u'@'%'";
  const none = parseGrants(['GRANT SELECT ON `shop`.* TO `u`@`%`']);
  const [f] = signalTableFindings('s', u, 'shop', false, none, true);
  assert.equal(f!.ok, false);
  assert.match(f!.detail, /does not exist and 'u'@'%' may not create it; 'u'@'%' lacks INSERT, DELETE on shop.syncline_signals/);
  assert.match(f!.fix![0]!, /^CREATE TABLE IF NOT EXISTS `shop`.syncline_signals \(/);
  assert.equal(f!.fix![1], "GRANT INSERT, DELETE ON `shop`.syncline_signals TO 'u'@'%';");
  // The table exists and the rights are granted on it, or on the database with CREATE.
  assert.equal(signalTableFindings('s', u, 'shop', true, parseGrants(['GRANT INSERT, DELETE ON `shop`.`syncline_signals` TO `u`@`%`']), true)[0]!.ok, true);
  const db = signalTableFindings('s', u, 'shop', false, parseGrants(['GRANT CREATE, INSERT, DELETE ON `shop`.* TO `u`@`%`']), true)[0]!;
  assert.equal(db.ok, true);
  assert.match(db.detail, /created by the first backfill/);
  // snapshot: never: backfills only on request; passes and says what they would need.
  const never = signalTableFindings('s', u, 'shop', true, none, false)[0]!;
  assert.equal(never.ok, true);
  assert.match(never.detail, /not usable .*GRANT INSERT, DELETE ON `shop`.syncline_signals/);
});
