/**
 * What a polling source leaves for a pipeline outside Kafka (`syncline pipeline drop`): hash mode's
 * chunk files under <stateDir>/<stream id>/ on this machine. Nothing on the database server. The
 * offsets record holding the watermarks is the framework's to drop (src/cli/pipeline-drop.ts).
 * A relative stateDir is taken from the working directory, as the capture does.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ConnectorResources, PipelineResource } from '../../core/resources.js';

function countFiles(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? countFiles(join(dir, e.name)) : 1;
  return n;
}

export function pollStateResources(stateDir: string, streamId: string): ConnectorResources {
  const dir = resolve(stateDir, streamId);
  return {
    async list(): Promise<PipelineResource[]> {
      if (!existsSync(dir)) return [];
      return [{ kind: 'poll state directory', name: dir, where: 'local disk', detail: `${countFiles(dir)} chunk files` }];
    },
    async drop(resources: PipelineResource[]): Promise<void> {
      for (const r of resources) if (r.kind === 'poll state directory') rmSync(r.name, { recursive: true, force: true });
    },
    async close(): Promise<void> {},
  };
}
