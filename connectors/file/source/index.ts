/**
 * Registers the file source `file` (./file-source.ts): a directory's JSON Lines, CSV and Parquet
 * files polled each pass, tracked by content hash and per-row hashes by key. It creates nothing in
 * the directory; `resources` lists its local state directory (the per-file key → hash files).
 */
import { accessSync, constants, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { registerSource } from '../../../src/core/registry.js';
import { pollStateResources } from '../../../src/capture/poll/resources.js';
import { pollMonitor } from '../../../src/capture/poll/lag.js';
import { fatal } from '../../../src/core/errors.js';
import { FileSource, fileStreamId } from './file-source.js';
import { fileSourceSpec, type FileSourceConfig } from './spec.js';

/** The directory is there and readable (a missing one stops the start: it is configuration, not an outage). */
function ping(c: FileSourceConfig): void {
  const dir = resolve(c.dir);
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    accessSync(dir, constants.R_OK | constants.X_OK);
  } catch (err) {
    throw fatal('FILE_SOURCE_DIR', `file source: source.dir ${dir} cannot be read: ${(err as Error).message}`);
  }
}

registerSource({
  type: 'file',
  description: 'A directory of JSON Lines, CSV or Parquet files (globs per table), polled: changed files by content hash, rows by key (inserts, updates, deletes), bad lines dead-lettered with file:line',
  spec: fileSourceSpec,
  create: (config, ctx) => new FileSource(config, { pipeline: ctx.pipeline, log: ctx.log.child({ source: 'file', pipeline: ctx.pipeline }), streamId: fileStreamId(ctx.pipeline) }),
  // A pass is a bounded read of the files: scheduled and manual runs end once the pass after their start is acknowledged.
  positions: true,
  where: (config) => resolve(config.dir),
  streamId: (_config, pipeline) => fileStreamId(pipeline),
  resources: (config, ctx) => pollStateResources(config.stateDir, fileStreamId(ctx.pipeline)),
  monitor: (config, _timeoutMs, pipeline) => pollMonitor({ ping: async () => ping(config), lag: async () => null, close: async () => {} }, fileStreamId(pipeline)),
});
