/**
 * Replays started through the HTTP API and the web console (the same service `syncline replay`
 * calls, ./replay.ts), run in the process that serves them, with their progress kept in memory:
 *   POST /api/pipelines/:name/replays  {"from","to"?,"table"?,"dryRun"?,"transformsAsOf"?}  → 202 the job (operator)
 *   GET  /api/pipelines/:name/replays/:id                                 → 200 the job (viewer)
 *     job: { id, pipeline, from, to, table, dryRun, by, status: running|done|failed,
 *            progress: {read,total}, startedAt, endedAt?, summary?, error? }
 * 400 a bad bound or table (the replay's own message), 404 no such pipeline or job, 409 a replay of
 * the pipeline still runs here. The replay records replay.start and replay.end in the audit trail
 * under the caller's principal. The last 20 jobs are kept.
 */
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import { errorMessage, HttpError } from '../core/errors.js';
import { jsonBody, sendJson } from '../observe/http-json.js';
import { principalOf } from '../security/access/access.js';
import { parseBound, replay, ReplayError, type ReplayDeps, type ReplaySummary } from './replay.js';

export interface ReplayJob {
  id: string;
  pipeline: string;
  from: string;
  to: string | null;
  table: string | null;
  dryRun: boolean;
  by: string;
  status: 'running' | 'done' | 'failed';
  progress: { read: number; total: number };
  startedAt: string;
  endedAt?: string;
  summary?: ReplaySummary;
  error?: string;
}

export interface ReplayRequest {
  from: string;
  to?: string;
  table?: string;
  dryRun?: boolean;
  /** A recorded transforms version (`syncline replay --transforms-as-of`); an unknown one fails the job, saying what is recorded. */
  transformsAsOf?: string;
}

export class ReplayJobs {
  private readonly jobs: ReplayJob[] = [];

  constructor(private readonly deps: () => ReplayDeps) {}

  /** Start a replay (checked first: the bounds and the pipeline); it runs on after this returns. */
  start(pipeline: string, r: ReplayRequest, by: string): ReplayJob {
    const d = this.deps();
    if (!d.config.pipelines[pipeline]) throw new HttpError(404, `no pipeline '${pipeline}' (have: ${Object.keys(d.config.pipelines).join(', ')})`);
    if (typeof r.from !== 'string' || r.from === '') throw new HttpError(400, "from is required: an ISO time with a zone (2026-11-25T10:00:00Z), an offset, or 'beginning'");
    try {
      parseBound(r.from, 'from');
      if (r.to !== undefined) parseBound(r.to, 'to');
    } catch (err) {
      throw new HttpError(400, errorMessage(err).replace(/--(from|to)/g, '$1'));
    }
    const going = this.jobs.find((j) => j.pipeline === pipeline && j.status === 'running');
    if (going) throw new HttpError(409, `replay ${going.id} of ${pipeline} is still running (started by ${going.by} at ${going.startedAt})`);
    const job: ReplayJob = {
      id: `replay-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`, pipeline, from: r.from, to: r.to ?? null, table: r.table ?? null,
      dryRun: r.dryRun === true, by, status: 'running', progress: { read: 0, total: 0 }, startedAt: new Date().toISOString(),
    };
    this.jobs.unshift(job);
    if (this.jobs.length > 20) this.jobs.length = 20;
    replay(d, { pipeline, from: r.from, to: r.to, table: r.table, dryRun: r.dryRun === true, transformsAsOf: r.transformsAsOf, onProgress: (p) => (job.progress = { read: p.read, total: p.total }) }).then(
      (s) => Object.assign(job, { status: 'done', summary: s, endedAt: new Date().toISOString() }),
      (err) => Object.assign(job, { status: 'failed', error: err instanceof ReplayError ? err.message : errorMessage(err), endedAt: new Date().toISOString() }),
    );
    return job;
  }

  get(pipeline: string, id: string): ReplayJob {
    const j = this.jobs.find((x) => x.id === id && x.pipeline === pipeline);
    if (!j) throw new HttpError(404, `no replay ${id} of pipeline ${pipeline} in this process (jobs are kept in memory, the last 20)`);
    return j;
  }

  list(pipeline?: string): ReplayJob[] {
    return this.jobs.filter((j) => pipeline === undefined || j.pipeline === pipeline);
  }

  /** Handles /api/pipelines/:name/replays[/:id]; false for other paths. */
  api() {
    return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const parts = url.pathname.split('/').filter(Boolean);
      if (parts[0] !== 'api' || parts[1] !== 'pipelines' || parts[3] !== 'replays' || parts.length < 4 || parts.length > 5) return false;
      try {
        const name = decodeURIComponent(parts[2]!);
        if (parts.length === 5) {
          if (req.method !== 'GET') throw new HttpError(405, `use GET for ${url.pathname}`);
          return (sendJson(res, 200, this.get(name, decodeURIComponent(parts[4]!))), true);
        }
        if (req.method !== 'POST') throw new HttpError(405, `use POST for ${url.pathname}`);
        const b = await jsonBody(req, 1 << 16);
        for (const k of ['from', 'to', 'table', 'transformsAsOf'] as const) if (b[k] !== undefined && typeof b[k] !== 'string') throw new HttpError(400, `${k} must be a string`);
        if (b.dryRun !== undefined && typeof b.dryRun !== 'boolean') throw new HttpError(400, 'dryRun must be true or false');
        sendJson(res, 202, this.start(name, b as unknown as ReplayRequest, principalOf(req)?.actor ?? 'api'));
      } catch (err) {
        sendJson(res, err instanceof HttpError ? err.status : 500, { error: errorMessage(err) });
      }
      return true;
    };
  }
}
