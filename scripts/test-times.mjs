/**
 * A node:test reporter (scripts/test.sh) that adds up the time of each file's top-level tests and
 * keeps SYNCLINE_TEST_TIMES (default reports/test-times.txt) up to date, one line per file, slowest
 * first: where `npm test`'s time goes. Written synchronously after each test: --test-force-exit
 * ends the process before an asynchronous reporter's last output.
 * Each failed test (the one that failed, not the parents failing with it) is appended to
 * SYNCLINE_TEST_FAILURES when set: file, test name and the start of its error, which test.sh prints
 * last (a CI log is often read from its end, and the failure of an early file is far from it).
 */
import { appendFileSync, writeFileSync } from 'node:fs';

function failureLine(file, ev) {
  const err = ev.data.details?.error;
  const cause = err?.cause ?? err;
  const text = String(cause?.message ?? cause ?? 'failed').replace(/\s+/g, ' ').slice(0, 700);
  return `${file} › ${ev.data.name}: ${text}\n`;
}

export default async function* testTimes(source) {
  const out = process.env.SYNCLINE_TEST_TIMES ?? 'reports/test-times.txt';
  const cwd = process.cwd() + '/';
  const perFile = new Map();
  const failures = process.env.SYNCLINE_TEST_FAILURES;
  for await (const ev of source) {
    if (failures && ev.type === 'test:fail' && ev.data.details?.error?.failureType !== 'subtestsFailed') {
      const f = ev.data.file ?? '?';
      appendFileSync(failures, failureLine(f.startsWith(cwd) ? f.slice(cwd.length) : f, ev));
    }
    if ((ev.type !== 'test:pass' && ev.type !== 'test:fail') || ev.data.nesting !== 0 || !ev.data.file) continue;
    const file = ev.data.file.startsWith(cwd) ? ev.data.file.slice(cwd.length) : ev.data.file;
    perFile.set(file, (perFile.get(file) ?? 0) + (ev.data.details?.duration_ms ?? 0));
    const rows = [...perFile].sort((a, b) => b[1] - a[1]);
    const total = rows.reduce((n, [, ms]) => n + ms, 0);
    writeFileSync(out, `${(total / 60000).toFixed(1)} min in ${rows.length} files\n` + rows.map(([f, ms]) => `${(ms / 1000).toFixed(1).padStart(7)} s  ${f}\n`).join(''));
  }
}

/**
 * `node scripts/test-times.mjs --merge OUT PART... WALL_SECONDS` (scripts/test.sh): one list of the
 * files of several runs, slowest first, under a line with the wall time and the summed file time
 * (files run two at a time, so the sum exceeds the wall time).
 */
if (process.argv[2] === '--merge') {
  const { readFileSync, existsSync } = await import('node:fs');
  const [out, ...rest] = process.argv.slice(3);
  const wall = Number(rest.pop());
  const rows = rest.filter((p) => existsSync(p)).flatMap((p) => readFileSync(p, 'utf8').split('\n').slice(1).filter(Boolean))
    .map((l) => { const m = /^\s*([\d.]+) s {2}(.*)$/.exec(l); return m ? [m[2], Number(m[1])] : null; }).filter(Boolean)
    .sort((a, b) => b[1] - a[1]);
  const sum = rows.reduce((n, [, s]) => n + s, 0);
  writeFileSync(out, `${(wall / 60).toFixed(1)} min wall for ${rows.length} files (${(sum / 60).toFixed(1)} min summed)\n` + rows.map(([f, s]) => `${s.toFixed(1).padStart(7)} s  ${f}\n`).join(''));
}
