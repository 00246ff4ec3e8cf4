/**
 * Verification inside a running syncline (the process that runs the pipelines' capture): the
 * `verify: { cron }` schedule of each pipeline (croner, as mode scheduled: src/sync/schedule.ts),
 * the HTTP API the console calls, and the syncline_verify_mismatches gauge.
 *   POST /api/pipelines/:name/verify  {"table": "public.t", "repair": false, "wait": false} → 202 {status: running}
 *                                     (200 and the result with "wait": true); 409 while one runs
 *   GET  /api/pipelines/:name/verify  the last result (or the running one's start), 404 before any
 * One verification per pipeline at a time; a schedule fire while one runs is skipped (logged). The
 * last result is kept in memory (the gauge and the audit trail keep the rest).
 */
import type http from 'node:http';
import type { RedisClient } from '../core/redis.js';
import type { Logger } from 'pino';
import type { Cron } from 'croner';
import type { SynclineConfig } from '../core/config/schema.js';
import { errorMessage } from '../core/errors.js';
import type { KafkaClient } from '../core/kafka.js';
import type { Gauge } from 'prom-client';
import { HttpError, jsonBody, sendJson } from '../observe/http-json.js';
import { cronOf, nextFire } from '../sync/schedule.js';
import { verifyPipeline, type PipelineVerifyResult, type VerifyRequest } from './run.js';

export interface VerifyState {
  pipeline: string;
  status: 'running' | 'done' | 'failed';
  trigger: 'schedule' | 'api';
  startedAt: string;
  endedAt?: string;
  error?: string;
  result?: PipelineVerifyResult;
}

export interface VerifyServiceOptions {
  config: SynclineConfig;
  /** Pipelines this process runs (their capture). */
  pipelines: () => string[];
  kafka: KafkaClient;
  redis: RedisClient;
  gauge: Gauge<'pipeline' | 'table'>;
  log: Logger;
}

export class VerifyService {
  private readonly last = new Map<string, VerifyState>();
  private readonly running = new Map<string, Promise<VerifyState>>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  constructor(private readonly o: VerifyServiceOptions) {}

  /** Arm the schedules of the pipelines that have `verify.cron`. */
  start(): void {
    for (const name of this.o.pipelines()) {
      const p = this.o.config.pipelines[name];
      if (!p?.verify) continue;
      this.arm(name, cronOf(p.verify.cron, p.timezone));
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private arm(name: string, cron: Cron): void {
    if (this.stopped) return;
    const next = nextFire(cron, new Date());
    if (!next) return;
    // setTimeout takes at most 2^31-1 ms: a far fire is re-armed on the way.
    const ms = Math.min(next.getTime() - Date.now(), 2 ** 31 - 1);
    const t = setTimeout(() => {
      if (Date.now() >= next.getTime() - 5) {
        const p = this.o.config.pipelines[name]!;
        if (this.running.has(name)) this.o.log.warn({ pipeline: name }, 'verify.schedule.skipped: the previous verification still runs');
        else void this.run(name, { pipeline: name, repair: p.verify!.repair, rangeRows: p.verify!.rangeRows }, 'schedule');
      }
      this.arm(name, cron);
    }, Math.max(0, ms));
    t.unref();
    this.timers.set(name, t);
  }

  /** Start a verification (refused while one of the pipeline runs); resolves when it ends. */
  run(name: string, req: VerifyRequest, trigger: VerifyState['trigger']): Promise<VerifyState> {
    if (this.running.has(name)) throw new HttpError(409, `a verification of pipeline ${name} is running`);
    const st: VerifyState = { pipeline: name, status: 'running', trigger, startedAt: new Date().toISOString() };
    this.last.set(name, st);
    const done = (async () => {
      try {
        const r = await verifyPipeline(this.o.config, req, { kafka: this.o.kafka, redis: this.o.redis, log: this.o.log.child({ pipeline: name }) });
        for (const t of r.tables) this.o.gauge.set({ pipeline: name, table: t.table }, t.diffs.length);
        st.result = r;
        st.status = 'done';
        if (r.mismatches > 0) this.o.log.warn({ pipeline: name, mismatches: r.mismatches, repaired: r.repair?.status }, 'verify.mismatches');
      } catch (err) {
        st.status = 'failed';
        st.error = errorMessage(err);
        this.o.log.error({ pipeline: name, err: st.error }, 'verify.failed');
      } finally {
        st.endedAt = new Date().toISOString();
        this.running.delete(name);
      }
      return st;
    })();
    this.running.set(name, done);
    return done;
  }

  get(name: string): VerifyState | undefined {
    return this.last.get(name);
  }

  /** Handles /api/pipelines/:name/verify; false for other paths. */
  api() {
    return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const parts = url.pathname.split('/').filter(Boolean);
      if (parts.length !== 4 || parts[0] !== 'api' || parts[1] !== 'pipelines' || parts[3] !== 'verify') return false;
      const name = decodeURIComponent(parts[2]!);
      try {
        if (!this.o.pipelines().includes(name)) throw new HttpError(404, `no pipeline '${name}' with its capture in this process`);
        if (req.method === 'GET') {
          const st = this.get(name);
          if (!st) throw new HttpError(404, `pipeline ${name} has not been verified by this process yet`);
          sendJson(res, 200, st);
          return true;
        }
        if (req.method !== 'POST') throw new HttpError(405, `method ${req.method} not allowed on ${url.pathname}`);
        const b = await jsonBody(req, 1 << 16);
        if (b.table !== undefined && typeof b.table !== 'string') throw new HttpError(400, 'table must be a string (a table of the pipeline)');
        if (b.repair !== undefined && typeof b.repair !== 'boolean') throw new HttpError(400, 'repair must be true or false');
        if (b.wait !== undefined && typeof b.wait !== 'boolean') throw new HttpError(400, 'wait must be true or false');
        const p = this.o.config.pipelines[name]!;
        const done = this.run(name, { pipeline: name, table: b.table as string | undefined, repair: b.repair === true, rangeRows: p.verify?.rangeRows }, 'api');
        if (b.wait === true) sendJson(res, 200, await done);
        else sendJson(res, 202, this.get(name));
        return true;
      } catch (err) {
        sendJson(res, err instanceof HttpError ? err.status : 500, { error: errorMessage(err) });
        return true;
      }
    };
  }
}
