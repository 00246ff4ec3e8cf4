/**
 * Registers the MariaDB/MySQL source connector (row-based binlog CDC): its config spec, its factory
 * (./mariadb-source.ts), its stream id (the capture-offsets key), its monitor, the replica server id
 * it must own alone, and the dependency the start waits for. It creates nothing on the server (no
 * slot, no publication: its position lives in the capture offsets topic, which the framework drops
 * with the pipeline), so it has no `resources`. Import for the side effect only (connectors/index.ts does).
 */
import { registerSource } from '../../../src/core/registry.js';
import { mariadbSourceSpec } from './spec.js';
import { MariadbSource, streamIdOf } from './mariadb-source.js';
import { MariadbSourceMonitor } from './monitor.js';
import { mariadbSourceDoctor, mariadbWhere } from '../doctor.js';
import { mariadbInitSource } from '../init.js';

registerSource({
  type: 'mariadb',
  description: 'MariaDB/MySQL row-based binlog (replica protocol)',
  positions: true,
  spec: mariadbSourceSpec,
  create: (config, ctx) => new MariadbSource(config, ctx.pipeline, ctx.log),
  streamId: (_config, pipeline) => streamIdOf(pipeline),
  monitor: (config, timeoutMs) => new MariadbSourceMonitor(config, timeoutMs),
  // Two readers with one replica server id on one server end each other's binlog stream.
  exclusive: (raw) => {
    const c = (raw.connection ?? {}) as { host?: unknown; port?: unknown };
    return typeof raw.serverId === 'number' ? [{ field: 'serverId', what: 'replica server id', id: `${String(c.host ?? '127.0.0.1')}:${String(c.port ?? 3306)}/${raw.serverId}`, note: `on MariaDB ${String(c.host ?? '127.0.0.1')}:${String(c.port ?? 3306)}` }] : [];
  },
  dependency: (config, pipeline) => {
    const at = `${config.connection.host}:${config.connection.port}/${config.connection.database}`;
    return { kind: 'other', key: `mariadb ${config.connection.host}:${config.connection.port}`, name: `MariaDB at ${at} (pipeline ${pipeline} source)`, codePrefix: 'MARIADB_' };
  },
  where: (config) => mariadbWhere(config.connection),
  doctor: mariadbSourceDoctor,
  init: mariadbInitSource,
});
