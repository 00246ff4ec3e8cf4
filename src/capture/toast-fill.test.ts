import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { ChangeEvent, Row } from '../core/envelope.js';
import { ToastFill } from './toast-fill.js';

const log = pino({ level: 'silent' });
const table = { schema: 'public', table: 'docs', key: ['id'], columns: [] };
const big = (c: string) => c.repeat(2000);
let n = 0;
const change = (op: ChangeEvent['op'], after: Row | null, unchangedToast: string[] = []): ChangeEvent => ({
  op, before: null, after,
  source: { db: 'd', schema: 'public', table: 'docs', pos: `0/${++n}`, commitPos: `0/${n}`, txId: n, tsMs: 0, snapshot: op === 'r', idx: 0 },
  tsMs: 0, unchangedToast,
});

test('fills left-out values from the last value seen, then a re-read, else counts a miss', async () => {
  const asked: string[][] = [];
  const fill = new ToastFill({ log, reselect: async (_t, key, cols) => (asked.push(cols), key.id === 3n ? null : Object.fromEntries(cols.map((c) => [c, `now-${c}`]))) });
  await fill.apply(table, 'k1', { id: 1n }, change('r', { id: 1n, body: big('a'), name: 'x' }));
  const u = change('u', { id: 1n, body: null, name: 'y' }, ['body']);
  await fill.apply(table, 'k1', { id: 1n }, u);
  assert.equal(u.after!.body, big('a'));
  assert.deepEqual(u.unchangedToast, []);
  // Not seen: re-read.
  const u2 = change('u', { id: 2n, body: null, bin: null }, ['body', 'bin']);
  await fill.apply(table, 'k2', { id: 2n }, u2);
  assert.deepEqual([u2.after!.body, u2.after!.bin, u2.unchangedToast], ['now-body', 'now-bin', []]);
  // Gone at the source: a miss, the column stays listed.
  const u3 = change('u', { id: 3n, body: null }, ['body']);
  await fill.apply(table, 'k3', { id: 3n }, u3);
  assert.deepEqual(u3.unchangedToast, ['body']);
  assert.deepEqual(fill.counters, { cache: 1, reselect: 1, miss: 1 });
  assert.deepEqual(asked, [['body', 'bin'], ['body']]);
});

test('a delete forgets the row; a small new value replaces a remembered one; the memory stays bounded', async () => {
  const fill = new ToastFill({ log, maxBytes: 20_000 });
  await fill.apply(table, 'k1', { id: 1n }, change('c', { id: 1n, body: big('a') }));
  assert.equal(fill.size, 4000);
  await fill.apply(table, 'k1', { id: 1n }, change('u', { id: 1n, body: 'small' }));
  assert.equal(fill.size, 0);
  await fill.apply(table, 'k1', { id: 1n }, change('c', { id: 1n, body: big('b') }));
  await fill.apply(table, 'k1', { id: 1n }, change('d', null));
  assert.equal(fill.size, 0);
  for (let i = 0; i < 20; i++) await fill.apply(table, `k${i}`, { id: BigInt(i) }, change('c', { id: BigInt(i), body: big(String(i % 10)) }));
  assert.ok(fill.size <= 20_000, String(fill.size));
  // The most recent rows are kept; without a re-read the oldest is a miss.
  const late = change('u', { id: 19n, body: null }, ['body']);
  await fill.apply(table, 'k19', { id: 19n }, late);
  assert.equal(late.after!.body, big('9'));
  const early = change('u', { id: 0n, body: null }, ['body']);
  await fill.apply(table, 'k0', { id: 0n }, early);
  assert.deepEqual(early.unchangedToast, ['body']);
  assert.deepEqual(fill.counters, { cache: 1, reselect: 0, miss: 1 });
});
