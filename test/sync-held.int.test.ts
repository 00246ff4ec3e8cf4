/**
 * A table held for a breaking schema change in a manual pipeline (src/sync/bounded.ts,
 * src/process/schema-guard.ts): the run ends once every other table is applied, with outcome
 * `partial` naming the held table, long before maxRunDurationMs; the held changes stay in Kafka and
 * the run after `approve` applies them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checksum, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import type { SyncRun } from '../src/sync/runs.js';
import type { SchemaChange } from '../src/capture/schema-changes.js';

const MAX_RUN_MS = 60_000;

test('manual run with a table held for a breaking schema change: partial once the other tables are applied; the next run after approval applies it', async (t) => {
  const env = await testEnv([{
    name: 'held-manual', tables: [{ source: 'public.h_drop' }, { source: 'public.h_ok' }], conflict: { strategy: 'source-wins' },
    sync: { mode: 'manual', maxRunDurationMs: MAX_RUN_MS },
  }], { extra: { observability: { port: 0 } } });
  t.after(() => env.cleanup());
  await sql(env.sourceDb, 'create table h_drop (id int primary key, v text, gone text)');
  await sql(env.targetDb, 'create table h_drop (id int primary key, v text, gone text)');
  for (const db of [env.sourceDb, env.targetDb]) await sql(db, 'create table h_ok (id int primary key, v text)');
  await sql(env.sourceDb, `insert into h_drop select g, 'a', 'x' from generate_series(1, 10) g`);
  await sql(env.sourceDb, `insert into h_ok select g, 'a' from generate_series(1, 10) g`);
  const { rt } = await startRuntime(env);
  const base = `http://127.0.0.1:${rt.httpPort}`;
  const run = async (): Promise<SyncRun> => {
    const res = await fetch(`${base}/api/pipelines/held-manual/runs`, { method: 'POST', body: '{}' });
    assert.equal(res.status, 202);
    const { id } = (await res.json()) as SyncRun;
    return waitFor(`run ${id} to end`, async () => {
      const r = (await (await fetch(`${base}/api/runs/${id}`)).json()) as SyncRun;
      return r.outcome !== 'running' ? r : undefined;
    }, MAX_RUN_MS + 30_000, 200);
  };
  const count = async (table: string, where = 'true') => Number((await sql(env.targetDb, `select count(*)::int as n from ${table} where ${where}`)).rows[0].n);

  const first = await run();
  assert.equal(first.outcome, 'succeeded', first.error);
  assert.equal(await count('h_drop'), 10);

  // A DROP COLUMN on h_drop, then changes on both tables.
  await sql(env.sourceDb, 'alter table h_drop drop column gone');
  await sql(env.sourceDb, `insert into h_drop values (11, 'after drop')`);
  await sql(env.sourceDb, `update h_ok set v = 'b' where id <= 5`);
  await sql(env.sourceDb, `insert into h_ok select g, 'new' from generate_series(11, 20) g`);
  const t0 = Date.now();
  const held = await run();
  const took = Date.now() - t0;
  assert.equal(held.outcome, 'partial', `${held.outcome}: ${held.error ?? ''}`);
  assert.ok(took < MAX_RUN_MS / 2, `the run ended in ${took} ms, without waiting for maxRunDurationMs`);
  assert.equal(held.held?.length, 1, JSON.stringify(held.held));
  assert.equal(held.held![0]!.table, 'public.h_drop');
  assert.match(held.held![0]!.change, /^sc-/);
  assert.deepEqual(await checksum(env.targetDb, 'h_ok', 'id'), await checksum(env.sourceDb, 'h_ok', 'id'), 'the other table is applied');
  assert.equal(await count('h_drop', 'id = 11'), 0, 'the held change waits');
  assert.equal(held.counts.applied, 15, 'h_ok: 5 updates and 10 inserts');
  console.log(`partial run ended in ${took} ms (maxRunDurationMs ${MAX_RUN_MS}), held ${held.held![0]!.table} ${held.held![0]!.change}`);

  // Another run before the decision: still partial, nothing new applied.
  const again = await run();
  assert.equal(again.outcome, 'partial');
  assert.equal(again.counts.applied, 0);

  // Approve; the next run applies the held change and succeeds.
  const ok = await fetch(`${base}/api/schema/changes/${held.held![0]!.change}/approve`, { method: 'POST' });
  assert.equal(ok.status, 200, await ok.text());
  assert.equal(((await (await fetch(`${base}/api/schema/changes?pipeline=held-manual`)).json()) as SchemaChange[]).find((c) => c.id === held.held![0]!.change)?.status, 'approved');
  const after = await run();
  assert.equal(after.outcome, 'succeeded', after.error);
  assert.equal(after.held, undefined);
  assert.equal(await count('h_drop', `id = 11 and v = 'after drop'`), 1, 'the held change applied after approval');
});
