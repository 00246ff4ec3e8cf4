/**
 * The HTTP endpoints of a running process (node:http, no framework):
 *   GET /metrics  Prometheus text format (Content-Type text/plain; version=0.0.4), see ./metrics.ts
 *   GET /health   liveness, 200 or 503, see ./health.ts
 *   GET /ready    every dependency checked now, 200 when all answer, else 503, see ./checks.ts
 *   GET /alerts   pending and firing alerts (JSON), see ./alerts/engine.ts
 *   /api/dlq…     the dead-letter workflow (processes running the sink stage), see src/dlq/api.ts
 *   /api/…        sync runs, backfills, schema changes, reload (src/sync/api.ts, src/capture/*-api.ts, runtime)
 * Every route is declared, with the role it needs, in src/security/access/routes.ts: the router
 * matches a request there first (undeclared: 404; another method: 405), then asks the access
 * control (src/security/access/access.ts) — 401 without valid credentials, 403 for a missing role
 * or a pipeline out of scope — and only then hands it to its handler. JSON bodies.
 *
 * Owner: the Runtime starts one server when the config has an `observability` section (enabled) and
 * closes it last in stop(). Port 0 binds any free port; `port` tells which. Failing to listen
 * (address in use) stops the start with a fatal error naming the address.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { errorMessage, fatal } from '../core/errors.js';
import { readPem } from '../core/tls.js';
import type { ReadyReport } from './checks.js';
import { healthStatusCode, type HealthReport } from './health.js';
import { withPrincipal } from '../security/audit/recorder.js';
import { actorOf, ApiAccess, principalOf } from '../security/access/access.js';
import { matchRoute } from '../security/access/routes.js';
import { WebConsole, type ConsoleSources } from '../console/console.js';

export interface EndpointSources {
  metrics: () => Promise<string>;
  metricsContentType: string;
  health: () => HealthReport;
  ready: () => Promise<ReadyReport>;
  /** Pending and firing alerts; GET /alerts answers 404 without it. */
  alerts?: () => unknown;
  /** Further routes (the dead-letter API, /api/…): returns false when the path is not its own. */
  api?: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<boolean>;
  /** Access control (config `api`); missing: auth none. */
  access?: ApiAccess;
  /** What the web console at /console shows and does (src/console); missing: no console. */
  console?: ConsoleSources;
}

export class ObservabilityServer {
  private server?: http.Server | https.Server;
  private bound = 0;
  /** Auth none, when no access control was given (tests of the bare server). */
  private open?: ApiAccess;
  /** The web console (/console), made at start() when console sources are given. */
  private console?: WebConsole;

  constructor(private readonly src: EndpointSources, private readonly log: Logger) {}

  /** The bound port (after start()). */
  get port(): number {
    return this.bound;
  }

  /**
   * `tls` (observability.tls): HTTPS with this certificate and key; with `clientCaFile` every client
   * must present a certificate of that CA (refused in the handshake otherwise).
   */
  async start(port: number, host: string, tls?: { certFile: string; keyFile: string; clientCaFile?: string }): Promise<number> {
    await this.src.access?.prepare(host, port);
    if (this.src.console) this.console = new WebConsole(this.src.console, this.access(), this.log.child({ stage: 'console' }), tls !== undefined);
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      void this.handle(req, res);
    };
    const server = tls
      ? httpsServer(tls, handler)
      : http.createServer(handler);
    // A refused client certificate (or none) ends in the handshake: said at debug, not an error of ours.
    server.on('tlsClientError', (err) => this.log.debug({ err: err.message }, 'http.tls.refused'));
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(fatal('OBSERVABILITY_LISTEN', `cannot serve /metrics, /health, /ready on ${host}:${port}: ${err.code === 'EADDRINUSE' ? IN_USE : err.message}`, err));
      });
      server.listen(port, host, () => resolve());
    });
    server.on('error', (err) => this.log.error({ err: err.message }, 'http.error'));
    this.server = server;
    this.bound = (server.address() as AddressInfo).port;
    this.log.info({ host, port: this.bound, https: tls !== undefined, clientCertificates: tls?.clientCaFile !== undefined, paths: ['/metrics', '/health', '/ready', ...(this.console ? ['/console'] : [])] }, 'http.listening');
    return this.bound;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  private access(): ApiAccess {
    return this.src.access ?? (this.open ??= new ApiAccess(undefined, { log: this.log }));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return json(res, 400, { error: `bad request target ${String(req.url).slice(0, 200)}` });
    }
    const path = url.pathname;
    try {
      // The console: its own session login and route table (src/console), the same role checks.
      if (this.console && (path === '/console' || path.startsWith('/console/'))) return await this.console.handle(req, res, url);
      const m = matchRoute(req.method, path);
      if (m.kind === 'none') return json(res, 404, { error: `no such endpoint ${path} (have /metrics, /health, /ready, /alerts and /api/…: see docs/security.md)` });
      if (m.kind === 'method') {
        res.setHeader('Allow', m.allow.join(', '));
        return json(res, 405, { error: `method ${req.method} not allowed on ${path} (use ${m.allow.join(' or ')})` });
      }
      const access = this.access();
      const d = await access.authorize(req, m.route, m.params, url);
      if (!d.ok) {
        for (const [k, v] of Object.entries(d.headers)) res.setHeader(k, v);
        return json(res, d.status, { error: d.error });
      }
      if (path.startsWith('/api/')) {
        // What the request records in the audit trail is done by its authenticated principal (src/security/audit).
        const api = this.src.api;
        if (api && (await withPrincipal({ actor: actorOf(req), ...(principalOf(req)?.via !== 'none' && principalOf(req) ? { role: principalOf(req)!.role } : {}) }, () => api(req, res)))) return;
        return json(res, 404, { error: `${m.route.method} ${m.route.path} is not served by this process (it runs other stages)` });
      }
      if (path === '/alerts' && this.src.alerts === undefined) return json(res, 404, { error: 'no alerts in this process' });
      if (path === '/metrics') {
        const text = await this.src.metrics();
        res.writeHead(200, { 'Content-Type': this.src.metricsContentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
        return;
      }
      if (path === '/alerts') return json(res, 200, this.src.alerts!());
      if (path === '/health') {
        const r = this.src.health();
        return json(res, healthStatusCode(r), r);
      }
      const r = await this.src.ready();
      return json(res, r.ready ? 200 : 503, r);
    } catch (err) {
      this.log.error({ path, err: errorMessage(err) }, 'http.request.failed');
      if (!res.headersSent) json(res, 500, { error: errorMessage(err) });
      else res.destroy();
    }
  }
}

/** The HTTPS server of observability.tls; a certificate or key that does not load is a fatal config error naming the files. */
function httpsServer(tls: { certFile: string; keyFile: string; clientCaFile?: string }, handler: http.RequestListener): https.Server {
  const options: https.ServerOptions = {
    cert: readPem(tls.certFile, 'observability.tls.certFile'),
    key: readPem(tls.keyFile, 'observability.tls.keyFile'),
    ...(tls.clientCaFile !== undefined ? { ca: readPem(tls.clientCaFile, 'observability.tls.clientCaFile'), requestCert: true, rejectUnauthorized: true } : {}),
  };
  try {
    return https.createServer(options, handler);
  } catch (err) {
    throw fatal('CONFIG_TLS', `observability.tls: cannot use certFile ${tls.certFile} / keyFile ${tls.keyFile}${tls.clientCaFile ? ` / clientCaFile ${tls.clientCaFile}` : ''}: ${errorMessage(err)}`, err);
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(text);
}

/**
 * Why a port is taken and what to do: several syncline processes on one host (a split deployment:
 * capture, process, sink) each need their own port, since they all default to 9464.
 */
const IN_USE =
  'the port is in use (another syncline process on this host? each process needs its own port: start it with --metrics-port PORT, ' +
  'e.g. capture 9464, process 9465, sink 9466, or set observability.port; see "Split deployment on one host" in README.md)';
