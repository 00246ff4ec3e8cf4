/**
 * The RabbitMQ source (ADR 0024): consumes one queue of JSON changes — what syncline's RabbitMQ
 * target publishes (format syncline), or plain rows someone else writes (format row) — and hands
 * each message to the capture stage as one change in a transaction of its own (begin, change,
 * commit). The pure part — what a message means — is ./decode.ts.
 *
 * Lifecycle and guarantees
 *  - Owner: the capture stage (one per pipeline). One connection, one channel, manual acks; at most
 *    `prefetch` messages are delivered and unacknowledged (channel.prefetch) — that and the stage's
 *    outbox is all that is held.
 *  - Acknowledgement: the stage calls acknowledge(seq) once Kafka holds every change up to that
 *    message; only then is each message up to it acked to RabbitMQ (ack with `multiple` up to the
 *    last delivery tag). A poison message (not JSON, unknown table, missing key, a value of the wrong
 *    type) is dead-lettered through handler.reject (syncline's DLQ topic: error, body, queue and
 *    delivery tag) and, once that is durable and every message before it acknowledged, nacked
 *    without requeue: never redelivered, never requeued for ever.
 *  - Positions. Format syncline: the message's own `position` (the upstream change's commit
 *    position), so a message delivered again (after a crash, a lost connection) carries the same
 *    position and the applier's version check (same key, position not newer) makes it a no-op.
 *    Format row: RabbitMQ has no offsets, so the source numbers messages itself: position = a
 *    per-source sequence, 'X/Y' of the 64-bit number. The sequence is persisted in the capture
 *    offsets (`<prefix>.capture.offsets`, key `rabbitmq:<queue>`) in blocks (hi/lo): a block of
 *    SEQ_BLOCK numbers is reserved (written) before any of it is used, and a restart continues after
 *    the last reservation, so a position is never used twice and always grows. A row message
 *    redelivered after a crash gets a new, higher position: it is applied again (the same row
 *    written again; at-least-once) — see the ADR for why format syncline is the exactly-once path.
 *  - Connection lost (or the channel closed by the broker): run() rejects retriable and the stage
 *    starts the source again (a new connection); the unacked messages come back redelivered.
 *  - Crash (kill -9): nothing acknowledged that Kafka does not hold; the broker redelivers the rest.
 */
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import type { Logger } from 'pino';
import { bigIntToPosition, positionToBigInt } from '../../../src/core/envelope.js';
import { errorMessage, fatal, poison } from '../../../src/core/errors.js';
import { canonicalTableName, parseTableName } from '../../../src/core/names.js';
import type { CaptureHandler, Source, SourceTable, TableRequest } from '../../../src/capture/source.js';
import { columnTypeOf } from '../../kafka-topic/envelope.js';
import { openConnection, rabbitWhere } from '../connection.js';
import { classifyRabbitError } from '../errors.js';
import { decodeRow, decodeSyncline, type Decoded } from './decode.js';
import type { RabbitmqSourceConfig } from './spec.js';

/** Row-format sequence numbers reserved (persisted) at a time. */
export const SEQ_BLOCK = 10_000n;

export const rabbitStreamId = (config: RabbitmqSourceConfig): string => `rabbitmq:${config.queue}`;

interface Pending {
  seq: number;
  tag: number;
  channel: Channel;
  poison: boolean;
  position: string;
}

export class RabbitmqSource implements Source {
  readonly batchSize: number;
  readonly lingerMs: number;
  private conn?: ChannelModel;
  private channel?: Channel;
  private readonly tables = new Map<string, SourceTable>();
  private seq = 0;
  private readonly pending: Pending[] = [];
  private lastAcked = '';
  private stopping = false;
  private chain: Promise<void> = Promise.resolve();
  private failure?: (err: Error) => void;
  private stopResolve?: () => void;
  private consumerTag?: string;
  /** Format row: the next sequence number and the end of the reserved block. */
  private rowSeq = 0n;
  private reserved = 0n;
  private readonly where: string;

  constructor(private readonly config: RabbitmqSourceConfig, private readonly pipeline: string, private readonly log: Logger) {
    this.batchSize = config.batchSize;
    this.lingerMs = config.lingerMs;
    this.where = `RabbitMQ ${rabbitWhere(config.connection)} queue ${config.queue}`;
  }

  get confirmed(): string {
    return this.lastAcked;
  }

  async connect(): Promise<void> {
    try {
      this.conn = await openConnection(this.config.connection);
    } catch (err) {
      throw classifyRabbitError(err, `pipeline ${this.pipeline} source: connecting to ${this.where}`);
    }
    this.conn.on('error', () => undefined); // reported through 'close'
  }

  async describe(tables: TableRequest[]): Promise<SourceTable[]> {
    const out: SourceTable[] = [];
    const confs = this.config.tables.map((t) => ({ conf: t, name: canonicalTableName(t.table) }));
    for (const req of tables) {
      const found = confs.find((c) => c.name === req.source);
      if (!found) throw fatal('SOURCE_TABLE_MISSING', `pipeline ${this.pipeline}: table ${req.source} is not in source.tables (add it with its key and columns)`);
      const name = parseTableName(found.conf.table);
      const table: SourceTable = { schema: name.schema, table: name.table, key: req.key ?? found.conf.key, columns: Object.entries(found.conf.columns).map(([n, t]) => ({ name: n, type: columnTypeOf(t) })) };
      out.push(table);
      this.tables.set(found.name, table);
    }
    const unused = confs.filter((c) => !tables.some((t) => t.source === c.name));
    if (unused.length > 0) throw fatal('RABBITMQ_SOURCE_TABLE', `pipeline ${this.pipeline}: source.tables names ${unused.map((u) => u.conf.table).join(', ')} that the pipeline's tables do not list`);
    if (this.config.format === 'row' && this.tables.size > 1) this.log.info({ queue: this.config.queue }, 'rabbitmq.source.row-tables: several tables: each row message names its table in header syncline-table');
    return out;
  }

  async prepare(): Promise<void> {}

  async run(handler: CaptureHandler): Promise<void> {
    const conn = this.conn!;
    const done = new Promise<void>((resolve, reject) => {
      this.stopResolve = resolve;
      this.failure = reject;
    });
    const fail = (err: unknown) => {
      if (this.stopping) return;
      this.stopping = true;
      this.failure?.(err instanceof Error ? err : new Error(String(err)));
    };
    conn.on('close', (err?: Error) => fail(classifyRabbitError(err ?? new Error('connection closed'), `pipeline ${this.pipeline} source: ${this.where}`)));
    if (this.config.format === 'row') {
      const off = await handler.offsets.read(rabbitStreamId(this.config));
      const r = off?.state?.reserved;
      this.rowSeq = typeof r === 'string' ? BigInt(r) : 0n;
      this.reserved = this.rowSeq;
      await this.reserve(handler);
    }
    try {
      const ch = await conn.createChannel();
      ch.on('error', () => undefined);
      ch.on('close', () => fail(classifyRabbitError(new Error('channel closed (by the broker, or its connection was lost)'), `pipeline ${this.pipeline} source: ${this.where}`)));
      if (this.config.declare) await ch.assertQueue(this.config.queue, { durable: true });
      else await ch.checkQueue(this.config.queue);
      await ch.prefetch(this.config.prefetch);
      this.channel = ch;
      handler.running();
      const { consumerTag } = await ch.consume(this.config.queue, (m) => {
        if (m === null) return fail(classifyRabbitError(new Error('the consumer was cancelled by the broker (queue deleted?)'), `pipeline ${this.pipeline} source: ${this.where}`));
        this.chain = this.chain.then(() => (this.stopping ? undefined : this.handle(handler, ch, m))).catch(fail);
      }, { noAck: false });
      this.consumerTag = consumerTag;
    } catch (err) {
      throw classifyRabbitError(err, `pipeline ${this.pipeline} source: consuming ${this.where}`);
    }
    return done;
  }

  /** Persist the next block of row sequence numbers before any of it is used. */
  private async reserve(handler: CaptureHandler): Promise<void> {
    this.reserved = this.rowSeq + SEQ_BLOCK;
    const id = rabbitStreamId(this.config);
    await handler.offsets.write({ slot: id, snapshot: 'skipped', consistentPoint: '', tables: [...this.tables.keys()], at: new Date().toISOString(), position: this.lastAcked, state: { reserved: this.reserved.toString() } });
  }

  private async handle(handler: CaptureHandler, ch: Channel, m: ConsumeMessage): Promise<void> {
    const tag = m.fields.deliveryTag;
    let d: Decoded;
    try {
      d = this.decode(m);
    } catch (err) {
      const origin = { topic: this.config.queue, partition: 0, offset: String(tag) };
      if (!handler.reject) throw fatal('RABBITMQ_NO_DLQ', `pipeline ${this.pipeline}: this capture stage cannot dead-letter a bad message (${errorMessage(err)})`);
      const e = err as { message?: string };
      if (e && typeof e.message === 'string') e.message = `${this.where} message ${String(m.properties.messageId ?? '(no messageId)')}${m.fields.redelivered ? ' (redelivered)' : ''}: ${e.message}`;
      const table = headerTable(m) ?? this.config.tables[0]!.table;
      await handler.reject({ table, error: err, key: m.properties.messageId ? Buffer.from(String(m.properties.messageId)) : null, value: m.content, origin });
      handler.begin({});
      this.handedOver(handler, ch, tag, true, '');
      return;
    }
    let commitPos: string;
    let idx = 0;
    if (d.position) ({ commitPos, idx } = d.position);
    else {
      if (this.rowSeq >= this.reserved) await this.reserve(handler);
      commitPos = bigIntToPosition(++this.rowSeq);
    }
    const t = this.tables.get(d.table)!;
    handler.begin({});
    const tsMs = d.tsMs ?? (m.properties.timestamp ? Number(m.properties.timestamp) * 1000 : Date.now());
    await handler.change({
      op: d.op,
      before: d.before,
      after: d.after,
      source: { db: this.config.queue, schema: t.schema, table: t.table, pos: commitPos, commitPos, txId: null, tsMs, snapshot: false, idx },
      tsMs: Date.now(),
      unchangedToast: d.unchangedToast,
    });
    this.handedOver(handler, ch, tag, false, commitPos);
  }

  private decode(m: ConsumeMessage): Decoded {
    if (this.config.format === 'syncline') return decodeSyncline(m.content, this.tables);
    let name: string;
    const h = headerTable(m);
    if (h !== undefined) {
      try {
        name = canonicalTableName(h);
      } catch {
        throw poison('RABBITMQ_TABLE_UNKNOWN', `header syncline-table ${h} is not a table name`);
      }
      if (!this.tables.has(name)) throw poison('RABBITMQ_TABLE_UNKNOWN', `header syncline-table ${h} is not one of the source's tables`);
    } else if (this.tables.size === 1) name = [...this.tables.keys()][0]!;
    else throw poison('RABBITMQ_TABLE_UNKNOWN', `the message has no header syncline-table and the source reads ${this.tables.size} tables`);
    const tsMs = m.properties.timestamp ? Number(m.properties.timestamp) * 1000 : null;
    return decodeRow(m.content, this.tables.get(name)!, name, m.properties.type === 'delete', tsMs);
  }

  /** The message's transaction ends: only now does it enter `pending` (acknowledge never covers one not handed over). */
  private handedOver(handler: CaptureHandler, channel: Channel, tag: number, poison: boolean, position: string): void {
    const seq = ++this.seq;
    this.pending.push({ seq, tag, channel, poison, position });
    handler.commit(String(seq));
  }

  acknowledge(end: string): void {
    const upTo = Number(end);
    let ackTag: { channel: Channel; tag: number } | undefined;
    const flush = () => {
      if (ackTag) this.settle(() => ackTag!.channel.ack({ fields: { deliveryTag: ackTag!.tag } } as ConsumeMessage, true));
      ackTag = undefined;
    };
    while (this.pending.length > 0 && this.pending[0]!.seq <= upTo) {
      const p = this.pending.shift()!;
      if (p.channel !== this.channel) continue; // a closed channel's deliveries come back redelivered
      if (p.poison) {
        flush();
        this.settle(() => p.channel.nack({ fields: { deliveryTag: p.tag } } as ConsumeMessage, false, false));
      } else {
        ackTag = { channel: p.channel, tag: p.tag };
        if (!this.lastAcked || positionToBigInt(p.position) > positionToBigInt(this.lastAcked)) this.lastAcked = p.position;
      }
    }
    flush();
  }

  private settle(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      // The channel is gone: the broker redelivers what was not acked (de-duplicated by position).
      this.log.warn({ queue: this.config.queue, err: errorMessage(err) }, 'rabbitmq.source.ack-failed: the channel closed before the ack; the messages come back');
    }
  }

  async quiesce(): Promise<void> {
    this.stopping = true;
    if (this.channel && this.consumerTag) await this.channel.cancel(this.consumerTag).catch(() => undefined);
    await this.chain.catch(() => undefined);
  }

  async stop(): Promise<void> {
    await this.quiesce();
    // Acks already sent are flushed by closing the channel cleanly; unacked deliveries return to the queue.
    await this.channel?.close().catch(() => undefined);
    await this.conn?.close().catch(() => undefined);
    this.stopResolve?.();
  }
}

function headerTable(m: ConsumeMessage): string | undefined {
  const h = m.properties.headers?.['syncline-table'];
  return typeof h === 'string' ? h : Buffer.isBuffer(h) ? h.toString('utf8') : undefined;
}
