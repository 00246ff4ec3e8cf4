/**
 * The console's door through the real HTTP server, without the stack: login with a token (and its
 * login-CSRF token), the session cookie's flags, pages only with a session, CSRF on every POST,
 * cross-origin POSTs refused, no open redirect after login, logout, the assets served locally with a
 * strict CSP, and auth none (a session made on the spot, still with its CSRF token).
 * The workbench and the pipelines page against a real syncline: test/console.int.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ObservabilityServer } from '../observe/http.js';
import { HealthState } from '../observe/health.js';
import { ApiAccess } from '../security/access/access.js';
import { newToken, tokenHash } from '../security/access/tokens.js';
import type { SynclineConfig } from '../core/config/schema.js';
import type { DlqService } from '../dlq/service.js';

const log = pino({ level: 'silent' });
const config = { pipelines: {} } as unknown as SynclineConfig;

async function serve(access: ApiAccess | undefined, dlq?: () => DlqService): Promise<{ base: string; close: () => Promise<void> }> {
  const health = new HealthState();
  const server = new ObservabilityServer({
    metrics: async () => '', metricsContentType: 'text/plain', health: () => health.report(), ready: async () => ({ ready: true, checks: {} }),
    ...(access ? { access } : {}),
    console: { config: () => config, metrics: async () => '', health: () => health.report(), ...(dlq ? { dlq } : {}) },
  }, log);
  const port = await server.start(0, '127.0.0.1');
  return { base: `http://127.0.0.1:${port}`, close: () => server.close() };
}

const get = (url: string, cookie = '') => fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
const post = (url: string, body: Record<string, string>, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(body) });
const cookieOf = (r: Response, name: string) => r.headers.getSetCookie().find((c) => c.startsWith(`${name}=`));
const valueOf = (c: string | undefined) => c?.split(';')[0]!.split('=').slice(1).join('=') ?? '';

test('console with tokens: login → session cookie, pages need it, CSRF on POSTs, no open redirect, logout', async (t) => {
  const token = newToken();
  const denied: string[] = [];
  const access = new ApiAccess({ tokens: [{ name: 'ops', role: 'operator', hash: tokenHash(token) }], open: [] } as never, { log, onDenied: (d) => denied.push(`${d.status} ${d.path}`) });
  const { base, close } = await serve(access);
  t.after(close);

  // Without a session: pages → the login page; a POST → 401 telling htmx where to log in.
  let r = await get(`${base}/console/dlq?state=all`);
  assert.equal(r.status, 303);
  assert.equal(r.headers.get('location'), '/console/login?next=%2Fconsole%2Fdlq%3Fstate%3Dall');
  r = await post(`${base}/console/dlq/x/discard`, {});
  assert.equal(r.status, 401);
  assert.match(r.headers.get('hx-redirect') ?? '', /^\/console\/login/);

  // The login page sets the login-CSRF cookie and puts the same value in its form.
  r = await get(`${base}/console/login?next=${encodeURIComponent('https://evil.example/')}`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  const loginCookie = cookieOf(r, 'syncline_login')!;
  const page = await r.text();
  const loginToken = /name="_login" value="([^"]+)"/.exec(page)![1]!;
  assert.equal(valueOf(loginCookie), loginToken);
  assert.match(page, /name="next" value="\/console\/pipelines"/, 'a next outside the console is dropped');
  assert.match(page, /<label for="token">API token<\/label>/);

  // A login without the form's token (another site's form) is refused; a wrong token too.
  r = await post(`${base}/console/login`, { token }, { cookie: `syncline_login=${loginToken}` });
  assert.equal(r.status, 403);
  r = await post(`${base}/console/login`, { _login: loginToken, token: newToken() }, { cookie: `syncline_login=${loginToken}` });
  assert.equal(r.status, 401);
  assert.match(await r.text(), /unknown or revoked API token/);
  assert.equal(cookieOf(r, 'syncline_session'), undefined);

  r = await post(`${base}/console/login`, { _login: loginToken, token, next: '/console/dlq' }, { cookie: `syncline_login=${loginToken}` });
  assert.equal(r.status, 303);
  assert.equal(r.headers.get('location'), '/console/dlq');
  const set = cookieOf(r, 'syncline_session')!;
  assert.match(set, /^syncline_session=[A-Za-z0-9_-]{43}; Path=\/console; HttpOnly; SameSite=Strict$/);
  assert.ok(!set.includes(token), 'the cookie is not the token');
  const cookie = `syncline_session=${valueOf(set)}`;

  r = await get(`${base}/console/pipelines`, cookie);
  assert.equal(r.status, 200);
  const html = await r.text();
  assert.match(html, /token:ops <span class="role">\(operator\)<\/span>/);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
  assert.ok(html.includes(`{&quot;X-CSRF-Token&quot;:&quot;${csrf}&quot;}`), 'htmx sends the token as a header');

  // POSTs: without the CSRF token, with a wrong one, or from another origin → 403; with it → the action.
  r = await post(`${base}/console/logout`, {}, { cookie });
  assert.equal(r.status, 403);
  r = await post(`${base}/console/logout`, { _csrf: csrf + 'x' }, { cookie });
  assert.equal(r.status, 403);
  r = await post(`${base}/console/logout`, { _csrf: csrf }, { cookie, origin: 'https://evil.example' });
  assert.equal(r.status, 403);
  assert.deepEqual(denied.filter((d) => d.startsWith('403 /console/logout')).length, 3, 'refusals are reported like the API\'s');
  r = await post(`${base}/console/logout`, {}, { cookie, 'x-csrf-token': csrf, origin: base });
  assert.equal(r.status, 303);
  assert.match(cookieOf(r, 'syncline_session')!, /^syncline_session=; .*Max-Age=0/);
  r = await get(`${base}/console/pipelines`, cookie);
  assert.equal(r.status, 303, 'the session ended');

  // Assets: htmx from node_modules and the stylesheet, served without a session.
  r = await get(`${base}/console/assets/htmx.min.js`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /javascript/);
  assert.match(await r.text(), /htmx/);
  r = await get(`${base}/console/assets/console.css`);
  assert.equal(r.status, 200);
  assert.equal((await get(`${base}/console/assets/../../etc/passwd`)).status === 200, false);
  assert.equal((await get(`${base}/console/assets/nope.js`)).status, 404);
});

test('console with auth none: a session on the spot (with its CSRF token), a banner saying anyone can act', async (t) => {
  const { base, close } = await serve(undefined);
  t.after(close);
  let r = await get(`${base}/console`);
  assert.equal(r.status, 200);
  const cookie = `syncline_session=${valueOf(cookieOf(r, 'syncline_session'))}`;
  const html = await r.text();
  assert.match(html, /anyone who reaches this port can act here/);
  assert.doesNotMatch(html, /Log out/);
  assert.equal((await get(`${base}/console/login`)).status, 303, 'no login page');
  // Still no POST without the token (another site cannot drive the browser).
  r = await post(`${base}/console/pipelines/x/runs`, {}, { cookie });
  assert.equal(r.status, 403);
  const csrf = /X-CSRF-Token&quot;:&quot;([^&]+)&quot;/.exec(html)![1]!;
  r = await post(`${base}/console/pipelines/x/runs`, { _csrf: csrf }, { cookie });
  assert.equal(r.status, 303);
  assert.equal(new URL(r.headers.get('location') ?? '', base).searchParams.get('failed'), "Sync now of x: no pipeline 'x'");
});

test('dead-letter page while the dead letters are read: the progress at once, asked again, never a partial first list', async (t) => {
  // The only stand-in: reads of the topics that do not finish (the real ones: test/dlq-index.int.test.ts).
  let ready = false;
  let reading = true;
  let listed = 0;
  let counts = { read: 4000, total: 10000 };
  const dlq = {
    masking: undefined,
    loading: () => ({ ready, reading, ...counts }),
    refresh: () => (reading ? new Promise<void>(() => undefined) : Promise.resolve()),
    indexed: () => {
      listed++;
      return [];
    },
  } as unknown as DlqService;
  const { base, close } = await serve(undefined, () => dlq);
  t.after(close);
  const cookie = `syncline_session=${valueOf(cookieOf(await get(`${base}/console`), 'syncline_session'))}`;
  // The first read: its progress instead of the list.
  let body = await (await get(`${base}/console/dlq?kind=invalid`, cookie)).text();
  assert.match(body, /role="status">Reading the dead letters from Kafka: 4,000 of 10,000 so far/);
  assert.match(body, /hx-get="\/console\/dlq\?kind=invalid" hx-trigger="load delay:1s"/, 'asks again for the same page');
  assert.match(body, /<a href="\/console\/dlq\?kind=invalid">Refresh<\/a>/, 'a link without script');
  assert.equal(listed, 0, 'no partial list');
  // A later read (new dead letters): the list read so far, and what is being read.
  ready = true;
  body = await (await get(`${base}/console/dlq?kind=invalid`, cookie)).text();
  assert.match(body, /role="status">Reading 10,000 new dead letters from Kafka: 4,000 of 10,000 so far \(listed below as they are read\)/);
  assert.match(body, /No dead letters match/);
  assert.equal(listed, 1);
  // A later read whose bounds are not known yet (a loaded machine: nothing counted so far): still asks again.
  counts = { read: 0, total: 0 };
  body = await (await get(`${base}/console/dlq?kind=invalid`, cookie)).text();
  assert.match(body, /role="status">Reading new dead letters from Kafka \(listed below as they are read\)/);
  assert.match(body, /hx-get="\/console\/dlq\?kind=invalid" hx-trigger="load delay:1s"/, 'asks again although nothing is counted yet');
  // Nothing being read: the list alone.
  reading = false;
  body = await (await get(`${base}/console/dlq?kind=invalid`, cookie)).text();
  assert.doesNotMatch(body, /Reading/);
  assert.match(body, /No dead letters match/);
});
