/**
 * Unit tests of access control without a server: token hashing and constant-time lookup, the
 * route table's matching, and ApiAccess's decisions (401 / 403 / scope / auth none / open probes).
 * The HTTP matrix over every route runs against a real runtime in test/access-matrix.int.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type http from 'node:http';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import '../../../connectors/index.js';
import { parseConfig } from '../../core/config/load.js';
import { findToken, looksLikeToken, newToken, tokenHash } from './tokens.js';
import { matchRoute, ROUTES } from './routes.js';
import { actorOf, ApiAccess, type Denial } from './access.js';
import { tokenCreate } from '../../cli/auth.js';

const log = pino({ level: 'silent' });

test('tokens: 256 random bits, slt_ prefix, only the SHA-256 is kept, lookup finds the right one', () => {
  const a = newToken();
  const b = newToken();
  assert.notEqual(a, b);
  assert.ok(looksLikeToken(a), a);
  assert.equal(a.length, 4 + 43);
  assert.match(tokenHash(a), /^sha256:[0-9a-f]{64}$/);
  assert.ok(!tokenHash(a).includes(a.slice(4)));
  const hashes = [tokenHash(b), tokenHash(a)];
  assert.equal(findToken(a, hashes), 1);
  assert.equal(findToken(b, hashes), 0);
  assert.equal(findToken(newToken(), hashes), -1);
  // One character changed, a truncated token, a hash presented as the token: none matches.
  assert.equal(findToken(a.slice(0, -1) + (a.endsWith('A') ? 'B' : 'A'), hashes), -1);
  assert.equal(findToken(a.slice(0, 20), hashes), -1);
  assert.equal(findToken(hashes[1]!, hashes), -1);
  // A malformed configured hash never matches (and does not throw).
  assert.equal(findToken(a, ['sha256:zz', 'md5:00']), -1);
});

test('routes: every route has a role and a scope; matching, HEAD as GET, 405 with Allow, undeclared → none', () => {
  for (const r of ROUTES) {
    assert.ok(['viewer', 'operator', 'admin'].includes(r.role), `${r.method} ${r.path}`);
    assert.ok(['path', 'query', 'process'].includes(r.scope), `${r.method} ${r.path}`);
    if (r.scope === 'path') assert.ok(r.path.includes('/:name'), `${r.path} has scope path but no :name`);
  }
  const m = matchRoute('POST', '/api/dlq/abc%2F1/resolve');
  assert.equal(m.kind, 'route');
  assert.deepEqual(m.kind === 'route' && m.params, { id: 'abc/1' });
  assert.equal(matchRoute('HEAD', '/metrics').kind, 'route');
  assert.deepEqual(matchRoute('DELETE', '/api/dlq'), { kind: 'method', allow: ['GET', 'HEAD'] });
  assert.deepEqual(matchRoute('GET', '/api/reload'), { kind: 'method', allow: ['POST'] });
  assert.equal(matchRoute('GET', '/api/nothing').kind, 'none');
  assert.equal(matchRoute('POST', '/api/dlq/x/explode').kind, 'none');
  // No two routes are the same method and path.
  const keys = ROUTES.map((r) => `${r.method} ${r.path.replace(/:[a-z]+/g, ':')}`);
  assert.equal(new Set(keys).size, keys.length);
});

function req(headers: Record<string, string> = {}, method = 'GET'): http.IncomingMessage {
  return { headers, method } as unknown as http.IncomingMessage;
}
const route = (method: string, path: string) => {
  const m = matchRoute(method, path.split('?')[0]!);
  assert.equal(m.kind, 'route', `${method} ${path}`);
  return m.kind === 'route' ? m : (undefined as never);
};
async function decide(a: ApiAccess, method: string, path: string, headers: Record<string, string> = {}) {
  const r = req(headers, method);
  const m = route(method, path);
  const d = await a.authorize(r, m.route, m.params, new URL(path, 'http://x'));
  return { ...d, actor: actorOf(r) };
}

test('ApiAccess: 401 with WWW-Authenticate, 403 for role and scope, the principal as actor, onDenied called', async () => {
  const view = newToken();
  const op = newToken();
  const scoped = newToken();
  const denied: Denial[] = [];
  const a = new ApiAccess(
    {
      tokens: [
        { name: 'view', hash: tokenHash(view), role: 'viewer' },
        { name: 'op', hash: tokenHash(op), role: 'operator' },
        { name: 'orders-admin', hash: tokenHash(scoped), role: 'admin', pipelines: ['orders'] },
      ],
      open: ['health'],
    },
    { log, onDenied: (d) => denied.push(d) },
  );
  assert.equal(a.mode, 'required');
  const bearer = (t: string) => ({ authorization: `Bearer ${t}`, 'x-syncline-user': 'mallory' });

  const none = await decide(a, 'GET', '/api/dlq');
  assert.equal(none.ok, false);
  assert.equal(!none.ok && none.status, 401);
  assert.equal(!none.ok && none.headers['WWW-Authenticate'], 'Bearer realm="syncline"');
  const wrong = await decide(a, 'GET', '/api/dlq', bearer(newToken()));
  assert.equal(!wrong.ok && wrong.status, 401);
  assert.match(!wrong.ok ? wrong.headers['WWW-Authenticate']! : '', /invalid_token/);
  assert.equal((await decide(a, 'GET', '/api/dlq', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` })).ok, false);

  assert.equal((await decide(a, 'GET', '/health')).ok, true); // open
  assert.equal(!(await decide(a, 'GET', '/metrics')).ok && 401, 401); // not in open

  const v = await decide(a, 'GET', '/api/dlq', bearer(view));
  assert.equal(v.ok, true);
  assert.equal(v.actor, 'token:view'); // the header is ignored
  const vr = await decide(a, 'POST', '/api/dlq/1/requeue', bearer(view));
  assert.equal(!vr.ok && vr.status, 403);
  assert.match(!vr.ok ? vr.error : '', /needs role operator; token:view has viewer/);
  assert.equal((await decide(a, 'POST', '/api/dlq/1/requeue', bearer(op))).ok, true);
  assert.equal(!(await decide(a, 'POST', '/api/reload', bearer(op))).ok, true);

  // Scope: path, query (must be named), process-wide actions refused, process-wide reads allowed.
  assert.equal((await decide(a, 'POST', '/api/pipelines/orders/runs', bearer(scoped))).ok, true);
  const other = await decide(a, 'POST', '/api/pipelines/users/runs', bearer(scoped));
  assert.match(!other.ok ? other.error : '', /pipelines orders only, not users/);
  assert.match((await decide(a, 'GET', '/api/dlq', bearer(scoped)) as { error?: string }).error ?? '', /name one with \?pipeline=/);
  assert.equal((await decide(a, 'GET', '/api/dlq?pipeline=orders', bearer(scoped))).ok, true);
  assert.equal((await decide(a, 'GET', '/api/dlq?pipeline=users', bearer(scoped))).ok, false);
  assert.match((await decide(a, 'POST', '/api/reload', bearer(scoped)) as { error?: string }).error ?? '', /whole process/);
  assert.equal((await decide(a, 'GET', '/alerts', bearer(scoped))).ok, true);

  assert.ok(denied.length >= 8);
  assert.deepEqual(denied[0], { actor: undefined, role: undefined, method: 'GET', path: '/api/dlq', status: 401, reason: denied[0]!.reason });
  assert.ok(denied.some((d) => d.actor === 'token:view' && d.status === 403 && d.path === '/api/dlq/1/requeue'));
});

test('ApiAccess: auth none lets everything through and takes the actor from X-Syncline-User; the default follows the config', async () => {
  const a = new ApiAccess(undefined, { log });
  assert.equal(a.mode, 'none');
  assert.equal(a.implicit, true);
  const d = await decide(a, 'POST', '/api/reload', { 'x-syncline-user': 'alice' });
  assert.equal(d.ok, true);
  assert.equal(d.actor, 'alice');
  assert.equal((await decide(a, 'POST', '/api/reload')).actor, 'api');
  assert.equal(new ApiAccess({ auth: 'none', tokens: [{ name: 'x', hash: tokenHash(newToken()), role: 'admin' }], open: [] }, { log }).mode, 'none');
  assert.equal(new ApiAccess({ tokens: [{ name: 'x', hash: tokenHash(newToken()), role: 'admin' }], open: [] }, { log }).mode, 'required');
});

test('ApiAccess: how auth none is said at start: info (nothing configured, loopback), warn (explicit none), error (beyond loopback)', async () => {
  const lines: { level: number; msg: string }[] = [];
  const capture = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as { level: number; msg: string }) });
  const levelOf = async (cfg: ConstructorParameters<typeof ApiAccess>[0], host: string) => {
    lines.length = 0;
    await new ApiAccess(cfg, { log: capture }).prepare(host, 9464);
    return lines.find((l) => l.msg.startsWith('api.auth'))?.level;
  };
  assert.equal(await levelOf(undefined, '127.0.0.1'), 30);
  assert.equal(await levelOf({ auth: 'none', tokens: [], open: [] }, '127.0.0.1'), 40);
  assert.equal(await levelOf(undefined, '0.0.0.0'), 50);
  assert.equal(await levelOf({ auth: 'none', tokens: [], open: [] }, '10.1.2.3'), 50);
  assert.equal(await levelOf({ tokens: [{ name: 'x', hash: tokenHash(newToken()), role: 'admin' }], open: [] }, '0.0.0.0'), 30); // api.auth.required
});

const base = `version: 1
topicPrefix: t
kafka: { brokers: ['127.0.0.1:9092'] }
schemaRegistry: { url: 'http://127.0.0.1:8081' }
redis: { url: 'redis://127.0.0.1:6379' }
pipelines:
  orders:
    source: { type: postgres, connection: { host: 127.0.0.1, database: a, user: postgres }, slot: s1, publication: p1 }
    target: { type: postgres, connection: { host: 127.0.0.1, database: b, user: postgres } }
    tables: [{ source: public.orders }]
`;

test('config api: hashes from the environment, clear errors for a raw token, an unknown pipeline, required without credentials', () => {
  const t = newToken();
  const ok = parseConfig(`${base}api:\n  tokens:\n    - { name: ops, role: operator, hash: "\${SYNCLINE_TOKEN_HASH_OPS}", pipelines: [orders] }\n`, 'a.yaml', { SYNCLINE_TOKEN_HASH_OPS: tokenHash(t) });
  assert.equal(ok.api?.tokens[0]?.hash, tokenHash(t));
  assert.deepEqual(ok.api?.open, ['health', 'ready', 'metrics']);
  const problems = (text: string) => {
    try {
      parseConfig(text, 'a.yaml', {});
    } catch (err) {
      return String((err as Error).message);
    }
    return '';
  };
  const raw = problems(`${base}api:\n  tokens:\n    - { name: ops, role: operator, hash: ${t} }\n`);
  assert.match(raw, /api\.tokens\[0\]\.hash|api.tokens.0.hash/);
  assert.match(raw, /never the token itself/);
  assert.ok(!raw.includes(t), 'the token itself is not echoed');
  assert.match(problems(`${base}api:\n  tokens:\n    - { name: ops, role: operator, hash: "${tokenHash(t)}", pipelines: [nope] }\n`), /no pipeline 'nope'/);
  assert.match(problems(`${base}api:\n  auth: required\n`), /nobody could call the API/);
  assert.match(problems(`${base}api:\n  tokens:\n    - { name: ops, role: root, hash: "${tokenHash(t)}" }\n`), /role/);
});

test('syncline auth token create: prints the token once and a hash that matches it', () => {
  const out = tokenCreate({ name: 'ops-1', role: 'operator', pipeline: ['orders'] });
  const token = /\n {2}(slt_\S+)\n/.exec(out)?.[1];
  assert.ok(token && looksLikeToken(token), out);
  const hash = /SYNCLINE_TOKEN_HASH_OPS_1=(sha256:[0-9a-f]{64})/.exec(out)?.[1];
  assert.equal(hash, tokenHash(token!));
  assert.match(out, /hash: \$\{SYNCLINE_TOKEN_HASH_OPS_1\}/);
  assert.match(out, /pipelines: \[orders\]/);
});

test('docs/security.md lists every route of the table with its role and scope', () => {
  const doc = readFileSync(new URL('../../../docs/security.md', import.meta.url), 'utf8');
  for (const r of ROUTES) {
    const row = `| ${r.method} | \`${r.path}\` | ${r.role} | ${r.scope}`;
    assert.ok(doc.includes(row), `docs/security.md lacks the row ${row}`);
  }
  const rows = doc.split('\n').filter((l) => /^\| (GET|POST) \| `/.test(l));
  assert.equal(rows.length, ROUTES.length, 'no route in the docs that the table does not have');
});
