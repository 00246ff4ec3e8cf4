/**
 * How syncline reaches the schema registry (config schemaRegistry): an https:// URL with a private
 * CA (caFile) or without verification (verify: false), and HTTP basic authentication (username,
 * password). `registryAccess` gives what both kinds of caller need: the registry client's options
 * (@kafkajs/confluent-schema-registry: an https.Agent, auth) and a fetch() with the same TLS and
 * credentials for the calls syncline makes itself (compatibility checks, /ready, doctor, drop).
 * Node's global fetch takes no CA, so with a caFile or verify: false the requests go through
 * node:https; otherwise through the global fetch, with the Authorization header added.
 */
import http from 'node:http';
import https from 'node:https';
import { tlsOptions } from './tls.js';

export interface RegistryConnection {
  url: string;
  caFile?: string;
  verify?: boolean;
  username?: string;
  password?: string;
}

export type FetchLike = (url: string, init?: RequestInit) => Promise<Response>;

export interface RegistryAccess {
  url: string;
  agent?: https.Agent;
  auth?: { username: string; password: string };
  fetch: FetchLike;
}

export function registryAccess(r: RegistryConnection | string, warn?: (msg: string) => void): RegistryAccess {
  const c: RegistryConnection = typeof r === 'string' ? { url: r } : r;
  const isHttps = /^https:/i.test(c.url);
  const auth = c.username !== undefined ? { username: c.username, password: c.password ?? '' } : undefined;
  const header = auth ? `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` : undefined;
  const custom = isHttps && (c.caFile !== undefined || c.verify === false);
  const agent = custom ? new https.Agent({ keepAlive: true, ...tlsOptions(`schema registry at ${c.url}`, 'schemaRegistry', { caFile: c.caFile, verify: c.verify ?? true }, warn) }) : undefined;
  const withAuth = (init: RequestInit = {}): RequestInit => {
    if (!header) return init;
    const h = new Headers(init.headers);
    if (!h.has('authorization')) h.set('authorization', header);
    return { ...init, headers: h };
  };
  return {
    url: c.url,
    ...(agent ? { agent } : {}),
    ...(auth ? { auth } : {}),
    fetch: agent ? (url, init) => agentFetch(agent, url, withAuth(init)) : (url, init) => fetch(url, withAuth(init)),
  };
}

/** fetch() over node:https with an agent of ours (its CA): a string body, an AbortSignal, a Response back. */
export function agentFetch(agent: https.Agent, url: string, init: RequestInit): Promise<Response> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((v, k) => (headers[k] = v));
    const body = typeof init.body === 'string' ? init.body : init.body == null ? undefined : String(init.body);
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    const req = (u.protocol === 'https:' ? https : http).request(
      u,
      { method: init.method ?? 'GET', headers, ...(u.protocol === 'https:' ? { agent } : {}), ...(init.signal ? { signal: init.signal } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
          const noBody = status === 204 || status === 205 || status === 304;
          resolve(new Response(noBody ? null : Buffer.concat(chunks), { status, statusText: res.statusMessage ?? '', headers: h }));
        });
      },
    );
    req.on('error', (err) => reject(Object.assign(new TypeError(`fetch failed: ${err.message}`), { cause: err })));
    if (body !== undefined) req.write(body);
    req.end();
  });
}
