/**
 * The runs of one bounded pipeline (modes scheduled and manual): fires its cron schedule, starts
 * runs asked for by the CLI and the API, and records every run (./runs.ts). Owned by the runtime
 * (one per bounded pipeline of a process running both capture and sink); stop() ends the current run
 * (outcome stopped) and the timer.
 *
 *  - Overlap: a fire while a run still goes is skipped and counted (metric
 *    syncline_sync_fires_skipped_total{reason="overlap"}); so is a fire outside every window
 *    (reason="window"). A manual run while one goes is refused (RunBusy).
 *  - Missed fires: the last fire handled is persisted with the runs; at start, fires that passed
 *    while nothing ran give one run (recorded with `missed: N`), not N.
 *  - Clock: `now` and the timer are injectable (tests); the timer re-arms from the cron's next fire
 *    after each fire, so a clock jump (DST) is the cron's business (./schedule.ts).
 */
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Cron } from 'croner';
import { BoundedRun, type BoundedParts } from './bounded.js';
import { cronOf, missedFire, nextFire } from './schedule.js';
import { inWindows, parseWindow, type SyncWindow } from './windows.js';
import { audit } from '../security/audit/recorder.js';
import { emptyCounts, newRunId, type RunStore, type RunTrigger, type SyncRun } from './runs.js';

export interface SyncModeConfig {
  mode: 'realtime' | 'scheduled' | 'manual';
  schedule?: string;
  timezone: string;
  windows?: string[];
  maxRunDurationMs?: number;
}

export class RunBusy extends Error {
  constructor(readonly running: string) {
    super(`a run of this pipeline is still going (${running})`);
  }
}

/** The sync metrics, registered once per metrics registry. */
export class SyncMetrics {
  readonly runs: Counter<'pipeline' | 'trigger' | 'outcome'>;
  readonly skipped: Counter<'pipeline' | 'reason'>;
  readonly duration: Histogram<'pipeline'>;
  private static readonly byRegistry = new WeakMap<Registry, SyncMetrics>();
  private constructor(registry: Registry) {
    this.runs = new Counter({ name: 'syncline_sync_runs_total', help: 'Bounded sync runs ended, by trigger (schedule, manual, api) and outcome (succeeded, partial, failed, timed-out, stopped).', labelNames: ['pipeline', 'trigger', 'outcome'], registers: [registry] });
    this.skipped = new Counter({ name: 'syncline_sync_fires_skipped_total', help: 'Schedule fires not run: reason overlap (the previous run still went) or window (outside every window).', labelNames: ['pipeline', 'reason'], registers: [registry] });
    this.duration = new Histogram({ name: 'syncline_sync_run_seconds', help: 'Duration of bounded sync runs.', labelNames: ['pipeline'], buckets: [1, 5, 15, 60, 300, 900, 3600, 14400], registers: [registry] });
  }
  static of(registry: Registry): SyncMetrics {
    let m = SyncMetrics.byRegistry.get(registry);
    if (!m) SyncMetrics.byRegistry.set(registry, (m = new SyncMetrics(registry)));
    return m;
  }
}

export interface ControllerOptions {
  pipeline: string;
  config: SyncModeConfig;
  parts: BoundedParts;
  store: RunStore;
  metrics: SyncMetrics;
  log: Logger;
  now?: () => Date;
  /** The config in force (file and SHA-256), recorded as config.loaded with each run it starts. */
  configDigest?: () => { path: string; sha256: string };
}

export class SyncController {
  private current?: { run: BoundedRun; done: Promise<SyncRun> };
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly cron?: Cron;
  private readonly windows: SyncWindow[];
  private readonly now: () => Date;
  private lastPersist = 0;
  /** Fires skipped in this process. */
  skipped = { overlap: 0, window: 0 };
  /** The next schedule fire the timer is armed for. */
  nextAt?: Date;
  /** Runs of this process, newest last (the store has all). */
  readonly recent: SyncRun[] = [];

  constructor(private readonly o: ControllerOptions) {
    this.now = o.now ?? (() => new Date());
    this.cron = o.config.mode === 'scheduled' && o.config.schedule ? cronOf(o.config.schedule, o.config.timezone) : undefined;
    this.windows = (o.config.windows ?? []).map(parseWindow);
  }

  get running(): SyncRun | undefined {
    return this.current?.run.record;
  }

  /** Scheduled: run the missed fire (once), then arm the timer. Manual: nothing until asked. */
  async start(): Promise<void> {
    if (!this.cron) return;
    const state = await this.o.store.state(this.o.pipeline);
    const missed = missedFire(this.cron, state?.lastFire ? new Date(state.lastFire) : undefined, this.now());
    if (missed) {
      this.o.log.info({ missed: missed.missed, last: missed.at.toISOString() }, 'sync.schedule.missed: fires passed while nothing ran; running once');
      await this.fire(missed.at, missed.missed);
    } else if (!state?.lastFire) await this.o.store.writeState({ pipeline: this.o.pipeline, lastFire: this.now().toISOString() });
    this.arm();
  }

  private arm(): void {
    if (this.stopped || !this.cron) return;
    const next = nextFire(this.cron, this.now());
    this.nextAt = next ?? undefined;
    if (!next) return;
    const wait = Math.min(next.getTime() - this.now().getTime(), 2 ** 31 - 1);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.now().getTime() + 5 < next.getTime()) return this.arm(); // woke early (long wait capped)
      void this.fire(next).catch((err: Error) => this.o.log.error({ err: err.message }, 'sync.schedule.fire-failed'));
      this.arm();
    }, Math.max(0, wait));
    this.timer.unref?.();
  }

  /** A schedule fire at `at` (standing for `missed` fires after downtime). */
  private async fire(at: Date, missed = 1): Promise<void> {
    await this.o.store.writeState({ pipeline: this.o.pipeline, lastFire: at.toISOString(), skipped: this.skipped.overlap + this.skipped.window });
    if (this.current) {
      this.skipped.overlap++;
      this.o.metrics.skipped.inc({ pipeline: this.o.pipeline, reason: 'overlap' });
      this.o.log.warn({ fire: at.toISOString(), running: this.current.run.record.id }, 'sync.schedule.skipped: the previous run still goes');
      return;
    }
    if (!inWindows(at, this.windows, this.o.config.timezone)) {
      this.skipped.window++;
      this.o.metrics.skipped.inc({ pipeline: this.o.pipeline, reason: 'window' });
      this.o.log.info({ fire: at.toISOString() }, 'sync.schedule.skipped: outside every window');
      return;
    }
    this.begin('schedule', 'scheduler', undefined, { fire: at.toISOString(), ...(missed > 1 ? { missed } : {}) });
  }

  /** Start a run now (manual/api); throws RunBusy when one goes. Returns the run's record (outcome running). */
  trigger(trigger: RunTrigger, by: string, tables?: string[], full = false): SyncRun {
    if (this.current) throw new RunBusy(this.current.run.record.id);
    if (this.stopped) throw new Error('the runtime is stopping');
    const unknown = tables?.filter((t) => !this.o.parts.topicsByTable.has(t)) ?? [];
    if (unknown.length > 0) throw new Error(`pipeline ${this.o.pipeline} has no table ${unknown.join(', ')} (have: ${[...this.o.parts.topicsByTable.keys()].join(', ')})`);
    return this.begin(trigger, by, tables, full ? { full: true } : {}).record;
  }

  /** Resolves with the run's final record. */
  wait(id: string): Promise<SyncRun> | undefined {
    return this.current?.run.record.id === id ? this.current.done : undefined;
  }

  private begin(trigger: RunTrigger, by: string, tables: string[] | undefined, extra: Partial<SyncRun> = {}): BoundedRun {
    const started = this.now();
    const record: SyncRun = { id: newRunId(started), pipeline: this.o.pipeline, trigger, by, ...(tables ? { tables } : {}), ...extra, startedAt: started.toISOString(), counts: emptyCounts(), outcome: 'running' };
    const run = new BoundedRun(this.o.parts, record, (r) => this.persist(r), this.o.config.maxRunDurationMs);
    this.o.log.info({ run: record.id, trigger, by }, 'sync.run.start');
    const cfg = this.o.configDigest?.();
    audit.record({ actor: by, action: 'sync.run.start', object: `run:${record.id}`, details: { pipeline: this.o.pipeline, trigger, tables: tables ?? null, ...extra, configSha256: cfg?.sha256 ?? null } });
    // A bounded run is a start of the pipeline's stages: the config it runs with is on record next to it.
    if (cfg) audit.record({ actor: by, action: 'config.loaded', object: `config:${cfg.path}`, details: { file: cfg.path, sha256: cfg.sha256, at: 'sync.run', run: record.id, pipeline: this.o.pipeline } });
    this.recent.push(record);
    if (this.recent.length > 50) this.recent.shift();
    const done = run.run().then(async (r) => {
      this.current = undefined;
      this.o.metrics.runs.inc({ pipeline: this.o.pipeline, trigger, outcome: r.outcome });
      this.o.metrics.duration.observe({ pipeline: this.o.pipeline }, (Date.parse(r.endedAt!) - Date.parse(r.startedAt)) / 1000);
      await this.o.store.writeRun(r).catch((err: Error) => this.o.log.warn({ err: err.message }, 'sync.run.record-failed'));
      this.o.log.info({ run: r.id, outcome: r.outcome, counts: r.counts }, 'sync.run.end');
      audit.record({ actor: by, action: 'sync.run.end', object: `run:${r.id}`, details: { pipeline: this.o.pipeline, trigger, outcome: r.outcome, counts: r.counts as unknown as Record<string, unknown> } });
      return r;
    });
    this.current = { run, done };
    void this.o.store.writeRun(record).catch(() => undefined);
    return run;
  }

  /** Progress records: at most one a second (the end is written by begin()). */
  private persist(r: SyncRun): void {
    if (r.outcome !== 'running' || Date.now() - this.lastPersist < 1000) return;
    this.lastPersist = Date.now();
    void this.o.store.writeRun({ ...r }).catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const c = this.current;
    if (c) {
      c.run.stop();
      await c.done.catch(() => undefined);
    }
  }
}
