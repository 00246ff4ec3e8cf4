/** Registers the file sink (imported by connectors/index.ts). */
import { registerSink } from '../../src/core/registry.js';
import { FileSink } from './sink.js';
import { fileSinkSpec } from './spec.js';

registerSink({
  type: 'file',
  description: 'File target: JSON Lines, CSV or Parquet, one folder per table, date folders, files finished by size or time under a temporary name then renamed, a manifest of finished files; deletes as rows with op d; exactly once across crashes.',
  spec: fileSinkSpec,
  create: (cfg, ctx) => new FileSink(cfg, { ...ctx, log: ctx.log.child({ sink: 'file', pipeline: ctx.pipeline }) }),
  where: (cfg) => `${cfg.dir} (${cfg.format})`,
  // Files are a log, not rows to compare with: only source-wins can be applied (refused at load otherwise).
  conflictStrategies: ['source-wins'],
  // A file row is the whole row: capture fills unchanged TOASTed values (what it cannot fill stays in `keep` and is left out of the row).
  wholeRows: true,
});
