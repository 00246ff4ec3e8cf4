/**
 * RabbitMQ sink: publishes each change of a batch as one persistent JSON message (./message.ts) to
 * the configured exchange, with publisher confirms.
 *
 * Lifecycle: owned by the sink stage of one pipeline. create() opens nothing; connect() opens one
 * AMQP connection and declares the exchange (durable, declare: true) or checks it exists; ping()
 * and close() work on a sink never connected (status, doctor). A connection that breaks is
 * forgotten and the next batch opens a new one (the Applier retries the batch that saw it break).
 *
 * Buffers: nothing of a batch outlives its writeBatch. Idle confirm channels are kept (up to
 * `channels`); each writeBatch takes a channel of its own for all of its messages, so concurrent
 * batches (different Kafka partitions, never the same key) do not share one, and one key's messages,
 * published in order on one channel, reach every queue in order (RabbitMQ keeps a channel's order).
 *
 * Guarantee: writeBatch resolves only after the broker confirmed every message it published (a
 * persistent message routed to a durable queue is confirmed once written to disk there), so a
 * change counts as applied — and its Kafka offset may be committed — only when the broker holds it.
 * Outcomes:
 *  - unroutable (mandatory, the exchange routed it to no queue: basic.return before the confirm):
 *    poison for that record alone, dead-lettered as RABBITMQ_UNROUTABLE naming the exchange and
 *    routing key; the rest of the batch counts as applied. Retrying cannot help until someone binds
 *    a queue, and holding the pipeline for it would stop every other key; the dead letter can be
 *    requeued (`syncline dlq requeue`) once the binding exists;
 *  - too large, a routing key over 255 bytes, a table name {schema}/{name} cannot split: poison for
 *    that record, found before anything is published;
 *  - nack (the broker would not take it: a queue at max-length with overflow reject-publish, an
 *    internal error), a channel or connection lost, a confirm timeout: retriable for the whole batch;
 *  - access refused (403), vhost not allowed (530), exchange missing (404) or of another kind (406):
 *    fatal (./errors.ts).
 * Crash/replay: a batch is published again whole when it is retried or redelivered after a crash
 * between the confirms and the offset commit, so a consumer may see a change twice, always with the
 * same messageId (position + key digest, ./message.ts) and never a key's older change after a newer
 * one except as such a copy: consumers dedupe on messageId (or keep the last position per key).
 *
 * readRows: a broker holds messages, not rows. Every key reads as a row of unknown content (no
 * columns), never as absent: the Applier, settling the write intents of a process killed mid-batch,
 * then finds no write of it confirmed and lets the redelivered changes publish again (never skips a
 * delete it cannot see). Conflict strategies that compare target rows are refused at config load
 * (registration `conflictStrategies`, src/core/config/schema.ts).
 */
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import type { Logger } from 'pino';
import type { Row } from '../../src/core/envelope.js';
import { poison, retriable, withDeadline, type SynclineError } from '../../src/core/errors.js';
import type { ConnectorContext } from '../../src/core/registry.js';
import { keyString, type FailedRecord, type Sink, type SinkRecord, type WriteResult } from '../../src/sink/sink.js';
import { openConnection, rabbitWhere } from './connection.js';
import { classifyRabbitError } from './errors.js';
import { MAX_ROUTING_KEY_BYTES, outMessage, type OutMessage } from './message.js';
import type { RabbitmqSinkConfig } from './spec.js';

interface Chan {
  ch: ConfirmChannel;
  /** The server's reason when it closed the channel (404, 403, …). */
  err?: Error;
  closed: boolean;
  /** messageId → reply of the messages returned (unroutable) while a batch uses the channel. */
  returned: Map<string, string> | null;
}

interface Conn {
  model: ChannelModel;
  idle: Chan[];
  broken: boolean;
}

export class RabbitmqSink implements Sink {
  /** Batches and messages published (confirmed), messages returned unroutable, connections opened. */
  readonly stats = { batches: 0, published: 0, unroutable: 0, connections: 0 };
  private conn: Promise<Conn> | null = null;
  /** What `conn` resolved to. */
  private current: Conn | null = null;
  private closed = false;
  private readonly log: Logger;

  constructor(
    private readonly cfg: RabbitmqSinkConfig,
    ctx: ConnectorContext,
  ) {
    this.log = ctx.log;
  }

  get where(): string {
    return `rabbitmq sink ${rabbitWhere(this.cfg.connection)} exchange ${this.cfg.exchange}`;
  }

  async connect(): Promise<void> {
    try {
      await this.connection();
    } catch (err) {
      const e = err as SynclineError;
      e.message = `cannot connect to RabbitMQ ${rabbitWhere(this.cfg.connection)}: ${e.message}`;
      throw e;
    }
  }

  async ping(): Promise<void> {
    if (this.conn) {
      await this.conn;
      return;
    }
    let model: ChannelModel;
    try {
      model = await openConnection(this.cfg.connection);
    } catch (err) {
      throw classifyRabbitError(err, `${this.where}: ping`);
    }
    model.on('error', () => undefined);
    await model.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    const p = this.conn;
    this.conn = null;
    this.current = null;
    if (!p) return;
    const c = await p.catch(() => null);
    if (c) await c.model.close().catch((err: Error) => this.log.warn({ err: err.message }, 'sink.rabbitmq.close_failed'));
  }

  /** See the header: every key reads as a row of unknown content. */
  async readRows(_table: string, keys: Row[]): Promise<Map<string, Row>> {
    return new Map(keys.map((k) => [keyString(k), {}]));
  }

  async writeBatch(batch: SinkRecord[]): Promise<WriteResult> {
    const failed: FailedRecord[] = [];
    const out: { rec: SinkRecord; msg: OutMessage }[] = [];
    for (const rec of batch) {
      if (rec.op === 'sweep') continue; // the Applier turns a sweep into deletes; the marker itself publishes nothing
      const bad = (code: string, why: string, cause?: unknown) => failed.push({ record: rec, error: poison(code, `${this.where}: ${describe(rec)}: ${why}`, cause) });
      let msg: OutMessage;
      try {
        msg = outMessage(rec, this.cfg.routingKey);
      } catch (err) {
        bad('RABBITMQ_MESSAGE', `cannot build the message: ${(err as Error).message}`, err);
        continue;
      }
      if (Buffer.byteLength(msg.routingKey) > MAX_ROUTING_KEY_BYTES) {
        bad('RABBITMQ_ROUTING_KEY', `routing key '${msg.routingKey.slice(0, 60)}…' is ${Buffer.byteLength(msg.routingKey)} bytes long (AMQP allows ${MAX_ROUTING_KEY_BYTES}): shorten the routingKey template`);
        continue;
      }
      if (msg.body.length > this.cfg.maxMessageBytes) {
        bad('RABBITMQ_MESSAGE_TOO_LARGE', `the message is ${msg.body.length} bytes, over maxMessageBytes (${this.cfg.maxMessageBytes})`);
        continue;
      }
      out.push({ rec, msg });
    }
    if (out.length === 0) return { failed };
    let conn = await this.connection();
    let c: Chan;
    try {
      c = await this.checkout(conn);
    } catch {
      // The connection broke and has not said so yet (its close event comes later): a new one, once.
      this.forget(conn);
      conn = await this.connection();
      try {
        c = await this.checkout(conn);
      } catch (err) {
        this.forget(conn);
        throw classifyRabbitError(err, `${this.where}: opening a channel`);
      }
    }
    const returned = new Map<string, string>();
    c.returned = returned;
    let reusable = false;
    try {
      const confirms: Promise<unknown>[] = [];
      for (const { msg } of out) {
        if (c.closed) break;
        let settle!: (err: unknown) => void;
        confirms.push(new Promise((r) => (settle = r)));
        const more = c.ch.publish(this.cfg.exchange, msg.routingKey, msg.body, { ...msg.options, mandatory: this.cfg.mandatory }, (err: unknown) => settle(err ?? null));
        if (!more) await drained(c);
      }
      const results = await withDeadline(Promise.all(confirms), this.cfg.confirmTimeoutMs, () =>
        retriable('RABBITMQ_CONFIRM_TIMEOUT', `${this.where}: the broker confirmed not every one of ${out.length} messages within ${this.cfg.confirmTimeoutMs} ms (confirmTimeoutMs; a resource alarm blocks publishers); publishing the batch again`),
      );
      if (c.err) throw c.err;
      if (c.closed || confirms.length < out.length) throw retriable('RABBITMQ_CHANNEL_CLOSED', `${this.where}: the channel closed before every message of the batch was confirmed; publishing the batch again`);
      const nacked = results.filter((r) => r !== null).length;
      if (nacked > 0) {
        throw retriable('RABBITMQ_NACK', `${this.where}: the broker refused (nack) ${nacked} of ${out.length} messages (a queue at its max-length with overflow reject-publish, or a broker fault); publishing the batch again`);
      }
      for (const { rec, msg } of out) {
        const why = returned.get(msg.messageId);
        if (why === undefined) continue;
        this.stats.unroutable++;
        failed.push({
          record: rec,
          error: poison('RABBITMQ_UNROUTABLE', `${this.where}: ${describe(rec)}: exchange ${this.cfg.exchange} routed it (routing key '${msg.routingKey}') to no queue (${why}): bind a queue for it, then requeue this dead letter`),
        });
      }
      this.stats.batches++;
      this.stats.published += out.length - failed.length;
      reusable = true;
      return { failed };
    } catch (err) {
      throw classifyRabbitError(c.err ?? err, `${this.where}: publishing ${out.length} messages`);
    } finally {
      c.returned = null;
      if (reusable && !c.closed && !conn.broken && conn.idle.length < this.cfg.channels) conn.idle.push(c);
      else void c.ch.close().catch(() => undefined);
    }
  }

  /** The connection, opened (and the exchange declared) on first use and again after it broke. */
  private connection(): Promise<Conn> {
    if (this.closed) return Promise.reject(retriable('RABBITMQ_CLOSED', `${this.where}: the sink is closed`));
    if (this.conn) return this.conn;
    const p = (async (): Promise<Conn> => {
      let model: ChannelModel;
      try {
        model = await openConnection(this.cfg.connection);
      } catch (err) {
        throw classifyRabbitError(err, `${this.where}: connect`);
      }
      this.stats.connections++;
      const conn: Conn = { model, idle: [], broken: false };
      model.on('error', (err: Error) => this.log.warn({ err: err.message }, 'sink.rabbitmq.connection_error'));
      model.on('close', () => {
        conn.broken = true;
        if (this.conn === p) this.conn = null;
        if (this.current === conn) this.current = null;
      });
      model.on('blocked', (reason: string) => this.log.warn({ reason }, 'sink.rabbitmq.blocked: the broker blocks publishers (resource alarm)'));
      model.on('unblocked', () => this.log.info('sink.rabbitmq.unblocked'));
      try {
        const ch = await model.createChannel();
        ch.on('error', () => undefined); // the reason comes as the rejection of the call below
        if (this.cfg.declare) await ch.assertExchange(this.cfg.exchange, this.cfg.exchangeType, { durable: true });
        else await ch.checkExchange(this.cfg.exchange);
        await ch.close().catch(() => undefined);
      } catch (err) {
        await model.close().catch(() => undefined);
        throw classifyRabbitError(err, `${this.where}: ${this.cfg.declare ? `declaring exchange ${this.cfg.exchange} (${this.cfg.exchangeType}, durable)` : `checking exchange ${this.cfg.exchange} exists`}`);
      }
      return conn;
    })();
    this.conn = p;
    // Registered first, so it runs before any caller awaiting `p` gets the connection.
    p.then(
      (c) => {
        if (this.conn === p && !c.broken) this.current = c;
      },
      () => {
        if (this.conn === p) this.conn = null;
      },
    );
    return p;
  }

  /** Stop using a connection that failed (closed, its channels with it); the next call opens another. */
  private forget(conn: Conn): void {
    conn.broken = true;
    if (this.current === conn) {
      this.current = null;
      this.conn = null;
    }
    void conn.model.close().catch(() => undefined);
  }

  private async checkout(conn: Conn): Promise<Chan> {
    for (let c = conn.idle.pop(); c; c = conn.idle.pop()) if (!c.closed) return c;
    const ch = await conn.model.createConfirmChannel();
    const c: Chan = { ch, closed: false, returned: null };
    ch.on('error', (err: Error) => (c.err = err));
    ch.on('close', () => (c.closed = true));
    ch.on('return', (m: { properties: { messageId?: string }; fields: { replyCode?: number; replyText?: string } }) => {
      c.returned?.set(String(m.properties.messageId), `${m.fields.replyCode ?? ''} ${m.fields.replyText ?? ''}`.trim());
    });
    return c;
  }
}

/** Wait until the channel takes more (drain) or closes. */
function drained(c: Chan): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      c.ch.off('drain', done);
      c.ch.off('close', done);
      resolve();
    };
    c.ch.on('drain', done);
    c.ch.on('close', done);
  });
}

function describe(rec: SinkRecord): string {
  return rec.op === 'truncate' ? `truncate ${rec.table}` : `${rec.op} ${rec.table} key ${keyString(rec.key)} at ${rec.position}`;
}
