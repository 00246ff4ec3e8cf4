/**
 * HTTP API of the dead-letter workflow, served by a running syncline next to /metrics:
 *   GET  /api/dlq?pipeline=&kind=&table=&key=&state=open|resolved|requeued|discarded|all&since=&until=&limit=
 *   GET  /api/dlq/:id
 *   POST /api/dlq/:id/resolve   {"choice":"source"|"target"|"merged","merged":{...},"note":"..."}
 *   POST /api/dlq/:id/requeue
 *   POST /api/dlq/:id/discard   {"note":"..."}
 * Who acted is the authenticated principal (src/security/access/access.ts actorOf: token:<name>,
 * oidc:<user>), stored with the action; with api.auth none, the unchecked X-Syncline-User header
 * (default "api"). Roles and pipeline scope are checked by the router (src/security/access/routes.ts).
 * Answers are JSON; errors are {"error": "..."} with 400 (bad request), 404 (unknown id or
 * pipeline), 409 (not open, or waiting behind another conflict of its key), 422, 502.
 */
import type http from 'node:http';
import { errorMessage } from '../core/errors.js';
import { stringifyTagged } from '../core/tagged-json.js';
import { DlqError, type ActionResult, type DlqService } from './service.js';
import type { DlqEntry, DlqState } from './store.js';
import { maskEntry, type MaskPolicy } from '../security/masking/policy.js';
import { HttpError, jsonBody, sendJson } from '../observe/http-json.js';
import { actorOf } from '../security/access/access.js';
import { audit } from '../security/audit/recorder.js';

/**
 * An entry as JSON: raw bytes as base64, values tagged (see core/tagged-json.ts). With a policy, as
 * people may see it: sensitive values masked, raw bytes withheld (src/security/masking/policy.ts).
 */
export function entryJson(e: DlqEntry, policy?: MaskPolicy): unknown {
  const { raw, ...rest } = policy ? maskEntry(e, policy) : e;
  return JSON.parse(stringifyTagged({ ...rest, raw: { key: raw.key?.toString('base64') ?? null, value: raw.value?.toString('base64') ?? null } }));
}

const STATES = ['open', 'resolved', 'requeued', 'discarded', 'all'];

/**
 * A dead letter unmasked, raw Kafka bytes included: the "reveal" of the masking policy. Admin only:
 * the route that serves it must check the admin role and append an audit entry (who, which id, why)
 * before calling it; no existing route or command calls it.
 */
export function revealEntry(e: DlqEntry): unknown {
  return entryJson(e);
}



/**
 * The reveal of POST /api/dlq/:id/reveal and the console's Reveal button (both admin only, checked
 * by the router from src/security/access/routes.ts): a reason is required, and the audit entry
 * (who, which id, why) is recorded before the values leave.
 */
export async function revealDeadLetter(service: DlqService, id: string, reason: unknown, by: string, pipeline?: string): Promise<unknown> {
  const why = typeof reason === 'string' ? reason.trim() : '';
  if (why === '') throw new DlqError(400, 'revealing a dead letter needs a reason: {"reason": "…"} (it is recorded in the audit trail)');
  const e = await service.show(id, pipeline);
  audit.record({ actor: by, action: 'dlq.reveal', object: `dlq:${id}`, details: { pipeline: e.pipeline, table: e.table ?? null, kind: e.kind, reason: why.slice(0, 300) } });
  return revealEntry(e);
}

export type DlqActionName = 'resolve' | 'requeue' | 'discard';

/**
 * One action on a dead letter, from a request body ({"choice","merged","note"}): what POST
 * /api/dlq/:id/resolve|requeue|discard and the console's forms (src/console) both call, so both
 * take the same checks and the same service path (and its audit entry).
 */
export function dlqAction(service: DlqService, id: string, action: DlqActionName, b: Record<string, unknown>, by: string, pipeline?: string): Promise<ActionResult> {
  const note = typeof b.note === 'string' ? b.note : undefined;
  if (action === 'resolve') return service.resolve(id, { choice: b.choice as 'source', merged: b.merged, by, note, pipeline });
  if (action === 'requeue') return service.requeue(id, { by, pipeline });
  return service.discard(id, { by, note, pipeline });
}

/** Handles /api/dlq…; returns false for other paths. */
export function dlqApi(service: () => DlqService) {
  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter(Boolean); // api, dlq, id?, action?
    if (parts[0] !== 'api' || parts[1] !== 'dlq') return false;
    const by = actorOf(req);
    try {
      const q = url.searchParams;
      const pipeline = q.get('pipeline') ?? undefined;
      if (parts.length === 2) {
        if (req.method !== 'GET') throw new DlqError(405, `method ${req.method} not allowed on /api/dlq`);
        const state = q.get('state') ?? 'open';
        if (!STATES.includes(state)) throw new DlqError(400, `state must be one of ${STATES.join(', ')}`);
        const limit = q.get('limit');
        if (limit !== null && !/^\d+$/.test(limit)) throw new DlqError(400, 'limit must be a number');
        for (const t of ['since', 'until']) {
          const v = q.get(t);
          if (v !== null && Number.isNaN(Date.parse(v))) throw new DlqError(400, `${t} must be an ISO time (got '${v}')`);
        }
        const iso = (v: string | null) => (v === null ? undefined : new Date(v).toISOString());
        const list = await service().list({ pipeline, kind: q.get('kind') ?? undefined, table: q.get('table') ?? undefined, key: q.get('key') ?? undefined, state: state as DlqState | 'all', since: iso(q.get('since')), until: iso(q.get('until')), limit: limit === null ? undefined : Number(limit) });
        sendJson(res, 200, { count: list.length, deadLetters: list.map((e) => entryJson(e, service().masking)) });
        return true;
      }
      const id = decodeURIComponent(parts[2]!);
      if (parts.length === 3) {
        if (req.method !== 'GET') throw new DlqError(405, `method ${req.method} not allowed on /api/dlq/${id}`);
        sendJson(res, 200, entryJson(await service().show(id, pipeline), service().masking));
        return true;
      }
      const action = parts[3];
      if (parts.length !== 4 || !['resolve', 'requeue', 'discard', 'reveal'].includes(action!)) throw new DlqError(404, `no such endpoint ${url.pathname} (POST /api/dlq/:id/resolve|requeue|discard|reveal)`);
      if (req.method !== 'POST') throw new DlqError(405, `use POST for /api/dlq/${id}/${action}`);
      const b = await jsonBody(req, 1 << 20);
      if (action === 'reveal') {
        sendJson(res, 200, await revealDeadLetter(service(), id, b.reason, by, pipeline));
        return true;
      }
      const r = await dlqAction(service(), id, action as DlqActionName, b, by, pipeline);
      sendJson(res, 200, { ...r, entry: entryJson(r.entry, service().masking) });
      return true;
    } catch (err) {
      if (err instanceof HttpError) sendJson(res, err.status, { error: err.message });
      else sendJson(res, 500, { error: errorMessage(err) });
      return true;
    }
  };
}
