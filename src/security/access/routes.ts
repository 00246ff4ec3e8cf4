/**
 * Every HTTP route a syncline process serves, with the role it needs and where its pipeline scope
 * comes from: the one declaration the router (src/observe/http.ts) enforces, the matrix test
 * (test/access-matrix.int.test.ts) walks, and docs/security.md lists. A route that is not here is
 * answered 404 by the router before any handler sees it, so a new route cannot be reached (nor
 * left unprotected) until it is declared with its role.
 *
 * scope:
 *   path     the pipeline is the :name segment (a scoped principal must hold it)
 *   query    the route spans pipelines; a scoped principal must name one of its own with ?pipeline=,
 *            and the handler answers within that pipeline only
 *   process  process-wide; a scoped principal may read (viewer routes) but not act (reload)
 */
import type { ApiRole } from '../../core/config/schema.js';

export type Scope = 'path' | 'query' | 'process';

export interface RouteSpec {
  method: 'GET' | 'POST';
  /** Segments; `:x` matches one segment. */
  path: string;
  role: ApiRole;
  scope: Scope;
  /** Answered without credentials when named in `api.open`. */
  openable?: 'health' | 'ready' | 'metrics';
  summary: string;
}

export const ROUTES: readonly RouteSpec[] = [
  { method: 'GET', path: '/metrics', role: 'viewer', scope: 'process', openable: 'metrics', summary: 'Prometheus metrics' },
  { method: 'GET', path: '/health', role: 'viewer', scope: 'process', openable: 'health', summary: 'liveness' },
  { method: 'GET', path: '/ready', role: 'viewer', scope: 'process', openable: 'ready', summary: 'dependency checks' },
  { method: 'GET', path: '/alerts', role: 'viewer', scope: 'process', summary: 'pending and firing alerts' },
  { method: 'GET', path: '/api/dlq', role: 'viewer', scope: 'query', summary: 'list dead letters' },
  { method: 'GET', path: '/api/dlq/:id', role: 'viewer', scope: 'query', summary: 'one dead letter' },
  { method: 'POST', path: '/api/dlq/:id/resolve', role: 'operator', scope: 'query', summary: 'resolve a conflict' },
  { method: 'POST', path: '/api/dlq/:id/requeue', role: 'operator', scope: 'query', summary: 'requeue a dead letter' },
  { method: 'POST', path: '/api/dlq/:id/discard', role: 'operator', scope: 'query', summary: 'discard a dead letter' },
  { method: 'POST', path: '/api/dlq/:id/reveal', role: 'admin', scope: 'query', summary: 'a dead letter unmasked (audited)' },
  { method: 'POST', path: '/api/pipelines/:name/runs', role: 'operator', scope: 'path', summary: 'start a sync run' },
  { method: 'GET', path: '/api/runs', role: 'viewer', scope: 'query', summary: 'list sync runs' },
  { method: 'GET', path: '/api/runs/:id', role: 'viewer', scope: 'query', summary: 'one sync run' },
  { method: 'GET', path: '/api/pipelines/:name/backfills', role: 'viewer', scope: 'path', summary: 'list backfills' },
  { method: 'POST', path: '/api/pipelines/:name/backfills', role: 'operator', scope: 'path', summary: 'start a backfill' },
  { method: 'GET', path: '/api/pipelines/:name/backfills/:id', role: 'viewer', scope: 'path', summary: 'one backfill' },
  { method: 'POST', path: '/api/pipelines/:name/backfills/:id/pause', role: 'operator', scope: 'path', summary: 'pause a backfill' },
  { method: 'POST', path: '/api/pipelines/:name/backfills/:id/resume', role: 'operator', scope: 'path', summary: 'resume a backfill' },
  { method: 'POST', path: '/api/pipelines/:name/backfills/:id/cancel', role: 'operator', scope: 'path', summary: 'cancel a backfill' },
  { method: 'POST', path: '/api/pipelines/:name/pause', role: 'operator', scope: 'path', summary: "pause a realtime pipeline's processing (audited)" },
  { method: 'POST', path: '/api/pipelines/:name/resume', role: 'operator', scope: 'path', summary: "resume a paused pipeline's processing (audited)" },
  { method: 'POST', path: '/api/pipelines/:name/replays', role: 'operator', scope: 'path', summary: "replay a range of the pipeline's change topics (or a dry run)" },
  { method: 'GET', path: '/api/pipelines/:name/replays/:id', role: 'viewer', scope: 'path', summary: "a replay's progress and summary" },
  { method: 'GET', path: '/api/audit', role: 'operator', scope: 'process', summary: 'audit trail entries, newest first' },
  { method: 'GET', path: '/api/history', role: 'viewer', scope: 'query', summary: "a key's change history (values masked unless admin)" },
  { method: 'POST', path: '/api/pipelines/:name/verify', role: 'operator', scope: 'path', summary: 'verify (and repair) a pipeline' },
  { method: 'GET', path: '/api/pipelines/:name/verify', role: 'viewer', scope: 'path', summary: 'the last verification of a pipeline' },
  { method: 'POST', path: '/api/pipelines/:name/rollback', role: 'admin', scope: 'path', summary: 'roll the target back to an instant (dry run: the diff)' },
  { method: 'GET', path: '/api/schema/changes', role: 'viewer', scope: 'query', summary: 'list schema changes' },
  { method: 'POST', path: '/api/schema/changes/:id/approve', role: 'admin', scope: 'query', summary: 'let a held schema change through' },
  { method: 'POST', path: '/api/schema/changes/:id/reject', role: 'admin', scope: 'query', summary: 'reject a held schema change' },
  { method: 'POST', path: '/api/reload', role: 'admin', scope: 'process', summary: 'reload the config' },
];

export const ROLE_RANK: Record<ApiRole, number> = { viewer: 1, operator: 2, admin: 3 };

export type RouteMatch =
  | { kind: 'route'; route: RouteSpec; params: Record<string, string> }
  | { kind: 'method'; allow: string[] }
  | { kind: 'none' };

function matchPath(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/').filter(Boolean);
  const have = path.split('/').filter(Boolean);
  if (want.length !== have.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    let h: string;
    try {
      h = decodeURIComponent(have[i]!);
    } catch {
      return undefined;
    }
    if (w.startsWith(':')) params[w.slice(1)] = h;
    else if (w !== h) return undefined;
  }
  return params;
}

/** The declared route of a request (HEAD counts as GET); `method` when only another method is declared for the path. */
export function matchRoute(method: string | undefined, path: string, routes: readonly RouteSpec[] = ROUTES): RouteMatch {
  const m = method === 'HEAD' ? 'GET' : (method ?? 'GET');
  const allow: string[] = [];
  let best: { route: RouteSpec; params: Record<string, string> } | undefined;
  for (const route of routes) {
    const params = matchPath(route.path, path);
    if (!params) continue;
    if (route.method !== m) {
      allow.push(route.method);
      continue;
    }
    // A literal segment beats a parameter (none overlap today; kept deterministic).
    if (!best || route.path.split(':').length < best.route.path.split(':').length) best = { route, params };
  }
  if (best) return { kind: 'route', ...best };
  if (allow.length > 0) return { kind: 'method', allow: [...new Set(allow.flatMap((a) => (a === 'GET' ? ['GET', 'HEAD'] : [a])))] };
  return { kind: 'none' };
}
