/**
 * Liveness of one Runtime: its phase (starting → running → stopping → stopped) and the state of
 * every stage task it runs (a pipeline's capture, its processor or standalone sink writer).
 * Owner: the Runtime updates it (phase in start()/stop(), task states in its stage guard);
 * GET /health and syncline_stage_up read it. Nothing is persisted: a restarted process starts over.
 *
 * GET /health answers 200 while the process is starting or running and no stage failed, 503
 * otherwise, e.g.
 *   {"status":"ok","uptimeS":42.1,"pipelines":[{"name":"orders-sync","stages":["capture","process","sink"],"running":true}]}
 *   {"status":"failed","uptimeS":43.0,"pipelines":[{"name":"orders-sync","stages":[…],"running":false,
 *     "failed":[{"stage":"process","class":"fatal","code":"SINK_TABLE_MISSING","error":"… does not exist …"}]}]}
 * A stage waiting for a dependency that is not ready yet (it retries until the start deadline) is
 * not running and not failed: listed under `waiting` with the last error; the process is alive.
 * `lastDeadLetter`: the newest dead letter's stage, class, code, reason and time (what reports and
 * alert texts quote as a pipeline's last error when no stage failed). Every error text here is
 * masked (src/core/redact.ts).
 */
import { errorCode, errorMessage } from '../core/errors.js';
import { redact } from '../core/redact.js';
import { errorClass, type ErrorClass } from './metrics.js';

export type Phase = 'starting' | 'running' | 'stopping' | 'stopped';
export type HealthStatus = 'ok' | 'starting' | 'failed' | 'stopping' | 'stopped';

export interface StageFailure {
  stage: string;
  class: ErrorClass;
  code: string;
  error: string;
}

export interface PipelineHealth {
  name: string;
  /** The stages this process runs for the pipeline (capture, process, sink). */
  stages: string[];
  /** Every stage task of the pipeline is running. */
  running: boolean;
  /** Present when a stage task failed. */
  failed?: StageFailure[];
  /**
   * Present when the pipeline's capture stands by (ADR 0034): another process holds the source's
   * capture lock; this one takes over when it goes. Healthy: the process is alive and ready.
   */
  standby?: { stage: string; holder?: Record<string, unknown> }[];
  /** Present when a stage task waits for a dependency (retrying until the start deadline). */
  waiting?: StageFailure[];
  /** The newest dead letter of this process for the pipeline (its reason masked). */
  lastDeadLetter?: StageFailure & { at: string };
}

export interface HealthReport {
  status: HealthStatus;
  uptimeS: number;
  pipelines: PipelineHealth[];
}

type TaskState = { state: 'running' | 'stopped'; standby?: { holder?: Record<string, unknown> } } | { state: 'failed' | 'waiting'; failure: StageFailure };

export class HealthState {
  phase: Phase = 'starting';
  private readonly startedAt: number;
  private readonly pipelines = new Map<string, { stages: string[]; tasks: Map<string, TaskState>; lastDeadLetter?: StageFailure & { at: string } }>();

  constructor(private readonly now: () => number = Date.now) {
    this.startedAt = now();
  }

  /** Declare a pipeline and the stages this process runs for it (in display order). */
  pipeline(name: string, stages: string[]): void {
    this.entry(name).stages = stages;
  }

  taskStarted(pipeline: string, task: string): void {
    this.entry(pipeline).tasks.set(task, { state: 'running' });
  }

  /** A task ended: cleanly (no error) or with the error that stopped it. */
  taskEnded(pipeline: string, task: string, err?: unknown): void {
    const t = this.entry(pipeline).tasks;
    if (err === undefined) t.set(task, { state: 'stopped' });
    else t.set(task, { state: 'failed', failure: { stage: task, class: errorClass(err), code: errorCode(err), error: redact(errorMessage(err)) } });
  }

  /** A running task stands by (standby capture: another process holds the lock), or no longer (holder null). */
  taskStandby(pipeline: string, task: string, holder: Record<string, unknown> | undefined | null): void {
    const t = this.entry(pipeline).tasks.get(task);
    if (!t || t.state !== 'running') return;
    if (holder === null) delete t.standby;
    else t.standby = holder === undefined ? {} : { holder };
  }

  /** A task failed with a retriable error and waits to be started again. */
  taskWaiting(pipeline: string, task: string, err: unknown): void {
    this.entry(pipeline).tasks.set(task, { state: 'waiting', failure: { stage: task, class: errorClass(err), code: errorCode(err), error: redact(errorMessage(err)) } });
  }

  /** A change was dead-lettered: `error` its reason as shown (already masked by the dead-letter writer). */
  deadLettered(pipeline: string, stage: string, err: unknown, error: string): void {
    this.entry(pipeline).lastDeadLetter = { stage, class: errorClass(err), code: errorCode(err), error: redact(error), at: new Date(this.now()).toISOString() };
  }

  /** Per task: up (running) or not, for syncline_stage_up. */
  taskStates(): { pipeline: string; stage: string; up: boolean }[] {
    const out: { pipeline: string; stage: string; up: boolean }[] = [];
    for (const [pipeline, p] of this.pipelines) for (const [stage, t] of p.tasks) out.push({ pipeline, stage, up: t.state === 'running' });
    return out;
  }

  report(): HealthReport {
    const pipelines: PipelineHealth[] = [];
    let failed = false;
    for (const [name, p] of this.pipelines) {
      const tasks = [...p.tasks.values()];
      const failures = tasks.flatMap((t) => (t.state === 'failed' ? [t.failure] : []));
      const waiting = tasks.flatMap((t) => (t.state === 'waiting' ? [t.failure] : []));
      const ph: PipelineHealth = { name, stages: [...p.stages], running: tasks.length > 0 && tasks.every((t) => t.state === 'running') };
      if (failures.length > 0) {
        ph.failed = failures;
        failed = true;
      }
      if (waiting.length > 0) ph.waiting = waiting;
      const standby = [...p.tasks].flatMap(([stage, t]) => (t.state === 'running' && t.standby ? [{ stage, ...t.standby }] : []));
      if (standby.length > 0) ph.standby = standby;
      if (p.lastDeadLetter) ph.lastDeadLetter = p.lastDeadLetter;
      pipelines.push(ph);
    }
    const status: HealthStatus = failed ? 'failed' : this.phase === 'running' ? 'ok' : this.phase;
    return { status, uptimeS: Math.round((this.now() - this.startedAt) / 100) / 10, pipelines };
  }

  private entry(pipeline: string) {
    let p = this.pipelines.get(pipeline);
    if (!p) this.pipelines.set(pipeline, (p = { stages: [], tasks: new Map() }));
    return p;
  }
}

/** 200 while alive (starting or ok), 503 when a stage failed or the process is stopping. */
export function healthStatusCode(r: HealthReport): 200 | 503 {
  return r.status === 'ok' || r.status === 'starting' ? 200 : 503;
}
