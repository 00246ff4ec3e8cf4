/**
 * prometheus/alerts.yml (generated from configs/data-sync-config.yaml by `syncline alerts export`)
 * is valid for `promtool check rules`, and so is a file exported from rules using every construct
 * of the expression language. promtool comes from Debian's `prometheus` package: when it is missing
 * and we are root, the test installs it (apt-get install, apt-get update only if needed), with a
 * policy-rc.d that keeps the package from starting the Prometheus daemon; if a daemon was started
 * anyway by the install, it is stopped through the package's init script so port 9090 stays free.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/core/config/load.js';
import { renderPrometheusRules } from '../src/observe/alerts/export.js';
import { ROOT } from './helpers.js';

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

const portOpen = (port: number) => new Promise<boolean>((resolve) => {
  const s = net.connect(port, '127.0.0.1');
  s.once('connect', () => { s.destroy(); resolve(true); });
  s.once('error', () => resolve(false));
});

async function ensurePromtool(): Promise<string> {
  const found = which('promtool');
  if (found) return found;
  if (process.getuid?.() !== 0) throw new Error('promtool is missing and this is not root: apt-get install -y prometheus');
  const busyBefore = await portOpen(9090);
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 }); // no service starts during the install
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'prometheus'], { env, encoding: 'utf8', timeout: 300_000 });
  try {
    let r = install();
    if (r.status !== 0) {
      execFileSync('apt-get', ['update', '-q'], { env, stdio: 'ignore', timeout: 300_000 });
      r = install();
    }
    assert.equal(r.status, 0, `apt-get install prometheus failed:\n${r.stdout}\n${r.stderr}`);
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
  if (!busyBefore && (await portOpen(9090)) && existsSync('/etc/init.d/prometheus')) {
    spawnSync('/etc/init.d/prometheus', ['stop'], { stdio: 'ignore', timeout: 60_000 });
  }
  if (!busyBefore) assert.equal(await portOpen(9090), false, 'the package install left a Prometheus listening on 9090');
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
