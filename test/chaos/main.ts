/**
 * `npm run chaos`: the fault-injection suite at full length (see ./harness.ts). Prints the figures,
 * writes reports/chaos-<time>.json, exits 1 when anything was lost, applied twice with a visible
 * effect, or dead-lettered unexpectedly.
 *
 *   npm run chaos                              10 minutes, every fault, 30 s outages, 100,000-row transactions;
 *                                              then the long variants of the crash tests (below)
 *   npm run chaos -- --duration 120 --faults kill-sink,redis-restart --outage 10
 *   npm run chaos -- --soak-tests only         only the long crash tests; `skip`: only the fault suite
 *   npm run chaos -- --multi-node only         only the multi-node run (./multi-node.ts: three brokers, Redis
 *                                              Sentinel, one to three instances; 5 minutes, --multi-duration S);
 *                                              `skip`: without it; default `after` the single-node run
 *
 * The long variants: the crash tests of `npm test` kill their process once; here (SYNCLINE_SOAK=1,
 * test/helpers.ts soak()) they kill it three times (SOAK_TESTS); other long cases (silent dependencies
 * at start, bigger tables) run only here too.
 */
import { spawnSync } from 'node:child_process';
import { FAULTS, reportText, runChaos, type Fault } from './harness.js';
import { MULTI_FAULTS, multiNodeReportText, runMultiNodeChaos } from './multi-node.js';

export const SOAK_TESTS = [
  'test/capture-crash.int.test.ts',
  'test/contract/postgres.int.test.ts',
  'connectors/mariadb/source/crash.int.test.ts',
  'connectors/mariadb/source/contract.int.test.ts',
  'connectors/mariadb/poll/pipeline.int.test.ts',
  'connectors/http/pipeline.int.test.ts',
  'connectors/rabbitmq/pipeline.int.test.ts',
  'connectors/kafka-topic/kafka-topic.int.test.ts',
  'connectors/file/pipeline.int.test.ts',
  'connectors/postgres/poll/large.int.test.ts',
  'test/bad-input.int.test.ts',
  'test/backfill.int.test.ts',
  'connectors/mariadb/source/backfill.int.test.ts',
];

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : dflt;
};
const faults = opt('faults', FAULTS.join(',')).split(',') as Fault[];
for (const f of faults) {
  if (!(FAULTS as readonly string[]).includes(f)) {
    process.stderr.write(`chaos: unknown fault '${f}' (have: ${FAULTS.join(', ')})\n`);
    process.exit(2);
  }
}
const soakTests = opt('soak-tests', 'after');
if (!['after', 'only', 'skip'].includes(soakTests)) {
  process.stderr.write(`chaos: --soak-tests takes after, only or skip, not '${soakTests}'\n`);
  process.exit(2);
}

/** The long crash tests with Node's test runner, as scripts/test.sh runs the suite; true when they pass. */
function runSoakTests(): boolean {
  process.stdout.write(`\nlong crash tests (SYNCLINE_SOAK=1): ${SOAK_TESTS.join(' ')}\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', './src/core/kafkajs-patch.ts', '--test', '--test-concurrency=1', '--test-force-exit', '--test-timeout=1200000', ...SOAK_TESTS], {
    stdio: 'inherit', env: { ...process.env, NODE_ENV: 'test', SYNCLINE_SOAK: '1' },
  });
  return r.status === 0;
}

const multiNode = opt('multi-node', 'after');
if (!['after', 'only', 'skip'].includes(multiNode)) {
  process.stderr.write(`chaos: --multi-node takes after, only or skip, not '${multiNode}'\n`);
  process.exit(2);
}

/** The multi-node run; true when it found nothing wrong. */
async function runMultiNode(): Promise<boolean> {
  const r = await runMultiNodeChaos({
    durationMs: Number(opt('multi-duration', '300')) * 1000,
    faults: MULTI_FAULTS,
    gapMs: [Number(opt('gap-min', '5')) * 1000, Number(opt('gap-max', '15')) * 1000],
    outageMs: Math.min(Number(opt('outage', '30')), 20) * 1000,
    keys: 2000,
    clients: Number(opt('clients', '4')),
    reportDir: opt('report-dir', 'reports'),
  });
  process.stdout.write(multiNodeReportText(r) + '\n');
  return r.ok;
}

if (soakTests === 'only') process.exit(runSoakTests() ? 0 : 1);
if (multiNode === 'only') process.exit((await runMultiNode()) ? 0 : 1);

const report = await runChaos({
  durationMs: Number(opt('duration', '600')) * 1000,
  faults,
  gapMs: [Number(opt('gap-min', '5')) * 1000, Number(opt('gap-max', '15')) * 1000],
  outageMs: Number(opt('outage', '30')) * 1000,
  largeTxRows: Number(opt('large-tx', '100000')),
  clients: Number(opt('clients', '4')),
  hotEveryMs: Number(opt('hot-every-ms', '10')),
  reportDir: opt('report-dir', 'reports'),
});
process.stdout.write(reportText(report) + '\n');
const multiOk = multiNode === 'skip' ? true : await runMultiNode();
const soaked = soakTests === 'skip' ? true : runSoakTests();
process.exit(report.ok && multiOk && soaked ? 0 : 1);
