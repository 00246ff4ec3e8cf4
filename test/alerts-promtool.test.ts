/**
 * prometheus/alerts.yml (generated from configs/data-sync-config.yaml by `syncline alerts export`)
 * is valid for `promtool check rules`, and so is a file exported from rules using every construct
 * of the expression language. promtool comes from Debian's `prometheus` package, installed when
 * missing by ensurePrometheus() (test/prometheus.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/core/config/load.js';
import { renderPrometheusRules } from '../src/observe/alerts/export.js';
import { ROOT } from './helpers.js';
import { ensurePrometheus } from './prometheus.js';

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

async function ensurePromtool(): Promise<string> {
  if (!which('promtool')) ensurePrometheus(); // the same package brings promtool
  const path = which('promtool');
  assert.ok(path, 'promtool installed');
  return path;
}

function checkRules(promtool: string, file: string): { code: number; out: string } {
  const r = spawnSync(promtool, ['check', 'rules', file], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

test('promtool check rules accepts prometheus/alerts.yml and every construct of the expression language', { timeout: 600_000 }, async () => {
  const promtool = await ensurePromtool();
  const committed = checkRules(promtool, join(ROOT, 'prometheus/alerts.yml'));
  assert.equal(committed.code, 0, committed.out);
  assert.match(committed.out, /SUCCESS: \d+ rules found/);

  const config = parseConfig(JSON.stringify({
    version: 1,
    pipelines: {},
    alerts: {
      rules: [
        { name: 'Ratio', expr: 'sum by (pipeline) (rate(syncline_errors_total{class!="poison"}[5m])) / sum(rate(syncline_changes_read_total{stage="process"}[5m])) by (pipeline) > 0.01', for: '5m', severity: 'warning', summary: 'ratio {{ $value }}' },
        { name: 'Lag', expr: 'max by (pipeline, stage) (syncline_consumer_lag_messages{topic=~"syncline\\\\..*"}) > 10000', for: '2m', severity: 'warning', summary: 'lag', labels: { team: 'data' } },
        { name: 'Slot', expr: 'syncline_replication_slot_lag_bytes / 1024 - 1 > 1e6', for: '1h30m', severity: 'critical', summary: 's' },
        { name: 'Stopped', expr: 'syncline_stage_up == 0', severity: 'critical', summary: 'down' },
        { name: 'Counts', expr: 'count(increase(syncline_dead_letters_total[90s])) + min(syncline_stage_up) * 2 >= 3', severity: 'info', summary: 'x' },
        { name: 'Avg', expr: 'avg(syncline_inflight_records{stage!~"cap.*"}) != 0', for: '30s', severity: 'info', summary: 'x' },
      ],
    },
  }), 'inline.yaml', {});
  const dir = mkdtempSync(join(tmpdir(), 'syncline-rules-'));
  const file = join(dir, 'rules.yml');
  writeFileSync(file, renderPrometheusRules(config.alerts));
  const all = checkRules(promtool, file);
  assert.equal(all.code, 0, all.out);
  assert.match(all.out, /SUCCESS: 6 rules found/);
  rmSync(dir, { recursive: true, force: true });
});
