/**
 * OIDC bearer JWTs against a real JWKS served by a local HTTP server, through the real HTTP server
 * and access control: a valid token's role and pipelines count and its subject is the actor; an
 * expired one, another audience, another issuer, another key, an unsigned one and one without a
 * role are refused (401, or 403 for the missing role). API tokens keep working next to OIDC.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as jose from 'jose';
import { pino } from 'pino';
import { ObservabilityServer } from '../../observe/http.js';
import { ApiAccess, actorOf } from './access.js';
import { newToken, tokenHash } from './tokens.js';

test('OIDC JWTs verified against a real JWKS: role and pipelines from claims, every bad token refused', async (t) => {
  const log = pino({ level: 'silent' });
  const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const other = await jose.generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  let fetches = 0;
  const idp = http.createServer((req, res) => {
    if (req.url !== '/jwks') return void res.writeHead(404).end();
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((r) => idp.listen(0, '127.0.0.1', () => r()));
  t.after(() => idp.close());
  const issuer = 'http://idp.test/realms/ops';
  const jwksUrl = `http://127.0.0.1:${(idp.address() as AddressInfo).port}/jwks`;

  const apiToken = newToken();
  const access = new ApiAccess(
    { tokens: [{ name: 'ci', role: 'viewer', hash: tokenHash(apiToken) }], open: [], oidc: { issuer, audience: 'syncline', jwksUrl, roleClaim: 'roles', pipelinesClaim: 'pipelines', userClaim: 'preferred_username', clockToleranceS: 5, algorithms: ['ES256'] } },
    { log },
  );
  const server = new ObservabilityServer({
    metrics: async () => '', metricsContentType: 'text/plain', health: () => ({}) as never, ready: async () => ({ ready: true, checks: [] }) as never,
    api: async (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ actor: actorOf(req) }));
      return true;
    },
    access,
  }, log);
  const port = await server.start(0, '127.0.0.1');
  t.after(() => server.close());

  const sign = (claims: Record<string, unknown>, o: { key?: CryptoKey; kid?: string; iss?: string; aud?: string; exp?: string | number } = {}) =>
    new jose.SignJWT({ preferred_username: 'alice', ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: o.kid ?? 'k1' })
      .setIssuer(o.iss ?? issuer)
      .setAudience(o.aud ?? 'syncline')
      .setSubject('u-1')
      .setIssuedAt()
      .setExpirationTime(o.exp ?? '5m')
      .sign((o.key ?? privateKey) as CryptoKey);
  const call = async (path: string, bearer: string, method = 'POST') => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers: { authorization: `Bearer ${bearer}`, 'x-syncline-user': 'mallory' }, body: method === 'POST' ? '{}' : undefined });
    return { status: res.status, body: (await res.json()) as { actor?: string; error?: string }, www: res.headers.get('www-authenticate') };
  };

  const op = await call('/api/dlq/x/requeue?pipeline=a', await sign({ roles: 'operator' }));
  assert.equal(op.status, 200, JSON.stringify(op));
  assert.equal(op.body.actor, 'oidc:alice');
  assert.equal((await call('/api/reload', await sign({ roles: 'operator' }))).status, 403);
  assert.equal((await call('/api/reload', await sign({ roles: ['viewer', 'admin'] }))).status, 200, 'the highest role of a list counts');
  const noRole = await call('/api/dlq', await sign({ roles: 'superuser' }), 'GET');
  assert.equal(noRole.status, 403);
  assert.match(noRole.body.error ?? '', /no syncline role in claim roles/);
  // Pipelines from the claim.
  const scoped = await sign({ roles: 'admin', pipelines: ['a'] });
  assert.equal((await call('/api/pipelines/a/runs', scoped)).status, 200);
  assert.equal((await call('/api/pipelines/b/runs', scoped)).status, 403);
  assert.equal((await call('/api/reload', scoped)).status, 403);

  // Refused with 401 and error="invalid_token".
  const bad: [string, string][] = [
    ['expired', await sign({ roles: 'admin' }, { exp: Math.floor(Date.now() / 1000) - 60 })],
    ['another audience', await sign({ roles: 'admin' }, { aud: 'grafana' })],
    ['another issuer', await sign({ roles: 'admin' }, { iss: 'http://evil.test' })],
    ['another key, same kid', await sign({ roles: 'admin' }, { key: other.privateKey })],
    ['another key, unknown kid', await sign({ roles: 'admin' }, { key: other.privateKey, kid: 'k2' })],
    ['unsigned (alg none)', `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: issuer, aud: 'syncline', roles: 'admin', exp: 9e9 })).toString('base64url')}.`],
    ['tampered payload', await (async () => {
      const [h, , s] = (await sign({ roles: 'viewer' })).split('.');
      return `${h}.${Buffer.from(JSON.stringify({ iss: issuer, aud: 'syncline', roles: 'admin', exp: 9e9, preferred_username: 'alice' })).toString('base64url')}.${s}`;
    })()],
  ];
  for (const [what, jwt] of bad) {
    const r = await call('/api/reload', jwt);
    assert.equal(r.status, 401, `${what}: ${JSON.stringify(r)}`);
    assert.match(r.www ?? '', /error="invalid_token"/, what);
  }
  assert.ok(fetches >= 1 && fetches <= 3, `the JWKS is cached (${fetches} fetches)`);
  // API tokens still work next to OIDC.
  const viaToken = await call('/api/dlq?pipeline=a', apiToken, 'GET');
  assert.equal(viaToken.status, 200);
  assert.equal(viaToken.body.actor, 'token:ci');
});
