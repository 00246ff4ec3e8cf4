/**
 * Sessions of the web console (/console): an API token (or OIDC JWT) typed into the login form is
 * checked once by the API's access control (ApiAccess.identify) and exchanged for a session cookie.
 *
 *   cookie   syncline_session=<43 base64url chars>; HttpOnly; SameSite=Strict; Path=/console
 *            (+ Secure when the server speaks HTTPS). The value is an opaque 256-bit random id: it
 *            names a session held in this process's memory and carries nothing else, so there is
 *            nothing to sign or to decode; the id is looked up by its SHA-256 (not the id itself).
 *   csrf     each session has its own random token, put into every form (hidden `_csrf`) and into
 *            htmx's requests (header X-CSRF-Token); every console POST must carry it (compared in
 *            constant time). SameSite=Strict already keeps the cookie off cross-site requests; the
 *            token is the second lock (older browsers, same-site subdomains).
 *   login    the login form itself is protected by a double-submit token (cookie syncline_login and
 *            a hidden field), so another site cannot log a browser into an attacker's session.
 *
 * Owner: the console (./console.ts), one store per HTTP server. Sessions end at logout, after
 * `idleMs` without a request, after `maxMs` in all, at the JWT's expiry, and when the process
 * stops (they are not persisted: after a restart everybody logs in again; a token revoked by a
 * config change needs a restart anyway, ADR 0027).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import type { Principal } from '../security/access/access.js';

export const SESSION_COOKIE = 'syncline_session';
export const LOGIN_COOKIE = 'syncline_login';

export interface Session {
  principal: Principal;
  csrf: string;
  createdAt: number;
  seenAt: number;
  /** The absolute end (maxMs after login, or the JWT's expiry if sooner). */
  endsAt: number;
}

export class SessionStore {
  private readonly byHash = new Map<string, Session>();

  constructor(private readonly o: { idleMs: number; maxMs: number; now?: () => number } = { idleMs: 30 * 60_000, maxMs: 12 * 3600_000 }) {}

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  /** A new session for the principal: the cookie value (to set once) and the session. */
  create(principal: Principal): { id: string; session: Session } {
    this.sweep();
    const id = randomBytes(32).toString('base64url');
    const now = this.now();
    const session: Session = { principal, csrf: randomBytes(32).toString('base64url'), createdAt: now, seenAt: now, endsAt: Math.min(now + this.o.maxMs, principal.expiresAt ?? Infinity) };
    this.byHash.set(hashOf(id), session);
    return { id, session };
  }

  /** The live session of a cookie value (its idle clock restarted), or undefined. */
  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const h = hashOf(id);
    const s = this.byHash.get(h);
    if (!s) return undefined;
    const now = this.now();
    if (now >= s.endsAt || now - s.seenAt >= this.o.idleMs) {
      this.byHash.delete(h);
      return undefined;
    }
    s.seenAt = now;
    return s;
  }

  end(id: string | undefined): void {
    if (id) this.byHash.delete(hashOf(id));
  }

  get size(): number {
    return this.byHash.size;
  }

  private sweep(): void {
    const now = this.now();
    for (const [h, s] of this.byHash) if (now >= s.endsAt || now - s.seenAt >= this.o.idleMs) this.byHash.delete(h);
  }
}

const hashOf = (id: string) => createHash('sha256').update(id).digest('hex');

/** The cookies of a request (first value of each name). */
export function cookies(req: http.IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    if (k && !(k in out)) out[k] = part.slice(i + 1).trim();
  }
  return out;
}

/** A Set-Cookie value of the console: HttpOnly, SameSite=Strict, Path=/console, Secure over HTTPS; maxAgeS 0 deletes it. */
export function cookie(name: string, value: string, o: { secure: boolean; maxAgeS?: number }): string {
  return [`${name}=${value}`, 'Path=/console', 'HttpOnly', 'SameSite=Strict', ...(o.secure ? ['Secure'] : []), ...(o.maxAgeS !== undefined ? [`Max-Age=${o.maxAgeS}`] : [])].join('; ');
}

/** Constant-time equality of two tokens (false when either is missing). */
export function sameToken(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function newLoginToken(): string {
  return randomBytes(24).toString('base64url');
}
