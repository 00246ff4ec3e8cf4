import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dailyTotals, parseMetricsText, quantile, renderReport, totalsFromSamples, type HistoryLine, type PipelineTotals } from './report.js';

const totals = (applied: number, rule = 0, buckets: Record<string, number> = {}): PipelineTotals => ({
  read: { capture: applied }, produced: applied, applied, skipped: {}, conflicts: {}, deadLettered: {}, errors: {}, retries: 0,
  validationFailures: rule ? { 'public.t.f.max': rule } : {}, latency: Object.keys(buckets).length ? { 'public.t': { buckets, count: buckets['+Inf'] ?? 0, sum: 1 } } : {},
});

test('daily figures: differences within an instance, restarts start over, two writers of one instance do not double-count', () => {
  const lines: HistoryLine[] = [
    { at: '2026-01-01T10:00:00Z', instance: 'start:1', pipelines: { p: totals(10, 1) } },
    { at: '2026-01-01T23:00:00Z', instance: 'start:1', pipelines: { p: totals(30, 1) } },
    { at: '2026-01-02T01:00:00Z', instance: 'start:1', pipelines: { p: totals(35, 2) } },
    { at: '2026-01-02T01:00:01Z', instance: 'start:1', pipelines: { p: totals(35, 2) } }, // `syncline report` in between
    { at: '2026-01-02T05:00:00Z', instance: 'start:2', pipelines: { p: totals(4) } }, // restarted: counters from 0
    { at: '2026-01-02T06:00:00Z', instance: 'start:2', pipelines: { p: totals(9) } },
  ];
  const days = dailyTotals(lines);
  assert.equal(days.get('2026-01-01')!.get('p')!.applied, 30);
  assert.deepEqual(days.get('2026-01-01')!.get('p')!.validationFailures, { 'public.t.f.max': 1 });
  assert.equal(days.get('2026-01-02')!.get('p')!.applied, 5 + 9);
  assert.deepEqual(days.get('2026-01-02')!.get('p')!.validationFailures, { 'public.t.f.max': 1 });
  const md = renderReport(lines, new Date('2026-01-02T07:00:00Z'));
  assert.ok(md.indexOf('## 2026-01-02') < md.indexOf('## 2026-01-01'), 'newest day first');
});

test('quantile interpolates like histogram_quantile', () => {
  const h = { buckets: { '0.1': 50, '0.5': 90, '1': 100, '+Inf': 100 }, count: 100, sum: 0 };
  assert.equal(quantile(0.5, h), 0.1);
  assert.ok(Math.abs(quantile(0.7, h)! - 0.3) < 1e-9);
  assert.equal(quantile(0.5, { buckets: {}, count: 0, sum: 0 }), null);
  assert.equal(quantile(0.99, { buckets: { '1': 0, '+Inf': 5 }, count: 5, sum: 0 }), 1, 'in +Inf: the highest finite bound');
});

test('metrics text → totals per pipeline', () => {
  const t = totalsFromSamples(parseMetricsText([
    '# HELP x', 'syncline_changes_applied_total{pipeline="a",stage="sink"} 7',
    'syncline_dead_letters_total{pipeline="a",stage="sink",kind="failed"} 2',
    'syncline_validation_failures_total{pipeline="a",table="public.t",field="",rule="decode"} 1',
    'syncline_commit_to_apply_seconds_bucket{le="0.5",pipeline="a",table="public.t"} 3',
    'syncline_commit_to_apply_seconds_bucket{le="+Inf",pipeline="a",table="public.t"} 7',
    'syncline_commit_to_apply_seconds_count{pipeline="a",table="public.t"} 7',
  ].join('\n')));
  assert.equal(t.a!.applied, 7);
  assert.deepEqual(t.a!.deadLettered, { failed: 2 });
  assert.deepEqual(t.a!.validationFailures, { 'public.t..decode': 1 });
  assert.deepEqual(t.a!.latency['public.t']!.buckets, { '0.5': 3, '+Inf': 7 });
});
