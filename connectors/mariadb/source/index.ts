/**
 * Registers the MariaDB/MySQL source connector (row-based binlog CDC): its config spec, its factory
 * (./mariadb-source.ts) and the dependency the start waits for. It creates nothing on the server (no
 * slot, no publication: its position lives in the capture offsets topic, which the framework drops
 * with the pipeline), so it has no `resources`. Import for the side effect only (connectors/index.ts does).
 */
import { registerSource } from '../../../src/core/registry.js';
import { mariadbSourceSpec } from './spec.js';
import { MariadbSource } from './mariadb-source.js';

registerSource({
  type: 'mariadb',
  description: 'MariaDB/MySQL row-based binlog (replica protocol)',
  spec: mariadbSourceSpec,
  create: (config, ctx) => new MariadbSource(config, ctx.pipeline, ctx.log),
  dependency: (config, pipeline) => {
    const at = `${config.connection.host}:${config.connection.port}/${config.connection.database}`;
    return { kind: 'other', key: `mariadb ${config.connection.host}:${config.connection.port}`, name: `MariaDB at ${at} (pipeline ${pipeline} source)` };
  },
});
