/**
 * `syncline status [--config FILE] [--url http://host:port]`: asks a running syncline for /ready
 * and /health (and /metrics, for each pipeline's source and Kafka lag) and prints them as tables;
 * exit 0 when ready, 1 when not.
 * When nothing answers at the URL (default: the config's observability host and port, else
 * http://127.0.0.1:9464), it runs the same dependency checks itself from the config (Kafka, registry,
 * Redis, every enabled pipeline's source and target) and prints those.
 */
import '../../connectors/index.js';
import { loadConfig } from '../core/config/load.js';
import type { SynclineConfig } from '../core/config/schema.js';
import { errorMessage } from '../core/errors.js';
import { KafkaClient } from '../core/kafka.js';
import { rootLogger } from '../core/log.js';
import { sinkRegistration, sourceRegistration } from '../core/registry.js';
import { dependencyProbes, DependencyChecks, watchRedis, type CheckResult, type ReadyReport } from '../observe/checks.js';
import type { HealthReport } from '../observe/health.js';
import type { Sink } from '../sink/sink.js';
import { authHint } from './auth.js';
import { apiClient, configUrl, ApiUnreachable, type ApiClient, type ApiClientOptions } from './api-client.js';
import { createRedis, isCluster } from '../core/redis.js';

export interface StatusOptions extends ApiClientOptions {
  config: string;
  url?: string;
  /** API token (default SYNCLINE_TOKEN), for an instance whose API requires one (/ready and /health may be open: api.open). */
  token?: string;
  /** Where the report goes (tests pass their own). */
  out?: (text: string) => void;
}

/** Prints the status; returns the exit code (0 ready, 1 not ready). */
export async function status(opts: StatusOptions): Promise<number> {
  const out = opts.out ?? ((t: string) => process.stdout.write(t));
  let config: SynclineConfig | undefined;
  let configError: unknown;
  try {
    config = loadConfig(opts.config);
  } catch (err) {
    configError = err;
  }
  const url = (opts.url ?? defaultUrl(config)).replace(/\/+$/, '');
  const remote = await fetchRemote(apiClient(url, opts));
  if (remote) {
    out(formatStatus(`syncline at ${url}`, remote.ready, remote.health, remote.lags));
    return remote.ready.ready ? 0 : 1;
  }
  if (!config) throw configError;
  out(`no syncline answers at ${url}; checking the dependencies of ${opts.config} from here\n\n`);
  const ready = await localChecks(config);
  out(formatStatus(`dependencies of ${opts.config}`, ready));
  return ready.ready ? 0 : 1;
}

/** The URL of the config's observability endpoints (https with observability.tls; 127.0.0.1 for a wildcard host), else http://127.0.0.1:9464. */
export const defaultUrl = configUrl;

/** /ready and /health of a running instance, or null when nothing listens there. */
async function fetchRemote(api: ApiClient): Promise<{ ready: ReadyReport & { phase?: string }; health: HealthReport; lags?: Map<string, PipelineLag> } | null> {
  const get = async (path: string) => {
    const url = api.base;
    const res = await api.fetch(path, { signal: AbortSignal.timeout(30_000) });
    const text = await res.text();
    const hint = authHint(res.status, text);
    if (hint) throw new Error(`GET ${url}${path}: ${hint}`);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new Error(`GET ${url}${path}: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`);
    }
  };
  // The lags come from /metrics (Prometheus text); a process that cannot serve them still has a status.
  const metrics = async (): Promise<string | undefined> => {
    try {
      const res = await api.fetch('/metrics', { signal: AbortSignal.timeout(30_000) });
      return res.ok ? await res.text() : undefined;
    } catch {
      return undefined;
    }
  };
  try {
    const [ready, health, text] = await Promise.all([get('/ready'), get('/health'), metrics()]);
    return { ready: ready as ReadyReport, health: health as HealthReport, ...(text !== undefined ? { lags: lagsOf(text) } : {}) };
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH') return null;
    if (err instanceof ApiUnreachable) throw err; // names the peer and the cause
    throw new Error(`cannot read the status at ${api.base}: ${errorMessage(err)}`);
  }
}

/** The dependency checks of the config's enabled pipelines, run from this process. */
export async function localChecks(config: SynclineConfig, timeoutMs = config.observability?.checkTimeoutMs ?? 3000): Promise<ReadyReport> {
  const log = rootLogger.child({ stage: 'status' });
  const kafka = new KafkaClient(config.kafka, log);
  const redis = createRedis(config.redis, { maxRetriesPerRequest: 1, enableOfflineQueue: true, once: true });
  redis.on('error', () => undefined); // reported by the check
  if (isCluster(redis)) redis.on('node error', () => undefined);
  const pipelines = Object.entries(config.pipelines).filter(([, p]) => p.enabled);
  const sources = pipelines.map(([pipeline, p]) => {
    const source = p.source as { type: string };
    return { pipeline, monitor: sourceRegistration(source.type).monitor(source, timeoutMs, pipeline) };
  });
  const targets: { pipeline: string; sink: Sink }[] = pipelines.map(([pipeline, p]) => ({
    pipeline,
    sink: sinkRegistration((p.target as { type: string }).type).create(p.target as never, { pipeline, log }),
  }));
  try {
    const checks = new DependencyChecks(dependencyProbes({ kafka, registry: config.schemaRegistry, redis: watchRedis(redis), sources, targets }), timeoutMs);
    return await checks.run();
  } finally {
    redis.disconnect();
    await Promise.allSettled([kafka.close(), ...sources.map((s) => s.monitor.close()), ...targets.map((t) => t.sink.close())]);
  }
}

/** How far a pipeline is behind, from the metrics of the process that serves it (absent: not served there). */
export interface PipelineLag {
  /** Log-based sources: WAL bytes the slot holds back (syncline_replication_slot_lag_bytes). */
  slotBytes?: number;
  /** Polling sources: seconds since the last pass Kafka holds whole (syncline_source_lag_seconds). */
  sourceSeconds?: number;
  /** Messages in Kafka not yet committed by the pipeline's consumer groups (syncline_consumer_lag_messages, summed). */
  kafkaMessages?: number;
}

/** The lags per pipeline in a Prometheus text exposition. */
export function lagsOf(text: string): Map<string, PipelineLag> {
  const out = new Map<string, PipelineLag>();
  const at = (p: string) => out.get(p) ?? (out.set(p, {}), out.get(p)!);
  for (const line of text.split('\n')) {
    const m = /^(syncline_replication_slot_lag_bytes|syncline_source_lag_seconds|syncline_consumer_lag_messages)\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!m) continue;
    const pipeline = /(?:^|,)pipeline="((?:[^"\\]|\\.)*)"/.exec(m[2]!)?.[1];
    const v = Number(m[3]);
    if (pipeline === undefined || !Number.isFinite(v)) continue;
    const l = at(pipeline);
    if (m[1] === 'syncline_replication_slot_lag_bytes') l.slotBytes = v;
    else if (m[1] === 'syncline_source_lag_seconds') l.sourceSeconds = v;
    else l.kafkaMessages = (l.kafkaMessages ?? 0) + v;
  }
  return out;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function sourceLag(l?: PipelineLag): string {
  if (!l) return '-';
  const parts = [l.slotBytes !== undefined ? `${formatBytes(l.slotBytes)} WAL` : '', l.sourceSeconds !== undefined ? `${l.sourceSeconds.toFixed(1)} s` : ''].filter(Boolean);
  return parts.length > 0 ? parts.join(', ') : '-';
}

/** A readable table of the checks (and the pipelines, when /health is there, with their lags from /metrics). */
export function formatStatus(title: string, ready: ReadyReport & { phase?: string }, health?: HealthReport, lags?: Map<string, PipelineLag>): string {
  const lines: string[] = [];
  const state = ready.ready ? 'READY' : 'NOT READY';
  const extra = [ready.phase && ready.phase !== 'running' ? `phase ${ready.phase}` : '', health ? `health ${health.status}, up ${formatUptime(health.uptimeS)}` : '']
    .filter(Boolean)
    .join('; ');
  lines.push(`${title}: ${state}${extra ? ` (${extra})` : ''}`, '');
  const rows: string[][] = [['DEPENDENCY', 'STATUS', 'LATENCY', 'CHECKED', 'LAST ERROR']];
  for (const [name, c] of Object.entries(ready.checks)) rows.push([name, checkState(c), c.latencyMs == null ? '-' : `${c.latencyMs} ms`, c.checkedAt ?? '-', lastError(c)]);
  lines.push(...table(rows, [false, false, true, false, false]));
  if (health && health.pipelines.length > 0) {
    lines.push('');
    const prow: string[][] = [['PIPELINE', 'RUNNING', 'STAGES', 'SOURCE LAG', 'KAFKA LAG', 'FAILED']];
    for (const p of health.pipelines) {
      const l = lags?.get(p.name);
      prow.push([p.name, p.running ? (p.standby?.length ? `standby (${p.standby.map((x) => x.stage).join(', ')})` : 'yes') : 'no', p.stages.join(', '), sourceLag(l), l?.kafkaMessages !== undefined ? `${l.kafkaMessages} msgs` : '-', (p.failed ?? []).map((f) => `${f.stage}: ${f.code}: ${f.error}`).join('; ')]);
    }
    lines.push(...table(prow, [false, false, false, true, true, false]));
  }
  return lines.join('\n') + '\n';
}

function checkState(c: CheckResult): string {
  if (c.checkedAt === null) return 'unchecked';
  return c.ok ? 'ok' : 'DOWN';
}

function lastError(c: CheckResult): string {
  if (!c.lastError) return '';
  const msg = c.lastError.replace(/\s+/g, ' ');
  return c.ok && c.lastErrorAt ? `(at ${c.lastErrorAt}) ${msg}` : msg;
}

function formatUptime(s: number): string {
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function table(rows: string[][], right: boolean[]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : right[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}
