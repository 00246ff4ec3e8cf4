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

async function body(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 1 << 16) throw new BackfillError(413, 'request body larger than 64 KiB');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new BackfillError(400, `request body must be a JSON object: ${(err as Error).message}`);
  }
}

function send(res: http.ServerResponse, status: number, v: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(v));
}

/** Handles /api/pipelines/:name/backfills…; false for other paths. `find` gives the pipeline's running capture's backfiller. */
export function backfillApi(find: (pipeline: string) => { known: boolean; backfiller?: Backfiller }) {
  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent); // api, pipelines, name, backfills, id?, action?
    if (parts[0] !== 'api' || parts[1] !== 'pipelines' || parts[3] !== 'backfills' || parts.length < 4 || parts.length > 6) return false;
    const name = parts[2]!;
    try {
      const { known, backfiller } = find(name);
      if (!known) throw new BackfillError(404, `no pipeline ${name} with its capture in this process`);
      if (!backfiller) throw new BackfillError(503, `the capture of pipeline ${name} is not running (yet), or its source cannot backfill`);
      if (parts.length === 4) {
        if (req.method === 'GET') return (send(res, 200, { backfills: backfiller.list() }), true);
        if (req.method !== 'POST') throw new BackfillError(405, `method ${req.method} not allowed on ${url.pathname}`);
        const b = await body(req);
        if (typeof b.table !== 'string') throw new BackfillError(400, 'table (a string) is required');
        if (b.where !== undefined && typeof b.where !== 'string') throw new BackfillError(400, 'where must be a string');
        if (b.chunkSize !== undefined && typeof b.chunkSize !== 'number') throw new BackfillError(400, 'chunkSize must be a number');
        send(res, 202, await backfiller.request({ table: b.table, where: b.where as string | undefined, chunkSize: b.chunkSize as number | undefined }));
        return true;
      }
      const id = parts[4]!;
      if (parts.length === 5) {
        if (req.method !== 'GET') throw new BackfillError(405, `method ${req.method} not allowed on ${url.pathname}`);
        send(res, 200, backfiller.get(id));
        return true;
      }
      const action = parts[5]!;
      if (action !== 'pause' && action !== 'resume' && action !== 'cancel') throw new BackfillError(404, `no such endpoint ${url.pathname} (POST …/backfills/:id/pause|resume|cancel)`);
      if (req.method !== 'POST') throw new BackfillError(405, `use POST for ${url.pathname}`);
      send(res, 200, await backfiller.control(id, action));
      return true;
    } catch (err) {
      if (err instanceof BackfillError) send(res, err.status, { error: err.message });
      else send(res, 500, { error: errorMessage(err) });
      return true;
    }
  };
}
