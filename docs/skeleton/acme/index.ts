/**
 * Registers the Acme source and sink. Imported for the side effect only: a real connector adds one
 * line to connectors/index.ts (`import './acme/index.js';`). This skeleton is NOT imported there:
 * it is type-checked (tsconfig.json includes docs/skeleton) but never registered.
 */
import { registerSink, registerSource } from '../../../src/core/registry.js';
import { AcmeSink } from './sink.js';
import { AcmeSource, AcmeSourceMonitor } from './source.js';
import { acmeSinkSpec, acmeSourceSpec } from './spec.js';

registerSource({
  type: 'acme',
  description: 'Acme change log (binlog-like, positions file/offset)',
  spec: acmeSourceSpec,
  create: (config, ctx) => new AcmeSource(config, ctx.pipeline, ctx.log),
  // The key of the pipeline's record in <prefix>.capture.offsets (`syncline pipeline drop` removes it).
  streamId: (config) => config.slot,
  // What the start waits for while it does not answer, and how the log names it.
  dependency: (config, pipeline) => {
    const at = `${config.connection.host}:${config.connection.port}/${config.connection.database}`;
    return { kind: 'other', key: `acme ${at}`, name: `Acme at ${at} (pipeline ${pipeline} source)` };
  },
  monitor: (config, timeoutMs) => new AcmeSourceMonitor(config, timeoutMs),
  // Two pipelines reading one stream id would overwrite each other's saved position: refused at load.
  exclusive: (raw) => (typeof raw.slot === 'string' ? [{ field: 'slot', what: 'Acme change stream', id: raw.slot }] : []),
  // resources: omitted, Acme keeps nothing per reader (PostgreSQL lists its slot and publication).
});

registerSink({
  type: 'acme',
  description: 'Acme target: one transaction of upserts and deletes by key per batch; refused records dead-lettered.',
  spec: acmeSinkSpec,
  create: (config, ctx) => new AcmeSink(config, ctx), // not connected yet
  // resources: omitted, the sink creates nothing for a pipeline (PostgreSQL lists its replication origins).
});
