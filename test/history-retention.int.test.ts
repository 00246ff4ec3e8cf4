/**
 * Change history retention on a real PostgreSQL store with an injected clock (ADR 0031): by days
 * (whole day partitions dropped, each key's state at the cutoff carried forward so `asof` at or
 * after the cutoff still rebuilds keys not changed since, earlier instants refused), and by count
 * (maxPerKey keeps the newest entries; an instant a trimmed key no longer reaches is refused, naming
 * the key). The pruning run is counted in the syncline_history_pruned_total metric.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { HistoryStore } from '../src/history/store.js';
import { attachHistoryMetrics, HistoryPruner } from '../src/history/recorder.js';
import type { HistoryEntry, JsonRow } from '../src/history/history.js';
import { createDb, dropDb, PG, uid } from './helpers.js';

const DAY = 86_400_000;
const day0 = Date.UTC(2026, 0, 1);
const at = (d: number, h = 10) => new Date(day0 + d * DAY + h * 3_600_000);
const P = 'p';
const T = 'public.t';

function entry(key: number, op: 'upsert' | 'delete', when: Date, after: JsonRow | null, position: string): HistoryEntry {
  return { pipeline: P, table: T, key: `["${key}"]`, keyRow: { id: key }, op, position, commitTsMs: when.getTime() - 5, decision: 'applied', strategy: null, by: null, before: null, beforeKnown: false, after, changed: true, appliedAt: when };
}
const rowsOf = async (s: HistoryStore, when: Date) => Object.fromEntries((await s.asof(P, T, when)).rows.map((r) => [r.key, r.row.v]));

test('history retention by days and by count, with an injected clock', async (t) => {
  const db = `syncline_t_${uid()}_hist`;
  await createDb(db);
  const store = new HistoryStore(`postgres://${PG.user}@${PG.host}:${PG.port}/${db}`, 'h');
  t.after(async () => {
    await store.close();
    await dropDb(db);
  });
  const now = at(12, 12).getTime();
  await store.ensure();
  await store.pool.query(store.coverageSql(P, T, new Date(day0)).text, store.coverageSql(P, T, new Date(day0)).params);
  await store.insert([
    entry(1, 'upsert', at(0), { id: 1, v: 'a0' }, '0/1:0'),
    entry(2, 'upsert', at(0, 11), { id: 2, v: 'b0' }, '0/2:0'),
    entry(3, 'upsert', at(1), { id: 3, v: 'c1' }, '0/3:0'),
    entry(2, 'upsert', at(5), { id: 2, v: 'b5' }, '0/4:0'),
    entry(2, 'delete', at(6), null, '0/5:0'),
    entry(3, 'upsert', at(10), { id: 3, v: 'c10' }, '0/6:0'),
  ], now);
  // Stored once: the same entries again (a retried write) add nothing.
  assert.equal(await store.insert([entry(3, 'upsert', at(10), { id: 3, v: 'c10' }, '0/6:0')], now), 0);
  assert.deepEqual(await rowsOf(store, at(8)), { '["1"]': 'a0', '["3"]': 'c1' });
  assert.deepEqual(await rowsOf(store, at(5, 12)), { '["1"]': 'a0', '["2"]': 'b5', '["3"]': 'c1' });

  // Days: 3 → the cutoff is the start of day 9 (UTC); days 0..8 go, the state at the cutoff stays.
  const registry = new Registry();
  attachHistoryMetrics(registry);
  const metric = async () => Object.fromEntries(((await registry.getSingleMetric('syncline_history_pruned_total')!.get()).values).map((v) => [v.labels.kind, v.value]));
  const beforeCounts = await metric();
  const retention = (maxPerKey: number) => new Map([[P, new Map([[T, { days: 3, maxPerKey }]])]]);
  const pruner = new HistoryPruner(store, () => retention(100), pino({ level: 'silent' }), () => now);
  await pruner.pruneOnce();
  const counts = await metric();
  assert.equal(counts.partitions! - (beforeCounts.partitions ?? 0), 9, 'day partitions 2026-01-01..09 dropped');
  assert.equal(counts.rows! - (beforeCounts.rows ?? 0), 5, 'the entries before the cutoff');
  assert.equal(counts.carried! - (beforeCounts.carried ?? 0), 2, 'keys 1 and 3 carried forward (2 was deleted)');
  const parts = await store.pool.query(`select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent join pg_namespace n on n.oid = p.relnamespace where n.nspname = 'h' and p.relname = 'changes' order by 1`);
  assert.equal(parts.rows[0].relname, 'changes_20260110', 'the oldest partition left is the cutoff day');
  await assert.rejects(store.asof(P, T, at(8)), /reaches back to 2026-01-10T00:00:00.000Z only/);
  assert.deepEqual(await rowsOf(store, at(9, 0)), { '["1"]': 'a0', '["3"]': 'c1' }, 'at the cutoff: key 1, unchanged for 12 days, is still there');
  assert.deepEqual(await rowsOf(store, at(11)), { '["1"]': 'a0', '["3"]': 'c10' });
  // Pruning again the same day changes nothing.
  await pruner.pruneOnce();
  assert.deepEqual(await rowsOf(store, at(11)), { '["1"]': 'a0', '["3"]': 'c10' });
  assert.equal((await metric()).carried, counts.carried);

  // Count: key 4 changes four times; maxPerKey 2 keeps the last two.
  await store.insert([
    entry(4, 'upsert', at(10, 1), { id: 4, v: 'd1' }, '0/7:0'),
    entry(4, 'upsert', at(10, 2), { id: 4, v: 'd2' }, '0/8:0'),
    entry(4, 'upsert', at(11, 1), { id: 4, v: 'd3' }, '0/9:0'),
    entry(4, 'upsert', at(11, 2), { id: 4, v: 'd4' }, '0/a:0'),
  ], now);
  const trimmer = new HistoryPruner(store, () => retention(2), pino({ level: 'silent' }), () => now);
  await trimmer.pruneOnce();
  assert.equal((await metric()).trimmed! - (counts.trimmed ?? 0), 2);
  const tl = await store.timeline(P, T, ['["4"]']);
  assert.deepEqual(tl.map((e) => e.after?.v), ['d3', 'd4']);
  await assert.rejects(store.asof(P, T, at(10, 3)), /trimmed to their newest entries \(maxPerKey\) no longer reach back to .*\["4"\] \(from 2026-01-12T01:00:00.000Z\)/);
  assert.deepEqual(await rowsOf(store, at(11, 1)), { '["1"]': 'a0', '["3"]': 'c10', '["4"]': 'd3' });
});
