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
import { pgSlotName } from '../../../src/core/names.js';
import { PgSourceMonitor } from '../probe.js';
import { pgSourceDoctor, pgWhere } from '../doctor-checks.js';
import { pgInitSource } from '../init.js';
import { PgVerifySide } from '../verify.js';

registerSource({
  type: 'postgres',
  description: 'PostgreSQL logical replication (pgoutput)',
  positions: true,
  spec: pgSourceSpec,
  create: (config, ctx) => new PostgresSource(config, ctx.pipeline, ctx.log),
  streamId: (config) => config.slot,
  dependency: (config, pipeline) => postgresDependency(config.connection, pipeline, 'source'),
  monitor: (config, timeoutMs) => new PgSourceMonitor(config, timeoutMs),
  // Slots compared as PostgreSQL names them: orders-sync and orders_sync are one slot.
  exclusive: (raw) => [
    ...(typeof raw.slot === 'string' ? [{ field: 'slot', what: 'replication slot', id: pgSlotName(raw.slot), note: pgSlotName(raw.slot) !== raw.slot ? `PostgreSQL slot ${pgSlotName(raw.slot)}` : undefined }] : []),
    ...(typeof raw.publication === 'string' ? [{ field: 'publication', what: 'publication', id: raw.publication }] : []),
  ],
  resources: pgSourceResources,
  where: (config) => pgWhere(config.connection),
  doctor: pgSourceDoctor,
  init: pgInitSource,
  verify: (config, pipeline) => new PgVerifySide(config.connection, `pipeline ${pipeline} verify (source)`),
});
