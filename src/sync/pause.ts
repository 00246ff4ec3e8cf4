/**
 * An operator's pause of a realtime pipeline's processing (POST /api/pipelines/:name/pause|resume,
 * `syncline pipeline pause|resume NAME`, the console's Pause/Resume buttons; Runtime.pausePipeline).
 *
 * What pauses: the consumer stage of this process (the processor with its sink, or the standalone
 * sink writer) — the same kafkajs consumer.pause a closed sync window uses (./gate.ts): the batch
 * being applied finishes and commits, a batch fetched after the pause is not resolved (fetched
 * again on resume), the consumer stays in its group (no rebalance). Nothing is lost: the changes
 * wait in Kafka (lag grows), capture goes on, the slot's WAL does not pile up.
 *
 * The pause outlives a restart of the stage by its supervisor (a new stage starts paused, via
 * SyncModes.gated) and a sync window opening (the gate does not resume a paused pipeline), but not a
 * restart of the process: it is kept in memory (a restarted process applies again; say so in the
 * runbook). Bounded (scheduled/manual) pipelines have nothing running between runs: refused (409).
 */
import type http from 'node:http';
import { errorMessage, HttpError } from '../core/errors.js';
import { sendJson } from '../observe/http-json.js';
import { audit } from '../security/audit/recorder.js';
import { principalOf } from '../security/access/access.js';

export interface PauseState {
  pipeline: string;
  paused: boolean;
  /** Who paused it and when (while paused). */
  by?: string;
  at?: string;
  /** True when the call changed nothing (already paused / not paused). */
  unchanged?: boolean;
}

/** What Runtime.pausePipeline / resumePipeline do; `stage` pauses or resumes the live consumer stage (absent: none running now). */
export class PipelinePauses {
  private readonly held = new Map<string, { by: string; at: string }>();

  isPaused(name: string): boolean {
    return this.held.has(name);
  }

  state(name: string): PauseState {
    const h = this.held.get(name);
    return h ? { pipeline: name, paused: true, ...h } : { pipeline: name, paused: false };
  }

  /** Hold the pipeline's consumption; audited (pipeline.pause). */
  pause(name: string, by: string, stage: { pause(): void } | undefined): PauseState {
    if (this.held.has(name)) return { ...this.state(name), unchanged: true };
    this.held.set(name, { by, at: new Date().toISOString() });
    stage?.pause();
    audit.record({ action: 'pipeline.pause', object: `pipeline:${name}`, details: { pipeline: name } });
    return this.state(name);
  }

  /** Release it (unless a closed sync window keeps it paused: `windowClosed`); audited (pipeline.resume). */
  resume(name: string, by: string, stage: { resume(): void } | undefined, windowClosed = false): PauseState {
    const h = this.held.get(name);
    if (!h) return { ...this.state(name), unchanged: true };
    this.held.delete(name);
    if (!windowClosed) stage?.resume();
    audit.record({ action: 'pipeline.resume', object: `pipeline:${name}`, details: { pipeline: name, pausedBy: h.by, pausedAt: h.at, by } });
    return this.state(name);
  }
}

export interface PauseTarget {
  /** The pause or resume (Runtime.pausePipeline / resumePipeline); throws HttpError 404/409. */
  pause(name: string, by: string): PauseState;
  resume(name: string, by: string): PauseState;
}

/** POST /api/pipelines/:name/pause|resume → 200 PauseState; 404 no such pipeline here, 409 nothing to pause. */
export function pauseApi(t: PauseTarget) {
  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts.length !== 4 || parts[0] !== 'api' || parts[1] !== 'pipelines' || (parts[3] !== 'pause' && parts[3] !== 'resume')) return false;
    try {
      if (req.method !== 'POST') throw new HttpError(405, `use POST for ${url.pathname}`);
      const name = decodeURIComponent(parts[2]!);
      const by = principalOf(req)?.actor ?? 'api';
      sendJson(res, 200, parts[3] === 'pause' ? t.pause(name, by) : t.resume(name, by));
    } catch (err) {
      sendJson(res, err instanceof HttpError ? err.status : 500, { error: errorMessage(err) });
    }
    return true;
  };
}
