/**
 * `syncline report [--config FILE] [--url http://host:port] [--dir DIR]`: writes the report files
 * (src/observe/report.ts) from a running syncline's /metrics and /health: sync-status.json, a line
 * appended to history.jsonl, sync-report.md. When nothing answers at the URL (default: the config's
 * observability host and port, else http://127.0.0.1:9464), it re-renders sync-report.md from the
 * history already in the directory and leaves sync-status.json as it is.
 * The directory is --dir, else the config's reports.dir, else `reports`.
 */
import '../../connectors/index.js'; // the config spec knows the connectors' sources and targets
import { loadConfig } from '../core/config/load.js';
import type { SynclineConfig } from '../core/config/schema.js';
import { errorMessage } from '../core/errors.js';
import type { HealthReport } from '../observe/health.js';
import { renderFromFiles, writeReports } from '../observe/report.js';
import { defaultUrl } from './status.js';
import { authHint } from './auth.js';
import { apiClient, ApiUnreachable, type ApiClient, type ApiClientOptions } from './api-client.js';

export interface ReportOptions extends ApiClientOptions {
  config: string;
  url?: string;
  dir?: string;
  /** API token (default SYNCLINE_TOKEN), for an instance whose /metrics is protected (api.open without metrics). */
  token?: string;
  out?: (text: string) => void;
}

/** Writes the files; returns the exit code (0 written from a running instance or from the files there). */
export async function report(opts: ReportOptions): Promise<number> {
  const out = opts.out ?? ((t: string) => process.stdout.write(t));
  let config: SynclineConfig | undefined;
  try {
    config = loadConfig(opts.config);
  } catch (err) {
    if (!opts.url || !opts.dir) throw err;
  }
  const dir = opts.dir ?? config?.reports?.dir ?? 'reports';
  const url = (opts.url ?? defaultUrl(config)).replace(/\/+$/, '');
  const remote = await fetchMetrics(apiClient(url, opts));
  if (remote) {
    const r = writeReports(dir, remote.metrics, remote.health, url);
    out(`syncline at ${url}: ${r.status.pipelines.length} pipeline(s), status ${r.status.status}\nwrote ${r.files.join(', ')}\n`);
    return 0;
  }
  const files = renderFromFiles(dir);
  out(`no syncline answers at ${url}; rendered from the files in ${dir}\nwrote ${files.join(', ')}\n`);
  return 0;
}

async function fetchMetrics(api: ApiClient): Promise<{ metrics: string; health?: HealthReport } | null> {
  const url = api.base;
  try {
    const res = await api.fetch('/metrics', { signal: AbortSignal.timeout(30_000) });
    if (res.status !== 200) throw new Error(`GET ${url}/metrics: ${authHint(res.status) ?? `HTTP ${res.status}`}`);
    const metrics = await res.text();
    let health: HealthReport | undefined;
    try {
      health = (await (await api.fetch('/health', { signal: AbortSignal.timeout(30_000) })).json()) as HealthReport;
    } catch {
      health = undefined; // counters without the stage states
    }
    return { metrics, health };
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH') return null;
    if (err instanceof ApiUnreachable) throw err; // names the peer and the cause
    throw new Error(`cannot read the metrics at ${url}: ${errorMessage(err)}`);
  }
}
