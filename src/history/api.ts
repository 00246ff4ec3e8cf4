/**
 * The history of one key, as `syncline history show` prints it and GET /api/history answers it:
 *   GET /api/history?pipeline=P&table=T&key=K[&since=ISO][&until=ISO]
 *     → 200 { pipeline, table, key, steps: [{ appliedAt, commitAt, position, op, decision, strategy,
 *             by, changed, before, after, diff: [{ field, from, to }] }] }
 *     400 a parameter missing or malformed; 404 the pipeline keeps no history of that table.
 * Values are masked by the masking policy (tables[].mask, encrypt, patterns) for every caller but an
 * authenticated admin (role viewer may call it).
 */
import type http from 'node:http';
import type { SynclineConfig } from '../core/config/schema.js';
import { errorCode, errorMessage } from '../core/errors.js';
import { sendJson } from '../observe/http-json.js';
import { principalOf } from '../security/access/access.js';
import { maskPolicy, type MaskPolicy } from '../security/masking/policy.js';
import { fieldDiff, keyArgument, type FieldChange, type Json, type JsonRow } from './history.js';
import { setColumn } from '../core/envelope.js';
import { openStore, requireHistory } from './recorder.js';
import type { HistoryStore } from './store.js';

export interface Step {
  appliedAt: string;
  commitAt: string | null;
  position: string;
  op: string;
  decision: string;
  strategy: string | null;
  by: string | null;
  changed: boolean;
  before: JsonRow | null;
  after: JsonRow | null;
  diff: FieldChange[];
}

export interface Timeline {
  pipeline: string;
  table: string;
  key: string;
  steps: Step[];
}

function maskJson(row: JsonRow | null, table: string, mask?: MaskPolicy): JsonRow | null {
  if (!row || !mask) return row;
  const out: JsonRow = {};
  for (const [k, v] of Object.entries(row)) setColumn(out, k, v !== null && mask.sensitive(k, table) ? '***' : v);
  return out;
}

/** A key's timeline with a field diff per step (before unknown: the previous step's after). */
export async function timeline(store: HistoryStore, q: { pipeline: string; table: string; key: string; since?: Date; until?: Date }, mask?: MaskPolicy): Promise<Timeline> {
  const key = keyArgument(q.key);
  const entries = await store.timeline(q.pipeline, q.table, [key], q.since, q.until);
  let prev: JsonRow | null = null;
  const steps = entries.map((e): Step => {
    const before = e.beforeKnown ? e.before : e.op === 'baseline' ? null : prev;
    prev = e.changed ? e.after : prev;
    const diff = fieldDiff(before, e.after).map((d) => (mask && mask.sensitive(d.field, q.table) ? { field: d.field, from: d.from === undefined || d.from === null ? d.from : ('***' as Json), to: d.to === undefined || d.to === null ? d.to : ('***' as Json) } : d));
    return { appliedAt: e.appliedAt, commitAt: e.commitAt, position: e.position, op: e.op, decision: e.decision, strategy: e.strategy, by: e.by, changed: e.changed, before: maskJson(before, q.table, mask), after: maskJson(e.after, q.table, mask), diff };
  });
  return { pipeline: q.pipeline, table: q.table, key, steps };
}

/** An ISO time parameter, or a clear error naming it. */
export function isoParam(name: string, v: string | undefined | null): Date | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw Object.assign(new Error(`${name} must be an ISO time like 2026-12-01T10:00:00Z (got '${v}')`), { status: 400 });
  return new Date(t);
}

export function historyApi(config: () => SynclineConfig) {
  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/api/history') return false;
    if (req.method !== 'GET') return sendJson(res, 405, { error: 'GET /api/history?pipeline=&table=&key=' }), true;
    const p = (n: string) => url.searchParams.get(n) ?? undefined;
    try {
      const pipeline = p('pipeline');
      const table = p('table');
      const key = p('key');
      const missing = [['pipeline', pipeline], ['table', table], ['key', key]].filter(([, v]) => !v).map(([n]) => n);
      if (missing.length > 0) return sendJson(res, 400, { error: `missing query parameter ${missing.join(', ')}: GET /api/history?pipeline=P&table=T&key=K[&since=ISO][&until=ISO]` }), true;
      const since = isoParam('since', p('since'));
      const until = isoParam('until', p('until'));
      const c = config();
      const where = requireHistory(c, pipeline!, table!);
      const principal = principalOf(req);
      const unmasked = principal?.role === 'admin' && principal.via !== 'none';
      const { store, release } = openStore(where.url, where.schema);
      try {
        sendJson(res, 200, await timeline(store, { pipeline: pipeline!, table: table!, key: key!, since, until }, unmasked ? undefined : maskPolicy(c)));
      } finally {
        await release();
      }
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 400) return sendJson(res, 400, { error: (err as Error).message }), true;
      const code = errorCode(err);
      sendJson(res, code === 'PIPELINE_UNKNOWN' || code === 'HISTORY_DISABLED' ? 404 : 503, { error: errorMessage(err), code });
    }
    return true;
  };
}
