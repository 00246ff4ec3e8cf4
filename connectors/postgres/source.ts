/**
 * Registers the PostgreSQL source connector (logical replication with pgoutput) and its config
 * spec. Import for the side effect only (connectors/index.ts does). The capture stage itself lives
 * in src/capture/; the source has no factory because capture is built in, the spec only validates
 * and documents `pipelines.<name>.source`, and `resources` lists and drops the slot and publication
 * a pipeline created (`syncline pipeline drop`, ./resources.ts).
 */
import { registerSource } from '../../src/core/registry.js';
import { pgSourceResources } from './resources.js';
import { pgSourceSpec } from './spec.js';

registerSource({ type: 'postgres', description: 'PostgreSQL logical replication (pgoutput)', spec: pgSourceSpec, resources: pgSourceResources });
