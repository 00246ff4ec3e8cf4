/**
 * Report files on the real stack: a Runtime with `reports` (small everyMs) runs a scenario with
 * known numbers (applied, skipped as unchanged, dead-lettered as failed by the target, one row a
 * validation rule refuses, one conflict); sync-status.json, history.jsonl and sync-report.md hold
 * those numbers; `syncline report --url` (a child process, asking the running instance) writes them
 * too; after the Runtime stopped, `syncline report` re-renders the daily report from the files there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { SyncStatus, HistoryLine } from '../src/observe/report.js';
import { sleep, spawnCli, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import { freePort } from './prometheus.js';

async function cli(args: string[]): Promise<{ code: number | string; out: string }> {
  const child: ChildProcess = spawnCli(args);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = await Promise.race([once(child, 'exit'), sleep(60_000).then(() => ['timeout'])]);
  return { code: code as number | string, out: out + (child as ChildProcess & { stderrTail(): string }).stderrTail() };
}

const readStatus = (dir: string) => JSON.parse(readFileSync(join(dir, 'sync-status.json'), 'utf8')) as SyncStatus;
const readLines = (dir: string) => readFileSync(join(dir, 'history.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as HistoryLine);

test('sync-status.json, history.jsonl and sync-report.md hold the numbers of a scripted scenario; syncline report writes them', async (t) => {
  const P = 'report-sync';
  const dir = mkdtempSync(join(tmpdir(), 'syncline-reports-'));
  const env = await testEnv([{
    name: P,
    tables: [{ source: 'public.items', validate: { fields: { note: { maxLength: 30 } } } }],
    conflict: { strategy: 'latest-timestamp', field: 'updated_at' },
  }], { extra: { observability: { host: '127.0.0.1', port: 0, checkTimeoutMs: 2000 }, reports: { dir, everyMs: 300 } } });
  t.after(() => env.cleanup());
  await sql(env.sourceDb, `create table items (id int primary key, qty int not null, note text, updated_at timestamptz not null)`);
  await sql(env.targetDb, `create table items (id int primary key, qty int not null check (qty >= 0), note text, updated_at timestamptz not null)`);
  const { rt } = await startRuntime(env);
  const h = rt.pipelines[0]!;
  await waitFor('snapshot done', async () => (h.capture?.stats.confirmed ?? '') !== '');

  const N = 12; // applied
  const M = 3; // no-op updates: skipped as unchanged
  const K = 2; // rejected by the target: dead-lettered as failed
  await sql(env.sourceDb, `insert into items select g, g, 'n' || g, '2026-01-01T00:00:00Z' from generate_series(1, $1::int) g`, [N]);
  await waitFor('N applied', async () => h.applier!.stats.applied === N);
  await sql(env.sourceDb, `update items set qty = qty where id between 1 and $1::int`, [M]);
  await sql(env.sourceDb, `insert into items select 100 + g, -1, 'bad', '2026-01-01T00:00:00Z' from generate_series(1, $1::int) g`, [K]);
  await sql(env.targetDb, `update items set qty = 99, updated_at = '2026-06-01T00:00:00Z' where id = 5`);
  await sql(env.sourceDb, `update items set qty = 5, updated_at = '2026-02-01T00:00:00Z' where id = 5`);
  await sql(env.sourceDb, `insert into items values (200, 1, $1, '2026-01-01T00:00:00Z')`, ['x'.repeat(40)]);
  await waitFor('the scenario processed', async () => {
    const s = h.applier!.stats;
    return s.skippedUnchanged === M && s.deadLettered === K && s.conflicts === 1 && h.processor!.invalid.count === 1;
  });

  // The periodic writer catches up.
  const status = await waitFor('sync-status.json with every number', async () => {
    if (!existsSync(join(dir, 'sync-status.json'))) return false;
    const s = readStatus(dir);
    const p = s.pipelines.find((x) => x.name === P);
    return p && p.counts.applied === N && p.counts.skipped.unchanged === M && p.counts.deadLettered.failed === K && p.counts.validationFailures === 1 && p.counts.conflicts === 1
      && p.lag.slotBytes !== null ? s : false; // slot lag: refreshed every 5 s, absent until capture created the slot
  }, 30_000, 200);
  assert.equal(status.source, 'runtime');
  assert.equal(status.status, 'ok');
  assert.ok(!Number.isNaN(Date.parse(status.generatedAt)));
  const p = status.pipelines.find((x) => x.name === P)!;
  assert.equal(p.health, 'ok');
  assert.deepEqual(p.stages, { capture: 'running', process: 'running' }, 'the stage tasks (the sink runs inside the processor task)');
  const captured = N + M + K + 1 + 1;
  assert.equal(p.counts.read.capture, captured);
  assert.equal(p.counts.produced, captured);
  assert.equal(p.counts.skipped.stale, 0);
  assert.deepEqual(p.counts.deadLettered, { invalid: 1, failed: K });
  assert.deepEqual(p.validationFailures, { 'public.items.note.maxLength': 1 });
  assert.deepEqual(p.conflictsByTable, { 'public.items': 1 });
  assert.equal(p.counts.errors['sink/poison'], K);
  assert.equal(p.counts.errors['process/poison'], 1);
  assert.equal(p.latency['public.items']!.count, N);
  assert.ok(p.latency['public.items']!.p95! > 0);
  assert.ok(p.lag.slotBytes !== null && p.lag.slotBytes >= 0);
  assert.equal(p.lag.slotActive, true);
  assert.equal(p.lastError, null);
  assert.equal(status.dependencies[`target:${P}`], true);

  const lines = readLines(dir);
  assert.ok(lines.length >= 2, 'a line per interval');
  assert.ok(lines.every((l) => l.instance === status.instance));
  const report = readFileSync(join(dir, 'sync-report.md'), 'utf8');
  const today = new Date().toISOString().slice(0, 10);
  assert.match(report, new RegExp(`^## ${today}$`, 'm'));
  // Counts row: pipeline, captured, applied, unchanged, stale, conflicts, invalid, failed, validation failures, errors, retries.
  assert.match(report, new RegExp(`^\\| ${P} \\| ${captured} \\| ${N} \\| ${M} \\| 0 \\| 1 \\| 1 \\| ${K} \\| 1 \\| ${K + 1} \\| 0 \\|$`, 'm'), report);
  assert.match(report, new RegExp(`^\\| ${P} \\| public\\.items \\| note \\| maxLength \\| 1 \\|$`, 'm'), 'top failing rules');
  assert.match(report, new RegExp(`^\\| ${P} \\| public\\.items \\| 1 \\|$`, 'm'), 'conflicts');
  assert.match(report, new RegExp(`^\\| ${P} \\| sink \\| poison \\| ${K} \\|$`, 'm'), 'errors');
  // The latencies themselves depend on the machine's load (a speed is a benchmark's business, not a test's): formatted durations.
  assert.match(report, new RegExp(`^\\| ${P} \\| public\\.items \\| ${N} \\| [^|]+ \\| [^|]+ \\| \\d+(\\.\\d+)? (ms|s) \\| [^|]+ \\|$`, 'm'), 'slowest tables');

  // `syncline report --url` from the running instance, into its own directory.
  const dir2 = mkdtempSync(join(tmpdir(), 'syncline-reports-cli-'));
  const url = `http://127.0.0.1:${rt.httpPort}`;
  let r = await cli(['report', '--config', env.configFile, '--url', url, '--dir', dir2]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /wrote .*sync-status\.json/);
  const s2 = readStatus(dir2);
  assert.equal(s2.source, url);
  assert.equal(s2.instance, status.instance, 'the same instance id as the in-process writer');
  const p2 = s2.pipelines.find((x) => x.name === P)!;
  assert.equal(p2.counts.applied, N);
  assert.equal(p2.counts.deadLettered.failed, K);
  assert.deepEqual(p2.validationFailures, { 'public.items.note.maxLength': 1 });
  assert.deepEqual(p2.stages, { capture: 'running', process: 'running' });
  assert.match(readFileSync(join(dir2, 'sync-report.md'), 'utf8'), new RegExp(`^\\| ${P} \\| ${captured} \\| ${N} \\| ${M} \\|`, 'm'));
  assert.equal(readLines(dir2).length, 1);

  // Stop: the final write shows the stages stopped; the daily figures are not counted twice
  // although the runtime wrote many lines.
  await rt.stop();
  const fin = readStatus(dir).pipelines.find((x) => x.name === P)!;
  assert.deepEqual(fin.stages, { capture: 'stopped', process: 'stopped' });
  assert.equal(fin.health, 'stopped');

  // No instance answers: `syncline report` renders from the files there.
  const before = readLines(dir).length;
  r = await cli(['report', '--config', env.configFile, '--url', `http://127.0.0.1:${await freePort()}`, '--dir', dir]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /no syncline answers/);
  assert.equal(readLines(dir).length, before, 'nothing appended without an instance');
  const again = readFileSync(join(dir, 'sync-report.md'), 'utf8');
  assert.match(again, new RegExp(`^\\| ${P} \\| ${captured} \\| ${N} \\| ${M} \\| 0 \\| 1 \\| 1 \\| ${K} \\| 1 \\| ${K + 1} \\| 0 \\|$`, 'm'), again);
  assert.match(again, /^\| report-sync \| stopped \|/m, 'current state from sync-status.json');
});
