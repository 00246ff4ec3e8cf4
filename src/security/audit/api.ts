/**
 * GET /api/audit?since=&actor=&action=&limit= → 200 { entries } newest first (role operator: the
 * trail says who did what across every pipeline; a pipeline-scoped principal is refused). Read from
 * the audit database (config `audit`) as `syncline audit list` reads it: since is an ISO time or a
 * duration (30m, 24h, 7d), action may end in * (a prefix: dlq.*), limit 1..1000 (default 100).
 * 404 when the config has no audit section; 400 a bad parameter.
 */
import type http from 'node:http';
import type { SynclineConfig } from '../../core/config/schema.js';
import { errorMessage, HttpError } from '../../core/errors.js';
import { sendJson } from '../../observe/http-json.js';
import type { AuditEntry } from './chain.js';
import { AuditStore } from './store.js';

export interface AuditQuery {
  since?: string;
  actor?: string;
  action?: string;
  limit?: number;
}

/** since: an ISO time or a duration back from now (30m, 24h, 7d); HttpError 400 otherwise. */
export function sinceParam(v: string | undefined | null, now = new Date()): string | undefined {
  if (!v) return undefined;
  const d = /^(\d+)(m|h|d)$/.exec(v);
  if (d) return new Date(now.getTime() - Number(d[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[d[2] as 'm']).toISOString();
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new HttpError(400, `since must be an ISO time (2026-12-01T00:00:00Z) or a duration (30m, 24h, 7d); got '${v}'`);
  return new Date(t).toISOString();
}

export function limitParam(v: string | undefined | null): number {
  if (!v) return 100;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 1000) throw new HttpError(400, `limit must be a whole number from 1 to 1000 (got '${v}')`);
  return Number(v);
}

/** Entries of the config's audit trail, newest first (one short-lived store per call). */
export async function auditEntries(config: SynclineConfig, q: AuditQuery): Promise<AuditEntry[]> {
  const c = config.audit;
  if (!c) throw new HttpError(404, 'this syncline keeps no audit trail (the config has no audit section)');
  const store = new AuditStore(c.url, c.table);
  try {
    return await store.list({ ...q, limit: q.limit ?? 100, order: 'desc' });
  } finally {
    await store.close();
  }
}

export function auditApi(config: () => SynclineConfig) {
  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/api/audit') return false;
    try {
      if (req.method !== 'GET') throw new HttpError(405, 'GET /api/audit?since=&actor=&action=&limit=');
      const p = url.searchParams;
      const entries = await auditEntries(config(), { since: sinceParam(p.get('since')), actor: p.get('actor') || undefined, action: p.get('action') || undefined, limit: limitParam(p.get('limit')) });
      sendJson(res, 200, { entries });
    } catch (err) {
      sendJson(res, err instanceof HttpError ? err.status : 503, { error: errorMessage(err) });
    }
    return true;
  };
}
