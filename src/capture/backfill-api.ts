/**
 * HTTP API of backfills (./backfill.ts), served by the process that runs a pipeline's capture, next
 * to /metrics (src/observe/http.ts `api`):
 *   GET  /api/pipelines/:name/backfills                  every backfill of the pipeline, with progress
 *   POST /api/pipelines/:name/backfills                  {"table": "public.t", "where": "...", "chunkSize": 2000} → 202 and the backfill
 *   GET  /api/pipelines/:name/backfills/:id              one, with progress (rows, chunks, %, rows/s, ETA)
 *   POST /api/pipelines/:name/backfills/:id/pause|resume|cancel
 * Errors are {"error": "..."}: 400 (bad request: unknown table, a `where` the source refuses), 404
 * (no such pipeline here, or backfill), 405, 409 (already finished), 503 (capture not running yet).
 * `syncline backfill` (src/cli/backfill.ts) reaches a capture in any process through its source instead.
 */
import type http from 'node:http';
import { errorMessage } from '../core/errors.js';
import { BackfillError, type Backfiller } from './backfill.js';
import { HttpError, jsonBody, sendJson } from '../observe/http-json.js';



/** Handles /api/pipelines/:name/backfills…; false for other paths. `find` gives the pipeline's running capture's backfiller. */
export function backfillApi(find: (pipeline: string) => { known: boolean; backfiller?: Backfiller; follows?: string }) {
  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent); // api, pipelines, name, backfills, id?, action?
    if (parts[0] !== 'api' || parts[1] !== 'pipelines' || parts[3] !== 'backfills' || parts.length < 4 || parts.length > 6) return false;
    const name = parts[2]!;
    try {
      const { known, backfiller, follows } = find(name);
      if (!known) throw new BackfillError(404, `no pipeline ${name} with its capture in this process`);
      if (follows) throw new BackfillError(409, `pipeline ${name} follows ${follows} and has no capture: backfill ${follows} (its capture writes the change topics ${name} reads)`);
      if (!backfiller) throw new BackfillError(503, `the capture of pipeline ${name} is not running (yet), or its source cannot backfill`);
      if (parts.length === 4) {
        if (req.method === 'GET') return (sendJson(res, 200, { backfills: backfiller.list() }), true);
        if (req.method !== 'POST') throw new BackfillError(405, `method ${req.method} not allowed on ${url.pathname}`);
        const b = await jsonBody(req, 1 << 16);
        if (typeof b.table !== 'string') throw new BackfillError(400, 'table (a string) is required');
        if (b.where !== undefined && typeof b.where !== 'string') throw new BackfillError(400, 'where must be a string');
        if (b.chunkSize !== undefined && typeof b.chunkSize !== 'number') throw new BackfillError(400, 'chunkSize must be a number');
        sendJson(res, 202, await backfiller.request({ table: b.table, where: b.where as string | undefined, chunkSize: b.chunkSize as number | undefined }));
        return true;
      }
      const id = parts[4]!;
      if (parts.length === 5) {
        if (req.method !== 'GET') throw new BackfillError(405, `method ${req.method} not allowed on ${url.pathname}`);
        sendJson(res, 200, backfiller.get(id));
        return true;
      }
      const action = parts[5]!;
      if (action !== 'pause' && action !== 'resume' && action !== 'cancel') throw new BackfillError(404, `no such endpoint ${url.pathname} (POST …/backfills/:id/pause|resume|cancel)`);
      if (req.method !== 'POST') throw new BackfillError(405, `use POST for ${url.pathname}`);
      sendJson(res, 200, await backfiller.control(id, action));
      return true;
    } catch (err) {
      if (err instanceof HttpError) sendJson(res, err.status, { error: err.message });
      else sendJson(res, 500, { error: errorMessage(err) });
      return true;
    }
  };
}
