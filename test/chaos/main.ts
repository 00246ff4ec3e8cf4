/**
 * `npm run chaos`: the fault-injection suite at full length (see ./harness.ts). Prints the figures,
 * writes reports/chaos-<time>.json, exits 1 when anything was lost, applied twice with a visible
 * effect, or dead-lettered unexpectedly.
 *
 *   npm run chaos                              10 minutes, every fault, 30 s outages, 100,000-row transactions
 *   npm run chaos -- --duration 120 --faults kill-sink,redis-restart --outage 10
 */
import { FAULTS, reportText, runChaos, type Fault } from './harness.js';

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
process.exit(report.ok ? 0 : 1);
