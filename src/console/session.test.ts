import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cookie, cookies, sameToken, SessionStore } from './session.js';
import { html, raw } from './html.js';

test('sessions: opaque ids, idle and absolute expiry, the JWT expiry, logout', () => {
  let now = 1_000_000;
  const s = new SessionStore({ idleMs: 1000, maxMs: 5000, now: () => now });
  const a = s.create({ actor: 'token:a', role: 'operator', via: 'token' });
  assert.match(a.id, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(a.session.csrf, a.id);
  assert.equal(s.get(a.id)?.principal.actor, 'token:a');
  assert.equal(s.get(a.id + 'x'), undefined);
  now += 900;
  assert.ok(s.get(a.id), 'used within the idle time');
  now += 900;
  assert.ok(s.get(a.id), 'the idle clock restarts at each use');
  now += 1000;
  assert.equal(s.get(a.id), undefined, 'idle too long');
  const b = s.create({ actor: 'token:b', role: 'viewer', via: 'token' });
  for (let i = 1; i <= 5; i++) {
    now += 900;
    assert.ok(s.get(b.id), `in use after ${i * 900} ms`);
  }
  now += 900; // 5400 ms after login, used 900 ms ago
  assert.equal(s.get(b.id), undefined, 'past the absolute end even when used');
  const c = s.create({ actor: 'oidc:c', role: 'admin', via: 'oidc', expiresAt: now + 300 });
  now += 301;
  assert.equal(s.get(c.id), undefined, 'ends with its JWT');
  const d = s.create({ actor: 'token:d', role: 'admin', via: 'token' });
  s.end(d.id);
  assert.equal(s.get(d.id), undefined, 'logged out');
});

test('cookies: HttpOnly, SameSite=Strict, Path=/console, Secure over HTTPS; parsing; constant-time token check', () => {
  assert.equal(cookie('syncline_session', 'v', { secure: false }), 'syncline_session=v; Path=/console; HttpOnly; SameSite=Strict');
  assert.equal(cookie('syncline_session', '', { secure: true, maxAgeS: 0 }), 'syncline_session=; Path=/console; HttpOnly; SameSite=Strict; Secure; Max-Age=0');
  assert.deepEqual(cookies({ headers: { cookie: 'a=1; syncline_session=xyz; a=2' } } as never), { a: '1', syncline_session: 'xyz' });
  assert.equal(sameToken('abc', 'abc'), true);
  assert.equal(sameToken('abc', 'abd'), false);
  assert.equal(sameToken(undefined, 'abc'), false);
  assert.equal(sameToken('', ''), false);
});

test('html: interpolated values are escaped unless made by the template', () => {
  const evil = `<script>alert("x")</script>' onmouseover='`;
  assert.equal(html`<td title="${evil}">${evil}</td>`.text, '<td title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;</td>');
  assert.equal(html`<p>${html`<b>${'<i>'}</b>`}${raw('<br>')}${[1, '<']}${null}${undefined}${false}</p>`.text, '<p><b>&lt;i&gt;</b><br>1&lt;</p>');
});
