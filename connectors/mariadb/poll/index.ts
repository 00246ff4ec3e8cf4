/**
 * Registers `mariadb-poll`: MariaDB/MySQL tables or views polled through plain SQL (SELECT only, no
 * binlog), tracked by timestamp, version or content hash (src/capture/poll/; modes and what each can
 * see: src/capture/poll/README.md). It creates nothing on the server; `resources` lists its local state directory.
 */
import { z } from 'zod';
import type mysql from 'mysql2/promise';
import { registerSource } from '../../../src/core/registry.js';
import { mariadbWhere } from '../doctor.js';
import { pollSourceFields } from '../../../src/capture/poll/spec.js';
import { PollSource } from '../../../src/capture/poll/poll-source.js';
import { pollStateResources } from '../../../src/capture/poll/resources.js';
import { pollMonitor } from '../../../src/capture/poll/lag.js';
import type { SourceMonitor } from '../../../src/capture/source.js';
import { mariadbConnectionSpec, type MariadbConnection } from '../connection.js';
import { connectMysql, where } from '../source/prepare.js';
import { MariadbPollDialect } from './dialect.js';

export const mariadbPollSpec = z
  .object({
    type: z.literal('mariadb-poll'),
    connection: mariadbConnectionSpec,
    ...pollSourceFields,
  })
  .strict()
  .describe('MariaDB/MySQL tables or views polled through plain SQL (SELECT rights only, no binlog), changes found by timestamp, version or content hash (src/capture/poll/README.md).');

export const mariadbPollStreamId = (pipeline: string): string => `mariadb_poll_${pipeline.replace(/-/g, '_')}`;

/** Readiness (the lag is the pass clock's: pollMonitor). */
class PingMonitor implements SourceMonitor {
  private conn?: Promise<mysql.Connection>;
  constructor(private readonly c: MariadbConnection, private readonly timeoutMs: number) {}
  async ping(): Promise<void> {
    this.conn ??= connectMysql(this.c, 'probe');
    try {
      const conn = await this.conn;
      await conn.query({ sql: 'SELECT 1', timeout: this.timeoutMs });
    } catch (err) {
      const c = this.conn;
      this.conn = undefined;
      void c?.then((x) => x.end()).catch(() => undefined);
      throw new Error(`MariaDB at ${where(this.c)}: ${(err as Error).message}`);
    }
  }
  async lag(): Promise<null> {
    return null;
  }
  async close(): Promise<void> {
    const c = this.conn;
    this.conn = undefined;
    await c?.then((x) => x.end()).catch(() => undefined);
  }
}

registerSource({
  type: 'mariadb-poll',
  description: 'MariaDB/MySQL polled through SQL (timestamp, version or hash tracking)',
  spec: mariadbPollSpec,
  create: (config, ctx) => new PollSource(new MariadbPollDialect(config.connection, ctx.pipeline, (m) => ctx.log.warn(m)), { ...config, pipeline: ctx.pipeline, log: ctx.log, streamId: mariadbPollStreamId(ctx.pipeline) }),
  // A pass is a bounded read: scheduled and manual runs end once the pass after their start is acknowledged.
  positions: true,
  where: (config) => mariadbWhere(config.connection),
  streamId: (_config, pipeline) => mariadbPollStreamId(pipeline),
  // Hash mode's chunk files on this machine (nothing is created on the server).
  resources: (config, ctx) => pollStateResources(config.stateDir, mariadbPollStreamId(ctx.pipeline)),
  dependency: (config, pipeline) => {
    const at = `${config.connection.host}:${config.connection.port}/${config.connection.database}`;
    return { kind: 'other', key: `mariadb ${config.connection.host}:${config.connection.port}`, name: `MariaDB at ${at} (pipeline ${pipeline} source)`, codePrefix: 'MARIADB_' };
  },
  // Lag: seconds since the start of the last acknowledged pass (src/capture/poll/lag.ts).
  monitor: (config, timeoutMs, pipeline) => pollMonitor(new PingMonitor(config.connection, timeoutMs), mariadbPollStreamId(pipeline)),
});
