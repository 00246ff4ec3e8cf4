/**
 * Rollback over HTTP (role admin, src/security/access/routes.ts), served by the process that runs
 * the pipeline's sink (it has the Applier the writes go through; ./rollback.ts):
 *   POST /api/pipelines/:name/rollback {"to": ISO, "table"?, "key"?, "dryRun"?: bool, "pause"?: bool}
 *     → 200 RollbackResult (per table the changes: key, action upsert|delete, current → target and
 *       the field diff; values masked by the masking policy except for an authenticated admin)
 *     400 a bad body; 404 unknown pipeline, its sink not here, or no history of it;
 *     409 the history does not reach back to `to` (HISTORY_NOT_COVERED), or pause not possible here
 * `pause` pauses the pipeline like POST /api/pipelines/:name/pause (src/sync/pause.ts), before the
 * writes; POST /api/pipelines/:name/resume (`syncline pipeline resume NAME`) ends it.
 * Recorded in the audit trail (rollback; pipeline.pause and pipeline.resume).
 */
import type http from 'node:http';
import type { SynclineConfig } from '../core/config/schema.js';
import type { Row } from '../core/envelope.js';
import { errorCode, errorMessage } from '../core/errors.js';
import { HttpError, jsonBody, sendJson } from '../observe/http-json.js';
import { principalOf } from '../security/access/access.js';
import { maskPolicy } from '../security/masking/policy.js';
import type { Applier } from '../sink/applier.js';
import { isoParam } from './api.js';
import { rollback } from './rollback.js';

/** What the API needs of a pipeline whose sink runs in this process. */
export interface RollbackPipeline {
  applier: Applier;
  readRows(table: string, keys: Row[]): Promise<Map<string, Row>>;
  /** Pause the pipeline (as POST …/pause does) and wait for the batches it had fetched; absent: it cannot be paused here (bounded pipeline). */
  hold?: (by: string | undefined) => Promise<void>;
}

export function rollbackApi(o: { config: () => SynclineConfig; pipeline: (name: string) => RollbackPipeline | undefined }) {
  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts.length !== 4 || parts[0] !== 'api' || parts[1] !== 'pipelines' || parts[3] !== 'rollback') return false;
    const name = decodeURIComponent(parts[2]!);
    try {
      if (req.method !== 'POST') throw new HttpError(405, `POST ${url.pathname}`);
      const config = o.config();
      if (!config.pipelines[name]) throw new HttpError(404, `no pipeline '${name}' (have: ${Object.keys(config.pipelines).join(', ')})`);
      const p = o.pipeline(name);
      if (!p) throw new HttpError(404, `the sink of pipeline ${name} does not run in this process: ask the syncline that runs it (syncline start or syncline sink)`);
      const b = await jsonBody(req, 1 << 16);
      if (typeof b.to !== 'string' || b.to === '') throw new HttpError(400, 'to is required: the instant to roll back to, an ISO time like 2026-12-01T10:00:00Z');
      let to: Date;
      try {
        to = isoParam('to', b.to)!;
      } catch (err) {
        throw new HttpError(400, (err as Error).message);
      }
      for (const f of ['table', 'key'] as const) if (b[f] !== undefined && typeof b[f] !== 'string') throw new HttpError(400, `${f} must be a string`);
      for (const f of ['dryRun', 'pause'] as const) if (b[f] !== undefined && typeof b[f] !== 'boolean') throw new HttpError(400, `${f} must be true or false`);
      if (b.key !== undefined && b.table === undefined) throw new HttpError(400, 'key needs table: the target table the key is of');
      const principal = principalOf(req);
      const unmasked = principal?.role === 'admin' && principal.via !== 'none';
      const result = await rollback(config, { pipeline: name, to, table: b.table as string | undefined, key: b.key as string | undefined, dryRun: b.dryRun === true, pause: b.pause === true, by: principal?.actor }, p, unmasked ? undefined : maskPolicy(config));
      sendJson(res, 200, result);
    } catch (err) {
      if (err instanceof HttpError) return sendJson(res, err.status, { error: err.message }), true;
      const code = errorCode(err);
      const status = code === 'HISTORY_NOT_COVERED' || code === 'ROLLBACK_PAUSE_UNSUPPORTED' ? 409 : code === 'PIPELINE_UNKNOWN' || code === 'HISTORY_DISABLED' ? 404 : code === 'USAGE' ? 400 : 500;
      sendJson(res, status, { error: errorMessage(err), code });
    }
    return true;
  };
}
