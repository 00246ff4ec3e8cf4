/**
 * The dead letters of one pipeline and what operators did with them, durable in Kafka:
 *   <prefix>.dlq.<pipeline>          the dead letters (never compacted; headers: sink/dead-letters.ts)
 *   <prefix>.dlq-actions.<pipeline>  one JSON message per operator action, append-only, kept forever:
 *                                    {"id","action":"resolved"|"requeued"|"discarded","by","at","choice"?,"note"?}
 * The state of a dead letter is its last action (none: open). Both topics survive restarts of
 * syncline, Redis and Kafka; the store is rebuilt by reading them (load()). A dead letter written
 * twice with the same id (a redelivered batch: the same change, table, key, position and origin) is
 * listed once. Letters that share an id but not the change (written by versions whose ids could
 * collide: every refused row of a snapshot got one id) are each listed, the later ones under
 * `<id>-<partition>-<offset>` (stable: the topic is append-only), so every letter can be settled.
 *
 * Per key, the open `conflict` letters in position order form a queue: the first is the one to
 * settle; the others (reason `parked`) are later changes waiting behind it.
 *
 * The index is in memory and kept up incrementally: load() reads only what was added since the
 * last one (the offsets read so far), one load at a time (a caller arriving while one runs waits
 * for it and then reads what came after it started). The first load reads both topics whole —
 * ≈ 0.4 s for 10,000 letters on an idle machine, seconds on a busy one — so the process that
 * serves the console starts it in the background at start (DlqService.warm(), ADR 0037) and the
 * console shows its progress (`progress`, `ready`) instead of waiting for it. Nothing is persisted
 * besides the two topics: a crash loses only the index, rebuilt at the next start.
 */
import type { KafkaMessage } from 'kafkajs';
import type { Row, Value } from '../core/envelope.js';
import { headerString, topics, type KafkaClient } from '../core/kafka.js';
import { parseTagged } from '../core/tagged-json.js';
import { readRanges, topicBounds } from '../core/topic-reader.js';
import type { DeadLetterKind } from '../sink/dead-letters.js';
import { tableMatches } from '../core/names.js';

export const dlqActionsTopic = (prefix: string, pipeline: string) => `${prefix}.dlq-actions.${pipeline}`;

export type DlqState = 'open' | 'resolved' | 'requeued' | 'discarded';
export type DlqAction = 'resolved' | 'requeued' | 'discarded';

export interface ActionRecord {
  id: string;
  action: DlqAction;
  by: string;
  at: string;
  choice?: 'source' | 'target' | 'merged';
  merged?: unknown;
  note?: string;
}

export interface ConflictDetails {
  strategy: string;
  op: 'upsert' | 'delete';
  key: Row;
  source: Row | null;
  target: Row | null;
  lastSynced: Row | null;
  diff: { field: string; source: Value; target: Value; lastSynced: Value }[];
}

export interface DlqEntry {
  id: string;
  pipeline: string;
  kind: DeadLetterKind;
  reason: string;
  state: DlqState;
  table?: string;
  /** Target key (JSON list of the key values). */
  key?: string;
  /** The column a value error is about, where known. */
  column?: string;
  position?: string;
  /** When it was dead-lettered (ISO). */
  time: string;
  errorCode: string;
  errorMessage: string;
  attempts: number;
  origin?: { topic: string; partition: number; offset: string };
  violations?: unknown[];
  conflict?: ConflictDetails;
  parkedBehind?: string;
  /** Parts a letter too large for its topic left out (syncline.omitted): 'conflict' (the row versions), 'value' (the change: at its origin). */
  omitted?: string[];
  /** Where the dead letter itself is. */
  dlq: { topic: string; partition: number; offset: string };
  raw: { key: Buffer | null; value: Buffer | null };
  history: ActionRecord[];
}

export interface DlqFilter {
  kind?: string;
  table?: string;
  key?: string;
  state?: DlqState | 'all';
  /** ISO times, inclusive. */
  since?: string;
  until?: string;
  limit?: number;
}

export class DlqStore {
  readonly dlqTopic: string;
  readonly actionsTopic: string;
  private readonly byId = new Map<string, DlqEntry>();
  /** What change each id was first read for (see identity()). */
  private readonly identities = new Map<string, string>();
  private readonly order: DlqEntry[] = [];
  /** Actions whose dead letter was not read yet (a reload catches up). */
  private readonly orphanActions: ActionRecord[] = [];
  private read = { dlq: new Map<number, bigint>(), actions: new Map<number, bigint>() };
  /** The load that runs, and the one that waits for it (shared by whoever asks meanwhile). */
  private running?: Promise<void>;
  private queued?: Promise<this>;
  /** A load runs. */
  get reading(): boolean {
    return this.running !== undefined;
  }

  /** The first load finished: the index holds every letter written before it started. */
  ready = false;
  /** Dead letters read by the load that runs (or ran last) of how many it has to read. */
  readonly progress = { read: 0, total: 0 };

  constructor(private readonly kafka: KafkaClient, readonly prefix: string, readonly pipeline: string) {
    this.dlqTopic = topics.dlq(prefix, pipeline);
    this.actionsTopic = dlqActionsTopic(prefix, pipeline);
  }

  async ensure(): Promise<void> {
    await this.kafka.ensureTopics([this.dlqTopic, this.actionsTopic], { partitions: 1 });
  }

  /**
   * Read whatever was added to both topics since the last load (first call: everything). When it
   * resolves, every letter and action written before the call is in the index.
   */
  load(): Promise<this> {
    if (!this.running) {
      const run = (this.running = this.readNew().finally(() => {
        if (this.running === run) this.running = undefined;
      }));
      return run.then(() => this);
    }
    // One runs (it may have taken its bounds before this call): the next one, shared by all who wait.
    return (this.queued ??= this.running.catch(() => undefined).then(() => {
      this.queued = undefined;
      return this.load();
    }));
  }

  private async readNew(): Promise<void> {
    for (const [topic, seen, handle] of [
      [this.dlqTopic, this.read.dlq, (m: KafkaMessage, p: number) => this.addLetter(m, p)],
      [this.actionsTopic, this.read.actions, (m: KafkaMessage) => this.addAction(m)],
    ] as const) {
      const bounds = await topicBounds(this.kafka, topic);
      const ranges = bounds.map((b) => ({ topic, partition: b.partition, from: seen.get(b.partition) ?? b.low, to: b.high }));
      const letters = topic === this.dlqTopic;
      if (letters) Object.assign(this.progress, { read: 0, total: ranges.reduce((n, r) => n + Math.max(0, Number(r.to - r.from)), 0) });
      await readRanges(this.kafka, ranges, async (_t, partition, msgs) => {
        for (let i = 0; i < msgs.length; i++) {
          handle(msgs[i]!, partition);
          // Requests (the console's pages) are answered between slices of a large batch.
          if (i % 250 === 249) await new Promise<void>((r) => setImmediate(r));
        }
      }, { groupPrefix: `${this.prefix}.${this.pipeline}.dlq-reader`, ...(letters ? { onProgress: (p) => (this.progress.read = p.read) } : {}) });
      for (const r of ranges) seen.set(r.partition, r.to > r.from ? r.to : r.from);
      if (letters) this.progress.read = this.progress.total;
    }
    const left = this.orphanActions.splice(0);
    for (const a of left) this.applyAction(a);
    this.ready = true;
  }

  private addLetter(m: KafkaMessage, partition: number): void {
    const h = (n: string) => headerString(m.headers, n);
    let id = h('syncline.dlq.id') ?? `${partition}-${m.offset}`;
    const identity = identityOf(h, m);
    const seen = this.identities.get(id);
    if (seen === identity) return; // the same change dead-lettered again: listed once
    if (seen !== undefined) id = `${id}-${partition}-${m.offset}`; // another change under a colliding id
    if (this.byId.has(id)) return;
    this.identities.set(id, identity);
    const kind = (h('syncline.dlq.kind') ?? 'failed') as DeadLetterKind;
    const conflictText = h('syncline.conflict');
    const violations = h('syncline.violations');
    const origTopic = h('syncline.original.topic');
    const e: DlqEntry = {
      id,
      pipeline: h('syncline.pipeline') ?? this.pipeline,
      kind,
      reason: h('syncline.dlq.reason') ?? kind,
      state: 'open',
      table: h('syncline.table'),
      key: h('syncline.key'),
      column: h('syncline.column'),
      position: h('syncline.position'),
      time: h('syncline.time') ?? new Date(Number(m.timestamp)).toISOString(),
      errorCode: h('syncline.error.code') ?? 'UNKNOWN',
      errorMessage: h('syncline.error.message') ?? '',
      attempts: Number(h('syncline.attempts') ?? 1),
      origin: origTopic ? { topic: origTopic, partition: Number(h('syncline.original.partition')), offset: h('syncline.original.offset') ?? '' } : undefined,
      violations: violations ? (JSON.parse(violations) as unknown[]) : undefined,
      conflict: conflictText ? (parseTagged(conflictText) as ConflictDetails) : undefined,
      parkedBehind: h('syncline.parked.behind'),
      omitted: h('syncline.omitted')?.split(','),
      dlq: { topic: this.dlqTopic, partition, offset: m.offset },
      raw: { key: m.key, value: m.value },
      history: [],
    };
    this.byId.set(id, e);
    this.order.push(e);
  }

  private addAction(m: KafkaMessage): void {
    let a: ActionRecord;
    try {
      a = JSON.parse(m.value?.toString('utf8') ?? '') as ActionRecord;
    } catch {
      return; // not ours
    }
    if (!a || typeof a.id !== 'string') return;
    if (!this.byId.has(a.id)) {
      this.orphanActions.push(a);
      return;
    }
    this.applyAction(a);
  }

  private applyAction(a: ActionRecord): void {
    const e = this.byId.get(a.id);
    if (!e) {
      this.orphanActions.push(a);
      return;
    }
    e.history.push(a);
    e.state = a.action;
  }

  /** Append an action (durable once Kafka acknowledged it) and apply it here. */
  async record(a: Omit<ActionRecord, 'at'> & { at?: string }): Promise<ActionRecord> {
    const full: ActionRecord = { ...a, at: a.at ?? new Date().toISOString() };
    await this.ensure();
    await this.kafka.send([{ topic: this.actionsTopic, key: Buffer.from(full.id), value: Buffer.from(JSON.stringify(full)) }]);
    this.applyAction(full);
    return full;
  }

  get(id: string): DlqEntry | undefined {
    return this.byId.get(id);
  }

  list(f: DlqFilter = {}): DlqEntry[] {
    const state = f.state ?? 'open';
    const out = this.order.filter(
      (e) =>
        (state === 'all' || e.state === state) &&
        (f.kind === undefined || e.kind === f.kind || e.reason === f.kind) &&
        (f.table === undefined || (e.table !== undefined && tableMatches(e.table, f.table))) &&
        (f.key === undefined || e.key === f.key || e.key === JSON.stringify([f.key]) || e.key === `[${f.key}]`) &&
        (f.since === undefined || e.time >= f.since) &&
        (f.until === undefined || e.time <= f.until),
    );
    return f.limit !== undefined ? out.slice(0, f.limit) : out;
  }

  /** Open conflict-kind letters of one key, in position order (the first is the one to settle). */
  openOfKey(table: string, key: string): DlqEntry[] {
    return this.order.filter((e) => e.kind === 'conflict' && e.state === 'open' && e.table === table && e.key === key).sort((a, b) => ((a.position ?? '') < (b.position ?? '') ? -1 : 1));
  }

  /** Keys with open conflict letters and the first of each (the parking index). */
  parkedKeys(): { table: string; key: string; id: string }[] {
    const out = new Map<string, { table: string; key: string; id: string; position: string }>();
    for (const e of this.order) {
      if (e.kind !== 'conflict' || e.state !== 'open' || !e.table || e.key === undefined) continue;
      const ck = e.table + '\u0000' + e.key;
      const cur = out.get(ck);
      if (!cur || (e.position ?? '') < cur.position) out.set(ck, { table: e.table, key: e.key, id: e.id, position: e.position ?? '' });
    }
    return [...out.values()].map(({ table, key, id }) => ({ table, key, id }));
  }
}

/**
 * What makes two dead letters the same one: reason, table, key, position, origin and the original
 * message key (the only thing that tells apart the letters older versions wrote for the rows of one
 * snapshot). Not the time, the attempts or the error text, which a redelivery may change.
 */
function identityOf(h: (n: string) => string | undefined, m: KafkaMessage): string {
  return JSON.stringify([
    h('syncline.dlq.kind'), h('syncline.dlq.reason'), h('syncline.table'), h('syncline.key'), h('syncline.position'),
    h('syncline.original.topic'), h('syncline.original.partition'), h('syncline.original.offset'), m.key?.toString('base64') ?? null,
  ]);
}
