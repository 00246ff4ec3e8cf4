/**
 * npm test: alone (a private three-broker Kafka and Redis Sentinel; brokers, instances and the Redis master killed).
 * The short multi-node fault-injection run inside `npm test` (the full one runs in `npm run chaos`,
 * see test/chaos/multi-node.ts): a keyed load on a pipeline run by one to three `syncline start`
 * instances over three Kafka brokers and Redis Sentinel while each fault is injected once — the
 * busiest broker killed (-9) and restarted, an instance added, killed (-9) and stopped (SIGTERM), the
 * capture leader killed (-9), the Redis master killed (-9). Then the verdict: nothing lost, nothing
 * applied twice or out of order on any key, nothing dead-lettered, no instance exiting unasked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MULTI_FAULTS, multiNodeReportText, runMultiNodeChaos } from './chaos/multi-node.js';

test('fault injection on the multi-node setup (short): broker kill, worker add/kill/stop, capture failover, Redis master failover; nothing lost or applied twice', async (t) => {
  const report = await runMultiNodeChaos({
    durationMs: 45_000,
    faults: MULTI_FAULTS,
    gapMs: [1000, 2000],
    outageMs: 6000,
    keys: 400,
    clients: 3,
    reportDir: 'reports',
    log: (l) => t.diagnostic(l),
  });
  t.diagnostic(multiNodeReportText(report));
  assert.equal(report.lost, 0, `lost: ${report.lostKeys.join(', ')}`);
  assert.equal(report.extra, 0, `extra: ${report.extraKeys.join(', ')}`);
  assert.equal(report.appliedTwice, 0, `applied twice or out of order: ${report.appliedTwiceKeys.join(', ')}`);
  assert.equal(report.deadLettered, 0, 'nothing dead-lettered');
  assert.deepEqual(report.unexpectedExits, []);
  assert.deepEqual(report.problems, []);
  for (const f of MULTI_FAULTS) assert.ok((report.faults[f] ?? 0) >= 1, `fault ${f} was injected`);
  assert.ok(report.writes > 2000, `${report.writes} source writes`);
  assert.ok(report.ok);
});
