/**
 * The runtime's hook for sync modes (src/runtime.ts keeps only calls into this): which pipelines
 * are bounded (scheduled, manual), their controllers and parts, the windows of realtime ones, the
 * record of runs and its HTTP API.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { PipelineConfig } from '../core/config/schema.js';
import type { KafkaClient } from '../core/kafka.js';
import type { ConsumerStage } from '../process/processor.js';
import type { Applier } from '../sink/applier.js';
import { syncApi } from './api.js';
import type { BoundedParts } from './bounded.js';
import { SyncController, SyncMetrics } from './controller.js';
import { WindowGate } from './gate.js';
import { PipelinePauses } from './pause.js';
import { RunStore } from './runs.js';

type Partial<T> = { -readonly [K in keyof T]?: T[K] };

export class SyncModes {
  readonly controllers = new Map<string, SyncController>();
  readonly gates = new Map<string, WindowGate>();
  readonly store: RunStore;
  /** Operators' pauses of realtime pipelines (./pause.ts). */
  readonly pauses = new PipelinePauses();
  private readonly building = new Map<string, Partial<BoundedParts>>();
  /** The clock of schedules and windows (tests set it before Runtime.start()). */
  now: () => Date = () => new Date();
  /** The config the process runs (file and SHA-256): each bounded run records it as config.loaded (the runtime sets it). */
  configDigest?: () => { path: string; sha256: string };

  constructor(private readonly kafka: KafkaClient, prefix: string, private readonly log: Logger) {
    this.store = new RunStore(kafka, prefix);
  }

  bounded(p: PipelineConfig): boolean {
    return p.mode !== 'realtime';
  }

  /** The parts of a bounded pipeline being assembled by the runtime. */
  parts(name: string): Partial<BoundedParts> {
    let b = this.building.get(name);
    if (!b) this.building.set(name, (b = {}));
    return b;
  }

  /** A realtime pipeline's consumer stage, paused from the start when its windows are closed now or an operator paused it. */
  gated(name: string, stage: ConsumerStage): ConsumerStage {
    const g = this.gates.get(name);
    if ((g && !g.isOpen) || this.pauses.isPaused(name)) stage.pause();
    return stage;
  }

  async startBounded(name: string, p: PipelineConfig, o: { stages: Set<string>; applier?: Applier; groupId: string; topicsByTable: Map<string, string>; registry: Registry; log: Logger }): Promise<void> {
    const b = this.parts(name);
    if (!(o.stages.has('capture') && o.stages.has('process') && o.stages.has('sink')) || !o.applier || !b.capture || !b.consumer) {
      o.log.warn({ mode: p.mode }, 'sync.bounded.not-here: a scheduled or manual pipeline runs only in a process with capture, process and sink (syncline start); nothing of it runs here');
      return;
    }
    const parts: BoundedParts = { pipeline: name, capture: b.capture, consumer: b.consumer, applier: o.applier, groupId: o.groupId, topicsByTable: o.topicsByTable, kafka: this.kafka, log: o.log };
    const c = new SyncController({ pipeline: name, config: p, parts, store: this.store, metrics: SyncMetrics.of(o.registry), log: o.log, now: () => this.now(), ...(this.configDigest ? { configDigest: this.configDigest } : {}) });
    this.controllers.set(name, c);
    await c.start();
  }

  startWindows(name: string, p: PipelineConfig, o: { stage: () => ConsumerStage | undefined; registry: Registry; log: Logger; consumes: boolean }): void {
    if (!p.windows || !o.consumes) return;
    const g = new WindowGate({ pipeline: name, held: () => this.pauses.isPaused(name), windows: p.windows, timezone: p.timezone, stage: o.stage, registry: o.registry, log: o.log, now: () => this.now(), ...(this.configDigest ? { configDigest: this.configDigest } : {}) });
    this.gates.set(name, g);
    g.start();
  }

  api(pipelines: () => string[]) {
    return syncApi(() => this.controllers, () => this.store, pipelines);
  }

  /**
   * The `sync` section of reports/sync-status.json: per pipeline its mode and, for bounded ones,
   * the run going, the runs of this process (newest first; `syncline sync list` has all) and the
   * skipped fires; for realtime ones with windows, whether a window is open.
   */
  report(pipelines: [string, PipelineConfig][]): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, p] of pipelines) {
      const c = this.controllers.get(name);
      const g = this.gates.get(name);
      out[name] = {
        mode: p.mode,
        ...(p.schedule ? { schedule: p.schedule } : {}),
        ...(p.windows ? { windows: p.windows, timezone: p.timezone } : {}),
        ...(g ? { windowOpen: g.isOpen } : {}),
        ...(this.pauses.isPaused(name) ? { paused: this.pauses.state(name) } : {}),
        ...(c ? { running: c.running ?? null, nextAt: c.nextAt?.toISOString() ?? null, skipped: c.skipped, runs: [...c.recent].reverse().slice(0, 20) } : {}),
        ...(p.mode !== 'realtime' && (p.source as { type: string }).type === 'postgres' ? { note: 'between runs nothing of this pipeline runs: its replication slot retains WAL until the next run' } : {}),
      };
    }
    return out;
  }

  async stop(): Promise<void> {
    for (const g of this.gates.values()) g.stop();
    await Promise.allSettled([...this.controllers.values()].map((c) => c.stop()));
  }
}
