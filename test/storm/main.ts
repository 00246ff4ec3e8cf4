/**
 * `npm run storm`: the two-way storm at full length (see ./harness.ts), `--runs` times in a row;
 * `--sides 3`: the multi-way storm (A, B, C in a mesh). Prints each run's verdict and exits 1 when
 * any run ended with the sides different.
 *
 *   npm run storm                                 5 runs of 60 s at 250 tx/s per side, ids 1-1200
 *   npm run storm -- --sides 3                    the same on three databases
 *   npm run storm -- --runs 1 --seconds 20 --rate 100
 */
import { runStorm, stormText } from './harness.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : dflt;
};
const runs = Number(opt('runs', '5'));
const sides = opt('sides', '2');
if (sides !== '2' && sides !== '3') {
  process.stderr.write(`--sides: 2 or 3, got ${sides}\n`);
  process.exit(2);
}
let failed = 0;
for (let i = 1; i <= runs; i++) {
  const r = await runStorm({
    sides: sides === '3' ? 3 : 2,
    seconds: Number(opt('seconds', '60')),
    rate: Number(opt('rate', '250')),
    rows: Number(opt('rows', '1000')),
    keys: Number(opt('keys', '1200')),
    clients: Number(opt('clients', '4')),
    settleMs: Number(opt('settle', '180')) * 1000,
    log: (l) => process.stderr.write(l + '\n'),
  });
  process.stdout.write(`run ${i} of ${runs}: ${stormText(r)}\n`);
  if (!r.ok) failed++;
}
process.stdout.write(`${runs - failed} of ${runs} runs converged\n`);
process.exit(failed === 0 ? 0 : 1);
