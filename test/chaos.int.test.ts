/**
 * npm test: alone (a private stack and timed fault injection).
 * The short fault-injection run inside `npm test` (the full one is `npm run chaos`, see
 * test/chaos/harness.ts): a minute or two of a mixed workload on a private stack while every
 * kind of fault is injected once (outages, slow-downs and the pauses between faults shortened; each
 * kind at least once however long that takes), then the verdict: nothing
 * lost, nothing applied twice with a visible effect, only the expected dead letters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAULTS, reportText, runChaos } from './chaos/harness.js';

test('fault injection (short): every fault once, nothing lost, nothing applied twice, only expected dead letters', async (t) => {
  const report = await runChaos({
    durationMs: 70_000,
    faults: FAULTS,
    gapMs: [1500, 3000],
    outageMs: 8000,
    largeTxRows: 20_000,
    clients: 3,
    hotEveryMs: 50,
    reportDir: 'reports',
    log: (l) => t.diagnostic(l),
  });
  t.diagnostic(reportText(report));
  assert.equal(report.lost, 0, `lost: ${report.lostKeys.join(', ')}`);
  assert.equal(report.extra, 0, `extra: ${report.extraKeys.join(', ')}`);
  assert.equal(report.appliedTwiceVisible, 0, `applied twice: ${report.appliedTwiceKeys.join(', ')}`);
  assert.deepEqual(report.deadLettered.unexpected, []);
  assert.deepEqual(report.problems, []);
  for (const f of FAULTS) assert.ok((report.faults[f] ?? 0) >= 1, `fault ${f} was injected`);
  assert.ok(report.changesCommitted > 10_000, `${report.changesCommitted} changes committed`);
  assert.ok((report.deadLettered.expected['failed: CHECK (qty <= 1000)'] ?? 0) > 0, 'the rows the target rejects were dead-lettered');
});
