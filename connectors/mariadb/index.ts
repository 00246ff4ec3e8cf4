/** Registers the MariaDB sink (imported by connectors/index.ts). */
import { registerSink } from '../../src/core/registry.js';
import { MariadbSink } from './sink.js';
import { mariadbSinkSpec } from './spec.js';
import { mariadbTargetDoctor, mariadbWhere } from './doctor.js';
import { mariadbInitTarget } from './init.js';
import { MariaVerifySide } from './verify.js';

registerSink({
  type: 'mariadb',
  description: 'MariaDB target: batched multi-row INSERT … ON DUPLICATE KEY UPDATE and deletes in one transaction per batch, with per-record isolation of bad records.',
  spec: mariadbSinkSpec,
  create: (cfg, ctx) => new MariadbSink(cfg, { ...ctx, log: ctx.log.child({ sink: 'mariadb', pipeline: ctx.pipeline }) }),
  where: (cfg) => mariadbWhere(cfg.connection),
  doctor: mariadbTargetDoctor,
  init: mariadbInitTarget,
  // An update that left unchanged TOASTed values out would insert NULLs where the row is missing.
  wholeRows: true,
  verify: (cfg, pipeline) => new MariaVerifySide(cfg.connection, `pipeline ${pipeline} verify (target)`),
});
