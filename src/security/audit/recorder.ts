/**
 * `audit.record({actor, role, action, object, details})`: how every part of syncline appends to the
 * audit trail without waiting for it.
 *
 * Owner: one Auditor per process (the module-level `audit`), configured from config `audit` by the
 * Runtime and the one-shot CLI commands (configure/release count their holders; the last release
 * flushes, writes a checkpoint and closes). record() is synchronous and never throws: the entry is
 * masked (maskDetails), timestamped, given an id, and buffered; a flush appends the buffer in order
 * (store.ts) right after, retried with backoff while the audit database is down (metric
 * syncline_audit_pending shows what waits, syncline_audit_errors_total{kind} the failures). Before
 * record() returns, the entry is also written and fsynced to a local spool file (spool.ts,
 * audit.spoolDir): a crash, or a stop while the database is down, loses nothing; the next process
 * of the trail on this host appends what is left, in order, before its own entries. On a clean stop
 * the buffer is flushed (bounded wait); what the database did not take stays in the spool.
 * Unconfigured (no `audit` section): record() does nothing.
 *
 * Actor: given by the caller, else the principal of the request being served (withPrincipal, set
 * by the HTTP server around each /api/ request; today from X-Syncline-User, later the authenticated
 * identity), else the process itself (system@host).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type http from 'node:http';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AuditConfig } from '../../core/config/schema.js';
import { errorMessage } from '../../core/errors.js';
import { canonicalJson, type Json } from './chain.js';
import { loadAuditKeys, type AuditKeys } from './keys.js';
import { AuditStore, type PendingEntry } from './store.js';
import { AuditSpool } from './spool.js';

export interface AuditAction {
  /** Who: a user name, user@host, a token's principal; default: the request's principal, else system@host. */
  actor?: string;
  role?: string;
  /** Dotted verb: dlq.resolve, sync.run.start, config.reload, api.denied, … */
  action: string;
  /** What it was done to: dlq:<pipeline>/<id>, pipeline:<name>, run:<id>, … */
  object?: string;
  /** Ids, names, counts, hashes only: values under sensitive names are replaced by their hash (maskDetails). */
  details?: Record<string, unknown>;
}

export interface Principal {
  actor: string;
  role?: string;
}

const principals = new AsyncLocalStorage<Principal>();
/** Who acts when no request is being served: the process (system@host), or the user of a CLI command (setProcessActor). */
let processActor: Principal | undefined;

/** The actor of everything this process records outside a request (a CLI command: user@host). */
export function setProcessActor(p: Principal | undefined): void {
  processActor = p;
}

/** Run `fn` with `p` as the actor of what it records (the HTTP server wraps each request). */
export function withPrincipal<T>(p: Principal, fn: () => T): T {
  return principals.run(p, fn);
}

/** The principal of an HTTP request: today the X-Syncline-User header (taken on trust), else "api". */
export function requestPrincipal(req: http.IncomingMessage): Principal {
  return { actor: String(req.headers['x-syncline-user'] ?? 'api').slice(0, 200) };
}

export const SYSTEM_ACTOR = `system@${hostname()}`;

/** Names whose values are secrets or row data: kept as a hash (sha256:<16 hex>), never as is. */
const SENSITIVE = /(pass(word)?|secret|token|credential|authorization|cookie|private|api[-_]?key|^key|value|values|before|after|row|rows|merged|payload|body|note|where)$/i;
const MAX_TEXT = 300;

export function hashOf(v: unknown): string {
  return `sha256:${createHash('sha256').update(canonicalJson(toJson(v, 0, false))).digest('hex').slice(0, 16)}`;
}

function toJson(v: unknown, depth: number, mask: boolean): Json {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') return mask && v.length > MAX_TEXT ? `${v.slice(0, MAX_TEXT)}…(${v.length} chars)` : v.replace(/\u0000/g, '');
  if (v instanceof Date) return v.toISOString();
  if (Buffer.isBuffer(v)) return hashOf(v.toString('base64'));
  if (depth > 6) return '…';
  if (Array.isArray(v)) return v.slice(0, 100).map((x) => toJson(x, depth + 1, mask));
  if (typeof v === 'object') {
    const out: { [k: string]: Json } = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (x === undefined) continue;
      out[k] = mask && SENSITIVE.test(k) ? hashOf(x) : toJson(x, depth + 1, mask);
    }
    return out;
  }
  return String(v);
}

/** Details as stored: JSON values, sensitive names hashed, long texts cut. */
export function maskDetails(d: Record<string, unknown> | undefined): { [k: string]: Json } {
  return (d ? toJson(d, 0, true) : {}) as { [k: string]: Json };
}

export class Auditor {
  readonly store: AuditStore;
  readonly keys: AuditKeys;
  private pending: PendingEntry[] = [];
  private flushing?: Promise<void>;
  private retryTimer?: NodeJS.Timeout;
  private timers: NodeJS.Timeout[] = [];
  private failures = 0;
  private sinceCheckpoint = 0;
  private lastCheckpointAt = Date.now();
  private closed = false;
  private backlogSaid = false;
  /** Entries are durable here before record() returns (spool.ts). */
  readonly spool: AuditSpool;
  readonly counts = { appended: 0, errors: { append: 0, checkpoint: 0, prune: 0, spool: 0 } };

  constructor(readonly config: AuditConfig, private readonly log: Logger, env: NodeJS.ProcessEnv = process.env) {
    this.keys = loadAuditKeys(config, env);
    this.store = new AuditStore(config.url, config.table);
    this.spool = new AuditSpool(config.spoolDir, config.url, config.table, log);
    // What a crashed process of this trail left: first in line.
    this.pending.push(...this.spool.adopt());
    if (!this.keys.privateKey) log.warn({ table: config.table }, 'audit.unsigned: no audit.signingKey, so no checkpoint is signed (a rewrite of the whole chain would go unnoticed)');
    const every = setInterval(() => {
      if (this.sinceCheckpoint > 0 && Date.now() - this.lastCheckpointAt >= config.checkpointEveryMs) void this.checkpoint();
    }, Math.min(config.checkpointEveryMs, 60_000));
    const prune = setInterval(() => void this.prune(), 86_400_000);
    every.unref();
    prune.unref();
    this.timers.push(every, prune);
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  record(a: AuditAction): void {
    if (this.closed) return;
    try {
      const p = principals.getStore() ?? processActor;
      const e: PendingEntry = {
        id: randomUUID(), at: new Date().toISOString(),
        actor: (a.actor ?? p?.actor ?? SYSTEM_ACTOR).slice(0, 200),
        role: a.role ?? (a.actor === undefined || a.actor === p?.actor ? p?.role : undefined) ?? (a.actor === undefined && !p ? 'system' : null),
        action: a.action, object: a.object ?? null, details: maskDetails(a.details),
      };
      try {
        this.spool.write(e); // durable before the caller acknowledges its action
      } catch (err) {
        this.counts.errors.spool++;
        this.log.error({ action: a.action, file: this.spool.file, err: errorMessage(err) }, 'audit.spool.failed: the entry is held in memory only until the audit database takes it');
      }
      this.pending.push(e);
      if (this.pending.length > this.config.bufferMax && !this.backlogSaid) {
        this.backlogSaid = true;
        this.log.error({ pending: this.pending.length, spool: this.spool.file }, 'audit.backlog: the audit database has refused appends for long (audit.bufferMax); entries wait in the spool file and in memory');
      }
      if (!this.retryTimer) void this.flush();
    } catch (err) {
      this.counts.errors.append++;
      this.log.error({ action: a.action, err: errorMessage(err) }, 'audit.record.failed');
    }
  }

  /** Append what is buffered; resolves when the buffer is empty or an append failed (then retried later). */
  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.slice(0, 500);
      try {
        const appended = await this.store.append(batch);
        const ids = new Set(batch.map((b) => b.id));
        this.pending = this.pending.filter((e) => !ids.has(e.id));
        this.counts.appended += appended.length;
        this.sinceCheckpoint += appended.length;
        // Synchronously after the check: no record() can come in between.
        if (this.pending.length === 0) {
          this.backlogSaid = false;
          try {
            this.spool.clear();
          } catch (err) {
            this.log.warn({ err: errorMessage(err) }, 'audit.spool.clear.failed: appended entries stay in the spool (appended again once, skipped by id)');
          }
        }
        if (this.failures > 0) this.log.info({ pending: this.pending.length }, 'audit.store.ready: appending again');
        this.failures = 0;
      } catch (err) {
        this.counts.errors.append++;
        if (this.failures++ === 0) this.log.error({ err: errorMessage(err), pending: this.pending.length }, 'audit.append.failed: kept in memory and retried (syncline_audit_pending)');
        if (!this.closed) {
          const delay = Math.min(30_000, 500 * 2 ** Math.min(this.failures, 6));
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            void this.flush();
          }, delay);
          this.retryTimer.unref();
        }
        return;
      }
    }
    if (this.sinceCheckpoint >= this.config.checkpointEvery) await this.checkpoint();
  }

  /** Sign a checkpoint at the chain's tip (when there is a signing key and something new). */
  async checkpoint(): Promise<void> {
    if (!this.keys.privateKey || !this.keys.publicKey) return;
    try {
      const c = await this.store.checkpoint(this.keys.privateKey, this.keys.publicKey);
      this.sinceCheckpoint = 0;
      this.lastCheckpointAt = Date.now();
      if (c) this.log.debug({ seq: c.seq }, 'audit.checkpoint');
    } catch (err) {
      this.counts.errors.checkpoint++;
      this.log.error({ err: errorMessage(err) }, 'audit.checkpoint.failed');
    }
  }

  /** Drop entries past the retention, up to a signed checkpoint (recorded as audit.pruned). */
  async prune(now = new Date()): Promise<{ through: number; deleted: number } | undefined> {
    try {
      const r = await this.store.prune(new Date(now.getTime() - this.config.retentionDays * 86_400_000));
      if (r && r.deleted > 0) {
        this.record({ action: 'audit.pruned', object: `audit:${this.config.table}`, details: { throughSeq: r.through, throughHash: r.hash, deleted: r.deleted, retentionDays: this.config.retentionDays } });
        this.log.info(r, 'audit.pruned');
      }
      return r;
    } catch (err) {
      this.counts.errors.prune++;
      this.log.error({ err: errorMessage(err) }, 'audit.prune.failed');
      return undefined;
    }
  }

  /** The audit metrics in a registry (prom-client), read from this auditor at scrape time. */
  attachMetrics(registry: Registry): void {
    if (registry.getSingleMetric('syncline_audit_pending')) return;
    const self = this;
    new Gauge({ name: 'syncline_audit_pending', help: 'Audit entries recorded but not yet appended to the audit database (it is down or slow).', registers: [registry], collect() { this.set(self.pending.length); } });
    new Counter({
      name: 'syncline_audit_errors_total', help: 'Audit trail failures by kind: append (retried), checkpoint, prune, spool (an entry not written to the local spool file: held in memory only).', labelNames: ['kind'], registers: [registry],
      collect() { this.reset(); for (const [kind, n] of Object.entries(self.counts.errors)) this.inc({ kind }, n); },
    });
    new Counter({ name: 'syncline_audit_appended_total', help: 'Audit entries appended to the audit database by this process.', registers: [registry], collect() { this.reset(); this.inc(self.counts.appended); } });
  }

  /** Flush (waiting at most `ms`), sign a last checkpoint, close the pool. */
  async close(ms = 5000): Promise<void> {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const t of this.timers) clearInterval(t);
    const deadline = Date.now() + ms;
    while (this.pending.length > 0 && Date.now() < deadline) {
      await Promise.race([this.flush(), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref())]);
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      if (this.pending.length > 0) await new Promise((r) => setTimeout(r, 200));
    }
    this.closed = true;
    if (this.pending.length > 0) this.log.error({ pending: this.pending.length, spool: this.spool.file }, 'audit.close: the audit database did not take these entries before the stop; they stay in the spool file and the next start appends them');
    else if (this.sinceCheckpoint > 0) await this.checkpoint();
    this.spool.close(this.pending.length === 0);
    await this.store.close();
  }
}

/** The process's auditor (configured by the Runtime or a CLI command; none: record() does nothing). */
class ProcessAudit {
  private current?: Auditor;
  private holders = 0;

  /** Start recording to the config's audit trail (nothing without an enabled `audit` section). Throws a fatal error for a bad key. */
  configure(config: AuditConfig | undefined, log: Logger): boolean {
    if (!config?.enabled) return false;
    if (this.current && (this.current.config.url !== config.url || this.current.config.table !== config.table)) {
      log.warn({ table: config.table }, 'audit.configure: this process already records to another audit trail; kept');
    }
    this.current ??= new Auditor(config, log);
    this.holders++;
    return true;
  }

  get auditor(): Auditor | undefined {
    return this.current;
  }

  record(a: AuditAction): void {
    this.current?.record(a);
  }

  flush(): Promise<void> {
    return this.current?.flush() ?? Promise.resolve();
  }

  /** A holder is done: the last one flushes (bounded), checkpoints and closes. */
  async release(ms = 5000): Promise<void> {
    if (!this.current || --this.holders > 0) return;
    const a = this.current;
    this.current = undefined;
    this.holders = 0;
    await a.close(ms);
  }
}

export const audit = new ProcessAudit();

/** A request the API refused (authentication or role): for the access-control module. */
export function recordDenied(d: { actor?: string; role?: string; method: string; path: string; status: number; reason: string }): void {
  audit.record({ actor: d.actor ?? 'anonymous', role: d.role, action: 'api.denied', object: `${d.method} ${d.path.split('?')[0]}`, details: { status: d.status, reason: d.reason } });
}
