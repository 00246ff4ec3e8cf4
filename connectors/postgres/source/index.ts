/**
 * Registers the PostgreSQL source connector (logical replication with pgoutput): its config spec,
 * its factory (./postgres-source.ts), the dependency the start waits for, its monitor
 * (../probe.ts: readiness and slot lag), and `resources`, which
 * lists and drops the slot and publication a pipeline created (`syncline pipeline drop`,
 * ../resources.ts). Import for the side effect only (connectors/index.ts does).
 */
import { registerSource } from '../../../src/core/registry.js';
import { postgresDependency } from '../../../src/core/dependencies.js';
import { pgSourceResources } from '../resources.js';
import { pgSourceSpec } from '../spec.js';
import { PostgresSource } from './postgres-source.js';
import { PgSourceMonitor } from '../probe.js';

registerSource({
  type: 'postgres',
  description: 'PostgreSQL logical replication (pgoutput)',
  spec: pgSourceSpec,
  create: (config, ctx) => new PostgresSource(config, ctx.pipeline, ctx.log),
  dependency: (config, pipeline) => postgresDependency(config.connection, pipeline, 'source'),
  monitor: (config, timeoutMs) => new PgSourceMonitor(config, timeoutMs),
  resources: pgSourceResources,
});
