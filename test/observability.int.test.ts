/**
 * Metrics, health and readiness on the real stack.
 *  1. A scripted scenario with known numbers (inserts applied, no-op updates skipped as unchanged,
 *     rows the target's CHECK rejects, one latest-timestamp conflict, one undecodable message written
 *     straight into the change topic, one row a validation rule refuses): /metrics shows exactly those numbers per pipeline and stage,
 *     the latency histogram counts every applied change, slot lag and consumer lag series exist, and
 *     no label value carries a key or a column value.
 *  2. /ready turns red when the target or Redis becomes unreachable (each behind a TCP proxy; the
 *     shared servers are never stopped) and green again, with the last error kept; /health stays
 *     green meanwhile; `syncline status` says the same with its exit code, and checks the
 *     dependencies itself when no instance answers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { Kafka, logLevel } from 'kafkajs';
import { parseConfig } from '../src/core/config/load.js';
import { topics } from '../src/core/kafka.js';
import type { Runtime } from '../src/runtime.js';
import { freePort, sleep, spawnCli, sql, startRuntime, testEnv, type TestEnv, waitFor } from './helpers.js';
import { TcpProxy } from './tcp-proxy.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text format → samples. */
function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    assert.ok(m, `unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

async function scrape(rt: Runtime): Promise<{ samples: Sample[]; contentType: string }> {
  const res = await fetch(`http://127.0.0.1:${rt.httpPort}/metrics`);
  assert.equal(res.status, 200);
  return { samples: parseMetrics(await res.text()), contentType: res.headers.get('content-type') ?? '' };
}

/** The value of the one sample of `name` whose labels include `labels` (undefined when none). */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(hits.length <= 1, `${name} ${JSON.stringify(labels)} matches ${hits.length} series`);
  return hits[0]?.value;
}

function enableHttp(env: TestEnv): void {
  env.config.observability = { enabled: true, host: '127.0.0.1', port: 0, checkTimeoutMs: 2000 };
}

/** Labels syncline's own metrics may carry (process/nodejs default metrics have their standard ones). */
const ALLOWED_LABELS = new Set(['pipeline', 'stage', 'table', 'topic', 'partition', 'kind', 'strategy', 'outcome', 'class', 'rule', 'field', 'dependency', 'le']);

test('metrics move exactly as a scripted scenario says: applied, unchanged, rejected, conflict, undecodable, invalid', async (t) => {
  const P = 'items-sync';
  const env = await testEnv([{
    name: P,
    tables: [{ source: 'public.items', validate: { fields: { note: { maxLength: 30 } } } }],
    conflict: { strategy: 'latest-timestamp', field: 'updated_at' },
  }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, `create table items (id int primary key, qty int not null, note text, updated_at timestamptz not null)`);
  // The target refuses negative quantities.
  await sql(env.targetDb, `create table items (id int primary key, qty int not null check (qty >= 0), note text, updated_at timestamptz not null)`);
  enableHttp(env);
  const { rt } = await startRuntime(env);
  const h = rt.pipelines[0]!;
  const stats = () => h.applier!.stats;
  assert.ok(rt.httpPort && rt.httpPort > 0, 'the server is bound to an ephemeral port');
  await waitFor('snapshot done', async () => (h.capture?.stats.confirmed ?? '') !== '');

  // Keys and values no metric label may ever show.
  const KEY = 7340000;
  const SECRET = 'secret-note-zqx';
  const N = 20; // applied
  const M = 3; // no-op updates: skipped as unchanged
  const K = 2; // rejected by the target's CHECK: dead-lettered as failed

  await sql(env.sourceDb, `insert into items select $1::int + g, g, $2 || g, '2026-01-01T00:00:00Z' from generate_series(1, $3::int) g`, [KEY, SECRET, N]);
  await waitFor('N applied', async () => stats().applied === N);

  await sql(env.sourceDb, `update items set qty = qty where id between $1::int + 1 and $1::int + $2::int`, [KEY, M]);
  await waitFor('M skipped as unchanged', async () => stats().skippedUnchanged === M);

  await sql(env.sourceDb, `insert into items select $1::int + 100 + g, -1, $2, '2026-01-01T00:00:00Z' from generate_series(1, $3::int) g`, [KEY, SECRET, K]);
  await waitFor('K dead-lettered', async () => stats().deadLettered === K);

  // The target row is edited independently with a later timestamp; the older source change loses.
  await sql(env.targetDb, `update items set qty = 99, updated_at = '2026-06-01T00:00:00Z' where id = $1`, [KEY + 10]);
  await sql(env.sourceDb, `update items set qty = 5, updated_at = '2026-02-01T00:00:00Z' where id = $1`, [KEY + 10]);
  await waitFor('the conflict', async () => stats().conflicts === 1);

  // Garbage bytes straight into the change topic: undecodable, dead-lettered as invalid.
  const kafka = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic: topics.cdc(env.prefix, 'public', 'items'), messages: [{ key: Buffer.from('junk'), value: Buffer.from('definitely not avro') }] });
  await producer.disconnect();
  await waitFor('the poison message', async () => h.processor!.invalid.count === 1);

  // A row the validation rules refuse (note too long): dead-lettered as invalid, counted under its rule.
  await sql(env.sourceDb, `insert into items values ($1, 1, $2, '2026-01-01T00:00:00Z')`, [KEY + 200, SECRET + 'x'.repeat(40)]);
  await waitFor('the invalid row', async () => h.processor!.invalid.count === 2);

  const { samples, contentType } = await scrape(rt);
  assert.match(contentType, /^text\/plain; version=0\.0\.4; charset=utf-8$/);
  const v = (name: string, labels: Record<string, string> = {}) => value(samples, name, { pipeline: P, ...labels });
  const captured = N + M + K + 1 + 1; // + the conflicting update + the invalid row
  assert.equal(v('syncline_changes_read_total', { stage: 'capture' }), captured, 'capture read every change');
  assert.equal(v('syncline_changes_produced_total', { stage: 'capture' }), captured);
  assert.equal(v('syncline_changes_read_total', { stage: 'process' }), captured + 1, 'the processor also read the garbage message');
  assert.equal(v('syncline_changes_read_total', { stage: 'sink' }), captured - 1, 'every valid change reached the sink');
  assert.equal(v('syncline_changes_applied_total', { stage: 'sink' }), N);
  assert.equal(v('syncline_changes_skipped_total', { stage: 'sink', kind: 'unchanged' }), M);
  assert.equal(v('syncline_changes_skipped_total', { stage: 'sink', kind: 'stale' }), 0);
  assert.equal(v('syncline_conflicts_total', { table: 'public.items', strategy: 'latest-timestamp', outcome: 'target_won' }), 1);
  assert.equal(v('syncline_dead_letters_total', { stage: 'sink', kind: 'failed' }), K);
  assert.equal(v('syncline_dead_letters_total', { stage: 'process', kind: 'invalid' }), 2);
  assert.equal(v('syncline_validation_failures_total', { table: 'public.items', field: '', rule: 'decode' }), 1);
  assert.equal(v('syncline_validation_failures_total', { table: 'public.items', field: 'note', rule: 'maxLength' }), 1);
  assert.equal(samples.filter((x) => x.name === 'syncline_validation_failures_total').length, 2);
  assert.equal(v('syncline_errors_total', { stage: 'sink', class: 'poison' }), K);
  assert.equal(v('syncline_errors_total', { stage: 'process', class: 'poison' }), 2);
  assert.equal(v('syncline_retries_total', { stage: 'sink' }) ?? 0, 0, 'nothing was retried');
  assert.equal(v('syncline_commit_to_apply_seconds_count', { table: 'public.items' }), N, 'one latency observation per applied change');
  assert.ok(v('syncline_commit_to_apply_seconds_sum', { table: 'public.items' })! > 0);
  assert.ok(v('syncline_sink_round_trip_seconds_count', { kind: 'write', outcome: 'ok' })! >= 1);
  assert.ok(v('syncline_sink_round_trip_seconds_count', { kind: 'read', outcome: 'ok' })! >= 1, 'conflict reads are timed');
  assert.ok(v('syncline_redis_round_trip_seconds_count', { kind: 'read', outcome: 'ok' })! >= 1);
  assert.ok(v('syncline_redis_round_trip_seconds_count', { kind: 'commit', outcome: 'ok' })! >= 1);
  assert.ok(v('syncline_batch_records_count', { stage: 'process' })! >= 1);
  assert.equal(v('syncline_inflight_records', { stage: 'process' }), 0);
  assert.equal(v('syncline_stage_up', { stage: 'capture' }), 1);
  assert.equal(v('syncline_stage_up', { stage: 'process' }), 1);
  for (const dep of ['kafka', 'registry', 'redis', `source:${P}`, `target:${P}`]) assert.equal(value(samples, 'syncline_dependency_up', { dependency: dep }), 1, dep);

  // Slot lag and retained WAL of the pipeline's slot; consumer lag per topic partition.
  assert.ok(v('syncline_replication_slot_lag_bytes')! >= 0);
  assert.ok(v('syncline_replication_slot_retained_wal_bytes')! >= 0);
  assert.equal(v('syncline_replication_slot_active'), 1);
  const cdcTopic = topics.cdc(env.prefix, 'public', 'items');
  const lag = samples.filter((s) => s.name === 'syncline_consumer_lag_messages' && s.labels.pipeline === P);
  assert.deepEqual(lag.map((s) => `${s.labels.stage}/${s.labels.topic}/${s.labels.partition}`).sort(), [0, 1, 2].map((p) => `process/${cdcTopic}/${p}`));
  assert.ok(lag.every((s) => s.value >= 0));
  await waitFor('consumer lag 0 once everything is committed', async () => {
    const now = (await scrape(rt)).samples.filter((s) => s.name === 'syncline_consumer_lag_messages' && s.labels.pipeline === P);
    return now.length === 3 && now.every((s) => s.value === 0);
  }, 30_000, 1000);

  // No label carries a key or a value, and syncline's own metrics use only the allowed label names.
  for (const s of samples) {
    for (const [k, val] of Object.entries(s.labels)) {
      assert.ok(!val.includes(String(KEY).slice(0, 4)) && !val.toLowerCase().includes('secret') && !val.includes('junk') && !val.includes('avro'), `${s.name} label ${k}="${val}" carries record data`);
      if (!/^syncline_(process|nodejs)_/.test(s.name)) assert.ok(ALLOWED_LABELS.has(k), `${s.name} has label ${k}`);
    }
  }
  const ours = new Set(samples.map((s) => s.name).filter((n) => !/^syncline_(process|nodejs)_/.test(n)));
  assert.ok([...ours].every((n) => n.startsWith('syncline_')), 'every metric is named syncline_*');

  // /health while all is well.
  const res = await fetch(`http://127.0.0.1:${rt.httpPort}/health`);
  assert.equal(res.status, 200);
  const pipes = ((await res.json()) as { pipelines: { lastDeadLetter?: { code: string; stage: string } }[] }).pipelines;
  assert.deepEqual(pipes.map(({ lastDeadLetter: _, ...p }) => p), [{ name: P, stages: ['capture', 'process', 'sink'], running: true }]);
  // The scenario's last dead letter (the invalid record), as /health tells it (masked text, src/core/redact.ts).
  assert.deepEqual([pipes[0]!.lastDeadLetter?.code, pipes[0]!.lastDeadLetter?.stage], ['VALIDATION_FAILED', 'process']);
});

type Ready = { ready: boolean; checks: Record<string, { ok: boolean; latencyMs: number | null; lastError: string | null; checkedAt: string | null }> };

async function ready(rt: Runtime): Promise<{ status: number; body: Ready }> {
  const res = await fetch(`http://127.0.0.1:${rt.httpPort}/ready`);
  return { status: res.status, body: (await res.json()) as Ready };
}

/** A port nothing listens on. */

/** Run `syncline status …`; its exit code and what it printed. */
async function statusCli(args: string[]): Promise<{ code: number | string; out: string }> {
  const child: ChildProcess = spawnCli(['status', ...args]);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = await Promise.race([once(child, 'exit'), sleep(60_000).then(() => ['timeout'])]);
  return { code: code as number | string, out: out + (child as ChildProcess & { stderrTail(): string }).stderrTail() };
}

test('/ready turns red when the target or Redis is unreachable and green again; syncline status agrees', async (t) => {
  const P = 'jobs-sync';
  const env = await testEnv([{ name: P, tables: [{ source: 'public.jobs' }] }]);
  const pgProxy = new TcpProxy(5432);
  const redisProxy = new TcpProxy(6379);
  t.after(async () => {
    await env.cleanup();
    await pgProxy.stop();
    await redisProxy.stop();
  });
  const ddl = `create table jobs (id int primary key, state text not null, updated_at timestamptz not null default clock_timestamp())`;
  await sql(env.sourceDb, ddl);
  await sql(env.targetDb, ddl);
  const pgPort = await pgProxy.start();
  const redisPort = await redisProxy.start();
  // Target and Redis through the proxies (the source stays direct); the file too, for the CLI.
  const doc = JSON.parse(JSON.stringify(env.config, (_k, v) => (typeof v === 'bigint' ? Number(v) : v)));
  doc.pipelines[P].target.connection.port = pgPort;
  doc.redis.url = `redis://127.0.0.1:${redisPort}`;
  doc.observability = { host: '127.0.0.1', port: 0, checkTimeoutMs: 2000 };
  const text = JSON.stringify(doc, null, 2);
  writeFileSync(env.configFile, text);
  env.config = parseConfig(text, env.configFile, {});
  const { rt } = await startRuntime(env);
  const url = `http://127.0.0.1:${rt.httpPort}`;

  await waitFor('ready', async () => (await ready(rt)).status === 200, 30_000);
  let r = await ready(rt);
  assert.equal(r.body.ready, true);
  assert.deepEqual(Object.keys(r.body.checks).sort(), ['kafka', 'redis', 'registry', `source:${P}`, `target:${P}`]);
  for (const [name, c] of Object.entries(r.body.checks)) {
    assert.equal(c.ok, true, name);
    assert.equal(typeof c.latencyMs, 'number');
    assert.equal(c.lastError, null);
  }
  let cli = await statusCli(['--url', url]);
  assert.equal(cli.code, 0, cli.out);
  assert.match(cli.out, /: READY/);
  assert.match(cli.out, new RegExp(`target:${P}\\s+ok`));
  assert.match(cli.out, new RegExp(`${P}\\s+yes\\s+capture, process, sink`));
  assert.match(cli.out, /PIPELINE\s+RUNNING\s+STAGES\s+SOURCE LAG\s+KAFKA LAG/);
  assert.match(cli.out, new RegExp(`${P}\\s+yes\\s+capture, process, sink\\s+[\\d.]+ (B|KiB|MiB) WAL`), 'the slot\'s lag from /metrics');

  // The target goes away.
  pgProxy.block();
  r = await waitFor('not ready (target down)', async () => {
    const x = await ready(rt);
    return x.status === 503 ? x : false;
  }, 30_000);
  assert.equal(r.body.ready, false);
  const target = r.body.checks[`target:${P}`]!;
  assert.equal(target.ok, false);
  assert.match(target.lastError!, new RegExp(`postgres sink 127\\.0\\.0\\.1:${pgPort}/${env.targetDb}: ping`));
  for (const name of ['kafka', 'registry', 'redis', `source:${P}`]) assert.equal(r.body.checks[name]!.ok, true, name);
  assert.equal((await fetch(`${url}/health`)).status, 200, 'the process is alive: /health stays green');
  cli = await statusCli(['--url', url]);
  assert.equal(cli.code, 1, cli.out);
  assert.match(cli.out, /NOT READY/);
  assert.match(cli.out, new RegExp(`target:${P}\\s+DOWN`));
  await waitFor('syncline_dependency_up 0 for the target', async () => value((await scrape(rt)).samples, 'syncline_dependency_up', { dependency: `target:${P}` }) === 0, 20_000, 1000);

  pgProxy.unblock();
  r = await waitFor('ready again (target back)', async () => {
    const x = await ready(rt);
    return x.status === 200 ? x : false;
  }, 30_000);
  assert.equal(r.body.checks[`target:${P}`]!.ok, true);
  assert.equal(r.body.checks[`target:${P}`]!.lastError, target.lastError, 'the last error is kept');

  // Redis goes away.
  redisProxy.block();
  r = await waitFor('not ready (redis down)', async () => {
    const x = await ready(rt);
    return x.status === 503 ? x : false;
  }, 30_000);
  assert.equal(r.body.checks.redis!.ok, false);
  assert.match(r.body.checks.redis!.lastError!, /^redis: /);
  assert.equal(r.body.checks[`target:${P}`]!.ok, true);
  redisProxy.unblock();
  r = await waitFor('ready again (redis back)', async () => {
    const x = await ready(rt);
    return x.status === 200 ? x : false;
  }, 30_000);
  assert.equal(r.body.checks.redis!.ok, true);

  // The pipeline still works end to end after both outages.
  await sql(env.sourceDb, `insert into jobs (id, state) values (1, 'after')`);
  await waitFor('the change to arrive', async () => (await sql(env.targetDb, `select count(*)::int n from jobs`)).rows[0].n === 1, 30_000);

  // No instance at the URL: status checks the config's dependencies itself.
  const closed = await freePort();
  cli = await statusCli(['--config', env.configFile, '--url', `http://127.0.0.1:${closed}`]);
  assert.equal(cli.code, 0, cli.out);
  assert.match(cli.out, new RegExp(`no syncline answers at http://127\\.0\\.0\\.1:${closed}`));
  assert.match(cli.out, /READY/);
  for (const name of ['kafka', 'registry', 'redis', `source:${P}`, `target:${P}`]) assert.match(cli.out, new RegExp(`${name}\\s+ok`));
});
