/**
 * scripts/compare.ts: the demo's cross-system comparison. canonicalValue makes the text forms
 * PostgreSQL and MariaDB print for the same value equal, and keeps different values different.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalValue as c, differing, type TableSide } from '../scripts/compare.js';

test('canonicalValue: PostgreSQL and MariaDB text forms of the same value are equal', () => {
  const same: [string, string | Buffer, string | Buffer][] = [
    ['bool', 't', '1'],
    ['bool', 'f', '0'],
    ['numeric', '10.50', '10.5'],
    ['numeric', '-0.00', '0'],
    ['numeric', '007', '7'],
    ['int8', '9223372036854775807', Buffer.from('9223372036854775807')],
    ['timestamptz', '2026-12-05 13:14:53.12345+00', '2026-12-05 13:14:53.123450'],
    ['timestamptz', '2026-12-05 15:14:53+02', '2026-12-05 13:14:53.000000'],
    ['timestamptz', '2026-01-01 00:30:00-05:30', '2026-01-01 06:00:00.000000'],
    ['timestamp', '2024-02-29 10:00:00.5', '2024-02-29 10:00:00.500000'],
    ['time', '12:00:00.25', '12:00:00.250000'],
    ['uuid', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'],
    ['jsonb', '{"a": 1, "b": [true, null]}', '{"b":[true,null],"a":1}'],
    ['bytea', '\\x00ff', Buffer.from([0, 255])],
    ['_text', '{a,"b c",NULL,"x\\"y"}', '["a","b c",null,"x\\"y"]'],
    ['_int8', '{1,-2}', '["1","-2"]'],
    ['_numeric', '{1.50}', '[1.5]'],
    ['text', 'SKU-1 ✓', Buffer.from('SKU-1 ✓')],
  ];
  for (const [kind, pgText, mariaText] of same) assert.deepEqual(c(kind, pgText), c(kind, mariaText), `${kind}: ${pgText} ≡ ${String(mariaText)}`);
  assert.equal(c('timestamptz', '2026-12-05 13:14:53.12345+00'), '2026-12-05T13:14:53.123450Z');
  assert.equal(c('numeric', '10.50'), '10.5');
  assert.equal(c('int4', null), null);
});

test('canonicalValue: different values stay different', () => {
  const differ: [string, string, string][] = [
    ['numeric', '10.5', '10.05'],
    ['timestamptz', '2026-12-05 13:14:53.000001+00', '2026-12-05 13:14:53.000000'],
    ['text', 'a', 'a '],
    ['bool', 't', '0'],
    ['_text', '{a,NULL}', '["a","NULL"]'],
  ];
  for (const [kind, a, b] of differ) assert.notDeepEqual(c(kind, a), c(kind, b), `${kind}: ${a} ≠ ${b}`);
});

test('differing counts rows on one side only and rows whose hashes differ', () => {
  const side = (entries: [string, string][]): TableSide => ({ rows: entries.length, checksum: '', hashes: new Map(entries) });
  assert.equal(differing(side([['1', 'h1'], ['2', 'h2'], ['3', 'h3']]), side([['1', 'h1'], ['2', 'x'], ['4', 'h4']])), 3);
  assert.equal(differing(side([['1', 'h1']]), side([['1', 'h1']])), 0);
});
