import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cronOf, cronProblem, missedFire, nextFire } from './schedule.js';
import { inWindows, parseWindow, timeZoneProblem } from './windows.js';

const at = (iso: string) => new Date(iso);
const iso = (d: Date | null) => d?.toISOString();

test('cron 02:30 daily in Europe/Berlin across the spring gap: fires once, at the end of the gap (03:00 CEST)', () => {
  const c = cronOf('0 30 2 * * *', 'Europe/Berlin');
  // Saturday 28 March 2026 (CET, +01:00): 02:30 local = 01:30 UTC.
  assert.equal(iso(nextFire(c, at('2026-03-27T12:00:00Z'))), '2026-03-28T01:30:00.000Z');
  // Sunday 29 March: 02:00 → 03:00; 02:30 does not exist. One fire at 03:00 CEST = 01:00 UTC.
  const gap = nextFire(c, at('2026-03-28T12:00:00Z'));
  assert.equal(iso(gap), '2026-03-29T01:00:00.000Z');
  // And not a second one that day: the next is Monday 02:30 CEST = 00:30 UTC.
  assert.equal(iso(nextFire(c, gap!)), '2026-03-30T00:30:00.000Z');
});

test('cron 02:30 daily in Europe/Berlin across the autumn repeat: fires once, at the first 02:30 (CEST)', () => {
  const c = cronOf('0 30 2 * * *', 'Europe/Berlin');
  // Sunday 25 October 2026: 03:00 CEST → 02:00 CET; 02:30 happens at 00:30 UTC and at 01:30 UTC.
  const first = nextFire(c, at('2026-10-24T12:00:00Z'));
  assert.equal(iso(first), '2026-10-25T00:30:00.000Z');
  // Not again an hour later at 02:30 CET: the next fire is Monday 02:30 CET = 01:30 UTC.
  assert.equal(iso(nextFire(c, first!)), '2026-10-26T01:30:00.000Z');
});

test('missed fires after downtime give one run (the latest), none without a last fire', () => {
  const c = cronOf('*/5 * * * * *', 'UTC');
  assert.equal(missedFire(c, undefined, at('2026-01-01T00:01:00Z')), undefined);
  const m = missedFire(c, at('2026-01-01T00:00:00Z'), at('2026-01-01T00:01:02Z'));
  assert.deepEqual({ at: iso(m!.at), missed: m!.missed }, { at: '2026-01-01T00:01:00.000Z', missed: 12 });
  assert.equal(missedFire(c, at('2026-01-01T00:01:00Z'), at('2026-01-01T00:01:04Z')), undefined);
});

test('cron and time zone problems are named', () => {
  assert.equal(cronProblem('0 30 2 * * *', 'Europe/Berlin'), undefined);
  assert.match(cronProblem('61 * * * * *', 'UTC')!, /second: 61/);
  assert.match(cronProblem('every day', 'UTC')!, /cron 'every day'/);
  assert.match(timeZoneProblem('Mars/Olympus')!, /unknown time zone 'Mars\/Olympus'/);
  assert.equal(timeZoneProblem('Europe/Berlin'), undefined);
});

test('windows: days, ranges, midnight crossing, time zone', () => {
  const w = [parseWindow('Mon-Fri 01:00-05:00')];
  // Monday 7 December 2026, Berlin = UTC+1.
  assert.equal(inWindows(at('2026-12-07T00:30:00Z'), w, 'Europe/Berlin'), true); // 01:30 Berlin
  assert.equal(inWindows(at('2026-12-07T04:00:00Z'), w, 'Europe/Berlin'), false); // 05:00 Berlin: end exclusive
  assert.equal(inWindows(at('2026-12-06T00:30:00Z'), w, 'Europe/Berlin'), false); // Sunday
  assert.equal(inWindows(at('2026-12-07T00:30:00Z'), w, 'UTC'), false); // 00:30 UTC
  const night = [parseWindow('Fri 22:00-02:00')];
  assert.equal(inWindows(at('2026-12-11T23:00:00Z'), night, 'UTC'), true); // Fri 23:00
  assert.equal(inWindows(at('2026-12-12T01:00:00Z'), night, 'UTC'), true); // Sat 01:00, Friday's window
  assert.equal(inWindows(at('2026-12-13T01:00:00Z'), night, 'UTC'), false); // Sun 01:00
  assert.equal(inWindows(at('2026-12-13T01:00:00Z'), [parseWindow('Sat,Sun 00:00-24:00')], 'UTC'), true);
  assert.equal(inWindows(at('2026-12-13T01:00:00Z'), [], 'UTC'), true);
  assert.throws(() => parseWindow('Mon-Fri 1am-5am'), /start '1am' is not HH:MM/);
  assert.throws(() => parseWindow('Moon 01:00-02:00'), /'Moon' is not a day/);
  assert.throws(() => parseWindow('01:00-25:00'), /end '25:00'/);
});

test('windows across DST (wall clock): the spring gap hour never opens, the autumn repeat hour opens twice', () => {
  const w = [parseWindow('02:00-03:00')];
  // 29 March 2026: 01:59 CET (00:59Z) → 03:00 CEST (01:00Z); no instant has local 02:xx.
  for (let m = 0; m < 120; m += 5) assert.equal(inWindows(new Date(Date.parse('2026-03-29T00:00:00Z') + m * 60_000), w, 'Europe/Berlin'), false);
  // 25 October 2026: 02:00-03:00 local twice: 00:00Z-01:00Z (CEST) and 01:00Z-02:00Z (CET).
  assert.equal(inWindows(at('2026-10-25T00:30:00Z'), w, 'Europe/Berlin'), true);
  assert.equal(inWindows(at('2026-10-25T01:30:00Z'), w, 'Europe/Berlin'), true);
  assert.equal(inWindows(at('2026-10-25T02:00:00Z'), w, 'Europe/Berlin'), false);
});
