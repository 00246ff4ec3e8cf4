/**
 * Dead-letter writer for `<prefix>.dlq.<pipeline>` (never compacted). A dead letter keeps the
 * original message bytes (so it can be inspected and requeued unchanged) and says why in headers:
 *   syncline.dlq.kind        invalid | failed | conflict
 *   syncline.error.code      e.g. PG_23514, DECODE_FAILED
 *   syncline.error.message   readable reason (masked: src/core/redact.ts)
 *   syncline.original.topic / .partition / .offset
 *   syncline.attempts        how many times it was tried
 *   syncline.time            ISO time of dead-lettering
 *   syncline.table, syncline.position
 *   syncline.violations      (invalid records) JSON list of every violated rule:
 *                            [{"field":"email","rule":"format","message":"must be a valid email address","value":"***"}]
 *   syncline.dlq.id          stable id of the dead letter (the same change dead-lettered again for the
 *                            same reason gets the same id; `syncline dlq` and /api/dlq use it)
 *   syncline.dlq.reason      invalid | failed | conflict | parked (a later change waiting behind a conflict)
 *   syncline.key             the target key (JSON list of key values)
 *   syncline.column          (value errors) the column whose value was refused, where known
 *   syncline.conflict        (conflicts) tagged JSON: {strategy, op, key, source, target, lastSynced, diff}
 *   syncline.parked.behind   (parked) id of the conflict the change waits behind
 *   syncline.transforms      the version of the pipeline's transforms that ran (src/process/transform/versions.ts;
 *                            pipelines with transforms only)
 *   syncline.omitted         what a letter larger than the topic takes leaves out: conflict (the row versions
 *                            of syncline.conflict), value (the change: read from its origin offset when acted on)
 * Nothing reaches a dead letter silently: each is logged at warn with the same fields.
 */
import type { Logger } from 'pino';
import { createHash } from 'node:crypto';
import type { Row } from '../core/envelope.js';
import { errorCode, errorMessage } from '../core/errors.js';
import { redact } from '../core/redact.js';
import { LARGE_MESSAGE_BYTES, messageBytes, topics, type KafkaClient, type OutMessage } from '../core/kafka.js';

export type DeadLetterKind = 'invalid' | 'failed' | 'conflict';

export interface DeadLetter {
  kind: DeadLetterKind;
  error: unknown;
  key: Buffer | null;
  value: Buffer | null;
  attempts: number;
  table?: string;
  position?: string;
  origin?: { topic: string; partition: number; offset: string };
  /** Why, finer than kind: 'parked' for a conflict-kind letter that waits behind another (default: kind). */
  reason?: 'invalid' | 'failed' | 'conflict' | 'parked';
  /** Target key (keyString). */
  targetKey?: string;
  /** The column a value error is about (default: the error's own `column`). */
  column?: string;
  /** Conflict details (tagged JSON), for kind conflict. */
  conflict?: string;
  parkedBehind?: string;
  /** Precomputed id (deadLetterId); computed here when missing. */
  id?: string;
  /**
   * The record's values (target names), when known: only for masking, values of its sensitive
   * columns quoted in the error text are masked (src/core/redact.ts). Not written.
   */
  row?: Row | null;
}

/**
 * Stable id of a dead letter: the same change, pipeline and reason give the same id (a redelivered
 * batch dead-letters again under the same id, listed once). A change is its origin message when it
 * has one; capture's own letters have none, and every row of a snapshot shares the snapshot's
 * position, so the key (targetKey) is part of the basis: it tells those rows apart.
 */
export function deadLetterId(pipeline: string, l: Pick<DeadLetter, 'kind' | 'reason' | 'origin' | 'table' | 'position' | 'targetKey'>): string {
  const o = l.origin;
  const basis = [pipeline, l.reason ?? l.kind, o ? `${o.topic}/${o.partition}@${o.offset}` : '', l.table ?? '', l.position ?? '', l.targetKey ?? ''].join('\u0000');
  return createHash('sha256').update(basis).digest('hex').slice(0, 16);
}

export class DeadLetters {
  readonly topic: string;
  /** The transforms version in force (set by whoever runs them), written on each letter. */
  transformsVersion?: string;
  constructor(private readonly kafka: KafkaClient, prefix: string, readonly pipeline: string, private readonly log?: Logger) {
    this.topic = topics.dlq(prefix, pipeline);
  }

  async ensure(): Promise<void> {
    await this.kafka.ensureTopics([this.topic], { partitions: 1 });
  }

  /** The letter's error text as it is shown (header, log, /health): masked by the masking policy. */
  messageOf(l: DeadLetter): string {
    return redact(errorMessage(l.error), l.table, l.row).slice(0, 4000);
  }

  async send(letters: DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    await this.ensure();
    const now = new Date().toISOString();
    const msgs: OutMessage[] = letters.map((l) => {
      const id = l.id ?? deadLetterId(this.pipeline, l);
      const headers: Record<string, string> = {
        'syncline.dlq.id': id,
        'syncline.dlq.kind': l.kind,
        'syncline.dlq.reason': l.reason ?? l.kind,
        'syncline.pipeline': this.pipeline,
        'syncline.error.code': errorCode(l.error),
        'syncline.error.message': this.messageOf(l),
        'syncline.attempts': String(l.attempts),
        'syncline.time': now,
      };
      if (l.table) headers['syncline.table'] = l.table;
      const violations = (l.error as { violations?: unknown } | null)?.violations;
      if (Array.isArray(violations)) headers['syncline.violations'] = JSON.stringify(violations);
      if (l.position) headers['syncline.position'] = l.position;
      if (l.targetKey !== undefined) headers['syncline.key'] = l.targetKey;
      const column = l.column ?? (l.error as { column?: unknown } | null)?.column;
      if (typeof column === 'string') headers['syncline.column'] = column;
      if (l.conflict !== undefined) headers['syncline.conflict'] = l.conflict;
      if (l.parkedBehind !== undefined) headers['syncline.parked.behind'] = l.parkedBehind;
      if (this.transformsVersion) headers['syncline.transforms'] = this.transformsVersion;
      if (l.origin) {
        headers['syncline.original.topic'] = l.origin.topic;
        headers['syncline.original.partition'] = String(l.origin.partition);
        headers['syncline.original.offset'] = l.origin.offset;
      }
      this.log?.warn({ dlq: this.topic, id, kind: l.kind, why: l.reason ?? l.kind, code: headers['syncline.error.code'], reason: headers['syncline.error.message'], table: l.table, key: l.targetKey, column: headers['syncline.column'], origin: l.origin }, 'dlq.parked');
      return { topic: this.topic, key: l.key, value: l.value, headers };
    });
    for (const m of msgs) if (messageBytes(m) >= LARGE_MESSAGE_BYTES) await this.fit(m);
    await this.kafka.send(msgs);
  }

  /**
   * A letter larger than the dead-letter topic takes (its max.message.bytes: a conflict carries both
   * versions of a large row; capture's letter of a large row it cannot encode) would be refused on every
   * attempt, holding its stage there. Left out, until it fits: the conflict's row versions, then the
   * change (it stays at its origin offset, where acting on the letter reads it; capture's letters have
   * none: the source holds the row); said in syncline.omitted and at the end of the message.
   */
  private async fit(m: OutMessage): Promise<void> {
    const limit = await this.kafka.maxMessageBytes(this.topic);
    const h = m.headers!;
    const left: string[] = [];
    const omitted: string[] = [];
    if (messageBytes(m) > limit && h['syncline.conflict'] !== undefined) {
      left.push(`the conflict's row versions (${Buffer.byteLength(h['syncline.conflict'])} bytes)`);
      omitted.push('conflict');
      delete h['syncline.conflict'];
    }
    if (messageBytes(m) > limit && m.value !== null) {
      const origin = h['syncline.original.topic'] !== undefined ? `it stays at ${h['syncline.original.topic']}/${h['syncline.original.partition']}@${h['syncline.original.offset']}` : 'the source still holds the row';
      left.push(`the change (${m.value.length} bytes; ${origin})`);
      omitted.push('value');
      m.value = null;
    }
    if (omitted.length === 0) return;
    h['syncline.omitted'] = omitted.join(',');
    h['syncline.error.message'] += ` [left out of this letter, over the max.message.bytes of ${this.topic} (${limit}): ${left.join('; ')}]`;
    this.log?.warn({ dlq: this.topic, id: h['syncline.dlq.id'], omitted: h['syncline.omitted'], limit }, 'dlq.letter_too_large: parts of the letter left out');
  }
}
