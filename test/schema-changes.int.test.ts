/**
 * Schema changes under control (src/capture/schema-diff.ts, schema-changes.ts, src/process/schema-guard.ts,
 * connectors/postgres/source/ddl-trigger.ts) on the real stack, one pipeline with a table per kind:
 *  - ADD COLUMN (seen through the Relation message: the DDL trigger disabled for it) and widening flow on;
 *  - DROP COLUMN holds its table while another table flows; a sync window closing and opening does
 *    not release it; `syncline schema pending` lists it, `syncline schema approve` releases it;
 *  - a retype holds, POST /api/schema/changes/:id/reject dead-letters its changes (SCHEMA_CHANGE_REJECTED)
 *    and the table is no longer held;
 *  - a key change and a table rename are pending; the metric and GET /api/schema/changes show them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { cliArgs, readTopic, ROOT, sleep, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import type { SchemaChange } from '../src/capture/schema-changes.js';

function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, cliArgs([...args]), { cwd: ROOT, env: { ...process.env, SYNCLINE_LOG_LEVEL: 'warn' }, timeout: 120_000 }, (err, out, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out, err: stderr });
    });
  });
}

const SOURCE = [
  'create table t_add (id int primary key, v text)',
  'create table t_widen (id int primary key, qty int4, name varchar(10))',
  'create table t_drop (id int primary key, v text, gone text)',
  'create table t_retype (id int primary key, v int4)',
  'create table t_key (id int primary key, code text not null)',
  'create table t_rename (id int primary key, v text)',
  'create table t_other (id int primary key, v text)',
];
// The target is wider where the source will widen (syncline does not alter target column types).
const TARGET = SOURCE.map((s) => s.replace('qty int4, name varchar(10)', 'qty int8, name text').replace('v int4', 'v text'));
const TABLES = ['t_add', 't_widen', 't_drop', 't_retype', 't_key', 't_rename', 't_other'];

test('schema changes: safe ones flow, breaking ones hold their table until approved or rejected, other tables flow on', async (t) => {
  const env = await testEnv([{
    name: 'schema', tables: TABLES.map((n) => ({ source: `public.${n}` })), conflict: { strategy: 'source-wins' },
    target: { autoEvolve: true }, sync: { windows: ['Mon-Fri 01:00-05:00'], timezone: 'UTC' },
  }], { extra: { observability: { port: 0 } } });
  t.after(() => env.cleanup());
  for (const s of SOURCE) await sql(env.sourceDb, s);
  for (const s of TARGET) await sql(env.targetDb, s);
  for (const n of TABLES) await sql(env.sourceDb, n === 't_widen' ? `insert into t_widen values (1, 1, 'a')` : n === 't_key' ? `insert into t_key values (1, 'a')` : n === 't_retype' ? `insert into t_retype values (1, 1)` : `insert into ${n} (id, v) values (1, 'a')`);
  let now = new Date('2026-12-07T02:00:00Z'); // Monday 02:00 UTC: inside the window
  const { rt } = await startRuntime(env);
  rt.sync.now = () => now;
  const base = `http://127.0.0.1:${rt.httpPort}`;
  const count = async (table: string, where = 'true') => Number((await sql(env.targetDb, `select count(*)::int as n from ${table} where ${where}`)).rows[0].n);
  for (const n of TABLES) await waitFor(`the snapshot of ${n}`, async () => (await count(n)) === 1);
  assert.equal((await sql(env.sourceDb, `select count(*)::int as n from pg_event_trigger where evtname = 'syncline_ddl'`)).rows[0].n, 1, 'the DDL event trigger is installed');

  // ADD COLUMN, seen through the Relation message (trigger disabled): applied automatically, the target gains the column.
  await sql(env.sourceDb, 'alter event trigger syncline_ddl disable');
  await sql(env.sourceDb, 'alter table t_add add column extra text');
  await sql(env.sourceDb, 'alter event trigger syncline_ddl enable');
  await sql(env.sourceDb, `insert into t_add values (2, 'b', 'added')`);
  await waitFor('the added column to reach the target', async () => (await count('t_add', 'id = 2')) === 1);
  assert.equal((await sql(env.targetDb, 'select extra from t_add where id = 2')).rows[0].extra, 'added');

  // Widening: int4 → int8 and varchar(10) → varchar(40) flow on.
  await sql(env.sourceDb, 'alter table t_widen alter column qty type int8, alter column name type varchar(40)');
  await sql(env.sourceDb, `insert into t_widen values (2, 5000000000, 'a name longer than ten')`);
  await waitFor('the widened row', async () => (await count('t_widen', `id = 2 and qty = 5000000000 and name = 'a name longer than ten'`)) === 1);

  // DROP COLUMN: t_drop is held at the change, t_other flows.
  await sql(env.sourceDb, 'alter table t_drop drop column gone');
  await sql(env.sourceDb, `insert into t_drop values (2, 'after drop')`);
  await sql(env.sourceDb, `insert into t_other values (2, 'flows')`);
  await waitFor('the other table to flow', async () => (await count('t_other')) === 2);
  const pendingMetric = (table: string) => new RegExp(`syncline_schema_changes_pending\\{pipeline="schema",table="public\\.${table}"\\} 1`);
  await waitFor('the metric to show the pending change', async () => pendingMetric('t_drop').test(await rt.metrics.render()));
  await sleep(1500);
  assert.equal(await count('t_drop'), 1, 'the row after the DROP waits');

  // A window closing and opening does not release the held table.
  now = new Date('2026-12-07T10:00:00Z');
  await waitFor('the window to close', async () => /syncline_sync_window_open\{pipeline="schema"\} 0/.test(await rt.metrics.render()), 10_000, 100);
  await sql(env.sourceDb, `insert into t_other values (3, 'waits for the window')`);
  await sleep(1500);
  assert.equal(await count('t_other'), 2, 'outside the window nothing applies');
  now = new Date('2026-12-07T03:00:00Z');
  await waitFor('the window to open again and t_other to catch up', async () => (await count('t_other')) === 3);
  await sleep(1500);
  assert.equal(await count('t_drop'), 1, 'the window opening did not release t_drop');

  // CLI: pending lists it; approve releases it.
  let r = await cli(['schema', 'pending', '--json', '--config', env.configFile]);
  assert.equal(r.code, 0, r.out + r.err);
  const pending = JSON.parse(r.out) as SchemaChange[];
  const drop = pending.find((c) => c.table === 'public.t_drop');
  assert.ok(drop, r.out);
  assert.deepEqual(drop.changes, [{ kind: 'drop', column: 'gone', from: 'text' }]);
  assert.equal(drop.status, 'pending');
  assert.ok(drop.toSchemaId !== drop.fromSchemaId);
  assert.ok(!pending.some((c) => c.table === 'public.t_add' || c.table === 'public.t_widen'), 'safe changes are not pending');
  r = await cli(['schema', 'approve', drop.id, '--config', env.configFile]);
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, new RegExp(`${drop.id}  schema  public\\.t_drop  approved  drop column gone \\(text\\)`));
  await waitFor('the approved table to apply the held row', async () => (await count('t_drop', `id = 2 and v = 'after drop'`)) === 1);
  r = await cli(['schema', 'approve', drop.id, '--config', env.configFile]);
  assert.equal(r.code, 1, 'a decided change cannot be decided again');
  assert.match(r.err, /SCHEMA_CHANGE_DECIDED: schema change sc-\w+ of public\.t_drop is approved/);

  // Retype: held, rejected through the API → dead-lettered, the table no longer held.
  await sql(env.sourceDb, 'alter table t_retype alter column v type text');
  await sql(env.sourceDb, `insert into t_retype values (2, 'abc')`);
  const retype = await waitFor('the retype to be pending', async () => ((await (await fetch(`${base}/api/schema/changes?status=pending`)).json()) as SchemaChange[]).find((c) => c.table === 'public.t_retype'));
  assert.deepEqual(retype.changes, [{ kind: 'retype', column: 'v', from: 'int4', to: 'text' }]);
  assert.equal(retype.registry.compatible, false, 'the registry refuses int → string under BACKWARD');
  const rej = await fetch(`${base}/api/schema/changes/${retype.id}/reject`, { method: 'POST', headers: { 'X-Syncline-User': 'alice' }, body: JSON.stringify({ note: 'fix the target first' }) });
  assert.equal(rej.status, 200);
  assert.equal(((await rej.json()) as SchemaChange).decidedBy, 'alice');
  assert.equal((await fetch(`${base}/api/schema/changes/${retype.id}/approve`, { method: 'POST' })).status, 409);
  assert.equal((await fetch(`${base}/api/schema/changes/sc-nosuch/approve`, { method: 'POST' })).status, 404);
  const dlq = `${env.prefix}.dlq.schema`;
  const rejected = async () => (await readTopic(dlq).catch(() => [])).filter((m) => m.headers['syncline.error.code'] === 'SCHEMA_CHANGE_REJECTED');
  await waitFor('the rejected change to be dead-lettered', async () => (await rejected()).length === 1);
  await sql(env.sourceDb, `insert into t_retype values (3, 'def')`);
  await waitFor('later changes under the rejected schema to be dead-lettered too (the table is not held)', async () => (await rejected()).length === 2);
  const letter = (await rejected())[0]!;
  assert.equal(letter.headers['syncline.table'], 'public.t_retype');
  assert.match(letter.headers['syncline.error.message'] ?? '', new RegExp(`schema change ${retype.id} of public\\.t_retype \\(retype v int4 → text\\) was rejected by alice`));
  assert.equal(await count('t_retype'), 1);

  // Key change and rename: pending.
  await sql(env.sourceDb, 'alter table t_key drop constraint t_key_pkey, add primary key (id, code)');
  await sql(env.sourceDb, 'alter table t_rename rename to t_renamed');
  await sql(env.sourceDb, `insert into t_key values (2, 'b')`);
  await sql(env.sourceDb, `insert into t_renamed values (2, 'renamed')`);
  await sql(env.sourceDb, `insert into t_other values (4, 'still flows')`);
  await waitFor('the other table to flow past both', async () => (await count('t_other')) === 4);
  const list = await waitFor('the key change and the rename to be pending', async () => {
    const l = (await (await fetch(`${base}/api/schema/changes?pipeline=schema`)).json()) as SchemaChange[];
    return l.some((c) => c.table === 'public.t_key' && c.status === 'pending') && l.some((c) => c.table === 'public.t_rename' && c.status === 'pending') ? l : false;
  });
  assert.deepEqual(list.find((c) => c.table === 'public.t_key')!.changes, [{ kind: 'key', from: 'id', to: 'id,code' }]);
  assert.deepEqual(list.find((c) => c.table === 'public.t_rename')!.changes, [{ kind: 'rename', from: 'public.t_rename', to: 'public.t_renamed' }]);
  assert.deepEqual(list.filter((c) => !c.breaking).map((c) => `${c.table} ${c.status}`).sort(), ['public.t_add applied', 'public.t_widen applied']);
  await sleep(1000);
  assert.equal(await count('t_key'), 1, 'the key change holds its table');
  assert.equal(await count('t_rename'), 1, 'the rename holds its table');
  const metrics = await rt.metrics.render();
  assert.match(metrics, pendingMetric('t_key'));
  assert.match(metrics, /syncline_schema_changes_pending\{pipeline="schema",table="public\.t_drop"\} 0/);
});
