/**
 * Scheduled and manual runs (src/sync/controller.ts) on the real stack: overlap skipped and counted,
 * missed fires after downtime run once, maxRunDurationMs ends a run timed-out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checksum, sleep, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import { Runtime } from '../src/runtime.js';

const DDL = `create table items (id bigint primary key, filler text not null)`;
const ended = (rt: Runtime, name: string) => (rt.sync.controllers.get(name)?.recent ?? []).filter((r) => r.outcome !== 'running');

test('overlap: a run that outlasts its interval makes the next fires skipped and counted', async (t) => {
  const env = await testEnv([{ name: 'items-overlap', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' }, sync: { mode: 'scheduled', schedule: '* * * * * *' } }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into items select g, repeat('x', 200) from generate_series(1, 40000) g`);
  const { rt } = await startRuntime(env);
  const first = await waitFor('the first run (the snapshot, several seconds)', async () => ended(rt, 'items-overlap')[0], 180_000, 100);
  assert.equal(first.outcome, 'succeeded', first.error);
  const seconds = (Date.parse(first.endedAt!) - Date.parse(first.startedAt)) / 1000;
  assert.ok(seconds > 2, `the run took ${seconds}s, more than its 1 s interval`);
  const c = rt.sync.controllers.get('items-overlap')!;
  assert.ok(c.skipped.overlap >= 1, `fires skipped while the run went: ${c.skipped.overlap}`);
  const metrics = await rt.metrics.render();
  const m = /syncline_sync_fires_skipped_total\{pipeline="items-overlap",reason="overlap"\} (\d+)/.exec(metrics);
  assert.ok(m && Number(m[1]) >= 1, 'the skipped fires are a metric');
  assert.deepEqual(await checksum(env.targetDb, 'items', 'id'), await checksum(env.sourceDb, 'items', 'id'));
});

test('missed fires while the process was down give one run at start, not one per fire', async (t) => {
  const env = await testEnv([{ name: 'items-missed', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' }, sync: { mode: 'scheduled', schedule: '*/2 * * * * *' } }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into items select g, 'a' from generate_series(1, 50) g`);
  const { rt: rt1 } = await startRuntime(env);
  await waitFor('a first run', async () => ended(rt1, 'items-missed').find((r) => r.outcome === 'succeeded'), 120_000, 100);
  await rt1.stop();
  const downAt = Date.now();
  await sql(env.sourceDb, `insert into items select g, 'b' from generate_series(51, 80) g`);
  await sleep(9000); // 4 or 5 fires pass with nothing running
  const restartAt = Date.now();
  const { rt: rt2 } = await startRuntime(env);
  const runs = await waitFor('the catch-up run', async () => ended(rt2, 'items-missed')[0] && rt2.sync.controllers.get('items-missed')!.recent, 120_000, 100);
  const catchUp = runs[0]!;
  assert.equal(catchUp.outcome, 'succeeded', catchUp.error);
  assert.ok(catchUp.missed !== undefined && catchUp.missed >= 4, `one run stands for the missed fires: ${catchUp.missed}`);
  // The fires missed are those before the controller started (the process start takes a moment after restartAt).
  const startedAt = Date.parse(catchUp.startedAt);
  assert.ok(Date.parse(catchUp.fire!) > downAt && Date.parse(catchUp.fire!) <= startedAt && Date.parse(catchUp.fire!) > startedAt - 2000, `it is for the latest missed fire: ${catchUp.fire} (started ${catchUp.startedAt})`);
  assert.ok(startedAt - restartAt < 10_000);
  const forPast = runs.filter((r) => r.fire && Date.parse(r.fire) <= startedAt);
  assert.equal(forPast.length, 1, 'one run for all the missed fires');
  assert.deepEqual(await checksum(env.targetDb, 'items', 'id'), await checksum(env.sourceDb, 'items', 'id'));
});

test('maxRunDurationMs ends a run with outcome timed-out', async (t) => {
  const env = await testEnv([{ name: 'items-slow', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' }, sync: { mode: 'manual', maxRunDurationMs: 1000 } }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into items select g, repeat('y', 200) from generate_series(1, 40000) g`);
  const { rt } = await startRuntime(env);
  const c = rt.sync.controllers.get('items-slow')!;
  const started = c.trigger('manual', 'test');
  const r = await c.wait(started.id)!;
  assert.equal(r.outcome, 'timed-out');
  assert.match(r.error!, /maxRunDurationMs \(1000 ms\)/);
  const took = Date.parse(r.endedAt!) - Date.parse(r.startedAt);
  assert.ok(took >= 1000 && took < 20_000, `ended soon after the limit: ${took} ms`);
  const stored = await waitFor('the record', async () => (await rt.sync.store.run(r.id))?.outcome === 'timed-out', 30_000, 300);
  assert.ok(stored);
  assert.equal(c.running, undefined, 'nothing runs after it');
});

test('scheduled with windows: fires outside every window are skipped and counted, fires inside run', async (t) => {
  const env = await testEnv([{ name: 'items-win', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' }, sync: { mode: 'scheduled', schedule: '*/2 * * * * *', windows: ['Mon 01:00-02:00'], timezone: 'Europe/Berlin' } }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into items select g, 'w' from generate_series(1, 30) g`);
  // A moving clock: Tuesday 8 December 2026 10:00 Berlin (closed), then Monday 7 December 01:10 Berlin (open).
  let offset = Date.parse('2026-12-08T09:00:00Z') - Date.now();
  const rt = new Runtime(env.config, new Set(['capture', 'process', 'sink']));
  rt.sync.now = () => new Date(Date.now() + offset);
  env.runtimes.push(rt);
  (await rt.start()).done.catch(() => undefined);
  const c = rt.sync.controllers.get('items-win')!;
  await waitFor('fires outside the window', async () => c.skipped.window >= 2, 30_000, 100);
  assert.equal(c.recent.length, 0, 'no run outside the window');
  assert.equal((await checksum(env.targetDb, 'items', 'id')).count, 0);
  assert.match(await rt.metrics.render(), /syncline_sync_fires_skipped_total\{pipeline="items-win",reason="window"\} [1-9]/);
  offset = Date.parse('2026-12-07T00:10:00Z') - Date.now();
  const r = await waitFor('a run inside the window', async () => ended(rt, 'items-win')[0], 120_000, 100);
  assert.equal(r.outcome, 'succeeded', r.error);
  assert.deepEqual(await checksum(env.targetDb, 'items', 'id'), await checksum(env.sourceDb, 'items', 'id'));
});
