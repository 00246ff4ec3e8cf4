/**
 * Access control of the HTTP API: who is calling (an API token of api.tokens, or an OIDC JWT
 * verified against the issuer's JWKS) and whether its role and pipelines allow the declared route
 * (./routes.ts). The router (src/observe/http.ts) calls authorize() before any handler runs; the
 * handlers read the acting user with actorOf(req).
 *
 * Owner: the Runtime builds one per process from config `api` and hands it to the observability
 * server. It holds the configured hashes (replaced by a reload: setTokens) and, with OIDC, jose's cached JWKS (refetched on an unknown
 * key id). Nothing is persisted. Denials (401/403) are logged (`api.denied`, warn) and passed to the
 * optional onDenied callback (the audit trail's hook).
 *
 * With auth `none` every request is let through and the actor is the X-Syncline-User header (a
 * claim nobody checks: kept only for that mode); with auth required that header is ignored.
 */
import type http from 'node:http';
import type { Logger } from 'pino';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type { ApiConfig, ApiRole } from '../../core/config/schema.js';
import { API_ROLES } from '../../core/config/schema.js';
import { errorMessage } from '../../core/errors.js';
import { ROLE_RANK, type RouteSpec } from './routes.js';
import { findToken, looksLikeToken } from './tokens.js';

export interface Principal {
  /** Recorded as the actor of what it does: token:<name>, oidc:<subject>, or (auth none) the X-Syncline-User header. */
  actor: string;
  role: ApiRole;
  /** Pipelines it may act on; undefined: all. */
  pipelines?: string[];
  via: 'token' | 'oidc' | 'none';
  /** When the credential stops being valid (a JWT's exp, epoch ms): a console session ends then too. */
  expiresAt?: number;
}

/** A refused request, as given to onDenied. */
export interface Denial {
  actor?: string;
  role?: ApiRole;
  method: string;
  path: string;
  status: 401 | 403;
  reason: string;
}

/** What authorize() answers: the principal, or the refusal to send. */
export type Decision = { ok: true; principal: Principal } | { ok: false; status: 401 | 403; error: string; headers: Record<string, string> };

export interface AccessOptions {
  log: Logger;
  /** Called for every 401 and 403 (the audit trail records them). Errors it throws are logged, not raised. */
  onDenied?: (d: Denial) => void;
}

const principals = new WeakMap<http.IncomingMessage, Principal>();

/** The acting user of a request: its authenticated principal, else (auth none) the X-Syncline-User header, else "api". */
export function actorOf(req: http.IncomingMessage): string {
  const p = principals.get(req);
  if (p && p.via !== 'none') return p.actor;
  return String(req.headers['x-syncline-user'] ?? 'api').slice(0, 200);
}

/** The principal of an authorized request (undefined before authorize() or on a route nobody checked). */
export function principalOf(req: http.IncomingMessage): Principal | undefined {
  return principals.get(req);
}

const REALM = 'Bearer realm="syncline"';

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export class ApiAccess {
  readonly mode: 'required' | 'none';
  /** True when auth is none because nothing was configured (not said explicitly). */
  readonly implicit: boolean;
  private cfg: ApiConfig;
  private jwks?: ReturnType<typeof createRemoteJWKSet>;

  constructor(cfg: ApiConfig | undefined, private readonly o: AccessOptions) {
    this.cfg = cfg ?? { tokens: [], open: ['health', 'ready', 'metrics'] };
    const configured = this.cfg.tokens.length > 0 || this.cfg.oidc !== undefined;
    this.mode = this.cfg.auth ?? (configured ? 'required' : 'none');
    this.implicit = this.cfg.auth === undefined && !configured;
  }

  /**
   * A reload's API tokens (src/reload.ts: only when auth stays required): from the next request on,
   * a removed token is refused (401) and a changed one has its new role and pipelines. A request
   * already authorized goes on with what it was given.
   */
  setTokens(tokens: ApiConfig['tokens']): void {
    this.cfg = { ...this.cfg, tokens };
  }

  /** Says at start how the API is protected (warn / error for auth none), and sets up the JWKS of OIDC. */
  async prepare(host: string, port: number): Promise<void> {
    const where = `${host}:${port}`;
    if (this.mode === 'none') {
      const msg = this.implicit
        ? `api.auth: no api.tokens and no api.oidc in the config, so the HTTP API on ${where} takes no credentials: anyone who reaches it can resolve, requeue or discard dead letters, start runs and reload the config (set api.tokens, or api.auth: none to say it is wanted)`
        : `api.auth is none: the HTTP API on ${where} takes no credentials; the actor recorded is the unchecked X-Syncline-User header`;
      // Beyond loopback: an error line whichever way. On loopback: a warning for an explicit `none`
      // (a choice to be reminded of), an info line when nothing was configured (a first run, the
      // demo, the tests: only this host reaches it, and it was so before access control existed).
      if (!isLoopback(host)) this.o.log.error({ host, port }, `api.auth.none: ${msg}. IT LISTENS BEYOND THE LOOPBACK ADDRESS`);
      else if (this.implicit) this.o.log.info({ host, port }, `api.auth.none: ${msg}`);
      else this.o.log.warn({ host, port }, `api.auth.none: ${msg}`);
      return;
    }
    // jose fetches the key set at the first JWT and again for a key id it does not know (at most every 30 s).
    if (this.cfg.oidc && !this.jwks) this.jwks = createRemoteJWKSet(new URL(this.cfg.oidc.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000 });
    this.o.log.info({ host, port, tokens: this.cfg.tokens.length, oidc: this.cfg.oidc?.issuer ?? null, open: this.cfg.open }, 'api.auth.required');
  }

  /** May this request use this route? Records the principal for actorOf() when it may. */
  async authorize(req: http.IncomingMessage, route: RouteSpec, params: Record<string, string>, url: URL): Promise<Decision> {
    if (this.mode === 'none') {
      const p: Principal = { actor: actorOf(req), role: 'admin', via: 'none' };
      principals.set(req, p);
      return { ok: true, principal: p };
    }
    if (route.openable && this.cfg.open.includes(route.openable)) {
      const p: Principal = { actor: 'anonymous', role: 'viewer', via: 'none' };
      principals.set(req, p);
      return { ok: true, principal: p };
    }
    const header = req.headers.authorization;
    if (!header) return this.deny(req, url, 401, 'authentication required: send Authorization: Bearer <token> (syncline CLI: SYNCLINE_TOKEN or --token)');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) return this.deny(req, url, 401, 'the Authorization header must be "Bearer <token>"', undefined, true);
    const who = await this.identify(m[1]!);
    if (!('actor' in who)) return this.deny(req, url, who.status, who.error, who.principal, who.status === 401);
    return this.authorizeAs(req, who, route, params, url);
  }

  /**
   * Who a presented credential (an API token or an OIDC JWT) is: its principal, or why it is refused.
   * The router calls it with the bearer of a request; the console (src/console) with the token typed
   * into its login form.
   */
  async identify(presented: string): Promise<Principal | { status: 401 | 403; error: string; principal?: Principal }> {
    if (looksLikeToken(presented)) {
      const i = findToken(presented, this.cfg.tokens.map((t) => t.hash));
      if (i < 0) return { status: 401, error: 'unknown or revoked API token' };
      const t = this.cfg.tokens[i]!;
      return { actor: `token:${t.name}`, role: t.role, pipelines: t.pipelines, via: 'token' };
    }
    if (this.cfg.oidc && presented.split('.').length === 3) {
      const r = await this.verifyJwt(presented);
      if (typeof r === 'string') return { status: 401, error: r };
      if (!API_ROLES.includes(r.role)) return { status: 403, error: `the JWT has no syncline role in claim ${this.cfg.oidc.roleClaim} (want one of ${API_ROLES.join(', ')})`, principal: r };
      return r;
    }
    return { status: 401, error: this.cfg.oidc ? 'the bearer is neither an API token nor a JWT' : 'unknown API token (tokens start with slt_)' };
  }

  /**
   * May this (already authenticated) principal use this route: its role and pipeline scope. Records
   * the principal for actorOf() when it may; a refusal is logged and passed to onDenied.
   */
  authorizeAs(req: http.IncomingMessage, p: Principal, route: RouteSpec, params: Record<string, string>, url: URL): Decision {
    if (p.via !== 'none' && ROLE_RANK[p.role] < ROLE_RANK[route.role]) {
      return this.deny(req, url, 403, `${route.method} ${route.path} needs role ${route.role}; ${p.actor} has ${p.role}`, p);
    }
    const scope = this.scopeProblem(p, route, params, url);
    if (scope) return this.deny(req, url, 403, scope, p);
    principals.set(req, p);
    return { ok: true, principal: p };
  }

  /** A refusal: logged (api.denied), given to onDenied, with the WWW-Authenticate header of a 401. */
  deny(req: http.IncomingMessage, url: URL, status: 401 | 403, error: string, p?: Principal, invalid = false): Decision & { ok: false } {
    const d: Denial = { actor: p?.actor, role: p?.role, method: req.method ?? 'GET', path: url.pathname, status, reason: error };
    this.o.log.warn(d, 'api.denied');
    try {
      this.o.onDenied?.(d);
    } catch (err) {
      this.o.log.error({ err: errorMessage(err) }, 'api.denied.hook.failed');
    }
    const headers: Record<string, string> = status === 401 ? { 'WWW-Authenticate': invalid ? `${REALM}, error="invalid_token"` : REALM } : {};
    return { ok: false, status, error, headers };
  }

  private scopeProblem(p: Principal, route: RouteSpec, params: Record<string, string>, url: URL): string | undefined {
    if (!p.pipelines) return undefined;
    const mine = p.pipelines.join(', ');
    if (route.scope === 'path') {
      const name = params.name ?? '';
      return p.pipelines.includes(name) ? undefined : `${p.actor} may act on pipelines ${mine} only, not ${name}`;
    }
    if (route.scope === 'query') {
      const name = url.searchParams.get('pipeline');
      if (name === null) return `${p.actor} may act on pipelines ${mine} only: name one with ?pipeline=`;
      return p.pipelines.includes(name) ? undefined : `${p.actor} may act on pipelines ${mine} only, not ${name}`;
    }
    return route.role === 'viewer' ? undefined : `${route.method} ${route.path} acts on the whole process: ${p.actor} is limited to pipelines ${mine}`;
  }

  /** The principal of a JWT, or why it is refused. */
  private async verifyJwt(jwt: string): Promise<Principal | string> {
    const o = this.cfg.oidc!;
    if (!this.jwks) return 'OIDC is not ready (the server did not prepare it)';
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(jwt, this.jwks, { issuer: o.issuer, audience: o.audience, algorithms: o.algorithms, clockTolerance: o.clockToleranceS }));
    } catch (err) {
      return `invalid JWT: ${(err as { code?: string }).code ?? 'ERR'} ${errorMessage(err)}`;
    }
    const raw = payload[o.roleClaim];
    const roles = (Array.isArray(raw) ? raw : [raw]).filter((r): r is ApiRole => typeof r === 'string' && (API_ROLES as readonly string[]).includes(r));
    const role = roles.sort((a, b) => ROLE_RANK[b] - ROLE_RANK[a])[0];
    const pl = payload[o.pipelinesClaim];
    const pipelines = Array.isArray(pl) ? pl.map(String) : typeof pl === 'string' ? [pl] : undefined;
    const user = String(payload[o.userClaim] ?? payload.sub ?? 'unknown').slice(0, 200);
    return { actor: `oidc:${user}`, role: role ?? ('none' as ApiRole), pipelines, via: 'oidc', ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 } : {}) };
  }
}
