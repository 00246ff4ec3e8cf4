/**
 * Access control of the HTTP API.
 * 1. The 401/403 matrix over EVERY route of the route table (src/security/access/routes.ts) × every
 *    kind of caller — no credentials, a wrong token, a malformed Authorization header, viewer,
 *    operator, admin, an admin token limited to pipeline `a` asking about pipeline `m` and about its
 *    own — through the real HTTP server and access control, each route's handler replaced by one
 *    that names the route it got (so 176 calls take a second). Expectations come from the role
 *    policy written in this file, so a route whose role or scope is lowered in the table fails here; a handler route missing from the table is
 *    unreachable (the router answers 404), which part 2 would show.
 * 2. A real runtime (capture, process, sink; real Kafka, PostgreSQL, Redis): an admin call reaches
 *    the real handler of every declared route (none is the router's or the process's "no such
 *    endpoint"), a viewer is refused a reload, nobody gets in without a token, and the actor of a
 *    sync run is the token's holder, not the X-Syncline-User header.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ROUTES, matchRoute, type RouteSpec } from '../src/security/access/routes.js';
import { newToken, tokenHash } from '../src/security/access/tokens.js';
import { ApiAccess, actorOf, type Denial } from '../src/security/access/access.js';
import { ObservabilityServer } from '../src/observe/http.js';
import { once } from 'node:events';
import { spawnCli, startRuntime, sql, testEnv, waitFor, withClient } from './helpers.js';

type Who = 'none' | 'wrong' | 'malformed' | 'viewer' | 'operator' | 'admin' | 'scopedOut' | 'scopedIn';
const RANK = { viewer: 1, operator: 2, admin: 3 } as const;

/**
 * The policy of issue 22, written here independently of the route table (so lowering a role or a
 * scope in the table fails this test): reads are for viewers; every POST is an operator's action
 * (resolve/requeue/discard, sync runs, backfills) except these, which are an admin's (reload, schema
 * decisions, revealing a masked dead letter, rollback); one read is an operator's, over the whole
 * process: the audit trail (who did what in every pipeline; ADR 0033 addendum).
 */
const ADMIN_ACTIONS = new Set(['POST /api/reload', 'POST /api/schema/changes/:id/approve', 'POST /api/schema/changes/:id/reject', 'POST /api/dlq/:id/reveal', 'POST /api/pipelines/:name/rollback']);
const OPERATOR_READS = new Set(['GET /api/audit']);
const policyRole = (r: RouteSpec): keyof typeof RANK => (OPERATOR_READS.has(`${r.method} ${r.path}`) ? 'operator' : r.method === 'GET' ? 'viewer' : ADMIN_ACTIONS.has(`${r.method} ${r.path}`) ? 'admin' : 'operator');
/** Which pipeline a route concerns: its :name, else (an /api route over pipelines) ?pipeline=, else the whole process. */
const PROCESS_WIDE = new Set(['/api/reload', '/api/audit']);
const policyScope = (r: RouteSpec) => (r.path.includes('/pipelines/:name') ? 'path' : r.path.startsWith('/api/') && !PROCESS_WIDE.has(r.path) ? 'query' : 'process');

/** What the route must answer the caller: 401, 403, or 'pass' (its handler answered). */
function expected(r: RouteSpec, who: Who, open: string[]): 401 | 403 | 'pass' {
  if (r.openable && open.includes(r.openable)) return 'pass';
  if (who === 'none' || who === 'wrong' || who === 'malformed') return 401;
  const role = who === 'scopedOut' || who === 'scopedIn' ? 'admin' : who;
  const need = policyRole(r);
  const scope = policyScope(r);
  if (RANK[role] < RANK[need]) return 403;
  if (who === 'scopedOut' && scope !== 'process') return 403;
  if ((who === 'scopedOut' || who === 'scopedIn') && scope === 'process' && need !== 'viewer') return 403;
  return 'pass';
}

const tokens = { viewer: newToken(), operator: newToken(), admin: newToken(), scoped: newToken() };
const apiConfig = (open: ('health' | 'ready' | 'metrics')[]) => ({
  tokens: [
    { name: 'view', role: 'viewer' as const, hash: tokenHash(tokens.viewer) },
    { name: 'op', role: 'operator' as const, hash: tokenHash(tokens.operator) },
    { name: 'root', role: 'admin' as const, hash: tokenHash(tokens.admin) },
    { name: 'a-admin', role: 'admin' as const, hash: tokenHash(tokens.scoped), pipelines: ['a'] },
  ],
  open,
});
const auth: Record<Who, Record<string, string>> = {
  none: {},
  wrong: { authorization: `Bearer ${newToken()}` },
  malformed: { authorization: `Token ${tokens.admin}` },
  viewer: { authorization: `Bearer ${tokens.viewer}` },
  operator: { authorization: `Bearer ${tokens.operator}` },
  admin: { authorization: `Bearer ${tokens.admin}` },
  scopedOut: { authorization: `Bearer ${tokens.scoped}` },
  scopedIn: { authorization: `Bearer ${tokens.scoped}` },
};
const whos = Object.keys(auth) as Who[];
const pathOf = (r: RouteSpec, pipeline: string) => r.path.replace(':name', pipeline).replace(':id', 'no-such-id') + (policyScope(r) === 'query' ? `?pipeline=${pipeline}` : '');
const call = (base: string, r: RouteSpec, path: string, headers: Record<string, string>) =>
  fetch(base + path, { method: r.method, headers: { ...headers, 'content-type': 'application/json', 'x-syncline-user': 'mallory' }, ...(r.method === 'POST' ? { body: '{}' } : {}) });

test('the 401/403 matrix over every route × caller (real HTTP server and access control)', async (t) => {
  for (const open of [['health'], []] as ('health' | 'ready' | 'metrics')[][]) {
    const denials: Denial[] = [];
    const log = pino({ level: 'silent' });
    const reached: string[] = [];
    const server = new ObservabilityServer({
      metrics: async () => 'm 1\n', metricsContentType: 'text/plain', health: () => ({ status: 'ok' }) as never, ready: async () => ({ ready: true, checks: [] }) as never, alerts: () => ({ alerts: [] }),
      // Every /api route: answers which declared route it got and who acted.
      api: async (req, res) => {
        const m = matchRoute(req.method, new URL(req.url!, 'http://x').pathname);
        const body = { route: m.kind === 'route' ? `${m.route.method} ${m.route.path}` : null, actor: actorOf(req) };
        reached.push(String(body.route));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
        return true;
      },
      access: new ApiAccess(apiConfig(open), { log, onDenied: (d) => denials.push(d) }),
    }, log);
    const port = await server.start(0, '127.0.0.1');
    t.after(() => server.close());
    const base = `http://127.0.0.1:${port}`;
    const failures: string[] = [];
    let calls = 0;
    for (const r of ROUTES) {
      for (const who of whos) {
        const path = pathOf(r, who === 'scopedOut' ? 'm' : 'a');
        const res = await call(base, r, path, auth[who]);
        calls++;
        const text = await res.text();
        const want = expected(r, who, open);
        const line = `${r.method} ${path} as ${who}: want ${want}, got ${res.status} ${text.slice(0, 160)}`;
        if (want === 'pass') {
          if (res.status !== 200) failures.push(line);
          else if (r.path.startsWith('/api/')) {
            const b = JSON.parse(text) as { route: string; actor: string };
            if (b.route !== `${r.method} ${r.path}`) failures.push(`${line} (reached ${b.route})`);
            if (b.actor === 'mallory') failures.push(`${line} (actor from the header)`);
          }
        } else if (res.status !== want) failures.push(line);
        else if (want === 401 && !/^Bearer realm="syncline"/.test(res.headers.get('www-authenticate') ?? '')) failures.push(`${line} (no WWW-Authenticate)`);
      }
    }
    assert.deepEqual(failures, [], `open ${JSON.stringify(open)}: ${failures.length} of ${calls} calls answered wrongly:\n${failures.join('\n')}`);
    assert.equal(calls, ROUTES.length * whos.length);
    const refused = ROUTES.flatMap((r) => whos.map((w) => expected(r, w, open))).filter((x) => x !== 'pass').length;
    assert.equal(denials.length, refused, 'every 401/403 reached onDenied');
    assert.ok(denials.some((d) => d.actor === 'token:view' && d.role === 'viewer' && d.status === 403 && d.path === '/api/reload'));
    // Undeclared: the router's 404 before any handler, even with the admin token.
    const before = reached.length;
    const undeclared = await fetch(`${base}/api/dlq/x/explode`, { method: 'POST', headers: auth.admin });
    assert.equal(undeclared.status, 404);
    assert.equal(reached.length, before);
    const wrongMethod = await fetch(`${base}/api/reload`, { headers: auth.admin });
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get('allow'), 'POST');
    await server.close();
  }
});

test('a real runtime: every declared route reaches its real handler; 401/403 at the door; the actor is the token', async (t) => {
  const env = await testEnv(
    [{ name: 'a', tables: [{ source: 'public.tickets' }], conflict: { strategy: 'source-wins' }, sync: { mode: 'manual' } }],
    { extra: { observability: { port: 0 }, api: apiConfig(['health']) } },
  );
  t.after(() => env.cleanup());
  for (const db of [env.sourceDb, env.targetDb]) await withClient(db, (c) => c.query('create table tickets (id bigint primary key, title text)'));
  await sql(env.sourceDb, `insert into tickets select g, 't' || g from generate_series(1, 20) g`);
  const { rt } = await startRuntime(env);
  const denials: Denial[] = [];
  rt.accessDenied = (d) => denials.push(d);
  rt.reloadSource = () => env.config;
  const base = `http://127.0.0.1:${rt.httpPort}`;

  // The actor of a sync run is the token's holder; the X-Syncline-User header is not believed.
  const res = await fetch(`${base}/api/pipelines/a/runs`, { method: 'POST', headers: { ...auth.operator, 'content-type': 'application/json', 'x-syncline-user': 'mallory' }, body: '{"wait":true}' });
  const run = (await res.json()) as { by: string; outcome: string };
  assert.equal(res.status, 200, JSON.stringify(run));
  assert.equal(run.by, 'token:op');
  assert.equal(run.outcome, 'succeeded', JSON.stringify(run));
  await waitFor('the run to have copied the tickets', async () => (await sql(env.targetDb, 'select count(*)::int n from tickets')).rows[0].n === 20, 60_000, 250);
  const listed = await fetch(`${base}/api/runs?pipeline=a`, { headers: auth.viewer });
  assert.equal(((await listed.json()) as { by: string }[])[0]?.by, 'token:op');

  // Every declared route is served by a real handler of this process (admin may call them all).
  const unserved: string[] = [];
  for (const r of ROUTES) {
    const path = pathOf(r, 'a');
    const res = await call(base, r, path, auth.admin);
    const text = await res.text();
    if (res.status === 401 || res.status === 403 || /is not served by this process|no such endpoint \//.test(text)) unserved.push(`${r.method} ${path}: ${res.status} ${text.slice(0, 160)}`);
  }
  assert.deepEqual(unserved, []);
  // And the door, on the real server.
  assert.equal((await fetch(`${base}/api/dlq?pipeline=a`)).status, 401);
  assert.equal((await fetch(`${base}/metrics`)).status, 401);
  assert.equal((await fetch(`${base}/health`)).status, 200);
  const viewerReload = await fetch(`${base}/api/reload`, { method: 'POST', headers: auth.viewer });
  assert.equal(viewerReload.status, 403);
  assert.ok(denials.some((d) => d.actor === 'token:view' && d.path === '/api/reload' && d.status === 403));

  // The CLI sends SYNCLINE_TOKEN (or --token); without one it says what to do.
  const cli = async (args: string[], env: Record<string, string>) => {
    const child = spawnCli(args, env);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const [code] = (await once(child, 'exit')) as [number];
    return { code, out, err: (child as unknown as { stderrTail: () => string }).stderrTail() };
  };
  const bare = await cli(['sync', 'run', 'a', '--config', env.configFile, '--url', base], { SYNCLINE_TOKEN: '' });
  assert.equal(bare.code, 1);
  assert.match(bare.err, /wants an API token .*set SYNCLINE_TOKEN or pass --token/);
  const viewerRun = await cli(['sync', 'run', 'a', '--config', env.configFile, '--url', base, '--token', tokens.viewer], {});
  assert.match(viewerRun.err, /refused the token: POST \/api\/pipelines\/:name\/runs needs role operator/);
  const ok = await cli(['sync', 'run', 'a', '--config', env.configFile, '--url', base, '--wait', '--json'], { SYNCLINE_TOKEN: tokens.operator });
  assert.equal(ok.code, 0, ok.err);
  assert.equal((JSON.parse(ok.out) as { by: string }).by, 'token:op');
});
