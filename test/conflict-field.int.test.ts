/**
 * latest-timestamp needs the column it compares. The default strategy (latest-timestamp on
 * updated_at) over a table without updated_at used to start, and a conflict was then a tie decided by
 * content hash: a target-side edit could be silently overwritten. Now the start is refused, naming the
 * pipeline, the table, the column and the fix, before anything is created or written; with
 * conflict.field set to a column the table has, the newer target-side edit is kept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SynclineError } from '../src/core/errors.js';
import { sql, startRuntime, testEnv, waitFor } from './helpers.js';

const DDL = `create table notes (id int primary key, body text not null, changed_at timestamptz not null default clock_timestamp())`;

test('the default latest-timestamp over a table without updated_at is refused at start, naming pipeline, table, column and fix', async (t) => {
  const env = await testEnv([{ name: 'notes-sync', tables: [{ source: 'public.notes' }] }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into notes (id, body) values (1, 'from the source')`);
  const { done } = await startRuntime(env);
  await assert.rejects(done, (e: unknown) => {
    assert.ok(e instanceof SynclineError, String(e));
    assert.equal(e.kind, 'fatal');
    assert.equal(e.code, 'CONFLICT_FIELD_MISSING');
    assert.match(e.message, /^pipeline notes-sync: table public\.notes has no column updated_at, which its conflict strategy latest-timestamp compares/);
    assert.match(e.message, /Set conflict\.field to a timestamp column of the table/);
    assert.match(e.message, /conflict: \{ strategy: source-wins \}/);
    return true;
  });
  // Refused before anything was set up or written.
  assert.equal((await sql('postgres', `select count(*)::int as n from pg_replication_slots where slot_name = $1`, [env.slot('notes-sync')])).rows[0].n, 0);
  assert.equal((await sql(env.sourceDb, `select count(*)::int as n from pg_publication`)).rows[0].n, 0);
  assert.equal((await sql(env.targetDb, `select count(*)::int as n from notes`)).rows[0].n, 0);
});

test('with conflict.field naming a column of the table, a newer target-side edit is kept and an older one overwritten', async (t) => {
  const env = await testEnv([{ name: 'notes-sync', tables: [{ source: 'public.notes' }], conflict: { strategy: 'latest-timestamp', field: 'changed_at' } }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into notes (id, body, changed_at) values (1, 'one', '2026-01-01T00:00:00Z'), (2, 'two', '2026-01-01T00:00:00Z')`);
  const { rt } = await startRuntime(env);
  const h = rt.pipelines[0]!;
  const target = async () => (await sql(env.targetDb, 'select id, body from notes order by id')).rows;
  await waitFor('snapshot applied', async () => (await target()).length === 2);
  // Target-side edits: note 1 newer than the coming source change, note 2 older.
  await sql(env.targetDb, `update notes set body = 'edited on the target', changed_at = '2026-06-01T00:00:00Z' where id = 1`);
  await sql(env.targetDb, `update notes set body = 'stale target edit', changed_at = '2026-01-02T00:00:00Z' where id = 2`);
  await sql(env.sourceDb, `update notes set body = 'source change', changed_at = '2026-03-01T00:00:00Z' where id in (1, 2)`);
  await waitFor('both conflicts settled', async () => h.applier!.stats.conflicts >= 2);
  assert.deepEqual(await target(), [{ id: 1, body: 'edited on the target' }, { id: 2, body: 'source change' }]);
  await rt.stop();
});
