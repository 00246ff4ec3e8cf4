/**
 * Unit tests of the observability endpoints without the stack: the /health JSON shape and status
 * codes through a pipeline's life, /ready's codes and kept last error, /metrics' content type, the
 * stats-fed counters (deltas, validation counter keys), and that each Metrics has its own registry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { register as globalRegistry } from 'prom-client';
import { fatal, retriable } from '../core/errors.js';
import { newApplyStats } from '../sink/applier.js';
import { DependencyChecks } from './checks.js';
import { HealthState, healthStatusCode } from './health.js';
import { ObservabilityServer } from './http.js';
import { Metrics, type WatchedPipeline } from './metrics.js';

const log = pino({ level: 'silent' });

test('/health JSON: starting → ok → failed, with the failed stage, its class, code and message', () => {
  let now = 1_000_000;
  const h = new HealthState(() => now);
  let r = h.report();
  assert.deepEqual(r, { status: 'starting', uptimeS: 0, pipelines: [] });
  assert.equal(healthStatusCode(r), 200);

  h.taskStarted('orders-sync', 'process'); // the guard runs before the pipeline is declared
  h.pipeline('orders-sync', ['capture', 'process', 'sink']);
  h.taskStarted('orders-sync', 'capture');
  h.phase = 'running';
  now += 12_345;
  r = h.report();
  assert.deepEqual(r, { status: 'ok', uptimeS: 12.3, pipelines: [{ name: 'orders-sync', stages: ['capture', 'process', 'sink'], running: true }] });
  assert.equal(healthStatusCode(r), 200);
  assert.deepEqual(h.taskStates(), [
    { pipeline: 'orders-sync', stage: 'process', up: true },
    { pipeline: 'orders-sync', stage: 'capture', up: true },
  ]);

  h.taskEnded('orders-sync', 'process', fatal('SINK_TABLE_MISSING', 'target table public.orders does not exist'));
  r = h.report();
  assert.equal(r.status, 'failed');
  assert.equal(healthStatusCode(r), 503);
  assert.deepEqual(r.pipelines[0], {
    name: 'orders-sync',
    stages: ['capture', 'process', 'sink'],
    running: false,
    failed: [{ stage: 'process', class: 'fatal', code: 'SINK_TABLE_MISSING', error: 'target table public.orders does not exist' }],
  });
});

test('/health: stopping and stopped are 503; a clean stop is not a failure', () => {
  const h = new HealthState();
  h.pipeline('a', ['sink']);
  h.taskStarted('a', 'sink');
  h.phase = 'running';
  h.phase = 'stopping';
  h.taskEnded('a', 'sink');
  const r = h.report();
  assert.equal(r.status, 'stopping');
  assert.equal(r.pipelines[0]!.running, false);
  assert.equal(r.pipelines[0]!.failed, undefined);
  assert.equal(healthStatusCode(r), 503);
});

test('HTTP endpoints: status codes, JSON bodies, content types, 404 and 405', async (t) => {
  const health = new HealthState();
  health.pipeline('p1', ['capture', 'process', 'sink']);
  health.taskStarted('p1', 'capture');
  health.phase = 'running';
  let targetUp = true;
  const checks = new DependencyChecks(new Map([
    ['kafka', async () => undefined],
    ['target:p1', async () => {
      if (!targetUp) throw retriable('PG_CONNECTION', 'postgres sink 127.0.0.1:5432/db: ping: Connection terminated unexpectedly');
    }],
    ['redis', () => new Promise((r) => setTimeout(r, 5000))],
  ]), 200);
  const metrics = new Metrics({ pipelines: () => [], log, processMetrics: false });
  metrics.conflicts.inc({ pipeline: 'p1', table: 'public.t', strategy: 'latest-timestamp', outcome: 'target_won' });
  const server = new ObservabilityServer({
    metrics: () => metrics.render(),
    metricsContentType: metrics.contentType,
    health: () => health.report(),
    ready: () => checks.run(),
  }, log);
  const port = await server.start(0, '127.0.0.1');
  t.after(() => server.close());
  assert.ok(port > 0);
  const base = `http://127.0.0.1:${port}`;

  let res = await fetch(`${base}/health`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^application\/json/);
  const body = (await res.json()) as { status: string; uptimeS: number; pipelines: unknown[] };
  assert.equal(body.status, 'ok');
  assert.equal(typeof body.uptimeS, 'number');
  assert.deepEqual(body.pipelines, [{ name: 'p1', stages: ['capture', 'process', 'sink'], running: true }]);

  // redis never answers within the timeout: not ready, with the reason.
  res = await fetch(`${base}/ready`);
  assert.equal(res.status, 503);
  let ready = (await res.json()) as { ready: boolean; checks: Record<string, { ok: boolean; latencyMs: number; lastError: string | null; checkedAt: string }> };
  assert.equal(ready.ready, false);
  assert.deepEqual(Object.keys(ready.checks).sort(), ['kafka', 'redis', 'target:p1']);
  assert.equal(ready.checks.kafka!.ok, true);
  assert.equal(ready.checks.kafka!.lastError, null);
  assert.equal(ready.checks.redis!.ok, false);
  assert.match(ready.checks.redis!.lastError!, /no answer within/);
  assert.ok(ready.checks.redis!.latencyMs >= 200);
  assert.ok(!Number.isNaN(Date.parse(ready.checks.redis!.checkedAt)));

  targetUp = false;
  res = await fetch(`${base}/ready`);
  ready = (await res.json()) as typeof ready;
  assert.equal(ready.checks['target:p1']!.ok, false);
  assert.match(ready.checks['target:p1']!.lastError!, /Connection terminated/);
  targetUp = true;
  res = await fetch(`${base}/ready`);
  ready = (await res.json()) as typeof ready;
  assert.equal(ready.checks['target:p1']!.ok, true);
  assert.match(ready.checks['target:p1']!.lastError!, /Connection terminated/, 'the last error is kept after recovery');

  res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  assert.match(text, /# TYPE syncline_conflicts_total counter/);
  assert.match(text, /syncline_conflicts_total\{pipeline="p1",table="public.t",strategy="latest-timestamp",outcome="target_won"\} 1/);

  res = await fetch(`${base}/nope`);
  assert.equal(res.status, 404);
  res = await fetch(`${base}/health`, { method: 'POST' });
  assert.equal(res.status, 405);

  health.taskEnded('p1', 'capture', new Error('boom'));
  res = await fetch(`${base}/health`);
  assert.equal(res.status, 503);
  assert.equal(((await res.json()) as { status: string }).status, 'failed');
});

test('stats-fed counters move by deltas; validation counter keys become table, field and rule labels', async () => {
  const applier = { stats: newApplyStats() };
  const validation = { stats: { failures: new Map<string, number>() } };
  const pipelines: WatchedPipeline[] = [{ name: 'p', applier, validation }];
  const m = new Metrics({ pipelines: () => pipelines, log, processMetrics: false });
  const value = async (name: string, labels: Record<string, string>) => {
    const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name);
    const v = metric?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
    return v?.value;
  };
  applier.stats.applied = 5;
  applier.stats.skippedUnchanged = 2;
  validation.stats.failures.set('public.orders.email.format', 3);
  validation.stats.failures.set('public.orders.shipped_at,ordered_at.shipped_after_ordered', 1);
  assert.equal(await value('syncline_changes_applied_total', { pipeline: 'p', stage: 'sink' }), 5);
  m.changesApplied.inc({ pipeline: 'p', stage: 'sink' }, 0); // direct increments mix with collected ones
  applier.stats.applied = 8;
  assert.equal(await value('syncline_changes_applied_total', { pipeline: 'p', stage: 'sink' }), 8);
  assert.equal(await value('syncline_changes_skipped_total', { pipeline: 'p', stage: 'sink', kind: 'unchanged' }), 2);
  assert.equal(await value('syncline_validation_failures_total', { pipeline: 'p', table: 'public.orders', field: 'email', rule: 'format' }), 3);
  assert.equal(await value('syncline_validation_failures_total', { table: 'public.orders', field: 'shipped_at,ordered_at', rule: 'shipped_after_ordered' }), 1);
  // Every runtime has its own registry: nothing lands in prom-client's global one.
  assert.equal(globalRegistry.getSingleMetric('syncline_changes_applied_total'), undefined);
  const second = new Metrics({ pipelines: () => [], log, processMetrics: true });
  assert.ok((await second.render()).includes('syncline_process_cpu_user_seconds_total'));
});
