/**
 * HTTP API of schema changes, served by a running syncline next to /metrics (src/capture/schema-admin.ts):
 *   GET  /api/schema/changes?pipeline=&status=     changes, oldest first (status=pending: what waits)
 *   POST /api/schema/changes/:id/approve           {"note": "…"} → 200 the decided change
 *   POST /api/schema/changes/:id/reject            {"note": "…"} → 200; 404 unknown id, 409 not pending
 * Who decided is the authenticated principal (actorOf; with api.auth none the X-Syncline-User header,
 * default "api"), as for the other APIs. ?pipeline= on approve|reject: only a change of that pipeline.
 */
import type http from 'node:http';
import { errorCode, errorMessage } from '../core/errors.js';
import { HttpError, jsonBody, sendJson } from '../observe/http-json.js';
import { actorOf } from '../security/access/access.js';
import type { SchemaAdmin } from './schema-admin.js';
import type { SchemaChangeStatus } from './schema-changes.js';

const STATUSES = new Set(['applied', 'pending', 'approved', 'rejected']);

export function schemaApi(admin: () => SchemaAdmin) {
  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] !== 'api' || parts[1] !== 'schema' || parts[2] !== 'changes') return false;
    try {
      if (parts.length === 3) {
        if (req.method !== 'GET') return sendJson(res, 405, { error: 'GET the changes; POST /api/schema/changes/:id/approve|reject to decide' }), true;
        const status = url.searchParams.get('status') ?? undefined;
        if (status !== undefined && !STATUSES.has(status)) return sendJson(res, 400, { error: `status must be one of ${[...STATUSES].join(', ')} (got ${status})` }), true;
        sendJson(res, 200, await admin().list({ pipeline: url.searchParams.get('pipeline') ?? undefined, status: status as SchemaChangeStatus | undefined }));
        return true;
      }
      if (parts.length === 5 && (parts[4] === 'approve' || parts[4] === 'reject')) {
        if (req.method !== 'POST') return sendJson(res, 405, { error: `POST to ${parts[4]}` }), true;
        const b = await jsonBody(req, 64 * 1024);
        const by = actorOf(req);
        const c = await admin().decide(decodeURIComponent(parts[3]!), parts[4] === 'approve' ? 'approved' : 'rejected', by, typeof b.note === 'string' ? b.note.slice(0, 2000) : undefined, url.searchParams.get('pipeline') ?? undefined);
        sendJson(res, 200, c);
        return true;
      }
      sendJson(res, 404, { error: `no such endpoint ${url.pathname} (have GET /api/schema/changes, POST /api/schema/changes/:id/approve|reject)` });
    } catch (err) {
      if (err instanceof HttpError) return sendJson(res, err.status, { error: err.message }), true;
      const code = errorCode(err);
      const status = code === 'SCHEMA_CHANGE_UNKNOWN' || code === 'PIPELINE_UNKNOWN' ? 404 : code === 'SCHEMA_CHANGE_DECIDED' ? 409 : 503;
      sendJson(res, status, { error: errorMessage(err), code });
    }
    return true;
  };
}
