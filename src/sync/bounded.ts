/**
 * One bounded sync run of a pipeline (modes scheduled and manual): capture what changed since the
 * last run, push it through the same change topics, processor and sink, and end when the target
 * holds it. Owned by the pipeline's SyncController (./controller.ts); nothing of the pipeline runs
 * outside a run.
 *
 *  1. capture: a new capture stage starts (resuming from the slot / stored binlog position, or
 *     snapshotting on the very first run); once its source is connected it is asked its end now
 *     (Source.position()); capture runs until its acknowledged position (`confirmed`: Kafka holds
 *     every change up to it) reaches that end, compared as core/envelope.ts position(); then it stops
 *     (flushing and acknowledging what it buffered). An idle source reaches the end through its
 *     heartbeats (keepalives move the acknowledged position to the server's).
 *     A full run (`--full`) first backfills its tables (src/capture/backfill.ts: key-ordered chunks
 *     with watermarks, while the stream goes on) and asks the source's end once every backfill is
 *     done, so the run carries every row of the tables; a source without backfills refuses it.
 *  2. apply: the change topics' end offsets are read; the consumer stage (processor + sink, the
 *     pipeline's processor group) runs until the group has committed up to them; then it stops.
 *
 *     A table held for a breaking schema change (src/process/schema-guard.ts, ADR 0019) does not keep
 *     the run going: the run ends once every other table is applied, with outcome `partial` and the
 *     held tables in `held`; the held changes stay in Kafka (the group's offsets stay before them).
 *
 * Crash mid-run: what was acknowledged and committed stays; the next run goes on from there (the
 * slot / offsets / committed group offsets are the watermark; nothing else is kept). A retriable
 * error fails the run (no restart inside a run); the next run tries again. `maxRunDurationMs`
 * stops both stages and ends the run timed-out.
 */
import type { Logger } from 'pino';
import type { Capture } from '../capture/capture.js';
import type { Source } from '../capture/source.js';
import { position } from '../core/envelope.js';
import { errorMessage } from '../core/errors.js';
import type { KafkaClient } from '../core/kafka.js';
import type { ConsumerStage } from '../process/processor.js';
import type { Applier, ApplyStats } from '../sink/applier.js';
import { emptyCounts, type RunCounts, type SyncRun } from './runs.js';

/** What the runtime builds for a bounded pipeline (the same stages as realtime, made per run). */
export interface BoundedParts {
  pipeline: string;
  /** A new capture stage over a new source; `onRunning` once the source is connected and about to snapshot/stream. */
  capture(onRunning: () => void): { capture: Capture; source: Source };
  /** A new consumer stage (processor + sink) on these change topics (all of the pipeline's by default). */
  consumer(topics: string[], onRunning: () => void): ConsumerStage;
  /** The pipeline's applier (its stats give the run's counts). */
  applier: Applier;
  groupId: string;
  /** The change topics of the pipeline's tables, by source table (canonical name). */
  topicsByTable: Map<string, string>;
  kafka: KafkaClient;
  log: Logger;
}

export class RunTimedOut extends Error {}
class RunStopped extends Error {}

const POLL_MS = 200;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs one bounded sync; `update` is called with the record as it changes (persisted by the caller). */
export class BoundedRun {
  private ended = false;
  private abort?: (err: Error) => void;
  private readonly aborted: Promise<never>;
  private capture?: Capture;
  private consumer?: ConsumerStage;

  constructor(private readonly parts: BoundedParts, readonly record: SyncRun, private readonly update: (r: SyncRun) => void, private readonly maxRunDurationMs?: number) {
    this.aborted = new Promise<never>((_, reject) => (this.abort = reject));
    this.aborted.catch(() => undefined);
  }

  /** Ask the run to stop (outcome stopped); resolves when it ended. */
  stop(): void {
    this.abort?.(new RunStopped('stopped'));
  }

  async run(): Promise<SyncRun> {
    const timer = this.maxRunDurationMs !== undefined
      ? setTimeout(() => this.abort?.(new RunTimedOut(`the run outlasted maxRunDurationMs (${this.maxRunDurationMs} ms)`)), this.maxRunDurationMs)
      : undefined;
    const before = { ...this.parts.applier.stats };
    const r = this.record;
    try {
      await this.capturePhase();
      await this.applyPhase();
      r.outcome = r.held && r.held.length > 0 ? 'partial' : 'succeeded';
      r.phase = 'done';
      if (r.held?.length) this.parts.log.warn({ run: r.id, held: r.held }, `sync.run.partial: every table applied but ${r.held.map((h) => h.table).join(', ')}, held for a breaking schema change (syncline schema pending; approve or reject, then run again)`);
    } catch (err) {
      r.outcome = err instanceof RunTimedOut ? 'timed-out' : err instanceof RunStopped ? 'stopped' : 'failed';
      r.error = errorMessage(err);
      this.parts.log.warn({ run: r.id, outcome: r.outcome, err: r.error }, 'sync.run.failed');
    } finally {
      clearTimeout(timer);
      this.ended = true;
      await Promise.allSettled([this.capture?.stop(), this.consumer?.stop()]);
      r.counts = this.counts(before);
      r.endedAt = new Date().toISOString();
      this.update(r);
    }
    return r;
  }

  private counts(before: ApplyStats): RunCounts {
    const s = this.parts.applier.stats;
    const d = (k: keyof ApplyStats) => s[k] - before[k];
    const c = emptyCounts();
    c.read = d('received');
    c.applied = d('applied');
    c.unchanged = d('skippedUnchanged') + d('skippedStale');
    c.conflicts = d('conflicts');
    c.deadLettered = d('deadLettered') + d('parked') + d('parkedBehind') + (this.consumer?.invalid.count ?? 0);
    return c;
  }

  /** Wait for `p`, or the run's abort (timeout/stop), whichever first. */
  private guard<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.aborted]);
  }

  private async capturePhase(): Promise<void> {
    const r = this.record;
    r.phase = 'capture';
    this.update(r);
    let connected!: () => void;
    const up = new Promise<void>((res) => (connected = res));
    const { capture, source } = this.parts.capture(() => connected());
    this.capture = capture;
    let stopping = false;
    const done = capture.run().then(() => {
      if (!stopping && !this.ended) throw new Error('capture stopped before the run reached the source end');
    });
    done.catch(() => undefined);
    await this.guard(Promise.race([up, done]));
    if (!source.position) throw new Error(`pipeline ${this.parts.pipeline}: its source cannot tell its position (mode realtime only)`);
    if (r.full) await this.backfillPhase(capture, done);
    const end = await this.guard(source.position());
    r.sourceEnd = end;
    this.update(r);
    this.parts.log.info({ run: r.id, sourceEnd: end }, 'sync.run.capture');
    const target = position(end, 0);
    while (!(source.confirmed !== '' && position(source.confirmed, 0) >= target)) {
      await this.guard(Promise.race([sleep(POLL_MS), done]));
    }
    stopping = true;
    await capture.stop();
    await this.guard(done);
  }

  /** A full run: backfill each of the run's tables (one after the other, in the capture's queue) and wait for them. */
  private async backfillPhase(capture: Capture, done: Promise<void>): Promise<void> {
    const r = this.record;
    const backfiller = capture.backfiller;
    if (!backfiller) throw new Error(`pipeline ${this.parts.pipeline}: its source cannot re-read its tables (no backfill), so a full run is not possible; run without --full`);
    const tables = r.tables ?? [...this.parts.topicsByTable.keys()];
    const ids: string[] = [];
    for (const table of tables) ids.push((await this.guard(backfiller.request({ table }))).id);
    r.backfills = ids;
    this.update(r);
    this.parts.log.info({ run: r.id, backfills: ids, tables }, 'sync.run.backfill');
    for (;;) {
      const views = ids.map((id) => backfiller.get(id));
      const bad = views.find((v) => v.status === 'failed' || v.status === 'cancelled');
      if (bad) throw new Error(`the backfill ${bad.id} of ${bad.table} is ${bad.status}${bad.error ? `: ${bad.error}` : ''}`);
      r.progress = { done: views.reduce((a, v) => a + v.rows, 0), total: views.reduce((a, v) => a + v.total, 0) };
      if (views.every((v) => v.status === 'done')) break;
      this.update(r);
      await this.guard(Promise.race([sleep(POLL_MS), done]));
    }
  }

  private async applyPhase(): Promise<void> {
    const r = this.record;
    const { kafka, groupId } = this.parts;
    const topics = r.tables ? r.tables.map((t) => this.parts.topicsByTable.get(t)!) : [...this.parts.topicsByTable.values()];
    await kafka.ensureTopics(topics);
    const ends = new Map<string, bigint>();
    for (const t of topics) for (const o of await kafka.topicOffsets(t)) ends.set(`${t}:${o.partition}`, BigInt(o.high));
    const committed = async (): Promise<Map<string, bigint>> => {
      const out = new Map<string, bigint>();
      for (const t of await kafka.withAdmin((admin) => admin.fetchOffsets({ groupId, topics }))) {
        for (const p of t.partitions) out.set(`${t.topic}:${p.partition}`, BigInt(p.offset));
      }
      return out;
    };
    // A table held for a breaking schema change (its topic paused by the consumer stage) does not
    // keep the run going: its changes from the change on stay in Kafka for a run after the decision.
    const held = () => new Set(this.consumer?.heldTopics ?? []);
    const remaining = (c: Map<string, bigint>, skip: Set<string> = new Set()) => {
      let left = 0n;
      for (const [k, end] of ends) {
        if (skip.has(k.slice(0, k.lastIndexOf(':')))) continue;
        const at = c.get(k) ?? -1n;
        if (at < end) left += end - (at < 0n ? 0n : at);
      }
      return left;
    };
    const total = remaining(await committed());
    r.phase = 'apply';
    r.progress = { done: 0, total: Number(total) };
    this.update(r);
    if (total === 0n) return;
    this.consumer = this.parts.consumer(topics, () => undefined);
    let stopping = false;
    const done = this.consumer.run().then(() => {
      if (!stopping && !this.ended) throw new Error('the consumer stage stopped before the run reached the change topics\' ends');
    });
    done.catch(() => undefined);
    for (;;) {
      const c = await this.guard(committed());
      const skip = held();
      const left = remaining(c, skip);
      r.progress = { done: Number(total - remaining(c)), total: Number(total) };
      if (left === 0n) {
        if (skip.size > 0) r.held = this.consumer.heldChanges.map(({ table, change }) => ({ table, change }));
        break;
      }
      this.update(r);
      await this.guard(Promise.race([sleep(POLL_MS), done]));
    }
    stopping = true;
    await this.consumer.stop();
  }
}
