import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { alertExprError, evaluateCondition, parseCondition, parseDuration, referencedMetrics } from './expr.js';
import { SampleStore } from './samples.js';

function storeFor(expr: string) {
  const c = parseCondition(expr);
  const m = referencedMetrics(c);
  return { c, store: new SampleStore(m.instant, new Map([...m.ranges].map(([n, w]) => [n, w + 10_000]))) };
}

test('durations and parse errors', () => {
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.throws(() => parseDuration('5 m'));
  assert.equal(alertExprError('syncline_stage_up == 0'), undefined);
  assert.equal(alertExprError('syncline_replication_slot_lag_bytes > 1e9'), undefined);
  assert.match(alertExprError('syncline_x > 1GB')!, /plain number/);
  assert.match(alertExprError('syncline_x')!, /comparison/);
  assert.match(alertExprError('rate(syncline_x) > 1')!, /expected '\['/);
  assert.match(alertExprError('histogram_quantile(0.9, x) > 1')!, /unknown function/);
  assert.match(alertExprError('1 > 0')!, /reads no metric/);
  assert.match(alertExprError('x{a="b"} > 1 and y > 2')!, /unexpected 'and'/);
  assert.match(alertExprError('x{a=b} > 1')!, /quoted/);
});

test('instant selectors with matchers, comparison', () => {
  const { c, store } = storeFor('syncline_lag{stage="process",topic=~"t\\\\..*"} > 10');
  store.record('syncline_lag', [
    { labels: { stage: 'process', topic: 't.a' }, value: 11 },
    { labels: { stage: 'process', topic: 't.b' }, value: 10 },
    { labels: { stage: 'sink', topic: 't.a' }, value: 99 },
    { labels: { stage: 'process', topic: 'u.a' }, value: 99 },
  ], 0);
  assert.deepEqual(evaluateCondition(c, store, 0), [{ labels: { stage: 'process', topic: 't.a' }, value: 11 }]);
  const eq = storeFor('syncline_stage_up == 0');
  eq.store.record('syncline_stage_up', [{ labels: { stage: 'a' }, value: 1 }, { labels: { stage: 'b' }, value: 0 }], 0);
  assert.deepEqual(evaluateCondition(eq.c, eq.store, 0).map((e) => e.labels.stage), ['b']);
});

test('increase and rate over a window, with counter resets, no result with fewer than 2 samples', () => {
  const { c, store } = storeFor('increase(errs[1m]) > 0');
  const s = (t: number, v: number) => store.record('errs', [{ labels: { p: 'a' }, value: v }], t);
  s(0, 5);
  assert.deepEqual(evaluateCondition(c, store, 0), [], 'one sample: no increase');
  s(15_000, 7);
  assert.deepEqual(evaluateCondition(c, store, 15_000), [{ labels: { p: 'a' }, value: 2 }]);
  s(30_000, 1); // reset: +1
  assert.equal(evaluateCondition(c, store, 30_000)[0]!.value, 3);
  s(60_000, 1);
  assert.equal(evaluateCondition(c, store, 60_000)[0]!.value, 3, 'the base is the sample at the window start (t=0)');
  s(75_000, 1);
  assert.equal(evaluateCondition(c, store, 75_000)[0]!.value, 1, 'the window moved past 0→7');
  s(100_000, 1);
  assert.deepEqual(evaluateCondition(c, store, 100_000), [], 'no growth in the window: the condition clears');
  const r = storeFor('rate(errs[1m]) >= 0.5');
  r.store.record('errs', [{ labels: {}, value: 0 }], 0);
  r.store.record('errs', [{ labels: {}, value: 30 }], 30_000);
  assert.deepEqual(evaluateCondition(r.c, r.store, 30_000), [{ labels: {}, value: 0.5 }], 'rate = increase / window seconds');
});

test('sum/max by labels and arithmetic between vectors (one-to-one on equal label sets)', () => {
  const { c, store } = storeFor('sum by (pipeline) (rate(errs[1m])) / sum(rate(read{stage="process"}[1m])) by (pipeline) > 0.01');
  const rec = (t: number, e: Record<string, number>, r: Record<string, number>) => {
    store.record('errs', Object.entries(e).map(([k, v]) => ({ labels: { pipeline: k.split(':')[0]!, class: k.split(':')[1]! }, value: v })), t);
    store.record('read', Object.entries(r).map(([k, v]) => ({ labels: { pipeline: k, stage: 'process' }, value: v })), t);
  };
  rec(0, { 'a:poison': 0, 'a:retriable': 0, 'b:poison': 0 }, { a: 0, b: 0 });
  rec(60_000, { 'a:poison': 1, 'a:retriable': 1, 'b:poison': 1 }, { a: 100, b: 1000 });
  const hits = evaluateCondition(c, store, 60_000);
  assert.equal(hits.length, 1);
  assert.deepEqual(hits[0]!.labels, { pipeline: 'a' });
  assert.ok(Math.abs(hits[0]!.value - 0.02) < 1e-12);
  // Different label sets do not match (as in PromQL).
  const m = storeFor('x / y > 0');
  m.store.record('x', [{ labels: { a: '1' }, value: 1 }], 0);
  m.store.record('y', [{ labels: { a: '1', b: '2' }, value: 1 }], 0);
  assert.deepEqual(evaluateCondition(m.c, m.store, 0), []);
  const mx = storeFor('max(x) - 1 > 5');
  mx.store.record('x', [{ labels: { a: '1' }, value: 3 }, { labels: { a: '2' }, value: 7 }], 0);
  assert.deepEqual(evaluateCondition(mx.c, mx.store, 0), [{ labels: {}, value: 6 }]);
  const z = storeFor('x / y > 1');
  z.store.record('x', [{ labels: {}, value: 0 }], 0);
  z.store.record('y', [{ labels: {}, value: 0 }], 0);
  assert.deepEqual(evaluateCondition(z.c, z.store, 0), [], '0/0 is NaN: never true');
});

test('samples come from a prom-client Registry, histogram series included', async () => {
  const registry = new Registry();
  const g = new Gauge({ name: 'g', help: 'g', labelNames: ['p'], registers: [registry] });
  const h = new Histogram({ name: 'h_seconds', help: 'h', buckets: [1], registers: [registry] });
  const k = new Counter({ name: 'k_total', help: 'k', registers: [registry] });
  g.set({ p: 'a' }, 3);
  h.observe(0.5);
  h.observe(2);
  k.inc(4);
  const cond = parseCondition('g + 0 > 2');
  const store = new SampleStore(new Set(['g', 'h_seconds_count', 'k_total', 'missing']), new Map());
  await store.sample(registry, 0);
  assert.deepEqual(store.instant('g'), [{ labels: { p: 'a' }, value: 3 }]);
  assert.deepEqual(store.instant('h_seconds_count'), [{ labels: {}, value: 2 }]);
  assert.deepEqual(store.instant('k_total'), [{ labels: {}, value: 4 }]);
  assert.deepEqual(store.instant('missing'), []);
  assert.equal(evaluateCondition(cond, store, 0).length, 1);
});
