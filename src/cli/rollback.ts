/**
 * `syncline rollback --pipeline P --to ISO [--table T] [--key K] [--dry-run] [--pause] [--json]`
 * asks the running syncline that runs the pipeline's sink (its HTTP
 * API, config `observability`, or --url; role admin) to put the target back to its state at an
 * instant (src/history/rollback.ts: compensating writes through that process's Applier, where the
 * version state, the history and the metrics are) — the CLI only asks, as `syncline sync run` does.
 * --dry-run prints per key the table, the key, the action and the field diff current → target
 * (values masked by the masking policy unless the token is an admin's) and writes nothing.
 * --pause pauses the pipeline (as `syncline pipeline pause`) until `syncline pipeline resume NAME`.
 * Exit codes: 0 done (or nothing to do), 1 refused (the history does not reach back; no such
 * pipeline or table; not allowed) or some keys not written.
 */
import '../../connectors/index.js'; // the config spec knows the connectors' sources and targets
import { hostname, userInfo } from 'node:os';
import { loadConfig } from '../core/config/load.js';
import { fatal } from '../core/errors.js';
import type { Json } from '../history/history.js';
import type { RollbackResult } from '../history/rollback.js';
import { apiClient, configUrl, type ApiClientOptions } from './api-client.js';
import { authHint } from './auth.js';

const who = () => {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return 'cli';
  }
};

async function call(base: string, path: string, o: ApiClientOptions, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  let res: Response;
  try {
    // x-syncline-user counts only where the API takes no credentials (api.auth none); else the token names the actor.
    res = await apiClient(base, o).fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', 'x-syncline-user': who() }, body: JSON.stringify(body) });
  } catch (err) {
    const refused = (err as { code?: string }).code === 'ECONNREFUSED';
    throw fatal('API_UNREACHABLE', `${(err as Error).message}${refused ? ': is the syncline that runs this pipeline\'s sink running with this config? (or pass --url)' : ''}`);
  }
  const b = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  const hint = authHint(res.status, b.error as string | undefined);
  if (hint) throw fatal('API_REFUSED', hint);
  return { status: res.status, body: b };
}

const show = (v: Json | undefined) => (v === undefined ? '∅' : JSON.stringify(v));

export function rollbackText(r: RollbackResult): string {
  const lines = [`rollback of pipeline ${r.pipeline} to ${r.to}${r.dryRun ? ' (dry run: nothing written)' : ''}: ${r.changes} key(s) differ${r.dryRun ? '' : `, ${r.written} written`}`];
  for (const t of r.tables) {
    lines.push(`${t.table}: ${t.examined} key(s) changed since, ${t.upserts} to upsert, ${t.deletes} to delete${r.dryRun ? '' : `, ${t.written} written`} (history from ${t.historySince})`);
    for (const c of t.changes) {
      lines.push(`  ${c.action.padEnd(6)} ${t.table} key ${c.key}${c.current === null ? ' (no row now)' : ''}`);
      for (const d of c.diff) lines.push(`      ${d.field}: ${show(d.from)} → ${show(d.to)}`);
    }
    if (t.parked.length) lines.push(`  left alone, parked behind an open conflict (settle it first): ${t.parked.join(', ')}`);
    if (t.failed.length) lines.push(`  NOT written (dead-lettered, or rolled back too often at one position): ${t.failed.join(', ')}`);
  }
  if (r.held) lines.push(`the pipeline is held: changes wait in Kafka until \`syncline pipeline resume ${r.pipeline}\``);
  else if (!r.dryRun && r.written > 0) lines.push('the next source change of a rolled-back key applies again (use --pause to hold the pipeline)');
  return lines.join('\n');
}

/** `syncline rollback`'s action (its options: ./commands/rollback.ts, loaded without this module). */
export async function rollbackAction(o: { config: string; pipeline: string; to: string; table?: string; key?: string; dryRun?: boolean; pause?: boolean; json?: boolean; url?: string; token?: string; ca?: string; cert?: string }): Promise<void> {
  const api: ApiClientOptions = { token: o.token, ca: o.ca, cert: o.cert };
  if (Number.isNaN(Date.parse(o.to))) throw fatal('USAGE', `--to must be an ISO time like 2026-12-01T10:00:00Z (got '${o.to}')`);
  if (o.key !== undefined && o.table === undefined) throw fatal('USAGE', '--key needs --table (the target table the key is of)');
  const base = (o.url ?? configUrl(loadConfig(o.config))).replace(/\/$/, '');
  const { status, body } = await call(base, `/api/pipelines/${encodeURIComponent(o.pipeline)}/rollback`, api, { to: o.to, table: o.table, key: o.key, dryRun: o.dryRun === true, pause: o.pause === true });
  if (status !== 200) {
    process.stderr.write(`syncline rollback: refused: ${String(body.error ?? `HTTP ${status}`)}\n`);
    if (o.json) process.stdout.write(JSON.stringify(body, null, 2) + '\n');
    process.exitCode = 1;
    return;
  }
  const r = body as unknown as RollbackResult;
  process.stdout.write((o.json ? JSON.stringify(r, null, 2) : rollbackText(r)) + '\n');
  if (r.tables.some((t) => t.failed.length > 0)) process.exitCode = 1;
}
