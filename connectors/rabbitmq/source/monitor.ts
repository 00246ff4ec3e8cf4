/**
 * Readiness and lag of a RabbitMQ source: ping opens a connection (once) and checks the queue
 * exists; lag is the queue's ready messages (checkQueue's messageCount; unacked ones are not
 * counted; a message counts as one, the field is named in bytes for every source); active while
 * the queue has a consumer.
 */
import type { Channel, ChannelModel } from 'amqplib';
import { retriable, withDeadline } from '../../../src/core/errors.js';
import type { SourceLag, SourceMonitor } from '../../../src/capture/source.js';
import { openConnection, rabbitWhere } from '../connection.js';
import type { RabbitmqSourceConfig } from './spec.js';

export class RabbitmqSourceMonitor implements SourceMonitor {
  private conn?: ChannelModel;
  private ch?: Promise<Channel>;

  constructor(private readonly config: RabbitmqSourceConfig, private readonly timeoutMs: number) {}

  private channel(): Promise<Channel> {
    if (!this.ch) {
      this.ch = (async () => {
        this.conn = await openConnection(this.config.connection);
        this.conn.on('error', () => undefined);
        this.conn.on('close', () => (this.ch = undefined));
        // checkQueue on a missing queue closes the channel: a fresh one each time it does.
        return this.conn.createChannel();
      })();
      this.ch.catch(() => (this.ch = undefined));
    }
    return this.ch;
  }

  private async check(): Promise<{ messageCount: number; consumerCount: number }> {
    const ch = await this.channel();
    ch.on('error', () => undefined);
    ch.once('close', () => (this.ch = undefined));
    return ch.checkQueue(this.config.queue);
  }

  async ping(): Promise<void> {
    const at = rabbitWhere(this.config.connection);
    await withDeadline(this.check(), this.timeoutMs, () => retriable('RABBITMQ_TIMEOUT', `RabbitMQ at ${at} did not answer within ${this.timeoutMs} ms`)).catch((err: Error) => {
      throw new Error(`RabbitMQ at ${at} queue ${this.config.queue}: ${err.message}`);
    });
  }

  async lag(): Promise<SourceLag | null> {
    const q = await this.check();
    return { lagBytes: q.messageCount, retainedBytes: null, active: q.consumerCount > 0 };
  }

  async close(): Promise<void> {
    await this.conn?.close().catch(() => undefined);
  }
}
