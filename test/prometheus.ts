/**
 * A real Prometheus for integration tests: Debian's package (installed here when missing: CI runs
 * as root on a Debian machine), run as our own process on a free port with a temporary config and
 * TSDB, scraping the given targets every second. Stopped (SIGTERM, then SIGKILL) by stop().
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep, waitFor } from './helpers.js';

export const PROMETHEUS_BIN = process.env.SYNCLINE_PROMETHEUS_BIN ?? '/usr/bin/prometheus';

/**
 * Install Debian's prometheus package (prometheus + promtool) if the binary is missing. A
 * policy-rc.d keeps the package from starting its own daemon during the install; if one was
 * started anyway, it is stopped (tests run their own Prometheus on a free port).
 */
export function ensurePrometheus(): void {
  if (existsSync(PROMETHEUS_BIN)) return;
  if (process.getuid?.() !== 0) throw new Error('prometheus is missing and this is not root: apt-get install -y prometheus');
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'prometheus'], { env, stdio: 'pipe', encoding: 'utf8', timeout: 300_000 });
  try {
    let r = install();
    if (r.status !== 0) {
      spawnSync('apt-get', ['update', '-q'], { env, stdio: 'pipe', timeout: 300_000 });
      r = install();
    }
    if (r.status !== 0 || !existsSync(PROMETHEUS_BIN)) throw new Error(`cannot install prometheus (apt-get install prometheus): ${(r.stderr ?? '').slice(-2000)}`);
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
  // The package's service (where systemd or sysvinit run it) is not ours to use: stop it.
  spawnSync('sh', ['-c', 'systemctl stop prometheus 2>/dev/null || /etc/init.d/prometheus stop 2>/dev/null || true'], { stdio: 'ignore', timeout: 60_000 });
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

export interface RunningPrometheus {
  url: string;
  /** An instant query; throws on a query error. */
  query(expr: string): Promise<PromResult[]>;
  stop(): Promise<void>;
}

export async function startPrometheus(targets: string[], job = 'syncline'): Promise<RunningPrometheus> {
  ensurePrometheus();
  const dir = mkdtempSync(join(tmpdir(), 'syncline-prom-'));
  const config = join(dir, 'prometheus.yml');
  writeFileSync(config, JSON.stringify({
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    scrape_configs: [{ job_name: job, metrics_path: '/metrics', static_configs: [{ targets }] }],
  }, null, 2));
  const port = await freePort();
  const child: ChildProcess = spawn(PROMETHEUS_BIN, [
    `--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`,
    '--storage.tsdb.retention.time=1h', '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      for (let i = 0; i < 50 && child.exitCode === null && child.signalCode === null; i++) await sleep(100);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor('prometheus ready', async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${err}`);
      return (await fetch(`${url}/-/ready`)).status === 200;
    }, 30_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    url,
    async query(expr: string) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: PromResult[] } };
      if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error ?? res.status}`);
      if (body.data!.resultType !== 'vector') throw new Error(`query ${expr}: result type ${body.data!.resultType}`);
      return body.data!.result;
    },
    stop,
  };
}
