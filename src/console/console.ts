/**
 * The web console at /console: server-rendered HTML pages (htmx for partial updates, served from
 * node_modules by this process; no CDN, no build step — docs/adr/0033-web-console.md).
 *
 *   GET  /console/login, POST /console/login, POST /console/logout   (./session.ts)
 *   GET  /console/assets/console.css | htmx.min.js                   (no session needed)
 *   every other /console route: ./routes.ts (role and scope copied from the API route it stands for)
 *
 * Request path: session cookie → (POST) same-origin and CSRF token → the console route table →
 * ApiAccess.authorizeAs (the API's own role and scope check; refusals logged and audited like the
 * API's) → the handler, which calls what the API route calls (dlqAction, startRun, the backfiller),
 * inside withPrincipal so the audit trail records the session's principal.
 *
 * Owner: the ObservabilityServer (src/observe/http.ts) makes one when the runtime gives it console
 * sources. It holds the sessions (memory) and the last 60 throughput samples per pipeline, taken
 * when a pipelines page or its live table is rendered (at most one per second).
 */
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type http from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { SynclineConfig } from '../core/config/schema.js';
import { errorCode, errorMessage, HttpError } from '../core/errors.js';
import type { DlqService } from '../dlq/service.js';
import type { DlqEntry, DlqState } from '../dlq/store.js';
import { dlqAction, entryJson, revealDeadLetter, type DlqActionName } from '../dlq/api.js';
import type { HealthReport } from '../observe/health.js';
import { buildStatus, parseMetricsText, type PipelineStatus } from '../observe/report.js';
import type { Backfiller } from '../capture/backfill.js';
import type { SyncController } from '../sync/controller.js';
import { startRun } from '../sync/api.js';
import { withPrincipal } from '../security/audit/recorder.js';
import { type ApiAccess, type Principal } from '../security/access/access.js';
import { matchRoute, ROLE_RANK } from '../security/access/routes.js';
import { MASK, maskPolicy } from '../security/masking/policy.js';
import { pipelineRetention } from '../history/history.js';
import { isoParam, timeline } from '../history/api.js';
import { openStore, requireHistory } from '../history/recorder.js';
import { rollback, type RollbackResult } from '../history/rollback.js';
import type { RollbackPipeline } from '../history/rollback-api.js';
import { auditEntries, limitParam, sinceParam } from '../security/audit/api.js';
import { alertsBody, auditBody, dlqLoading, historyBody, replayBody, replayJob, type HistoryForm, type RollbackView } from './pages.js';
import { CONSOLE_ROUTES } from './routes.js';
import type { PauseState } from '../sync/pause.js';
import type { ReplayJobs } from '../replay/api.js';
import type { VerifyState } from '../verify/service.js';
import type { ActiveAlert } from '../observe/alerts/engine.js';
import { cookie, cookies, LOGIN_COOKIE, newLoginToken, sameToken, SESSION_COOKIE, SessionStore, type Session } from './session.js';
import { html, Html, page, raw, showValue, type PageContext } from './html.js';

export interface ConsoleSources {
  config: () => SynclineConfig;
  metrics: () => Promise<string>;
  health: () => HealthReport;
  /** The `sync` section of the status report (mode, schedule, run going, next fire) per pipeline. */
  sync?: () => Record<string, unknown>;
  /** Controllers of bounded pipelines (sync now). */
  controllers?: () => Map<string, SyncController>;
  /** The backfiller of a pipeline whose capture runs here. */
  backfiller?: (pipeline: string) => Backfiller | undefined;
  /** The dead-letter service (processes running the sink stage). */
  dlq?: () => DlqService;
  /** Pause/resume of realtime pipelines (Runtime.pausePipeline; state undefined: nothing to pause here). */
  pauses?: { pause(name: string, by: string): PauseState; resume(name: string, by: string): PauseState; state(name: string): PauseState | undefined };
  /** Replays (src/replay/api.ts; processes running the sink stage). */
  replays?: ReplayJobs;
  /** Rollback of a pipeline whose sink runs here (src/history/rollback.ts, what POST /api/pipelines/:name/rollback calls); undefined: not here. */
  rollback?: (pipeline: string) => RollbackPipeline | undefined;
  /** The last verification of a pipeline (src/verify/service.ts; processes running its capture). */
  verify?: (pipeline: string) => VerifyState | undefined;
  /** Pending and firing alerts; undefined: no alert rules configured. */
  alerts?: () => { rules: number; alerts: ActiveAlert[] } | undefined;
}

const PAGE_SIZE = 50;
/** How long the dead-letter page waits for the first read of the topics before it shows its progress instead. */
const DLQ_LOAD_WAIT_MS = 100;
const HERE = dirname(fileURLToPath(import.meta.url));
/** The stylesheet beside this file (sources, run by tsx), or in the sources next to dist/ (a compiled build). */
const ASSET_DIRS = [join(HERE, 'assets'), join(HERE, '..', '..', '..', 'src', 'console', 'assets')];
const assetFile = (name: string) => {
  for (const d of ASSET_DIRS) if (existsSync(join(d, name))) return join(d, name);
  throw new Error(`console asset ${name} not found in ${ASSET_DIRS.join(' or ')}`);
};
const require = createRequire(import.meta.url);

class ConsoleError extends HttpError {}

/** A page that says what went wrong in place (its form kept), sent with an error status. */
class PageError extends HttpError {
  constructor(status: number, readonly page: string) {
    super(status, 'page error');
  }
}

export class WebConsole {
  readonly sessions = new SessionStore();
  private readonly samples = new Map<string, { t: number; applied: number }[]>();
  private assets?: Map<string, { type: string; body: Buffer }>;

  constructor(private readonly src: ConsoleSources, private readonly access: ApiAccess, private readonly log: Logger, private readonly secure: boolean) {}

  /** Serves a request under /console. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    securityHeaders(res);
    const path = url.pathname.replace(/\/+$/, '') || '/console';
    if (path.startsWith('/console/assets/')) return this.asset(req, res, path);
    if (path === '/console/login') return req.method === 'POST' ? this.login(req, res, url) : this.loginPage(req, res, url);
    const jar = cookies(req);
    let session = this.sessions.get(jar[SESSION_COOKIE]);
    if (!session && this.access.mode === 'none') {
      // No credentials configured: every caller acts (as the API lets them); a session still carries the CSRF token.
      const s = this.sessions.create({ actor: 'console', role: 'admin', via: 'none' });
      res.appendHeader('Set-Cookie', cookie(SESSION_COOKIE, s.id, { secure: this.secure }));
      session = s.session;
    }
    if (!session) {
      const login = `/console/login?next=${encodeURIComponent(url.pathname + url.search)}`;
      if (req.method === 'GET' || req.method === 'HEAD') return redirect(res, login);
      res.setHeader('HX-Redirect', login);
      return sendHtml(res, 401, this.errorPage(undefined, 401, 'Your session has ended: log in again.'));
    }
    let form = new URLSearchParams();
    if (req.method === 'POST') {
      form = await formBody(req);
      const origin = req.headers.origin;
      if (origin !== undefined && origin !== 'null' && new URL(origin).host !== req.headers.host) {
        return this.refuse(req, res, url, session, `cross-origin POST from ${origin} refused`);
      }
      const presented = form.get('_csrf') ?? (req.headers['x-csrf-token'] as string | undefined);
      if (!sameToken(presented, session.csrf)) return this.refuse(req, res, url, session, 'the form carries no valid CSRF token (reload the page and try again)');
    }
    if (path === '/console/logout') {
      if (req.method !== 'POST') return sendHtml(res, 405, this.errorPage(session, 405, 'Log out with the button (POST).'));
      this.sessions.end(jar[SESSION_COOKIE]);
      res.appendHeader('Set-Cookie', cookie(SESSION_COOKIE, '', { secure: this.secure, maxAgeS: 0 }));
      return redirect(res, '/console/login');
    }
    const m = matchRoute(req.method, path, CONSOLE_ROUTES);
    if (m.kind === 'none') return sendHtml(res, 404, this.errorPage(session, 404, `There is no console page ${path}.`));
    if (m.kind === 'method') {
      res.setHeader('Allow', m.allow.join(', '));
      return sendHtml(res, 405, this.errorPage(session, 405, `${req.method} is not allowed on ${path}.`));
    }
    const p = session.principal;
    // A principal limited to some pipelines names one on routes over all of them (the API asks for ?pipeline= the same way).
    if (m.route.scope === 'query' && p.pipelines && !url.searchParams.has('pipeline') && req.method === 'GET' && p.pipelines[0]) {
      url.searchParams.set('pipeline', p.pipelines[0]);
      return redirect(res, url.pathname + url.search);
    }
    const d = this.access.authorizeAs(req, p, m.route, m.params, url);
    if (!d.ok) return sendHtml(res, d.status, this.errorPage(session, d.status, `Refused: ${d.error}`));
    try {
      await withPrincipal({ actor: p.actor, ...(p.via !== 'none' ? { role: p.role } : {}) }, () => this.route(req, res, url, m.route.path, m.params, form, session));
    } catch (err) {
      if (err instanceof PageError) return sendHtml(res, err.status, err.page);
      const status = err instanceof HttpError ? err.status : 500;
      if (status >= 500) this.log.error({ path, err: errorMessage(err) }, 'console.request.failed');
      if (!res.headersSent) sendHtml(res, status, this.errorPage(session, status, errorMessage(err)));
    }
  }

  private refuse(req: http.IncomingMessage, res: http.ServerResponse, url: URL, s: Session, why: string): void {
    this.access.deny(req, url, 403, why, s.principal);
    sendHtml(res, 403, this.errorPage(s, 403, why));
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse, url: URL, route: string, params: Record<string, string>, form: URLSearchParams, s: Session): Promise<void> {
    const pipeline = url.searchParams.get('pipeline') ?? undefined;
    switch (route) {
      case '/console':
      case '/console/pipelines':
        return sendHtml(res, 200, await this.pipelinesPage(s, url));
      case '/console/pipelines/live':
        return sendHtml(res, 200, (await this.pipelinesTable(s)).text);
      case '/console/pipelines/:name/runs': {
        const r = await startRun(this.src.controllers?.() ?? new Map(), Object.keys(this.src.config().pipelines), params.name!, { trigger: 'api', by: s.principal.actor });
        const body = r.body as { id?: string; error?: string };
        return redirect(res, `/console/pipelines?${new URLSearchParams(r.status < 300 ? { done: `Run ${body.id} of ${params.name} started.` } : { failed: `Sync now of ${params.name}: ${body.error}` })}`);
      }
      case '/console/pipelines/:name/backfills':
      case '/console/pipelines/:name/backfills/:id/pause':
      case '/console/pipelines/:name/backfills/:id/resume': {
        const b = this.src.backfiller?.(params.name!);
        if (!b) throw new ConsoleError(409, `the capture of pipeline ${params.name} does not run in this process (or its source cannot backfill)`);
        let msg: string;
        try {
          if (params.id === undefined) {
            const table = form.get('table') ?? '';
            if (table === '') throw new ConsoleError(400, 'choose a table to backfill');
            const v = await b.request({ table });
            msg = `Backfill ${v.id} of ${v.table} requested.`;
          } else {
            const op = route.endsWith('/pause') ? 'pause' : 'resume';
            const v = await b.control(params.id, op);
            msg = `Backfill ${v.id} ${v.status}.`;
          }
        } catch (err) {
          return redirect(res, `/console/pipelines?${new URLSearchParams({ failed: errorMessage(err) })}`);
        }
        return redirect(res, `/console/pipelines?${new URLSearchParams({ done: msg })}`);
      }
      case '/console/pipelines/:name/pause':
      case '/console/pipelines/:name/resume': {
        const op = route.endsWith('/pause') ? 'pause' : 'resume';
        if (!this.src.pauses) throw new ConsoleError(409, 'this process runs no consumer stage: pause the pipeline where its process or sink stage runs');
        try {
          const st = this.src.pauses[op](params.name!, s.principal.actor);
          return redirect(res, `/console/pipelines?${new URLSearchParams({ done: st.paused ? `${params.name} paused${st.unchanged ? ' (it already was)' : ''}: changes wait in Kafka until it is resumed.` : `${params.name} resumed${st.unchanged ? ' (it was not paused)' : ''}.` })}`);
        } catch (err) {
          return redirect(res, `/console/pipelines?${new URLSearchParams({ failed: errorMessage(err) })}`);
        }
      }
      case '/console/replay':
        return sendHtml(res, 200, this.replayPage(s, url));
      case '/console/pipelines/:name/replays': {
        const jobs = this.replays();
        const r = { from: (form.get('from') ?? '').trim(), to: (form.get('to') ?? '').trim() || undefined, table: form.get('table') || undefined, dryRun: form.get('dryRun') === 'on' };
        try {
          const job = jobs.start(params.name!, r, s.principal.actor);
          return redirect(res, `/console/pipelines/${encodeURIComponent(job.pipeline)}/replays/${encodeURIComponent(job.id)}`);
        } catch (err) {
          const status = err instanceof HttpError ? err.status : 500;
          return sendHtml(res, status, this.replayPage(s, url, errorMessage(err), form, params.name));
        }
      }
      case '/console/pipelines/:name/replays/:id': {
        const job = this.replays().get(params.name!, params.id!);
        if (url.searchParams.has('part')) return sendHtml(res, 200, replayJob(job).text);
        return sendHtml(res, 200, page(this.ctx(s, `Replay ${job.id}`, 'replay'), html`<p><a href="/console/replay">← Replay</a></p><h1>Replay <code>${job.id}</code></h1>${replayJob(job)}`));
      }
      case '/console/history':
        return sendHtml(res, 200, await this.historyPage(s, url));
      case '/console/pipelines/:name/rollback':
        return sendHtml(res, 200, await this.rollbackPage(s, url, params.name!, form));
      case '/console/audit':
        return sendHtml(res, 200, await this.auditPage(s, url));
      case '/console/alerts':
        return sendHtml(res, 200, this.alertsPage(s));
      case '/console/dlq/:id/reveal': {
        let revealed: unknown;
        try {
          revealed = await revealDeadLetter(this.dlq(), params.id!, form.get('reason'), s.principal.actor, pipeline);
        } catch (err) {
          return sendHtml(res, err instanceof HttpError ? err.status : 500, await this.entryPage(s, params.id!, pipeline, url, errorMessage(err)));
        }
        return sendHtml(res, 200, await this.entryPage(s, params.id!, pipeline, url, undefined, undefined, revealed));
      }
      case '/console/dlq':
        return sendHtml(res, 200, await this.dlqPage(s, url));
      case '/console/dlq/:id':
        return sendHtml(res, 200, await this.entryPage(s, params.id!, pipeline, url));
      case '/console/dlq/:id/resolve':
      case '/console/dlq/:id/requeue':
      case '/console/dlq/:id/discard': {
        const action = route.split('/').pop() as DlqActionName;
        const id = params.id!;
        const back = (q: Record<string, string>) => `/console/dlq/${encodeURIComponent(id)}?${new URLSearchParams({ ...(pipeline ? { pipeline } : {}), ...q })}`;
        let body: Record<string, unknown>;
        try {
          body = action === 'resolve' ? await this.resolveBody(id, pipeline, form) : { note: form.get('note') || undefined };
        } catch (err) {
          // A merged row that does not validate: the page again, with what is wrong (nothing was sent).
          return sendHtml(res, 400, await this.entryPage(s, id, pipeline, url, errorMessage(err), form));
        }
        try {
          const r = await dlqAction(this.dlq(), id, action, body, s.principal.actor, pipeline);
          return redirect(res, back({ done: `${pastOf(action)}${action === 'resolve' ? ` (${String(body.choice)})` : ''}; ${r.released} later change(s) of the key released${r.parkedBehind ? `; the key is parked again behind ${r.parkedBehind}` : ''}.` }));
        } catch (err) {
          const status = err instanceof HttpError ? err.status : 500;
          return sendHtml(res, status, await this.entryPage(s, id, pipeline, url, errorMessage(err)));
        }
      }
      case '/console/dlq/bulk': {
        const ids = form.getAll('id');
        const what = form.get('action') ?? '';
        const [action, choice] = what.split(':') as [DlqActionName, string | undefined];
        if (!['resolve', 'requeue', 'discard'].includes(action) || (action === 'resolve' && choice !== 'source' && choice !== 'target')) throw new ConsoleError(400, `unknown bulk action '${what}' (resolve:source, resolve:target, requeue, discard)`);
        if (ids.length === 0) return redirect(res, `/console/dlq?${keep(url, form, { failed: 'Select at least one dead letter.' })}`);
        const done: string[] = [];
        const failed: string[] = [];
        for (const id of ids) {
          try {
            await dlqAction(this.dlq(), id, action, action === 'resolve' ? { choice } : {}, s.principal.actor, pipeline);
            done.push(id);
          } catch (err) {
            failed.push(`${id}: ${errorMessage(err)}`);
          }
        }
        const msg = `${pastOf(action)} ${done.length} of ${ids.length}.`;
        return redirect(res, `/console/dlq?${keep(url, form, { done: msg, ...(failed.length > 0 ? { failed: failed.join(' · ') } : {}) })}`);
      }
    }
    throw new ConsoleError(404, `no console page ${route}`);
  }

  private replayPage(s: Session, url: URL, error?: string, form?: URLSearchParams, chosen?: string): string {
    const pipelines = this.visible(s);
    const pipeline = chosen ?? url.searchParams.get('pipeline') ?? pipelines[0];
    const p = pipeline ? this.src.config().pipelines[pipeline] : undefined;
    const jobs = this.src.replays?.list().filter((j) => pipelines.includes(j.pipeline)) ?? [];
    return page(this.ctx(s, 'Replay', 'replay'), replayBody({
      csrf: s.csrf, pipelines, pipeline, tables: p?.tables.map((t) => t.source) ?? [], canAct: this.canAct(s, pipeline), available: this.src.replays !== undefined, jobs, error, form,
    }));
  }

  /**
   * Rollback from the history page (admin, as its API twin): without `confirm` a dry run whose
   * preview lists per key what would change (current → target) with a form to confirm the same
   * request; with it, the rollback itself. Both through what POST /api/pipelines/:name/rollback
   * calls (src/history/rollback.ts: audited as `rollback`).
   */
  private async rollbackPage(s: Session, url: URL, name: string, form: URLSearchParams): Promise<string> {
    const cfg = this.src.config();
    const to = (form.get('to') ?? '').trim();
    const table = form.get('table')?.trim() || undefined;
    const key = form.get('key')?.trim() || undefined;
    const pause = form.get('pause') === 'on';
    const confirm = form.get('confirm') === 'yes';
    const q = new URLSearchParams({ pipeline: name });
    let result: RollbackResult | undefined;
    let error: string | undefined;
    let status = 200;
    try {
      if (!cfg.pipelines[name]) throw new ConsoleError(404, `no pipeline '${name}' (have: ${Object.keys(cfg.pipelines).join(', ')})`);
      const p = this.src.rollback?.(name);
      if (!p) throw new ConsoleError(404, `the sink of pipeline ${name} does not run in this process: roll back where it runs (syncline rollback asks it)`);
      if (to === '') throw new ConsoleError(400, 'Roll back to: the instant is required, an ISO time like 2026-12-01T10:00:00Z');
      let at: Date;
      try {
        at = isoParam('to', to)!;
      } catch (err) {
        throw new ConsoleError(400, `Roll back to: ${errorMessage(err)}`);
      }
      if (key !== undefined && table === undefined) throw new ConsoleError(400, 'Key needs Table: the target table the key is of');
      const unmasked = s.principal.role === 'admin' && s.principal.via !== 'none';
      result = await rollback(cfg, { pipeline: name, to: at, table, key, dryRun: !confirm, pause, by: s.principal.actor }, p, unmasked ? undefined : maskPolicy(cfg));
    } catch (err) {
      const code = errorCode(err);
      status = err instanceof HttpError ? err.status : code === 'HISTORY_NOT_COVERED' || code === 'ROLLBACK_PAUSE_UNSUPPORTED' ? 409 : code === 'PIPELINE_UNKNOWN' || code === 'HISTORY_DISABLED' ? 404 : code === 'USAGE' ? 400 : 500;
      error = errorMessage(err);
    }
    const body = await this.historyPage(s, new URL(`/console/history?${q}`, url), { form: { to, table, key, pause }, result, error });
    if (status !== 200) throw new PageError(status, body);
    return body;
  }

  private async historyPage(s: Session, url: URL, rb?: Omit<RollbackView, 'csrf'>): Promise<string> {
    const q = url.searchParams;
    const cfg = this.src.config();
    const pipelines = this.visible(s).filter((n) => pipelineRetention(cfg.pipelines[n]!).size > 0);
    const pipeline = q.get('pipeline') || pipelines[0];
    if (pipeline && !q.get('pipeline')) q.set('pipeline', pipeline);
    const tables = pipeline && cfg.pipelines[pipeline] ? [...pipelineRetention(cfg.pipelines[pipeline]!).keys()] : [];
    const unmasked = s.principal.role === 'admin' && s.principal.via !== 'none';
    const f: HistoryForm = { pipelines, tables, q, masked: !unmasked };
    // Rollback (admin only, where the pipeline's sink runs): its form, and a preview or result to show.
    if (rb) f.rollback = { ...rb, csrf: s.csrf };
    else if (pipeline && this.canAdmin(s, pipeline) && this.src.rollback?.(pipeline)) f.rollback = { form: {}, csrf: s.csrf };
    const table = q.get('table');
    let status = 200;
    if (pipelines.length === 0) f.error = 'No pipeline keeps a change history (set history: {} on a pipeline or a table; see docs/history.md).';
    else if (pipeline && table && (q.get('key') || q.get('asof'))) {
      try {
        const where = requireHistory(cfg, pipeline, table);
        const { store, release } = openStore(where.url, where.schema);
        try {
          if (q.get('key')) f.timeline = await timeline(store, { pipeline, table, key: q.get('key')! }, unmasked ? undefined : maskPolicy(cfg));
          else {
            const at = isoParam('asof', q.get('asof'))!;
            const r = await store.asof(pipeline, table, at);
            const mask = unmasked ? undefined : maskPolicy(cfg);
            const rows = r.rows.map((x) => ({ key: x.key, row: mask ? Object.fromEntries(Object.entries(x.row).map(([k, v]) => [k, v !== null && mask.sensitive(k, table) ? MASK : v])) : x.row }));
            f.asof = { table, at: at.toISOString(), since: r.since.toISOString(), rows, shown: 200 };
          }
        } finally {
          await release();
        }
      } catch (err) {
        const code = errorCode(err);
        status = (err as { status?: number }).status === 400 || code === 'USAGE' ? 400 : code === 'PIPELINE_UNKNOWN' || code === 'HISTORY_DISABLED' || code === 'HISTORY_NOT_COVERED' ? 404 : 503;
        f.error = errorMessage(err);
      }
    }
    if (status !== 200) throw new PageError(status, page(this.ctx(s, 'History', 'history'), historyBody(f)));
    return page(this.ctx(s, 'History', 'history'), historyBody(f));
  }

  private async auditPage(s: Session, url: URL): Promise<string> {
    const q = url.searchParams;
    const f: Parameters<typeof auditBody>[0] = { q, verifications: this.src.verify ? this.visible(s).map((pipeline) => ({ pipeline, state: this.src.verify!(pipeline) })) : [] };
    try {
      f.entries = await auditEntries(this.src.config(), { since: sinceParam(q.get('since')), actor: q.get('actor') || undefined, action: q.get('action') || undefined, limit: limitParam(q.get('limit')) });
    } catch (err) {
      f.error = errorMessage(err);
      throw new PageError(err instanceof HttpError ? err.status : 503, page(this.ctx(s, 'Audit', 'audit'), auditBody(f)));
    }
    return page(this.ctx(s, 'Audit', 'audit'), auditBody(f));
  }

  private alertsPage(s: Session): string {
    return page(this.ctx(s, 'Alerts', 'alerts'), alertsBody(this.src.alerts?.()));
  }

  private replays(): ReplayJobs {
    if (!this.src.replays) throw new ConsoleError(404, 'this process does not run the sink stage: replay on the process that does');
    return this.src.replays;
  }

  private dlq(): DlqService {
    if (!this.src.dlq) throw new ConsoleError(404, 'this process does not run the sink stage: its dead letters are served by the process that does');
    return this.src.dlq();
  }

  // ------------------------------------------------------------------ login

  private loginPage(req: http.IncomingMessage, res: http.ServerResponse, url: URL, error?: string, status = 200): void {
    if (this.access.mode === 'none') return redirect(res, '/console/pipelines');
    const t = cookies(req)[LOGIN_COOKIE] ?? newLoginToken();
    res.appendHeader('Set-Cookie', cookie(LOGIN_COOKIE, t, { secure: this.secure, maxAgeS: 3600 }));
    const next = safeNext(url.searchParams.get('next'));
    sendHtml(res, status, page({ title: 'Log in', nav: 'login' }, html`
<h1>Log in to syncline</h1>
${error ? html`<p class="banner error" role="alert">${error}</p>` : ''}
<form method="post" action="/console/login" class="card narrow">
  <input type="hidden" name="_login" value="${t}">
  <input type="hidden" name="next" value="${next}">
  <label for="token">API token</label>
  <input id="token" name="token" type="password" autocomplete="current-password" required aria-describedby="token-help" autofocus>
  <p id="token-help" class="help">An API token (<code>slt_…</code>, from <code>syncline auth token create</code>) or an OIDC access token. It is checked once; the browser then holds a session cookie, not the token.</p>
  <button type="submit" class="primary">Log in</button>
</form>`));
  }

  private async login(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const form = await formBody(req);
    if (this.access.mode === 'none') return redirect(res, '/console/pipelines');
    if (!sameToken(form.get('_login') ?? undefined, cookies(req)[LOGIN_COOKIE])) {
      this.access.deny(req, url, 403, 'console login without its form token (stale form or another site)');
      return this.loginPage(req, res, url, 'The login form had expired: try again.', 403);
    }
    const token = (form.get('token') ?? '').trim();
    const who = token === '' ? { status: 401 as const, error: 'no token given' } : await this.access.identify(token);
    if (!('actor' in who)) {
      this.access.deny(req, url, who.status, `console login: ${who.error}`, who.principal);
      return this.loginPage(req, res, url, `Not logged in: ${who.error}.`, who.status);
    }
    const s = this.sessions.create(who);
    this.log.info({ actor: who.actor, role: who.role }, 'console.login');
    res.appendHeader('Set-Cookie', cookie(SESSION_COOKIE, s.id, { secure: this.secure }));
    res.appendHeader('Set-Cookie', cookie(LOGIN_COOKIE, '', { secure: this.secure, maxAgeS: 0 }));
    redirect(res, safeNext(form.get('next')));
  }

  // ------------------------------------------------------------------ pages

  private ctx(s: Session | undefined, title: string, nav: PageContext['nav']) {
    return { title, nav, actor: s?.principal.actor, role: s?.principal.role, csrf: s?.csrf, open: s?.principal.via === 'none' };
  }

  private errorPage(s: Session | undefined, status: number, message: string): string {
    return page(this.ctx(s, `Error ${status}`, 'pipelines'), html`<h1>${status === 403 ? 'Not allowed' : status === 404 ? 'Not found' : 'Something went wrong'}</h1><p class="banner error" role="alert">${message}</p><p><a href="/console/pipelines">Pipelines</a> · <a href="/console/dlq">Dead letters</a></p>`);
  }

  /** Admin actions (rollback): an admin of this pipeline, or anyone where the API takes no credentials (as the API lets them). */
  private canAdmin(s: Session, pipeline: string): boolean {
    const p = s.principal;
    if (p.via !== 'none' && p.role !== 'admin') return false;
    return !p.pipelines || p.pipelines.includes(pipeline);
  }

  private canAct(s: Session, pipeline?: string): boolean {
    const p = s.principal;
    if (p.via !== 'none' && ROLE_RANK[p.role] < ROLE_RANK.operator) return false;
    return !p.pipelines || pipeline === undefined || p.pipelines.includes(pipeline);
  }

  private visible(s: Session): string[] {
    const all = Object.keys(this.src.config().pipelines);
    const mine = s.principal.pipelines;
    return mine ? all.filter((n) => mine.includes(n)) : all;
  }

  private async pipelinesPage(s: Session, url: URL): Promise<string> {
    const cfg = this.src.config();
    const sync = (this.src.sync?.() ?? {}) as Record<string, { running?: unknown } | undefined>;
    const actions: Html[] = [];
    for (const name of this.visible(s)) {
      if (!this.canAct(s, name)) continue;
      const p = cfg.pipelines[name]!;
      const bounded = this.src.controllers?.().has(name) === true;
      const b = this.src.backfiller?.(name);
      const paused = this.src.pauses?.state(name);
      if (!bounded && !b && !paused) continue;
      const backfills = b?.list().filter((x) => x.status === 'running' || x.status === 'paused') ?? [];
      actions.push(html`<section class="card" aria-labelledby="act-${slug(name)}">
  <h3 id="act-${slug(name)}">${name}</h3>
  ${paused ? html`<form method="post" action="/console/pipelines/${encodeURIComponent(name)}/${paused.paused ? 'resume' : 'pause'}" class="inline"><input type="hidden" name="_csrf" value="${s.csrf}"><button type="submit"${paused.paused ? raw(' class="primary"') : ''}>${paused.paused ? `Resume ${name}` : `Pause ${name}`}</button></form>${paused.paused ? html` <small>paused by ${paused.by} at ${paused.at}</small>` : ''}` : ''}
  ${bounded ? html`<form method="post" action="/console/pipelines/${encodeURIComponent(name)}/runs" class="inline"><input type="hidden" name="_csrf" value="${s.csrf}"><button type="submit"${sync[name]?.running ? raw(' disabled') : ''}>Sync now</button></form>` : ''}
  ${b ? html`<form method="post" action="/console/pipelines/${encodeURIComponent(name)}/backfills" class="row">
    <input type="hidden" name="_csrf" value="${s.csrf}">
    <label for="bf-${slug(name)}">Backfill a table</label>
    <select id="bf-${slug(name)}" name="table" required><option value="">choose…</option>${p.tables.map((t) => html`<option>${t.source}</option>`)}</select>
    <button type="submit">Backfill</button>
  </form>` : ''}
  ${backfills.length > 0 ? html`<ul class="plain">${backfills.map((x) => html`<li>Backfill ${x.id} of ${x.table}: ${x.status}, ${x.percent}% (${x.rows} rows)
    <form method="post" action="/console/pipelines/${encodeURIComponent(name)}/backfills/${encodeURIComponent(x.id)}/${x.status === 'paused' ? 'resume' : 'pause'}" class="inline"><input type="hidden" name="_csrf" value="${s.csrf}"><button type="submit">${x.status === 'paused' ? 'Resume' : 'Pause'}</button></form></li>`)}</ul>` : ''}
</section>`);
    }
    return page(this.ctx(s, 'Pipelines', 'pipelines'), html`
<h1>Pipelines</h1>
${flash(url)}
${await this.pipelinesTable(s)}
${actions.length > 0 ? html`<h2>Actions</h2><div class="cards">${actions}</div>` : ''}
<p class="help">Numbers are this process's metrics, refreshed every 2 s. Pausing a realtime pipeline stops its consumption here (the batch in flight finishes; changes wait in Kafka, capture goes on) until it is resumed or this process restarts.</p>`);
  }

  private async pipelinesTable(s: Session): Promise<Html> {
    const cfg = this.src.config();
    const status = buildStatus(parseMetricsText(await this.src.metrics()), this.src.health(), 'runtime');
    const sync = (this.src.sync?.() ?? {}) as Record<string, { running?: { id: string } | null; nextAt?: string | null; schedule?: string; windowOpen?: boolean } | undefined>;
    const now = Date.now();
    const rows: Html[] = [];
    for (const name of this.visible(s)) {
      const p = cfg.pipelines[name]!;
      const st = status.pipelines.find((x) => x.name === name);
      const rates = this.sample(name, st, now);
      const sy = sync[name];
      const src = p.source as { type: string };
      const tgt = p.target as { type: string };
      const lag = st?.lag;
      rows.push(html`<tr>
  <th scope="row">${name}</th>
  <td>${p.mode}${p.schedule ? html`<br><small>${p.schedule}</small>` : ''}</td>
  <td><span class="state state-${st?.health ?? 'unknown'}">${st?.health ?? 'not here'}</span>${this.src.pauses?.state(name)?.paused ? html` <span class="state state-paused">paused</span>` : ''}${st ? html`<br><small>${Object.entries(st.stages).map(([k, v]) => `${k} ${v}`).join(', ')}</small>` : ''}</td>
  <td>${src.type} → ${tgt.type}<br><small>${p.tables.length} table(s): ${p.tables.slice(0, 3).map((t) => t.source).join(', ')}${p.tables.length > 3 ? ', …' : ''}</small></td>
  <td class="num">${rates.length > 0 ? `${fmt(rates[rates.length - 1]!)}/s` : '—'}${sparkline(name, rates)}<br><small>${st ? `${st.counts.applied} applied` : ''}</small></td>
  <td class="num">${lag?.consumerMessages ?? '—'} msg${lag?.slotBytes !== null && lag?.slotBytes !== undefined ? html`<br><small>slot ${bytes(lag.slotBytes)}</small>` : ''}</td>
  <td>${st?.lastError ? html`<span class="err">${st.lastError.stage}: ${st.lastError.code}</span><br><small>${st.lastError.error.slice(0, 200)}</small>` : '—'}</td>
  <td>${sy?.running ? html`running (${sy.running.id})` : sy?.nextAt ? html`<time datetime="${sy.nextAt}">${sy.nextAt.replace('T', ' ').slice(0, 19)} UTC</time>` : p.mode === 'realtime' ? (sy?.windowOpen === false ? 'window closed' : 'continuous') : '—'}</td>
</tr>`);
    }
    return html`<div id="pipelines" class="scroll" hx-get="/console/pipelines/live" hx-trigger="every 2s" hx-swap="outerHTML" role="region" aria-label="Pipelines" tabindex="0">
<table>
<thead><tr><th scope="col">Pipeline</th><th scope="col">Mode</th><th scope="col">State</th><th scope="col">Source → target</th><th scope="col">Throughput</th><th scope="col">Lag</th><th scope="col">Last error</th><th scope="col">Next run</th></tr></thead>
<tbody>${rows}</tbody>
</table>
<p class="help">Updated <time datetime="${new Date(now).toISOString()}">${new Date(now).toISOString().slice(11, 19)} UTC</time>.</p>
</div>`;
  }

  /** Records the pipeline's applied count (at most once a second) and gives its rates (per second) over the last samples. */
  private sample(name: string, st: PipelineStatus | undefined, now: number): number[] {
    const list = this.samples.get(name) ?? [];
    this.samples.set(name, list);
    if (st && (list.length === 0 || now - list[list.length - 1]!.t >= 1000)) {
      list.push({ t: now, applied: st.counts.applied });
      if (list.length > 61) list.shift();
    }
    const rates: number[] = [];
    for (let i = 1; i < list.length; i++) rates.push(Math.max(0, (list[i]!.applied - list[i - 1]!.applied) / ((list[i]!.t - list[i - 1]!.t) / 1000)));
    return rates;
  }

  private async dlqPage(s: Session, url: URL): Promise<string> {
    const q = url.searchParams;
    const state = q.get('state') || 'open';
    if (!['open', 'resolved', 'requeued', 'discarded', 'all'].includes(state)) throw new ConsoleError(400, `state must be open, resolved, requeued, discarded or all (got '${state}')`);
    const pipeline = q.get('pipeline') || undefined;
    const pageNo = Math.max(1, Number.parseInt(q.get('page') ?? '1', 10) || 1);
    const f = { pipeline, kind: q.get('kind') || undefined, table: q.get('table') || undefined, key: q.get('key') || undefined, state: state as DlqState | 'all' };
    // A read of the dead-letter topics (the first, started at start: ADR 0037, or of what was added
    // since the last) is waited for only a moment: past it the page says how far the read is and
    // asks again — during the first read instead of the list, later above the list read so far.
    let more: Html | string = '';
    if (this.src.dlq) {
      const svc = this.dlq();
      const read = svc.refresh(pipeline);
      read.catch(() => undefined); // (awaited below only for a moment; a later failure shows at the next request)
      const done = await Promise.race([read.then(() => true), sleep(DLQ_LOAD_WAIT_MS).then(() => false)]);
      const st = svc.loading(pipeline);
      if (!st.ready) return page(this.ctx(s, 'Dead letters', 'dlq'), dlqLoading(url, st));
      // Not done yet (its bounds perhaps not even known: a loaded machine): the list read so far, and the page asks again.
      if (!done) more = dlqLoading(url, st, true);
    }
    const all = this.src.dlq ? this.dlq().indexed(f) : [];
    // Newest first; one page of them.
    const total = all.length;
    const shown = all.slice().reverse().slice((pageNo - 1) * PAGE_SIZE, pageNo * PAGE_SIZE);
    const act = this.canAct(s, pipeline);
    const masking = this.src.dlq?.().masking;
    const opt = (v: string, label: string, cur: string | undefined) => html`<option value="${v}"${cur === v ? raw(' selected') : ''}>${label}</option>`;
    const pageLink = (n: number) => { const u = new URLSearchParams(q); u.set('page', String(n)); u.delete('done'); u.delete('failed'); return `/console/dlq?${u}`; };
    const rows = shown.map((e) => {
      const m = (masking ? entryJson(e, masking) : entryJson(e)) as DlqEntry;
      const href = `/console/dlq/${encodeURIComponent(e.id)}?pipeline=${encodeURIComponent(e.pipeline)}`;
      return html`<tr>
  ${act ? html`<td><input type="checkbox" name="id" value="${e.id}" form="bulk" id="sel-${slug(e.id)}" aria-label="Select dead letter ${e.id}"${e.state !== 'open' ? raw(' disabled') : ''}></td>` : ''}
  <td><a href="${href}">${e.id}</a></td>
  <td><time datetime="${e.time}">${e.time.replace('T', ' ').slice(0, 19)}</time></td>
  <td>${e.pipeline}</td>
  <td><span class="kind kind-${e.kind}">${e.kind}</span>${e.reason !== e.kind ? html`<br><small>${e.reason}${e.parkedBehind ? html` behind <a href="/console/dlq/${encodeURIComponent(e.parkedBehind)}?pipeline=${encodeURIComponent(e.pipeline)}">${e.parkedBehind}</a>` : ''}</small>` : ''}</td>
  <td>${e.table ?? '—'}</td>
  <td><code>${e.key ?? '—'}</code></td>
  <td>${e.state}</td>
  <td class="msg">${m.errorCode}<br><small>${m.errorMessage.slice(0, 160)}</small></td>
</tr>`;
    });
    const pipelines = this.visible(s);
    return page(this.ctx(s, 'Dead letters', 'dlq'), html`
<h1>Dead letters</h1>
${flash(url)}
<form method="get" action="/console/dlq" class="filters" role="search" aria-label="Filter dead letters">
  <div><label for="f-pipeline">Pipeline</label><select id="f-pipeline" name="pipeline">${s.principal.pipelines ? '' : opt('', 'all', pipeline ?? '')}${pipelines.map((n) => opt(n, n, pipeline))}</select></div>
  <div><label for="f-kind">Kind</label><select id="f-kind" name="kind">${[['', 'all'], ['conflict', 'conflict'], ['parked', 'parked (behind a conflict)'], ['invalid', 'invalid'], ['failed', 'failed']].map(([v, l]) => opt(v!, l!, f.kind ?? ''))}</select></div>
  <div><label for="f-table">Table</label><input id="f-table" name="table" value="${f.table ?? ''}" placeholder="public.orders"></div>
  <div><label for="f-key">Key</label><input id="f-key" name="key" value="${f.key ?? ''}" placeholder="42"></div>
  <div><label for="f-state">State</label><select id="f-state" name="state">${['open', 'resolved', 'requeued', 'discarded', 'all'].map((v) => opt(v, v, state))}</select></div>
  <div><button type="submit">Filter</button></div>
</form>
${this.src.dlq ? '' : html`<p class="banner warn" role="note">This process does not run the sink stage: its dead letters are served by the process that does.</p>`}
${more}
<p id="dlq-count">${total === 0 ? 'No dead letters match.' : `${(pageNo - 1) * PAGE_SIZE + 1}–${(pageNo - 1) * PAGE_SIZE + shown.length} of ${total}, newest first.`}</p>
${act && total > 0 ? html`<form id="bulk" method="post" action="/console/dlq/bulk?${keepFilters(q)}" class="row bulk" aria-label="Act on the selected dead letters">
  <input type="hidden" name="_csrf" value="${s.csrf}">
  <label for="bulk-action">With the selected</label>
  <select id="bulk-action" name="action"><option value="requeue">requeue</option><option value="discard">discard</option><option value="resolve:source">resolve: keep source</option><option value="resolve:target">resolve: keep target</option></select>
  <button type="submit">Apply</button>
</form>` : ''}
${total > 0 ? html`<div class="scroll" role="region" aria-labelledby="dlq-count" tabindex="0"><table class="dlq">
<thead><tr>${act ? html`<th scope="col"><span class="sr">Select</span></th>` : ''}<th scope="col">Id</th><th scope="col">Time (UTC)</th><th scope="col">Pipeline</th><th scope="col">Kind</th><th scope="col">Table</th><th scope="col">Key</th><th scope="col">State</th><th scope="col">Error</th></tr></thead>
<tbody>${rows}</tbody></table></div>` : ''}
<nav aria-label="Pages" class="pager">${pageNo > 1 ? html`<a href="${pageLink(pageNo - 1)}" rel="prev">← Newer</a>` : ''}${pageNo * PAGE_SIZE < total ? html`<a href="${pageLink(pageNo + 1)}" rel="next">Older →</a>` : ''}</nav>`);
  }

  private async entryPage(s: Session, id: string, pipeline: string | undefined, url: URL, error?: string, form?: URLSearchParams, revealed?: unknown): Promise<string> {
    const svc = this.dlq();
    const e = await svc.show(id, pipeline);
    const m = entryJson(e, svc.masking) as DlqEntry & { rawWithheld?: boolean };
    const act = this.canAct(s, e.pipeline) && e.state === 'open';
    const q = `?pipeline=${encodeURIComponent(e.pipeline)}`;
    const base = `/console/dlq/${encodeURIComponent(e.id)}`;
    const csrf = html`<input type="hidden" name="_csrf" value="${s.csrf}">`;
    const parked = e.kind === 'conflict' && e.table && e.key !== undefined
      ? (await svc.list({ pipeline: e.pipeline, table: e.table, state: 'open', kind: 'conflict' })).filter((x) => x.key === e.key && x.id !== e.id)
      : [];
    // Keep source / keep target, and with `merge` the merged row of the versions table's inputs (which
    // the keep buttons do not validate).
    const resolveForm = (merge: boolean) => {
      const keep = merge ? raw(' formnovalidate') : '';
      return html`<form id="resolve" method="post" action="${base}/resolve${q}" class="row actions" aria-label="Resolve the conflict">
  ${csrf}
  <label for="note-resolve">Note</label><input id="note-resolve" name="note" maxlength="300">
  <button type="submit" name="choice" value="source"${keep}>Keep source</button>
  <button type="submit" name="choice" value="target"${keep}>Keep target</button>
${merge ? html`  <button type="submit" name="choice" value="merged" class="primary">Apply merged row</button>\n` : ''}</form>`;
    };
    const c = m.conflict;
    let conflict: Html | string = '';
    if (c) {
      const changed = new Set(c.diff.map((d) => d.field));
      const fields = [...new Set([...Object.keys(c.lastSynced ?? {}), ...Object.keys(c.source ?? {}), ...Object.keys(c.target ?? {})])];
      const keyCols = new Set(Object.keys(c.key ?? {}));
      const canMerge = act && e.reason === 'conflict' && c.op === 'upsert';
      const cell = (row: Record<string, unknown> | null, f: string) => html`<td>${row ? showValue(row[f]) : '—'}</td>`;
      const input = (f: string) => {
        const sv = c.source?.[f];
        const tv = c.target?.[f];
        const id_ = `m-${slug(f)}`;
        if (keyCols.has(f)) return html`<td>${showValue(sv)} <small>(key)</small></td>`;
        if (sv === MASK || tv === MASK) return html`<td>${MASK} <small>(masked: keeps the source value)</small></td>`;
        const typ = typeOf(sv ?? tv);
        const cur = form?.get(`m:${f}`) ?? (typ === 'json' ? JSON.stringify(sv ?? null) : sv === null || sv === undefined ? '' : String(sv));
        const label = html`<label class="sr" for="${id_}">Merged ${f}</label>`;
        if (typ === 'boolean') return html`<td>${label}<select id="${id_}" name="m:${f}" form="resolve">${['true', 'false', ''].map((v) => html`<option value="${v}"${cur === v ? raw(' selected') : ''}>${v === '' ? 'null' : v}</option>`)}</select></td>`;
        if (typ === 'number') return html`<td>${label}<input id="${id_}" name="m:${f}" form="resolve" type="number" step="any" value="${cur}" inputmode="decimal"></td>`;
        if (typ === 'json') return html`<td>${label}<textarea id="${id_}" name="m:${f}" form="resolve" rows="2">${cur}</textarea></td>`;
        return html`<td>${label}<input id="${id_}" name="m:${f}" form="resolve" value="${cur}"></td>`;
      };
      conflict = html`<section aria-labelledby="versions">
<h2 id="versions">Versions</h2>
<p class="help">Strategy ${c.strategy}, ${c.op}. Rows marked <span class="changed-mark" aria-hidden="true">●</span> <em>changed</em> differ between the versions.</p>
<div class="scroll" role="region" aria-labelledby="versions" tabindex="0"><table class="versions">
<thead><tr><th scope="col">Field</th><th scope="col">Last synced</th><th scope="col">Source</th><th scope="col">Target</th>${canMerge ? html`<th scope="col">Merged</th>` : ''}</tr></thead>
<tbody>${fields.map((f) => html`<tr${changed.has(f) ? raw(' class="changed"') : ''}><th scope="row">${changed.has(f) ? html`<span class="changed-mark" aria-hidden="true">●</span> ` : ''}${f}${changed.has(f) ? html` <span class="sr">(changed)</span>` : ''}</th>${cell(c.lastSynced, f)}${cell(c.source, f)}${cell(c.target, f)}${canMerge ? input(f) : ''}</tr>`)}</tbody>
</table></div>
${canMerge ? resolveForm(true) : ''}
</section>`;
    } else if (e.kind === 'conflict' && e.omitted?.includes('conflict')) {
      // A letter too large for its topic left the row versions out (syncline.omitted): nothing to
      // show or merge here, but either side can still be kept (the change is read at its origin).
      const resolvable = act && e.reason === 'conflict';
      conflict = html`<section aria-labelledby="versions">
<h2 id="versions">Versions</h2>
<p class="banner warn" role="status">The row versions were left out of this dead letter: with them it was larger than the dead-letter topic takes${e.omitted.includes('value') ? ', and so was the change itself, which is read from its change topic at the origin offset when it is acted on' : ''}. Compare the source and the target rows of ${e.table ?? 'the table'} ${e.key ?? ''} there.</p>
${resolvable ? resolveForm(false) : ''}
</section>`;
    }
    const actions = act ? html`<section aria-labelledby="acts"><h2 id="acts">Actions</h2>
<form method="post" action="${base}/requeue${q}" class="inline">${csrf}<button type="submit">Requeue</button></form>
<form method="post" action="${base}/discard${q}" class="row inline">${csrf}<label for="note-discard">Note</label><input id="note-discard" name="note" maxlength="300"><button type="submit" class="danger">Discard</button></form>
</section>` : '';
    // Revealing the masked values: an admin's explicit, audited action (the API's reveal, with its reason).
    const admin = s.principal.role === 'admin' && (!s.principal.pipelines || s.principal.pipelines.includes(e.pipeline));
    const reveal = revealed !== undefined
      ? html`<section aria-labelledby="revealed"><h2 id="revealed">Revealed (unmasked)</h2><p class="banner warn" role="status">Shown unmasked to ${s.principal.actor}; the reveal is recorded in the audit trail. Reload the page to mask it again.</p><pre class="revealed">${JSON.stringify(revealed, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}</pre></section>`
      : admin ? html`<section aria-labelledby="reveal-h"><h2 id="reveal-h">Reveal</h2>
<form method="post" action="${base}/reveal${q}" class="row" aria-label="Reveal the masked values">${csrf}<label for="reveal-reason">Reason (recorded in the audit trail)</label><input id="reveal-reason" name="reason" required maxlength="300"><button type="submit" class="danger">Reveal masked values</button></form>
</section>` : '';
    return page(this.ctx(s, `Dead letter ${e.id}`, 'dlq'), html`
<p><a href="/console/dlq">← Dead letters</a></p>
<h1>Dead letter <code>${e.id}</code></h1>
${error ? html`<p class="banner error" role="alert">${error}</p>` : ''}
${flash(url)}
<dl class="facts">
  <dt>Pipeline</dt><dd>${e.pipeline}</dd>
  <dt>Kind</dt><dd>${e.kind} (${e.reason})</dd>
  <dt>State</dt><dd id="entry-state">${e.state}</dd>
  <dt>Table</dt><dd>${e.table ?? '—'}</dd>
  <dt>Key</dt><dd><code>${e.key ?? '—'}</code></dd>
  <dt>Position</dt><dd><code>${e.position ?? '—'}</code></dd>
  <dt>Time</dt><dd><time datetime="${e.time}">${e.time}</time></dd>
  <dt>Error</dt><dd>${m.errorCode}: ${m.errorMessage} (${e.attempts} attempt(s))</dd>
  ${e.parkedBehind ? html`<dt>Waits behind</dt><dd><a href="/console/dlq/${encodeURIComponent(e.parkedBehind)}${q}">${e.parkedBehind}</a></dd>` : ''}
  ${m.violations && m.violations.length > 0 ? html`<dt>Violations</dt><dd><code>${JSON.stringify(m.violations)}</code></dd>` : ''}
  ${e.history.length > 0 ? html`<dt>History</dt><dd><ul class="plain">${e.history.map((h) => html`<li>${h.action}${h.choice ? ` (${h.choice})` : ''} by ${h.by} at <time datetime="${h.at}">${h.at}</time>${h.note ? ` — ${h.note}` : ''}</li>`)}</ul></dd>` : ''}
</dl>
${conflict}
${parked.length > 0 ? html`<section aria-labelledby="parked"><h2 id="parked">Changes of this key waiting behind it (${parked.length})</h2><ul class="plain">${parked.map((x) => html`<li><a href="/console/dlq/${encodeURIComponent(x.id)}${q}">${x.id}</a> ${x.reason}, position <code>${x.position ?? '—'}</code></li>`)}</ul></section>` : ''}
${actions}
${reveal}`);
  }

  /**
   * The body of a resolve from the form: {choice} for source/target; for merged, the row built from
   * the `m:<field>` inputs, each value read back in the type of the version it was shown from (a
   * number stays a number, true/false a boolean, JSON a value; an empty input null). What does not
   * parse is refused with the field's name before anything is sent.
   */
  private async resolveBody(id: string, pipeline: string | undefined, form: URLSearchParams): Promise<Record<string, unknown>> {
    const choice = form.get('choice') ?? '';
    const note = form.get('note') || undefined;
    if (choice !== 'merged') return { choice, note };
    const e = await this.dlq().show(id, pipeline);
    const c = e.conflict;
    if (!c) throw new ConsoleError(400, `dead letter ${id} is not a conflict`);
    const merged: Record<string, unknown> = {};
    const keyCols = new Set(Object.keys(c.key ?? {}));
    const masking = this.dlq().masking;
    for (const [name, text] of form) {
      if (!name.startsWith('m:')) continue;
      const f = name.slice(2);
      if (keyCols.has(f) || masking.sensitive(f, e.table)) continue;
      const like = c.source?.[f] ?? c.target?.[f] ?? null;
      const typ = typeOf(like);
      if (text === '' && typ !== 'string') {
        merged[f] = null;
        continue;
      }
      if (typ === 'number') {
        if (!/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(text.trim())) throw new ConsoleError(400, `merged row: ${f} must be a number (got '${text}')`);
        merged[f] = typeof like === 'bigint' ? BigInt(text.trim()) : Number(text);
      } else if (typ === 'boolean') {
        if (text !== 'true' && text !== 'false') throw new ConsoleError(400, `merged row: ${f} must be true, false or empty for null (got '${text}')`);
        merged[f] = text === 'true';
      } else if (typ === 'json') {
        try {
          merged[f] = JSON.parse(text);
        } catch (err) {
          throw new ConsoleError(400, `merged row: ${f} must be JSON: ${errorMessage(err)}`);
        }
      } else merged[f] = text;
    }
    if (Object.keys(merged).length === 0) throw new ConsoleError(400, 'merged row: no field to write');
    return { choice: 'merged', merged, note };
  }

  // ------------------------------------------------------------------ assets

  private asset(req: http.IncomingMessage, res: http.ServerResponse, path: string): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendHtml(res, 405, 'GET only');
    this.assets ??= new Map([
      ['console.css', { type: 'text/css; charset=utf-8', body: readFileSync(assetFile('console.css')) }],
      // htmx from the installed package (npm htmx.org): served by this process, never from a CDN.
      ['htmx.min.js', { type: 'text/javascript; charset=utf-8', body: readFileSync(require.resolve('htmx.org/dist/htmx.min.js')) }],
    ]);
    const a = this.assets.get(path.slice('/console/assets/'.length));
    if (!a) return sendHtml(res, 404, 'no such asset');
    res.writeHead(200, { 'Content-Type': a.type, 'Cache-Control': 'public, max-age=3600', 'Content-Length': a.body.length });
    res.end(req.method === 'HEAD' ? undefined : a.body);
  }
}

// ------------------------------------------------------------------ helpers

function securityHeaders(res: http.ServerResponse): void {
  res.setHeader('Content-Security-Policy', "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
}

function sendHtml(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(body);
}

function redirect(res: http.ServerResponse, location: string): void {
  res.writeHead(303, { Location: location, 'Cache-Control': 'no-store' });
  res.end();
}

/** A form body (application/x-www-form-urlencoded, up to 1 MiB). */
async function formBody(req: http.IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 1 << 20) throw new ConsoleError(413, 'form larger than 1 MiB');
    chunks.push(c as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** Where to go after logging in: a console path only (no open redirect). */
function safeNext(next: string | null): string {
  return next && /^\/console(\/|$|\?)/.test(next) && !next.startsWith('//') ? next : '/console/pipelines';
}

function flash(url: URL): Html | string {
  const done = url.searchParams.get('done');
  const failed = url.searchParams.get('failed');
  return html`${done ? html`<p class="banner ok" role="status">${done}</p>` : ''}${failed ? html`<p class="banner error" role="alert">${failed}</p>` : ''}`;
}

/** The list's filters (for the bulk form's action, so the answer shows the same list). */
function keepFilters(q: URLSearchParams): string {
  const out = new URLSearchParams();
  for (const k of ['pipeline', 'kind', 'table', 'key', 'state', 'page']) {
    const v = q.get(k);
    if (v) out.set(k, v);
  }
  return out.toString();
}

function keep(url: URL, _form: URLSearchParams, extra: Record<string, string>): string {
  const out = new URLSearchParams(keepFilters(url.searchParams));
  for (const [k, v] of Object.entries(extra)) out.set(k, v);
  return out.toString();
}

const pastOf = (a: DlqActionName) => (a === 'resolve' ? 'Resolved' : a === 'requeue' ? 'Requeued' : 'Discarded');

function typeOf(v: unknown): 'number' | 'boolean' | 'json' | 'string' {
  if (typeof v === 'number' || typeof v === 'bigint') return 'number';
  if (typeof v === 'boolean') return 'boolean';
  if (v !== null && typeof v === 'object') return 'json';
  return 'string';
}

const slug = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_');
const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const bytes = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

/** A small inline SVG of the rates (no script, no style attribute: CSP allows it). */
function sparkline(name: string, rates: number[]): Html {
  if (rates.length < 2) return html``;
  const w = 120;
  const h = 24;
  const max = Math.max(...rates, 1e-9);
  const pts = rates.map((r, i) => `${((i / (rates.length - 1)) * w).toFixed(1)},${(h - (r / max) * (h - 2) - 1).toFixed(1)}`).join(' ');
  return html` <svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${name}: changes applied per second over the last ${rates.length} samples, up to ${fmt(max)}/s"><polyline fill="none" stroke="currentColor" stroke-width="1.5" points="${pts}"/></svg>`;
}

