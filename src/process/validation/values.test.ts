import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addDuration, arith, cleanNumber, Dec, fastDecimal, formatTime, numCmp, numKey, parseDecimal, parseDuration, parseTemporal } from './values.js';

test('parseDecimal: exact mantissa and scale, specials, refusals', () => {
  assert.deepEqual(parseDecimal('12.50'), new Dec(1250n, 2));
  assert.deepEqual(parseDecimal('-0.001'), new Dec(-1n, 3));
  assert.deepEqual(parseDecimal('1e3'), new Dec(1000n, 0));
  assert.deepEqual(parseDecimal('1.5E-3'), new Dec(15n, 4));
  assert.ok(Number.isNaN(parseDecimal('NaN') as number));
  assert.equal(parseDecimal('-Infinity'), -Infinity);
  for (const bad of ['', '.', 'abc', '1.2.3', ' 1', '0x10']) assert.equal(parseDecimal(bad), undefined, bad);
  assert.equal(new Dec(1250n, 2).toString(), '12.5');
  assert.equal(new Dec(-5n, 3).toString(), '-0.005');
});

test('numCmp and arith are exact across representations', () => {
  assert.equal(numCmp(new Dec(1250n, 2), 12.5), 0);
  assert.equal(numCmp(9007199254740993n, 9007199254740992), 1);
  assert.equal(numCmp(0.1, new Dec(1n, 1)), 0); // a double through its shortest form
  assert.equal(numCmp(NaN, 1), undefined);
  assert.equal(numCmp(Infinity, new Dec(10n ** 40n, 0)), 1);
  assert.equal(numKey(arith('+', arith('+', parseDecimal('9.99')!, parseDecimal('9.99')!)!, parseDecimal('9.99')!)!), '29.97');
  assert.equal(arith('+', 1, 2), 3);
  assert.equal(arith('*', 2 ** 40, 2 ** 40) instanceof Dec, true, 'beyond safe integers: exact decimal');
  assert.equal(numKey(arith('/', 1, 3)!), '0.33333333333333333333');
  assert.equal(arith('/', 1, 0), null);
});

test('fastDecimal: doubles only where comparisons stay exact', () => {
  assert.equal(fastDecimal('12.50'), 12.5);
  assert.equal(fastDecimal('-0.01'), -0.01);
  assert.equal(fastDecimal('123456789012345'), 123456789012345);
  assert.equal(fastDecimal('1234567890123456'), undefined, '16 digits: exact path');
  assert.equal(fastDecimal('1e3'), undefined);
  assert.equal(fastDecimal('-'), undefined);
  assert.equal(cleanNumber('42.50'), 42.5);
  assert.equal(cleanNumber('12345678901234567'), undefined);
});

test('parseTemporal: canonical forms, offsets, BC, infinity; invalid dates refused', () => {
  assert.deepEqual(parseTemporal('1970-01-02'), { ms: 86_400_000, dateOnly: true });
  assert.deepEqual(parseTemporal('1970-01-01T00:00:01.000001Z'), { ms: 1000.001, dateOnly: false });
  assert.equal(parseTemporal('1970-01-01T00:00:01.000001')!.ms, 1000.001, 'timestamp without time zone read as UTC');
  assert.equal(parseTemporal('1970-01-01T02:00:00+02:00')!.ms, 0);
  assert.equal(parseTemporal('2024-02-29')!.ms, Date.UTC(2024, 1, 29));
  assert.equal(parseTemporal('0001-01-01 BC')!.ms, new Date('0000-01-01T00:00:00Z').getTime()); // 1 BC is year 0
  assert.equal(parseTemporal('12345-01-01')!.dateOnly, true);
  assert.equal(parseTemporal('infinity')!.ms, Infinity);
  for (const bad of ['2023-02-29', '2024-13-01', '2024-01-01T25:00:00Z', '2024-1-1', 'yesterday', '2024-01-01T00:00:00.000000X']) assert.equal(parseTemporal(bad), undefined, bad);
  assert.equal(formatTime(Date.UTC(2024, 0, 31, 12, 30, 0, 5)), '2024-01-31T12:30:00.005Z');
});

test('durations: parse and resolve by the calendar (UTC)', () => {
  const now = Date.UTC(2026, 0, 31, 10, 0, 0); // 2026-01-31T10:00Z
  const at = (d: string) => formatTime(addDuration(now, parseDuration(d)!));
  assert.equal(at('-P1Y'), '2025-01-31T10:00:00Z');
  assert.equal(at('P1M'), '2026-02-28T10:00:00Z', 'clamped to the end of February');
  assert.equal(at('P30D'), '2026-03-02T10:00:00Z');
  assert.equal(at('-PT12H'), '2026-01-30T22:00:00Z');
  assert.equal(at('P2W'), '2026-02-14T10:00:00Z');
  assert.equal(at('-P1Y2M3DT4H5M6.5S'), '2024-11-27T05:54:53.5Z'); // 2024-11-31 → 11-30, − 3 days
  assert.equal(addDuration(Date.UTC(2024, 1, 29), parseDuration('P1Y')!), Date.UTC(2025, 1, 28));
  for (const bad of ['P', 'PT', '1Y', 'P1H', '-P', 'P1.5Y', 'yesterday']) assert.equal(parseDuration(bad), undefined, bad);
});
