/**
 * The routes of the web console (/console), with the role each needs: the console's own table,
 * enforced by the same router and access control as the API's (src/observe/http.ts,
 * src/security/access). A page needs what reading its API twin needs; an action needs exactly what
 * its API twin needs — the role and scope are copied from src/security/access/routes.ts, not
 * written again, so the console can never let somebody do what the API would refuse.
 *
 * Login, logout and the static assets are not here: they need no session (the router serves them
 * before it asks for one).
 */
import { ROUTES, ROLE_RANK, type RouteSpec } from '../security/access/routes.js';

export interface ConsoleRoute extends RouteSpec {
  /** The API route(s) whose role and scope this one takes (the highest role of them). */
  twins: string[];
}

function twin(method: RouteSpec['method'], path: string, summary: string, twins: string[]): ConsoleRoute {
  const specs = twins.map((t) => {
    const r = ROUTES.find((x) => `${x.method} ${x.path}` === t);
    if (!r) throw new Error(`console route ${method} ${path}: no API route ${t} in src/security/access/routes.ts`);
    return r;
  });
  const top = specs.reduce((a, b) => (ROLE_RANK[b.role] > ROLE_RANK[a.role] ? b : a));
  return { method, path, role: top.role, scope: top.scope, summary, twins };
}

export const CONSOLE_ROUTES: readonly ConsoleRoute[] = [
  twin('GET', '/console', 'the pipelines page', ['GET /health']),
  twin('GET', '/console/pipelines', 'the pipelines page', ['GET /health']),
  twin('GET', '/console/pipelines/live', 'the pipelines table, polled for live numbers', ['GET /metrics']),
  twin('POST', '/console/pipelines/:name/runs', 'sync now', ['POST /api/pipelines/:name/runs']),
  twin('POST', '/console/pipelines/:name/backfills', 'backfill a table', ['POST /api/pipelines/:name/backfills']),
  twin('POST', '/console/pipelines/:name/backfills/:id/pause', 'pause a backfill', ['POST /api/pipelines/:name/backfills/:id/pause']),
  twin('POST', '/console/pipelines/:name/backfills/:id/resume', 'resume a backfill', ['POST /api/pipelines/:name/backfills/:id/resume']),
  twin('POST', '/console/pipelines/:name/pause', "pause a realtime pipeline's processing", ['POST /api/pipelines/:name/pause']),
  twin('POST', '/console/pipelines/:name/resume', "resume a paused pipeline's processing", ['POST /api/pipelines/:name/resume']),
  twin('GET', '/console/replay', 'the replay form and the recent replays', ['GET /health']),
  twin('POST', '/console/pipelines/:name/replays', 'start a replay (or a dry run)', ['POST /api/pipelines/:name/replays']),
  twin('GET', '/console/pipelines/:name/replays/:id', "a replay's progress and summary", ['GET /api/pipelines/:name/replays/:id']),
  twin('GET', '/console/history', "a key's timeline, a table as of an instant", ['GET /api/history']),
  twin('POST', '/console/pipelines/:name/rollback', 'roll the target back to an instant: a dry-run preview, then the confirmed rollback (admin)', ['POST /api/pipelines/:name/rollback']),
  twin('GET', '/console/audit', 'the audit trail and the last verifications', ['GET /api/audit']),
  twin('GET', '/console/alerts', 'pending and firing alerts', ['GET /alerts']),
  twin('GET', '/console/dlq', 'the dead letters (workbench)', ['GET /api/dlq']),
  twin('GET', '/console/dlq/:id', 'one dead letter', ['GET /api/dlq/:id']),
  twin('POST', '/console/dlq/:id/resolve', 'resolve a conflict', ['POST /api/dlq/:id/resolve']),
  twin('POST', '/console/dlq/:id/requeue', 'requeue a dead letter', ['POST /api/dlq/:id/requeue']),
  twin('POST', '/console/dlq/:id/discard', 'discard a dead letter', ['POST /api/dlq/:id/discard']),
  twin('POST', '/console/dlq/:id/reveal', 'a dead letter unmasked (admin, audited)', ['POST /api/dlq/:id/reveal']),
  twin('POST', '/console/dlq/bulk', 'resolve, requeue or discard many', ['POST /api/dlq/:id/resolve', 'POST /api/dlq/:id/requeue', 'POST /api/dlq/:id/discard']),
];
