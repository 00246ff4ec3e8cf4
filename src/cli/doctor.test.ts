import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../connectors/index.js';
import { parseConfig } from '../core/config/load.js';
import { formatFindings } from '../observe/findings.js';
import { compatibilityFinding, plannedTopics, targetDemands } from './doctor.js';

const config = parseConfig(
  JSON.stringify({
    version: 1,
    topicPrefix: 'p',
    pipelines: {
      a: { source: { type: 'postgres', connection: { database: 's' }, slot: 'a', publication: 'a' }, target: { type: 'postgres', connection: { database: 't' } }, tables: [{ source: 'public.x', target: 'public.y', columns: { id: 'ident' } }] },
      b: { changeTopicPrefix: 'q', source: { type: 'postgres', connection: { database: 's2' }, slot: 'b', publication: 'b' }, target: { type: 'postgres', connection: { database: 't' } }, tables: [{ source: 'public.x' }] },
    },
  }),
  'c.yaml',
  {},
);

test('plannedTopics: change topics (per changeTopicPrefix), dead letters, DLQ actions, capture offsets', () => {
  assert.deepEqual(plannedTopics(config, Object.entries(config.pipelines)), [
    { topic: 'p.cdc.public.x', partitions: 3, compact: false },
    { topic: 'p.dlq.a', partitions: 1, compact: false },
    { topic: 'p.dlq-actions.a', partitions: 1, compact: false },
    { topic: 'q.cdc.public.x', partitions: 3, compact: false },
    { topic: 'p.dlq.b', partitions: 1, compact: false },
    { topic: 'p.dlq-actions.b', partitions: 1, compact: false },
    { topic: 'p.capture.offsets', partitions: 1, compact: true },
  ]);
});

test('compatibility: BACKWARD, NONE (the codec resets it) and unset pass; any other level fails with the PUT that fixes it', () => {
  const ok = compatibilityFinding('r', 'http://reg/', [{ subject: 'a-key', level: 'BACKWARD' }, { subject: 'a-value', level: 'NONE' }, { subject: 'b-key', level: null }], 'FULL');
  assert.equal(ok.ok, true);
  assert.match(ok.detail, /1 BACKWARD, 1 NONE .*1 without a level of their own.*global level FULL/);
  const bad = compatibilityFinding('r', 'http://reg/', [{ subject: 'p.cdc.public.x-value', level: 'FULL_TRANSITIVE' }], null);
  assert.equal(bad.ok, false);
  assert.deepEqual(bad.fix, [`curl -X PUT -H 'Content-Type: application/vnd.schemaregistry.v1+json' --data '{"compatibility": "BACKWARD"}' 'http://reg/config/p.cdc.public.x-value'`]);
});

test('targetDemands: the target name, the key and the columns through the renames', () => {
  const source = [{ source: 'public.x', key: ['id'], columns: [{ name: 'id', pgType: 'bigint', notNull: true }] }];
  assert.deepEqual(targetDemands(config.pipelines.a!, source), [{ source: 'public.x', table: 'public.y', key: ['ident'], columns: [{ name: 'ident', pgType: 'bigint', notNull: true }] }]);
  // A table missing at the source is the source's failure, not checked again at the target; an unreadable source checks every table.
  assert.deepEqual(targetDemands(config.pipelines.a!, []), []);
  assert.deepEqual(targetDemands(config.pipelines.a!, undefined), [{ source: 'public.x', table: 'public.y', key: [], columns: [] }]);
});

test('formatFindings: grouped by subject, fixes under their failure, a count at the end', () => {
  const text = formatFindings('doctor: c.yaml', [
    { subject: 'kafka', check: 'reachable', ok: true, detail: 'answered' },
    { subject: 'source', check: 'wal_level', ok: false, detail: 'is replica', fix: ['ALTER SYSTEM SET wal_level = logical;', 'then restart'] },
  ]);
  assert.equal(text, ['doctor: c.yaml', '', 'kafka', '  ok    reachable: answered', '', 'source', '  FAIL  wal_level: is replica', '        fix: ALTER SYSTEM SET wal_level = logical;', '        fix: then restart', '', '1 of 2 checks failed', ''].join('\n'));
});
