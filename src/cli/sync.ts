/**
 * `syncline sync run|status|list`: runs of scheduled and manual pipelines (src/sync/).
 *  - run and status talk to the running syncline that owns the pipeline (its HTTP endpoint,
 *    config `observability` host and port, or --url), like the API: POST /api/pipelines/:name/runs,
 *    GET /api/runs/:id (src/sync/api.ts). A run is started by the process that runs the pipeline's
 *    stages; the CLI only asks.
 *  - list (and status without a running service) read the record topic `<prefix>.sync.runs`
 *    directly from Kafka (src/sync/runs.ts): no service needed.
 * Exit codes: 0 done (a waited-for run succeeded), 1 error or a run that did not succeed, 3 unknown
 * pipeline or run, 4 a run of the pipeline still goes.
 */
import { userInfo, hostname } from 'node:os';
import type { OptionValues } from 'commander';
import { loadConfig } from '../core/config/load.js';
import { authHint } from './auth.js';
import { apiClient, type ApiClientOptions } from './api-client.js';
import type { SynclineConfig } from '../core/config/schema.js';
import { KafkaClient } from '../core/kafka.js';
import { sourceRegistration } from '../core/registry.js';
import '../../connectors/index.js';
import { rootLogger } from '../core/log.js';
import { RunStore, type SyncRun } from '../sync/runs.js';

const who = () => {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return 'cli';
  }
};

export class CliError extends Error {
  constructor(readonly exit: number, message: string) {
    super(message);
  }
}

export function serviceUrl(config: SynclineConfig, url?: string): string {
  if (url) return url.replace(/\/$/, '');
  const o = config.observability;
  if (!o || !o.enabled) throw new CliError(1, 'the config has no observability section: the running syncline serves no API (set observability, or pass --url)');
  if (o.port === 0) throw new CliError(1, 'observability.port is 0 (any free port): pass --url http://HOST:PORT');
  const host = o.host === '0.0.0.0' || o.host === '::' ? '127.0.0.1' : o.host;
  return `${o.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${o.port}`;
}

export async function call(base: string, path: string, o: ApiClientOptions, init: RequestInit = {}): Promise<{ status: number; body: unknown }> {
  let res: Response;
  try {
    res = await apiClient(base, o).fetch(path, init);
  } catch (err) {
    const refused = (err as { code?: string }).code === 'ECONNREFUSED';
    throw new CliError(1, `${(err as Error).message}${refused ? ': is it running with this config?' : ''}`);
  }
  const body: unknown = await res.json().catch(() => ({}));
  const hint = authHint(res.status, (body as { error?: string }).error);
  if (hint) throw new CliError(1, hint);
  return { status: res.status, body };
}

const bar = (done: number, total: number, width = 30) => {
  const f = total === 0 ? 1 : Math.min(1, done / total);
  return `[${'#'.repeat(Math.round(f * width)).padEnd(width, '.')}] ${String(Math.round(f * 100)).padStart(3)}%`;
};

export function runLine(r: SyncRun): string {
  const c = r.counts;
  const took = r.endedAt ? `${((Date.parse(r.endedAt) - Date.parse(r.startedAt)) / 1000).toFixed(1)}s` : '-';
  return [r.id, r.pipeline, r.trigger, r.by, r.startedAt.slice(0, 19) + 'Z', took, r.outcome, `read=${c.read} applied=${c.applied} unchanged=${c.unchanged} conflicts=${c.conflicts} dead-lettered=${c.deadLettered}`].join('  ');
}

function details(r: SyncRun): string {
  return [
    `run:          ${r.id}`,
    `pipeline:     ${r.pipeline}${r.tables ? ` (tables ${r.tables.join(', ')})` : ''}`,
    `trigger:      ${r.trigger} by ${r.by}${r.fire ? ` (fire ${r.fire}${r.missed ? `, standing for ${r.missed} missed fires` : ''})` : ''}`,
    `started:      ${r.startedAt}`,
    `ended:        ${r.endedAt ?? '-'}`,
    `phase:        ${r.phase ?? '-'}${r.progress ? ` ${r.progress.done}/${r.progress.total}` : ''}`,
    `source end:   ${r.sourceEnd ?? '-'}`,
    `counts:       read ${r.counts.read}, applied ${r.counts.applied}, unchanged ${r.counts.unchanged}, conflicts ${r.counts.conflicts}, dead-lettered ${r.counts.deadLettered}`,
    `outcome:      ${r.outcome}${r.error ? ` — ${r.error}` : ''}`,
    ...(r.held?.length ? [`held:         ${r.held.map((h) => `${h.table} (schema change ${h.change}: syncline schema approve|reject ${h.change})`).join(', ')}`] : []),
  ].join('\n');
}

async function withStore<T>(config: SynclineConfig, fn: (s: RunStore) => Promise<T>): Promise<T> {
  const kafka = new KafkaClient(config.kafka, rootLogger.child({ stage: 'cli' }));
  try {
    return await fn(new RunStore(kafka, config.topicPrefix));
  } finally {
    await kafka.close();
  }
}

/**
 * What the pipeline's source retains for it now (a PostgreSQL slot's WAL: nothing of a bounded
 * pipeline runs between runs, so it grows until the next run); null when unknown.
 */
async function retained(config: SynclineConfig, pipeline: string): Promise<number | null> {
  const source = config.pipelines[pipeline]!.source as { type: string };
  const monitor = sourceRegistration(source.type).monitor(source, 3000, pipeline);
  try {
    return (await monitor.lag())?.retainedBytes ?? null;
  } catch {
    return null;
  } finally {
    await monitor.close().catch(() => undefined);
  }
}

/** Follow a run until it ends: a progress bar on a terminal, a line per phase otherwise. */
async function follow(base: string, id: string, json: boolean, api: ApiClientOptions): Promise<SyncRun> {
  const tty = process.stderr.isTTY === true && !json;
  let lastPhase = '';
  for (;;) {
    const { status, body } = await call(base, `/api/runs/${encodeURIComponent(id)}`, api);
    if (status !== 200) throw new CliError(status === 404 ? 3 : 1, (body as { error?: string }).error ?? `HTTP ${status}`);
    const r = body as SyncRun;
    if (tty) {
      const p = r.progress;
      process.stderr.write(`\r${r.id} ${(r.phase ?? 'starting').padEnd(8)} ${p ? `${bar(p.done, p.total)} ${p.done}/${p.total}` : ''}`.padEnd(100));
    } else if (!json && r.phase && r.phase !== lastPhase) process.stderr.write(`${r.id}: ${r.phase}\n`);
    lastPhase = r.phase ?? '';
    if (r.outcome !== 'running') {
      if (tty) process.stderr.write('\n');
      return r;
    }
    await new Promise((res) => setTimeout(res, 500));
  }
}

function done(r: SyncRun, json: boolean): void {
  process.stdout.write((json ? JSON.stringify(r, null, 2) : details(r)) + '\n');
  if (r.outcome !== 'succeeded') process.exitCode = 1;
}

async function guard(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    process.stderr.write(`syncline sync: ${err.message}\n`);
    process.exitCode = err.exit;
  }
}

/** The actions of `syncline sync …` (their options: ./commands/sync.ts, loaded without this module). */
export async function syncRun(pipeline: string, o: OptionValues): Promise<void> {
  await guard(async () => {
    const config = loadConfig(o.config);
    const p = config.pipelines[pipeline];
    if (!p) throw new CliError(3, `no pipeline '${pipeline}' in the config (have: ${Object.keys(config.pipelines).join(', ')})`);
    if (p.mode === 'realtime') throw new CliError(1, `pipeline ${pipeline} is in mode realtime: it has no runs (set mode: manual or scheduled)`);
    const tables = (o.table as string[] | undefined)?.map((t) => {
      const found = p.tables.find((x) => x.source === t || x.source.endsWith(`.${t}`));
      if (!found) throw new CliError(3, `pipeline ${pipeline} has no table '${t}' (have: ${p.tables.map((x) => x.source).join(', ')})`);
      return found.source;
    });
    const base = serviceUrl(config, o.url);
    const { status, body } = await call(base, `/api/pipelines/${encodeURIComponent(pipeline)}/runs`, o, {
      // x-syncline-user counts only where the API takes no credentials (api.auth none); else the token names the actor.
      method: 'POST', headers: { 'content-type': 'application/json', 'x-syncline-user': o.by ?? who(), 'x-syncline-trigger': 'manual' },
      body: JSON.stringify({ ...(tables ? { tables } : {}), ...(o.full ? { full: true } : {}) }),
    });
    if (status !== 202) throw new CliError(status === 404 ? 3 : status === 409 ? 4 : 1, (body as { error?: string }).error ?? `HTTP ${status}`);
    const run = body as SyncRun;
    if (!o.wait) {
      process.stdout.write(o.json ? JSON.stringify(run, null, 2) + '\n' : `${run.id}\n`);
      return;
    }
    done(await follow(base, run.id, o.json === true, o), o.json === true);
  });
}

export async function syncStatus(id: string | undefined, o: OptionValues): Promise<void> {
  await guard(async () => {
    const config = loadConfig(o.config);
    if (id) {
      let base: string | undefined;
      try {
        base = serviceUrl(config, o.url);
      } catch {
        base = undefined;
      }
      if (base && o.wait) return done(await follow(base, id, o.json === true, o), o.json === true);
      const live = base ? await call(base, `/api/runs/${encodeURIComponent(id)}`, o).catch(() => undefined) : undefined;
      const r = live?.status === 200 ? (live.body as SyncRun) : await withStore(config, (s) => s.run(id));
      if (!r) throw new CliError(3, `no run '${id}'`);
      process.stdout.write((o.json ? JSON.stringify(r, null, 2) : details(r)) + '\n');
      return;
    }
    const runs = await withStore(config, (s) => s.runs());
    const latest = [];
    for (const n of Object.keys(config.pipelines).filter((x) => config.pipelines[x]!.mode !== 'realtime')) {
      latest.push({ pipeline: n, mode: config.pipelines[n]!.mode, last: runs.find((r) => r.pipeline === n), retainedBytes: await retained(config, n) });
    }
    if (o.json) process.stdout.write(JSON.stringify(latest, null, 2) + '\n');
    else {
      process.stdout.write(latest.length === 0 ? 'no pipeline in mode scheduled or manual\n' : latest.map((l) => [
        `${l.pipeline} (${l.mode}): ${l.last ? runLine(l.last) : 'no run yet'}`,
        ...(l.retainedBytes !== null ? [`  between runs the source retains ${l.retainedBytes} bytes of log for it until the next run`] : []),
      ].join('\n')).join('\n') + '\n');
    }
  });
}

export async function syncList(o: OptionValues): Promise<void> {
  await guard(async () => {
    const config = loadConfig(o.config);
    const runs = (await withStore(config, (s) => s.runs(o.pipeline))).slice(0, o.limit);
    if (o.json) process.stdout.write(JSON.stringify(runs, null, 2) + '\n');
    else process.stdout.write(runs.length === 0 ? 'no runs\n' : runs.map(runLine).join('\n') + `\n${runs.length} run(s)\n`);
  });
}
