/**
 * Manual sync runs (src/sync/): nothing runs until asked; a run started through the API
 * (POST /api/pipelines/:name/runs, GET /api/runs/:id) and through the CLI (`syncline sync run
 * --wait`, `syncline sync list`) syncs what changed and records its counts; `--full` reads every row again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { checksum, cliArgs, ROOT, sleep, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import type { SyncRun } from '../src/sync/runs.js';

const DDL = `create table tickets (id bigint primary key, state text not null)`;

function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, cliArgs([...args]), { cwd: ROOT, env: { ...process.env, SYNCLINE_LOG_LEVEL: 'warn' }, timeout: 120_000 }, (err, out, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out, err: stderr });
    });
  });
}

test('manual runs through the API and the CLI, with their recorded counts', async (t) => {
  const reportDir = mkdtempSync(join(tmpdir(), 'syncline-sync-report-'));
  const env = await testEnv([{ name: 'tickets-manual', tables: [{ source: 'public.tickets' }, { source: 'public.notes' }], conflict: { strategy: 'source-wins' }, sync: { mode: 'manual' } }], { extra: { observability: { port: 0 }, reports: { dir: reportDir, everyMs: 60_000 } } });
  t.after(() => env.cleanup());
  for (const db of [env.sourceDb, env.targetDb]) {
    await sql(db, DDL);
    await sql(db, `create table notes (id int primary key, body text)`);
  }
  await sql(env.sourceDb, `insert into tickets select g, 'open' from generate_series(1, 100) g`);
  const { rt } = await startRuntime(env);
  const base = `http://127.0.0.1:${rt.httpPort}`;

  await sleep(2000);
  assert.equal((await checksum(env.targetDb, 'tickets', 'id')).count, 0, 'manual: nothing is synced until a run is asked for');

  // API
  const res = await fetch(`${base}/api/pipelines/tickets-manual/runs`, { method: 'POST', headers: { 'x-syncline-user': 'alice' }, body: '{}' });
  assert.equal(res.status, 202);
  const started = (await res.json()) as SyncRun;
  assert.match(started.id, /^r-/);
  const busy = await fetch(`${base}/api/pipelines/tickets-manual/runs`, { method: 'POST' });
  assert.equal(busy.status, 409, 'a second run while one goes is refused');
  const viaApi = await waitFor('the API run to end', async () => {
    const r = (await (await fetch(`${base}/api/runs/${started.id}`)).json()) as SyncRun;
    return r.outcome !== 'running' ? r : undefined;
  }, 120_000, 200);
  assert.equal(viaApi.outcome, 'succeeded', viaApi.error);
  assert.equal(viaApi.trigger, 'api');
  assert.equal(viaApi.by, 'alice');
  assert.deepEqual(viaApi.counts, { read: 100, applied: 100, unchanged: 0, conflicts: 0, deadLettered: 0 });
  assert.deepEqual(await checksum(env.targetDb, 'tickets', 'id'), await checksum(env.sourceDb, 'tickets', 'id'));
  assert.equal((await fetch(`${base}/api/pipelines/nope/runs`, { method: 'POST' })).status, 404);
  const badTable = await fetch(`${base}/api/pipelines/tickets-manual/runs`, { method: 'POST', body: JSON.stringify({ tables: ['public.nope'] }) });
  assert.equal(badTable.status, 400);
  assert.match(((await badTable.json()) as { error: string }).error, /has no table public\.nope/);

  // CLI
  await sql(env.sourceDb, `update tickets set state = 'closed' where id <= 10`);
  await sql(env.sourceDb, `insert into tickets select g, 'open' from generate_series(101, 105) g`);
  await sql(env.sourceDb, `delete from tickets where id = 50`);
  const r = await cli(['sync', 'run', 'tickets-manual', '--wait', '--json', '--config', env.configFile, '--url', base]);
  assert.equal(r.code, 0, r.err);
  const viaCli = JSON.parse(r.out) as SyncRun;
  assert.equal(viaCli.outcome, 'succeeded');
  assert.equal(viaCli.trigger, 'manual');
  assert.match(viaCli.by, /@/);
  assert.equal(viaCli.counts.read, 16);
  assert.equal(viaCli.counts.applied, 16);
  assert.deepEqual(await checksum(env.targetDb, 'tickets', 'id'), await checksum(env.sourceDb, 'tickets', 'id'));

  const list = await cli(['sync', 'list', '--json', '--config', env.configFile]);
  assert.equal(list.code, 0, list.err);
  const runs = JSON.parse(list.out) as SyncRun[];
  assert.deepEqual(runs.map((x) => [x.id, x.outcome, x.counts.applied]), [[viaCli.id, 'succeeded', 16], [viaApi.id, 'succeeded', 100]]);
  const status = await cli(['sync', 'status', viaApi.id, '--config', env.configFile, '--url', base]);
  assert.equal(status.code, 0, status.err);
  assert.match(status.out, /outcome:\s+succeeded/);
  assert.match(status.out, /applied 100/);
  // reports/sync-status.json carries the runs.
  await rt.reporter!.write();
  const report = JSON.parse(readFileSync(join(reportDir, 'sync-status.json'), 'utf8')) as { sync: Record<string, { mode: string; running: unknown; runs: SyncRun[] }> };
  const mine = report.sync['tickets-manual']!;
  assert.equal(mine.mode, 'manual');
  assert.equal(mine.running, null);
  assert.deepEqual(mine.runs.map((x) => [x.id, x.trigger, x.counts.applied]), [[viaCli.id, 'manual', 16], [viaApi.id, 'api', 100]]);

  // --table: only that table's changes are applied; the others wait in Kafka for the next run.
  await sql(env.sourceDb, `insert into notes values (1, 'a'), (2, 'b'), (3, 'c')`);
  await sql(env.sourceDb, `update tickets set state = 'pending' where id in (1, 2)`);
  const one = await cli(['sync', 'run', 'tickets-manual', '--table', 'tickets', '--wait', '--json', '--config', env.configFile, '--url', base]);
  assert.equal(one.code, 0, one.err);
  const onlyTickets = JSON.parse(one.out) as SyncRun;
  assert.deepEqual(onlyTickets.tables, ['public.tickets']);
  assert.equal(onlyTickets.counts.applied, 2);
  assert.deepEqual(await checksum(env.targetDb, 'tickets', 'id'), await checksum(env.sourceDb, 'tickets', 'id'));
  assert.equal((await checksum(env.targetDb, 'notes', 'id')).count, 0, 'the other table waits');
  const all = await fetch(`${base}/api/pipelines/tickets-manual/runs`, { method: 'POST', body: JSON.stringify({ wait: true }) });
  assert.equal(all.status, 200);
  const allRun = (await all.json()) as SyncRun;
  assert.equal(allRun.outcome, 'succeeded');
  assert.equal(allRun.counts.applied, 3);
  assert.deepEqual(await checksum(env.targetDb, 'notes', 'id'), await checksum(env.sourceDb, 'notes', 'id'));

  // Between runs the slot retains WAL: sync status says how much.
  await sql(env.sourceDb, `insert into notes select g, repeat('z', 500) from generate_series(10, 400) g`);
  const overview = await cli(['sync', 'status', '--json', '--config', env.configFile]);
  assert.equal(overview.code, 0, overview.err);
  const [o1] = JSON.parse(overview.out) as { pipeline: string; mode: string; last: SyncRun; retainedBytes: number | null }[];
  assert.equal(o1!.pipeline, 'tickets-manual');
  assert.equal(o1!.last.id, allRun.id);
  assert.ok(o1!.retainedBytes !== null && o1!.retainedBytes > 100_000, `the slot retains the WAL written since the last run: ${o1!.retainedBytes}`);

  // --full: every row of the tables is read again (backfills inside the run), what changed is applied, the rest is unchanged.
  const full = await cli(['sync', 'run', 'tickets-manual', '--full', '--wait', '--json', '--config', env.configFile, '--url', base]);
  assert.equal(full.code, 0, full.err);
  const fullRun = JSON.parse(full.out) as SyncRun;
  assert.equal(fullRun.outcome, 'succeeded', fullRun.error);
  assert.equal(fullRun.full, true);
  assert.equal(fullRun.backfills?.length, 2, 'one backfill per table');
  const rows = Number((await sql(env.sourceDb, `select (select count(*) from tickets) + (select count(*) from notes) as n`)).rows[0].n);
  assert.ok(fullRun.counts.read >= rows, `read ${fullRun.counts.read}: every row of both tables (${rows}) and the changes since the last run`);
  assert.equal(fullRun.counts.applied, 391, 'the 391 notes inserted since the last run; the rows read again are unchanged');
  assert.ok(fullRun.counts.unchanged >= rows - 391, JSON.stringify(fullRun.counts));
  assert.deepEqual(await checksum(env.targetDb, 'notes', 'id'), await checksum(env.sourceDb, 'notes', 'id'));
  assert.deepEqual(await checksum(env.targetDb, 'tickets', 'id'), await checksum(env.sourceDb, 'tickets', 'id'));
});
