/**
 * Config reload of a running `syncline start` (a real child process): a table added to the
 * pipeline's config (SIGHUP) is added to the publication, backfilled while written to, and then
 * streamed, while the other table is written to all along and its stages never stop (the slot's
 * walsender is the same, capture never starts again, the processor's consumer rejoins once to take
 * the new topic); a broken config (SIGHUP, POST /api/reload) and a change a reload cannot apply are
 * refused with the loader's (or the reload's) error while the old config keeps running.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { checksum, freePort, PG, sleep, spawnCli, sql, testEnv, waitFor, withClient } from './helpers.js';

const ITEMS = `create table items (id bigint primary key, n int not null)`;
const EXTRA = `create table extra (id bigint primary key, seq bigint not null, label text)`;


async function same(env: { sourceDb: string; targetDb: string }, table: string): Promise<boolean> {
  const [s, d] = await Promise.all([checksum(env.sourceDb, table, 'id'), checksum(env.targetDb, table, 'id')]);
  return s.md5 === d.md5 && s.count === d.count;
}

test('a table added by a reload (SIGHUP) joins the running stages: backfilled and streamed, the other table never stopped; a broken reload is refused and the old config keeps running', async (t) => {
  // The pipeline keeps a change history (in the target's database): an added table's changes go into it too.
  const env = await testEnv([{ name: 'rl', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' }, history: {} }], {
    extra: ({ targetDb }) => ({ history: { url: `postgres://${PG.user}@${PG.host}:${PG.port}/${targetDb}`, schema: 'hist' } }),
  });
  t.after(() => env.cleanup());
  for (const db of [env.sourceDb, env.targetDb]) await withClient(db, async (c) => { await c.query(ITEMS); await c.query(EXTRA); });
  await sql(env.sourceDb, `insert into items select g, 0 from generate_series(1, 1000) g`);
  await sql(env.sourceDb, `insert into extra select g, 0, 'first' from generate_series(1, 8000) g`);
  const port = await freePort();
  const child = spawnCli(['start', '--config', env.configFile, '--metrics-port', String(port)], { SYNCLINE_LOG_LEVEL: 'info' });
  let logs = '';
  child.stdout?.on('data', (d: Buffer) => (logs += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (logs += d.toString()));
  t.after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
  await waitFor('items to be snapshotted', () => same(env, 'items'), 120_000, 500);
  assert.equal((await checksum(env.targetDb, 'extra', 'id')).count, 0, 'extra is not in the config yet');

  // The capture's walsender before the reload: a restarted capture would reconnect (another pid).
  const walsender = async () => (await sql(env.sourceDb, `select active_pid from pg_replication_slots where slot_name = $1`, [env.slot('rl')])).rows[0]?.active_pid as number | null;
  const pidBefore = await walsender();
  assert.ok(pidBefore, 'the slot is streamed');
  const count = (re: RegExp) => logs.split('\n').filter((l) => re.test(l)).length;
  const starts = { capture: count(/"capture\.(resume|snapshot)/), consumer: count(/consumer\.start"/) };

  // Writes on extra all along: before, during and after its backfill; and on items (the table already streamed).
  let writing = true;
  let writes = 0;
  let itemWrites = 0;
  const itemWriter = withClient(env.sourceDb, async (c) => {
    for (let i = 1; writing; i++) {
      await c.query(`update items set n = n + 1 where id = $1`, [1 + (i * 17) % 1000]);
      itemWrites++;
      await sleep(2);
    }
  });
  const writer = withClient(env.sourceDb, async (c) => {
    for (let i = 1; writing; i++) {
      await c.query(`update extra set seq = seq + 1, label = 'upd' where id = any($1::bigint[])`, [[1 + (i * 37) % 8000, 1 + (i * 101) % 8000, 1 + (i * 7) % 8000]]);
      await c.query(`insert into extra values ($1, 0, 'new') on conflict (id) do nothing`, [8000 + i]);
      if (i % 5 === 0) await c.query(`delete from extra where id = $1`, [1 + (i * 13) % 8000]);
      writes += 3;
      await sleep(2);
    }
  });

  const good = JSON.parse(readFileSync(env.configFile, 'utf8')) as { pipelines: Record<string, { tables: { source: string }[]; target: Record<string, unknown> }> };
  const added = structuredClone(good);
  added.pipelines.rl!.tables.push({ source: 'public.extra' });
  writeFileSync(env.configFile, JSON.stringify(added, null, 2));
  child.kill('SIGHUP');
  await waitFor('extra to be backfilled (some rows in the target)', async () => (await checksum(env.targetDb, 'extra', 'id')).count > 4000, 120_000, 500);
  const inPublication = await sql(env.sourceDb, `select 1 from pg_publication_tables where pubname = $1 and tablename = 'extra'`, [env.slot('rl')]);
  assert.equal(inPublication.rowCount, 1, 'extra was added to the publication');
  await sleep(1000);
  writing = false;
  await writer;
  await itemWriter;
  await waitFor('extra to converge (backfilled and streamed)', () => same(env, 'extra'), 120_000, 500);
  await waitFor('items to converge (written all along)', () => same(env, 'items'), 60_000, 250);
  assert.ok(writes > 300, `${writes} writes on extra during the reload`);
  assert.ok(itemWrites > 100, `${itemWrites} writes on items during the reload`);
  // No restart: the same walsender streams, capture did not start again, the consumer rejoined once (no new stage).
  assert.equal(await walsender(), pidBefore, 'the capture kept its replication connection');
  assert.match(logs, /runtime\.reload: adding the tables to the running pipeline \(no restart\)/);
  assert.doesNotMatch(logs, /restarting the pipeline/);
  assert.equal(count(/"capture\.(resume|snapshot)/), starts.capture, 'capture did not start again');
  assert.equal(count(/consumer\.start"/), starts.consumer, 'the consumer stage did not start again');
  assert.equal(count(/consumer\.resubscribed/), 1, 'the consumer took the new topic once');
  const at = (re: RegExp) => Date.parse((JSON.parse(logs.split("\n").find((l) => re.test(l))!) as { time: string }).time);
  console.log(`items writes during the reload: ${itemWrites}; consumer resubscribe took ${at(/consumer\.resubscribed/) - at(/consumer\.resubscribe:/)} ms`);
  // Streamed from now on.
  await sql(env.sourceDb, `insert into extra select g, 0, 'after' from generate_series(100001, 100100) g`);
  await sql(env.sourceDb, `update extra set label = 'after too' where id <= 50`);
  await waitFor('changes of extra after its backfill to stream', () => same(env, 'extra'), 60_000, 250);
  assert.match(logs, /capture\.backfill\.added-table/);
  // The added table is in the history: a baseline (coverage) taken when the sink took it, and its changes.
  const hist = await sql(env.targetDb, `select (select count(*) from hist.changes where tbl = 'public.extra')::int as n,
      (select count(*) from hist.coverage where tbl = 'public.extra')::int as covered`);
  assert.ok(hist.rows[0].n >= 8000, `the added table's changes are in the history: ${hist.rows[0].n}`);
  assert.equal(hist.rows[0].covered, 1, 'the added table has a history baseline');

  // A broken config: refused with the loader's error; the old config keeps running.
  const broken = structuredClone(added) as unknown as { pipelines: Record<string, { tables: unknown }> };
  broken.pipelines.rl!.tables = 'not a list';
  writeFileSync(env.configFile, JSON.stringify(broken, null, 2));
  child.kill('SIGHUP');
  await waitFor('the refusal in the log', async () => /runtime\.reload\.refused/.test(logs), 30_000, 100);
  assert.match(logs.slice(logs.indexOf('runtime.reload.refused') - 600), /tables/);
  const api = await fetch(`http://127.0.0.1:${port}/api/reload`, { method: 'POST' });
  assert.equal(api.status, 422);
  const body = (await api.json()) as { reloaded: boolean; error: string };
  assert.equal(body.reloaded, false);
  assert.match(body.error, /pipelines\.rl\.tables/);
  // A valid config that changes something a reload cannot apply: refused, naming it.
  const other = structuredClone(added);
  other.pipelines.rl!.target.lockTimeoutMs = 5000;
  writeFileSync(env.configFile, JSON.stringify(other, null, 2));
  const api2 = await fetch(`http://127.0.0.1:${port}/api/reload`, { method: 'POST' });
  assert.equal(api2.status, 422);
  assert.match(((await api2.json()) as { error: string }).error, /need a restart: pipelines\.rl\.target/);
  assert.equal(child.exitCode, null, 'still running');
  await sql(env.sourceDb, `update items set n = n + 1 where id <= 100`);
  await sql(env.sourceDb, `insert into extra values (200000, 1, 'still streamed')`);
  await waitFor('both tables to stream on under the old config', async () => (await same(env, 'items')) && (await same(env, 'extra')), 60_000, 250);
  // The same config again: nothing to do.
  writeFileSync(env.configFile, JSON.stringify(added, null, 2));
  const api3 = await fetch(`http://127.0.0.1:${port}/api/reload`, { method: 'POST' });
  assert.equal(api3.status, 200);
  assert.deepEqual(await api3.json(), { reloaded: true, pipelines: [] });
});
