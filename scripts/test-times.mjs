/**
 * A node:test reporter (scripts/test.sh) that adds up the time of each file's top-level tests and
 * keeps SYNCLINE_TEST_TIMES (default reports/test-times.txt) up to date, one line per file, slowest
 * first: where `npm test`'s time goes. Written synchronously after each test: --test-force-exit
 * ends the process before an asynchronous reporter's last output.
 */
import { writeFileSync } from 'node:fs';

export default async function* testTimes(source) {
  const out = process.env.SYNCLINE_TEST_TIMES ?? 'reports/test-times.txt';
  const cwd = process.cwd() + '/';
  const perFile = new Map();
  for await (const ev of source) {
    if ((ev.type !== 'test:pass' && ev.type !== 'test:fail') || ev.data.nesting !== 0 || !ev.data.file) continue;
    const file = ev.data.file.startsWith(cwd) ? ev.data.file.slice(cwd.length) : ev.data.file;
    perFile.set(file, (perFile.get(file) ?? 0) + (ev.data.details?.duration_ms ?? 0));
    const rows = [...perFile].sort((a, b) => b[1] - a[1]);
    const total = rows.reduce((n, [, ms]) => n + ms, 0);
    writeFileSync(out, `${(total / 60000).toFixed(1)} min in ${rows.length} files\n` + rows.map(([f, ms]) => `${(ms / 1000).toFixed(1).padStart(7)} s  ${f}\n`).join(''));
  }
}
