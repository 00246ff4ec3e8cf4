/** Registers the HTTP API sink (imported by connectors/index.ts). */
import { registerSink } from '../../src/core/registry.js';
import { HttpSink } from './sink.js';
import { httpSinkSpec } from './spec.js';

registerSink({
  type: 'http',
  description: 'HTTP API target: a request per change (or batched JSON arrays), method per operation, URL templated with table and key, Idempotency-Key, optional HMAC signature; 4xx dead-lettered with status and body.',
  spec: httpSinkSpec,
  create: (cfg, ctx) => new HttpSink(cfg, { ...ctx, log: ctx.log.child({ sink: 'http', pipeline: ctx.pipeline }) }),
  where: (cfg) => cfg.url,
  // Target rows cannot be read back with their types: conflict checks would see a change everywhere.
  conflictStrategies: ['source-wins'],
  wholeRows: true,
});
import './source/index.js';
