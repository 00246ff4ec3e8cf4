/**
 * Schema changes under control on a MariaDB source going to PostgreSQL (ADR 0019; the PostgreSQL
 * source's twin is test/schema-changes.int.test.ts): the ALTER's binlog position is where the change
 * takes effect. One pipeline, a table per kind:
 *  - ADD COLUMN and widening (INT → BIGINT, VARCHAR(10) → VARCHAR(40)) flow on;
 *  - DROP COLUMN holds its table while another table flows; `syncline schema approve` releases it;
 *  - a retype (INT → VARCHAR) holds; `syncline schema reject` dead-letters its changes;
 *  - a key change (another primary key) and a table rename (RENAME TABLE, ALTER TABLE … RENAME TO) are pending and hold their tables.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { cliArgs, readTopic, ROOT, sleep, sql, startRuntime, waitFor } from '../../../test/helpers.js';
import type { SchemaChange } from '../../../src/capture/schema-changes.js';
import { my, myEnv } from './harness.js';

function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, cliArgs([...args]), { cwd: ROOT, env: { ...process.env, SYNCLINE_LOG_LEVEL: 'warn' }, timeout: 120_000 }, (err, out, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out, err: stderr });
    });
  });
}

const SOURCE = [
  'CREATE TABLE t_add (id INT PRIMARY KEY, v VARCHAR(20))',
  'CREATE TABLE t_widen (id INT PRIMARY KEY, qty INT, name VARCHAR(10))',
  'CREATE TABLE t_drop (id INT PRIMARY KEY, v VARCHAR(20), gone VARCHAR(20))',
  'CREATE TABLE t_retype (id INT PRIMARY KEY, v INT)',
  'CREATE TABLE t_key (id INT PRIMARY KEY, code VARCHAR(20) NOT NULL)',
  'CREATE TABLE t_rename (id INT PRIMARY KEY, v VARCHAR(20))',
  'CREATE TABLE t_rename2 (id INT PRIMARY KEY, v VARCHAR(20))',
  'CREATE TABLE t_other (id INT PRIMARY KEY, v VARCHAR(20))',
];
// The target is wider where the source will widen or retype (syncline does not alter target column types).
const TARGET = [
  'create table t_add (id int primary key, v text)',
  'create table t_widen (id int primary key, qty int8, name text)',
  'create table t_drop (id int primary key, v text, gone text)',
  'create table t_retype (id int primary key, v text)',
  'create table t_key (id int primary key, code text not null)',
  'create table t_rename (id int primary key, v text)',
  'create table t_rename2 (id int primary key, v text)',
  'create table t_other (id int primary key, v text)',
];
const TABLES = ['t_add', 't_widen', 't_drop', 't_retype', 't_key', 't_rename', 't_rename2', 't_other'];

test('MariaDB schema changes: safe ones flow, breaking ones hold their table until approved or rejected, other tables flow on', async (t) => {
  const env = await myEnv(TABLES, { target: { autoEvolve: true } });
  t.after(() => env.cleanup());
  for (const s of SOURCE) await my(env.db, s);
  for (const s of TARGET) await sql(env.targetDb, s);
  for (const n of TABLES) await my(env.db, n === 't_widen' ? `INSERT INTO t_widen VALUES (1, 1, 'a')` : n === 't_key' ? `INSERT INTO t_key VALUES (1, 'a')` : n === 't_retype' ? `INSERT INTO t_retype VALUES (1, 1)` : `INSERT INTO ${n} (id, v) VALUES (1, 'a')`);
  const { rt } = await startRuntime(env as never);
  const count = async (table: string, where = 'true') => Number((await sql(env.targetDb, `select count(*)::int as n from ${table} where ${where}`)).rows[0].n);
  for (const n of TABLES) await waitFor(`the snapshot of ${n}`, async () => (await count(n)) === 1);
  const name = (n: string) => `${env.db}.${n}`;

  // ADD COLUMN: applied automatically, the target gains the column.
  await my(env.db, 'ALTER TABLE t_add ADD COLUMN extra VARCHAR(20)');
  await my(env.db, `INSERT INTO t_add VALUES (2, 'b', 'added')`);
  await waitFor('the added column to reach the target', async () => (await count('t_add', 'id = 2')) === 1);
  assert.equal((await sql(env.targetDb, 'select extra from t_add where id = 2')).rows[0].extra, 'added');

  // Widening: INT → BIGINT and VARCHAR(10) → VARCHAR(40) flow on.
  await my(env.db, 'ALTER TABLE t_widen MODIFY qty BIGINT, MODIFY name VARCHAR(40)');
  await my(env.db, `INSERT INTO t_widen VALUES (2, 5000000000, 'a name longer than ten')`);
  await waitFor('the widened row', async () => (await count('t_widen', `id = 2 and qty = 5000000000 and name = 'a name longer than ten'`)) === 1);

  // DROP COLUMN: t_drop is held at the change, t_other flows.
  await my(env.db, 'ALTER TABLE t_drop DROP COLUMN gone');
  await my(env.db, `INSERT INTO t_drop VALUES (2, 'after drop')`);
  await my(env.db, `INSERT INTO t_other VALUES (2, 'flows')`);
  await waitFor('the other table to flow', async () => (await count('t_other')) === 2);
  const pendingMetric = (table: string) => new RegExp(`syncline_schema_changes_pending\\{pipeline="${env.pipeline}",table="${name(table).replace(/\./g, '\\.')}"\\} 1`);
  await waitFor('the metric to show the pending change', async () => pendingMetric('t_drop').test(await rt.metrics.render()));
  await sleep(1500);
  assert.equal(await count('t_drop'), 1, 'the row after the DROP waits');

  // CLI: pending lists it; approve releases it.
  let r = await cli(['schema', 'pending', '--json', '--config', env.configFile]);
  assert.equal(r.code, 0, r.out + r.err);
  const pending = JSON.parse(r.out) as SchemaChange[];
  const drop = pending.find((c) => c.table === name('t_drop'));
  assert.ok(drop, r.out);
  assert.deepEqual(drop.changes, [{ kind: 'drop', column: 'gone', from: 'varchar(20)' }]);
  assert.match(drop.ddl ?? '', /DROP COLUMN gone/);
  assert.ok(!pending.some((c) => c.table === name('t_add') || c.table === name('t_widen')), `safe changes are not pending: ${r.out}`);
  r = await cli(['schema', 'approve', drop.id, '--config', env.configFile]);
  assert.equal(r.code, 0, r.out + r.err);
  await waitFor('the approved table to apply the held row', async () => (await count('t_drop', `id = 2 and v = 'after drop'`)) === 1);

  // Retype: held, rejected → dead-lettered, the table no longer held.
  await my(env.db, 'ALTER TABLE t_retype MODIFY v VARCHAR(20)');
  await my(env.db, `INSERT INTO t_retype VALUES (2, 'abc')`);
  const retype = await waitFor('the retype to be pending', async () => {
    const x = await cli(['schema', 'pending', '--json', '--config', env.configFile]);
    return (JSON.parse(x.out || '[]') as SchemaChange[]).find((c) => c.table === name('t_retype'));
  });
  assert.deepEqual(retype.changes.map((c) => c.kind), ['retype']);
  r = await cli(['schema', 'reject', retype.id, '--config', env.configFile]);
  assert.equal(r.code, 0, r.out + r.err);
  const dlq = `${env.prefix}.dlq.${env.pipeline}`;
  const rejected = async () => (await readTopic(dlq).catch(() => [])).filter((m) => m.headers['syncline.error.code'] === 'SCHEMA_CHANGE_REJECTED');
  await waitFor('the rejected change to be dead-lettered', async () => (await rejected()).length === 1);
  await my(env.db, `INSERT INTO t_retype VALUES (3, 'def')`);
  await waitFor('later changes under the rejected schema to be dead-lettered too', async () => (await rejected()).length === 2);
  assert.equal(await count('t_retype'), 1);

  // Key change and renames (RENAME TABLE; ALTER TABLE … RENAME TO): pending, their tables held.
  await my(env.db, 'ALTER TABLE t_key DROP PRIMARY KEY, ADD PRIMARY KEY (id, code)');
  await my(env.db, 'RENAME TABLE t_rename TO t_renamed');
  await my(env.db, 'ALTER TABLE t_rename2 RENAME TO t_renamed2');
  await my(env.db, `INSERT INTO t_key VALUES (2, 'b')`);
  await my(env.db, `INSERT INTO t_renamed VALUES (2, 'renamed')`);
  await my(env.db, `INSERT INTO t_renamed2 VALUES (2, 'renamed')`);
  await my(env.db, `INSERT INTO t_other VALUES (4, 'still flows')`);
  await waitFor('the other table to flow past them', async () => (await count('t_other')) === 3);
  const list = await waitFor('the key change and the renames to be pending', async () => {
    const x = await cli(['schema', 'list', '--json', '--config', env.configFile]);
    const l = JSON.parse(x.out || '[]') as SchemaChange[];
    return ['t_key', 't_rename', 't_rename2'].every((n) => l.some((c) => c.table === name(n) && c.status === 'pending')) ? l : false;
  });
  assert.deepEqual(list.find((c) => c.table === name('t_key'))!.changes, [{ kind: 'key', from: 'id', to: 'id,code' }]);
  assert.deepEqual(list.find((c) => c.table === name('t_rename'))!.changes, [{ kind: 'rename', from: name('t_rename'), to: name('t_renamed') }]);
  assert.deepEqual(list.find((c) => c.table === name('t_rename2'))!.changes, [{ kind: 'rename', from: name('t_rename2'), to: name('t_renamed2') }]);
  assert.deepEqual(list.filter((c) => !c.breaking).map((c) => `${c.table} ${c.status}`).sort(), [`${name('t_add')} applied`, `${name('t_widen')} applied`]);
  await sleep(1000);
  assert.equal(await count('t_key'), 1, 'the key change holds its table');
  assert.equal(await count('t_rename'), 1, 'the rename holds its table');
  // Approving the rename: the renamed table's changes apply under its configured target.
  const ren = list.find((c) => c.table === name('t_rename'))!;
  r = await cli(['schema', 'approve', ren.id, '--config', env.configFile]);
  assert.equal(r.code, 0, r.out + r.err);
  await waitFor('the renamed table\'s row after approval', async () => (await count('t_rename', `id = 2 and v = 'renamed'`)) === 1);
});
