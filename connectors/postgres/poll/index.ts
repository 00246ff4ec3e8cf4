/**
 * Registers `postgres-poll`: PostgreSQL tables, views or queries polled through plain SQL (no
 * replication rights), tracked by timestamp, version or content hash (src/capture/poll/, modes in
 * src/capture/poll/README.md). It creates nothing on the server; `resources` lists its local state directory.
 */
import { z } from 'zod';
import { registerSource } from '../../../src/core/registry.js';
import { pgWhere } from '../doctor-checks.js';
import { postgresDependency } from '../../../src/core/dependencies.js';
import { pollSourceFields } from '../../../src/capture/poll/spec.js';
import { PollSource } from '../../../src/capture/poll/poll-source.js';
import { pollStateResources } from '../../../src/capture/poll/resources.js';
import { pollMonitor } from '../../../src/capture/poll/lag.js';
import { pgConnectionSpec } from '../spec.js';
import { PgProbe, pingMonitor } from '../probe.js';
import { PgPollDialect } from './dialect.js';

export const pgPollSpec = z
  .object({
    type: z.literal('postgres-poll'),
    connection: pgConnectionSpec,
    ...pollSourceFields,
  })
  .strict()
  .describe('PostgreSQL tables, views or queries polled through plain SQL (SELECT rights only), changes found by timestamp, version or content hash (src/capture/poll/README.md).');

export type PgPollConfig = z.infer<typeof pgPollSpec>;

export const pgPollStreamId = (pipeline: string): string => `postgres_poll_${pipeline.replace(/-/g, '_')}`;

registerSource({
  type: 'postgres-poll',
  description: 'PostgreSQL polled through SQL (timestamp, version or hash tracking)',
  spec: pgPollSpec,
  create: (config, ctx) => new PollSource(new PgPollDialect(config.connection, ctx.pipeline), { ...config, pipeline: ctx.pipeline, log: ctx.log, streamId: pgPollStreamId(ctx.pipeline) }),
  // A pass is a bounded read: scheduled and manual runs end once the pass after their start is acknowledged.
  positions: true,
  where: (config) => pgWhere(config.connection),
  streamId: (_config, pipeline) => pgPollStreamId(pipeline),
  // Hash mode's chunk files on this machine (nothing is created on the server).
  resources: (config, ctx) => pollStateResources(config.stateDir, pgPollStreamId(ctx.pipeline)),
  dependency: (config, pipeline) => postgresDependency(config.connection, pipeline, 'source'),
  // Lag: seconds since the start of the last acknowledged pass (src/capture/poll/lag.ts).
  monitor: (config, timeoutMs, pipeline) => pollMonitor(pingMonitor(new PgProbe(config.connection, timeoutMs)), pgPollStreamId(pipeline)),
});
