/**
 * Registers the HTTP API source `http` (./http-source.ts): endpoints listed page by page each pass,
 * tracked by content hash or an incremental parameter. It creates nothing on the API's side;
 * `resources` lists its local state directory (hash mode's per-key hashes).
 */
import { connect as netConnect } from 'node:net';
import { registerSource } from '../../../src/core/registry.js';
import { pollStateResources } from '../../../src/capture/poll/resources.js';
import { retriable } from '../../../src/core/errors.js';
import { HttpSource, httpStreamId } from './http-source.js';
import { httpSourceSpec, type HttpSourceConfig } from './spec.js';

const hosts = (c: HttpSourceConfig): URL[] => [...new Map(Object.values(c.endpoints).map((e) => { const u = new URL(e.url); return [u.origin, u] as const; })).values()];

/** Each API host answers TCP (no request is spent: the rate limit is the API's). */
async function ping(c: HttpSourceConfig, timeoutMs: number): Promise<void> {
  for (const u of hosts(c)) {
    const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
    await new Promise<void>((resolve, reject) => {
      const s = netConnect({ host: u.hostname, port, timeout: timeoutMs });
      s.once('connect', () => { s.destroy(); resolve(); });
      s.once('timeout', () => { s.destroy(); reject(retriable('HTTP_TIMEOUT', `HTTP source ${u.origin} did not answer within ${timeoutMs} ms`)); });
      s.once('error', (err) => reject(retriable('HTTP_UNREACHABLE', `HTTP source ${u.origin} is unreachable: ${err.message}`, err)));
    });
  }
}

registerSource({
  type: 'http',
  description: 'HTTP API listings polled page by page (cursor, page, offset, Link), tracked by hash, timestamp or version',
  spec: httpSourceSpec,
  create: (config, ctx) => new HttpSource(config, { pipeline: ctx.pipeline, log: ctx.log.child({ source: 'http', pipeline: ctx.pipeline }), streamId: httpStreamId(ctx.pipeline) }),
  // A pass is a bounded listing: scheduled and manual runs end once the pass after their start is acknowledged.
  positions: true,
  where: (config) => hosts(config).map((u) => u.origin).join(', '),
  streamId: (_config, pipeline) => httpStreamId(pipeline),
  resources: (config, ctx) => pollStateResources(config.stateDir, httpStreamId(ctx.pipeline)),
  // The start waits while the API does not answer (retriable HTTP_ errors are attributed to it).
  dependency: (config, pipeline) => {
    const at = hosts(config).map((u) => u.origin).join(', ');
    return { kind: 'other', key: `http ${at}`, name: `HTTP API ${at} (pipeline ${pipeline} source)`, codePrefix: 'HTTP_' };
  },
  monitor: (config, timeoutMs) => ({ ping: () => ping(config, timeoutMs), lag: async () => null, close: async () => {} }),
});
