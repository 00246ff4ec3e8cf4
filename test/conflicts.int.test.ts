/**
 * Conflict strategies on the real stack, one table per strategy in one pipeline (per-table
 * overrides): the target rows are edited directly while the source edits the same keys, so every
 * edited key is a conflict. Then a custom resolver module that merges, throws, or returns garbage:
 * merged rows land, the others are parked as conflict dead letters with the error, later changes of
 * a parked key wait behind it, and the pipeline keeps applying everything else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readTopic, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import { topics } from '../src/core/kafka.js';

const ddl = (t: string) => `create table ${t} (id int primary key, v text not null, note text, updated_at timestamptz not null)`;
const T0 = '2026-01-01T00:00:00Z';

test('source-wins, target-wins and latest-timestamp under concurrent edits on both sides', async (t) => {
  const env = await testEnv([
    {
      name: 'strategies',
      tables: [
        { source: 'public.s_wins', conflict: { strategy: 'source-wins' } },
        { source: 'public.t_wins', conflict: { strategy: 'target-wins' } },
        { source: 'public.lww', conflict: { strategy: 'latest-timestamp', field: 'updated_at' } },
      ],
    },
  ]);
  t.after(() => env.cleanup());
  const tables = ['s_wins', 't_wins', 'lww'];
  for (const tb of tables) {
    await sql(env.sourceDb, ddl(tb));
    await sql(env.targetDb, ddl(tb));
    await sql(env.sourceDb, `insert into ${tb} select g, 'v0', null, '${T0}' from generate_series(1, 60) g`);
  }
  const { rt } = await startRuntime(env);
  const stats = () => rt.pipelines[0]!.applier!.stats;
  for (const tb of tables) await waitFor(`${tb} snapshot`, async () => (await sql(env.targetDb, `select count(*)::int n from ${tb}`)).rows[0].n === 60);

  // Keys 1-40 of every table: the target is edited (at 2026-03-01), then the source (at 2026-02-01
  // for odd keys: older than the target edit; 2026-04-01 for even keys: newer), key by key, 8 keys
  // at a time. Keys 41-60 change on the source only.
  const edit = async (tb: string, id: number) => {
    await sql(env.targetDb, `update ${tb} set v = 'target', updated_at = '2026-03-01T00:00:00Z' where id = $1`, [id]);
    await sql(env.sourceDb, `update ${tb} set v = 'source', updated_at = $2 where id = $1`, [id, id % 2 ? '2026-02-01T00:00:00Z' : '2026-04-01T00:00:00Z']);
  };
  for (let i = 1; i <= 40; i += 8) await Promise.all(tables.flatMap((tb) => [0, 1, 2, 3, 4, 5, 6, 7].map((d) => edit(tb, i + d))));
  for (const tb of tables) await sql(env.sourceDb, `update ${tb} set v = 'source only', updated_at = '2026-05-01T00:00:00Z' where id > 40`);

  const rows = async (tb: string) => new Map((await sql(env.targetDb, `select id, v from ${tb}`)).rows.map((r) => [r.id as number, r.v as string]));
  const expected = (tb: string, id: number) => (id > 40 ? 'source only' : tb === 's_wins' ? 'source' : tb === 't_wins' ? 'target' : id % 2 ? 'target' : 'source');
  await waitFor('every key as its strategy says', async () => {
    for (const tb of tables) {
      const m = await rows(tb);
      for (let id = 1; id <= 60; id++) if (m.get(id) !== expected(tb, id)) return false;
    }
    return stats().conflicts >= 80;
  });
  for (const tb of tables) {
    const m = await rows(tb);
    for (let id = 1; id <= 60; id++) assert.equal(m.get(id), expected(tb, id), `${tb} key ${id}`);
  }
  // source-wins reads nothing, so it counts no conflicts; target-wins 40, latest-timestamp 40 (20 each way).
  assert.equal(stats().conflicts, 80);
  assert.equal(stats().deadLettered, 0);

  // After a conflict kept the target row, the next source change of the key applies (the kept row is the new baseline).
  await sql(env.sourceDb, `update t_wins set v = 'later', updated_at = '2026-06-01T00:00:00Z' where id = 1`);
  await waitFor('later change after target-wins', async () => (await rows('t_wins')).get(1) === 'later');
});

test('custom resolver: merged result, a throw and a bad return; parked keys hold later changes, others flow', async (t) => {
  const env = await testEnv([{ name: 'custom', tables: [{ source: 'public.docs' }], conflict: { strategy: 'custom', module: './resolver.mjs' } }]);
  t.after(() => env.cleanup());
  writeFileSync(
    join(dirname(env.configFile), 'resolver.mjs'),
    `export function resolve(c) {
      if (c.key.id % 3 === 0) return { merged: { ...c.source, note: 'merged: ' + c.target.note + ' + ' + c.source.v } };
      if (c.key.id % 3 === 1) throw new Error('resolver cannot decide id ' + c.key.id);
      return 42;
    }\n`,
  );
  await sql(env.sourceDb, ddl('docs'));
  await sql(env.targetDb, ddl('docs'));
  await sql(env.sourceDb, `insert into docs select g, 'v0', null, '${T0}' from generate_series(1, 30) g`);
  const { rt } = await startRuntime(env);
  const stats = () => rt.pipelines[0]!.applier!.stats;
  await waitFor('snapshot', async () => (await sql(env.targetDb, `select count(*)::int n from docs`)).rows[0].n === 30);

  // Keys 1-9 conflict (target edited, then source); keys 10-30 change on the source only.
  await sql(env.targetDb, `update docs set note = 'edited on target' where id <= 9`);
  await sql(env.sourceDb, `update docs set v = 'v1', updated_at = clock_timestamp() where id <= 9`);
  await sql(env.sourceDb, `update docs set v = 'v1', updated_at = clock_timestamp() where id > 9`);
  await waitFor('conflicts settled or parked', async () => stats().conflicts === 9 && stats().applied >= 30 + 21 + 3);
  for (const id of [3, 6, 9]) {
    const r = (await sql(env.targetDb, `select v, note from docs where id = $1`, [id])).rows[0];
    assert.deepEqual([r.v, r.note], ['v1', 'merged: edited on target + v1'], `key ${id} got the merged row`);
  }
  // A later change of every conflicting key: merged keys apply it, parked keys park it behind.
  await sql(env.sourceDb, `update docs set v = 'v2' where id <= 9`);
  await sql(env.sourceDb, `update docs set v = 'v2' where id = 10`);
  await waitFor('later changes processed', async () => stats().parkedBehind === 6 && (await sql(env.targetDb, `select v from docs where id = 10`)).rows[0].v === 'v2');

  const target = new Map((await sql(env.targetDb, `select id, v, note from docs`)).rows.map((r) => [r.id as number, r]));
  // After the merge the target holds what syncline wrote: the next source change (a full row, note null) applies as usual.
  for (const id of [3, 6, 9]) assert.deepEqual([target.get(id)!.v, target.get(id)!.note], ['v2', null], `key ${id}: the later change applied after the merge`);
  for (const id of [1, 2, 4, 5, 7, 8]) assert.deepEqual([target.get(id)!.v, target.get(id)!.note], ['v0', 'edited on target'], `key ${id} is parked: target untouched`);
  for (let id = 10; id <= 30; id++) assert.equal(target.get(id)!.v, id === 10 ? 'v2' : 'v1');

  const dlq = await readTopic(topics.dlq(env.prefix, 'custom'));
  const heads = dlq.filter((m) => m.headers['syncline.dlq.reason'] === 'conflict');
  const parked = dlq.filter((m) => m.headers['syncline.dlq.reason'] === 'parked');
  assert.equal(heads.length, 6);
  assert.equal(parked.length, 6);
  const byKey = (m: (typeof dlq)[number]) => JSON.parse(m.headers['syncline.key']!)[0] as number;
  for (const m of heads) {
    const id = byKey(m);
    assert.equal(m.headers['syncline.dlq.kind'], 'conflict');
    if (id % 3 === 1) {
      assert.equal(m.headers['syncline.error.code'], 'CONFLICT_RESOLVER_THREW');
      assert.match(m.headers['syncline.error.message']!, new RegExp(`resolver cannot decide id ${id}`));
    } else {
      assert.equal(m.headers['syncline.error.code'], 'CONFLICT_RESOLVER_BAD_RESULT');
      assert.match(m.headers['syncline.error.message']!, /returned a number/);
    }
    const c = JSON.parse(m.headers['syncline.conflict']!);
    assert.equal(c.source.v, 'v1');
    assert.equal(c.target.note, 'edited on target');
    assert.equal(c.lastSynced.v, 'v0');
    assert.ok(c.diff.some((d: { field: string }) => d.field === 'note') && c.diff.some((d: { field: string }) => d.field === 'v'));
  }
  for (const m of parked) assert.equal(m.headers['syncline.parked.behind'], heads.find((h) => byKey(h) === byKey(m))!.headers['syncline.dlq.id']);
  assert.equal(stats().deadLettered, 12, 'the 6 conflicts and the 6 changes parked behind them, nothing else');
});
