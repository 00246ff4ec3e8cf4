/**
 * The record of sync runs (scheduled and manual modes, src/sync/) and each bounded pipeline's
 * schedule state, in the compacted topic `<prefix>.sync.runs` (one partition):
 *   key 'run:<id>'            → the run's latest record (written at start, on progress, at the end);
 *   key 'pipeline:<name>'     → { lastFire, skipped } (the last schedule fire handled: missed runs after downtime).
 *
 * Why Kafka and not Redis: the record belongs with the capture offsets (same compacted-topic idea,
 * `<prefix>.capture.offsets`): it must outlive Redis (which is version state, and is not needed by
 * every process: a capture-only process has none), it is as durable as the change topics the runs
 * moved, and every process and `syncline sync list` can read it without the service running.
 * Compaction keeps the last record of each key; the topic is small (one record per run).
 *
 * Example: key 'run:r-20261205-153000-1a2b' → {"id":"r-…","pipeline":"orders","trigger":"schedule",
 *   "by":"scheduler","startedAt":"…","endedAt":"…","counts":{"read":12,…},"outcome":"succeeded"}
 */
import { randomBytes } from 'node:crypto';
import type { KafkaClient } from '../core/kafka.js';
import { readRanges, topicBounds } from '../core/topic-reader.js';

export type RunTrigger = 'schedule' | 'manual' | 'api';
/** `partial`: every table was applied up to the run's end except those held for a breaking schema change (`held`). */
export type RunOutcome = 'running' | 'succeeded' | 'partial' | 'failed' | 'timed-out' | 'stopped';

export interface RunCounts {
  /** Changes the sink stage received. */
  read: number;
  applied: number;
  /** Skipped: the target already held them (unchanged content, or an older position than the key's). */
  unchanged: number;
  conflicts: number;
  /** Dead-lettered: undecodable/invalid in the consumer stage, failed writes and parked conflicts in the sink. */
  deadLettered: number;
}

export interface SyncRun {
  id: string;
  pipeline: string;
  trigger: RunTrigger;
  /** Who asked: 'scheduler', the CLI's user@host, the API's X-Syncline-User. */
  by: string;
  /** Only these tables (manual runs with --table); all when absent. */
  tables?: string[];
  /** A full re-read: the tables are backfilled (src/capture/backfill.ts) inside the run, then it goes on as any run. */
  full?: boolean;
  /** The backfills of a full run (their ids, in the capture's backfill list). */
  backfills?: string[];
  /** Schedule: the fire time this run is for; `missed` fires it stands for after downtime (>1). */
  fire?: string;
  missed?: number;
  startedAt: string;
  endedAt?: string;
  /** What the run goes up to: the source's position at its start, then the change topics' end offsets. */
  sourceEnd?: string;
  phase?: 'capture' | 'apply' | 'done';
  /** Apply progress: messages of the change topics consumed of those to consume (for a progress bar). */
  progress?: { done: number; total: number };
  counts: RunCounts;
  /**
   * Tables whose apply a pending breaking schema change holds (src/process/schema-guard.ts): the run
   * ended without them (outcome partial); their changes from the schema change on wait in Kafka (the
   * group's offsets stay before them) and a run after `syncline schema approve|reject` takes them.
   */
  held?: { table: string; change: string }[];
  outcome: RunOutcome;
  error?: string;
}

export interface PipelineSyncState {
  pipeline: string;
  lastFire?: string;
  /** Fires skipped since this process started counting (overlap, outside windows). */
  skipped?: number;
}

export const emptyCounts = (): RunCounts => ({ read: 0, applied: 0, unchanged: 0, conflicts: 0, deadLettered: 0 });

export const syncRunsTopic = (prefix: string) => `${prefix}.sync.runs`;

export function newRunId(now: Date): string {
  return `r-${now.toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-')}-${randomBytes(3).toString('hex')}`;
}

export class RunStore {
  readonly topic: string;
  private ensured = false;
  constructor(private readonly kafka: KafkaClient, prefix: string) {
    this.topic = syncRunsTopic(prefix);
  }

  private async ensure(): Promise<void> {
    if (this.ensured) return;
    await this.kafka.ensureTopics([this.topic], { partitions: 1, compact: true });
    this.ensured = true;
  }

  async writeRun(run: SyncRun): Promise<void> {
    await this.ensure();
    await this.kafka.send([{ topic: this.topic, key: Buffer.from(`run:${run.id}`), value: Buffer.from(JSON.stringify(run)) }]);
  }

  async writeState(state: PipelineSyncState): Promise<void> {
    await this.ensure();
    await this.kafka.send([{ topic: this.topic, key: Buffer.from(`pipeline:${state.pipeline}`), value: Buffer.from(JSON.stringify(state)) }]);
  }

  /** Every key's latest record. */
  private async readAll(): Promise<Map<string, unknown>> {
    await this.ensure();
    const out = new Map<string, unknown>();
    const bounds = await topicBounds(this.kafka, this.topic);
    await readRanges(this.kafka, bounds.map((b) => ({ topic: this.topic, partition: b.partition, from: b.low, to: b.high })), async (_t, _p, msgs) => {
      for (const m of msgs) {
        const key = m.key?.toString();
        if (!key) continue;
        if (m.value === null) out.delete(key);
        else out.set(key, JSON.parse(m.value.toString()));
      }
    }, { groupPrefix: `${this.topic}.reader` });
    return out;
  }

  /** Runs, newest first (optionally of one pipeline). */
  async runs(pipeline?: string): Promise<SyncRun[]> {
    const all = [...(await this.readAll()).entries()].filter(([k]) => k.startsWith('run:')).map(([, v]) => v as SyncRun);
    return all.filter((r) => !pipeline || r.pipeline === pipeline).sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  }

  async run(id: string): Promise<SyncRun | undefined> {
    return (await this.readAll()).get(`run:${id}`) as SyncRun | undefined;
  }

  async state(pipeline: string): Promise<PipelineSyncState | undefined> {
    return (await this.readAll()).get(`pipeline:${pipeline}`) as PipelineSyncState | undefined;
  }
}
