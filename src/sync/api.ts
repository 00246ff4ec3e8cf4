/**
 * HTTP API of sync runs, served by a running syncline next to /metrics (processes running capture
 * and sink of bounded pipelines):
 *   POST /api/pipelines/:name/runs   {"tables":["public.orders"],"full":false,"wait":false} → 202 {run}; 409 while a run goes
 *   GET  /api/runs?pipeline=          runs, newest first (the record topic, plus what this process runs)
 *   GET  /api/runs/:id                one run (progress while it goes)
 * Who asked is the authenticated principal (actorOf; with api.auth none the X-Syncline-User header,
 * default "api"); the trigger is "manual" when the
 * X-Syncline-Trigger header says so (the CLI), else "api".
 */
import type http from 'node:http';
import { errorMessage } from '../core/errors.js';
import { RunBusy, type SyncController } from './controller.js';
import type { RunStore, SyncRun } from './runs.js';
import { HttpError, jsonBody, sendJson } from '../observe/http-json.js';
import { actorOf } from '../security/access/access.js';



/**
 * Start a run of a bounded pipeline: what POST /api/pipelines/:name/runs and the console's "sync
 * now" button both call. 202 with the run (200 and the finished run with `wait`), 404 for an unknown
 * pipeline, 409 for a realtime one or while a run goes.
 */
export async function startRun(controllers: Map<string, SyncController>, pipelines: string[], name: string, o: { trigger: 'manual' | 'api'; by: string; tables?: string[]; full?: boolean; wait?: boolean }): Promise<{ status: number; body: unknown }> {
  const c = controllers.get(name);
  if (!c) {
    const known = pipelines.includes(name);
    return { status: known ? 409 : 404, body: { error: known ? `pipeline ${name} is not in mode scheduled or manual in this process (a realtime pipeline has no runs; bounded runs need capture and sink in one process)` : `no pipeline '${name}'` } };
  }
  let run: SyncRun;
  try {
    run = c.trigger(o.trigger, o.by, o.tables, o.full === true);
  } catch (err) {
    if (err instanceof RunBusy) return { status: 409, body: { error: err.message, running: err.running } };
    throw err;
  }
  if (o.wait) run = await c.wait(run.id)!;
  return { status: o.wait ? 200 : 202, body: run };
}

export function syncApi(controllers: () => Map<string, SyncController>, store: () => RunStore, pipelines: () => string[]) {
  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter(Boolean);
    const by = actorOf(req);
    try {
      if (parts[0] === 'api' && parts[1] === 'pipelines' && parts.length === 4 && parts[3] === 'runs') {
        if (req.method !== 'POST') return sendJson(res, 405, { error: 'POST to start a run' }), true;
        const name = decodeURIComponent(parts[2]!);
        const b = await jsonBody(req, 1 << 20);
        const tables = Array.isArray(b.tables) ? b.tables.map(String) : undefined;
        const trigger = req.headers['x-syncline-trigger'] === 'manual' ? 'manual' : 'api';
        const r = await startRun(controllers(), pipelines(), name, { trigger, by, tables, full: b.full === true, wait: b.wait === true });
        sendJson(res, r.status, r.body);
        return true;
      }
      if (parts[0] === 'api' && parts[1] === 'runs') {
        const live = new Map<string, SyncRun>();
        for (const c of controllers().values()) for (const r of c.recent) live.set(r.id, r);
        if (parts.length === 3) {
          const id = decodeURIComponent(parts[2]!);
          const found = live.get(id) ?? (await store().run(id));
          // ?pipeline= narrows the answer to that pipeline (a pipeline-scoped token must name it).
          const want = url.searchParams.get('pipeline');
          const run = found && (want === null || found.pipeline === want) ? found : undefined;
          sendJson(res, run ? 200 : 404, run ?? { error: `no run '${id}'${want !== null ? ` in pipeline ${want}` : ''}` });
          return true;
        }
        const pipeline = url.searchParams.get('pipeline') ?? undefined;
        const stored = await store().runs(pipeline);
        const merged = stored.map((r) => live.get(r.id) ?? r);
        for (const r of live.values()) if (!stored.some((s) => s.id === r.id) && (!pipeline || r.pipeline === pipeline)) merged.unshift(r);
        sendJson(res, 200, merged);
        return true;
      }
      return false;
    } catch (err) {
      sendJson(res, err instanceof HttpError ? err.status : 400, { error: errorMessage(err) });
      return true;
    }
  };
}
