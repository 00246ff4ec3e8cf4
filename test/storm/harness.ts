/**
 * Two-way storm (`npm run storm`, and a short run in test/two-way.int.test.ts): databases A and B
 * paired as in docs/conflicts.md (a-to-b and b-to-a, latest-timestamp on updated_at, peers, B's
 * change topics under their own changeTopicPrefix), `rows` identical rows, then `seconds` of random
 * updates, upserts (INSERT … ON CONFLICT DO UPDATE) and deletes on ids 1..`keys` from both sides at
 * `rate` transactions per second each, every statement its own transaction. The verdict: after the
 * clients stop, A and B hold the same rows (compared row by row), with the keys that differ, the
 * decisions each pipeline logged for them, and each pipeline's counters.
 */
import { checksum, sleep, sql, startRuntime, testEnv, waitFor, withClient } from '../helpers.js';
import type pg from 'pg';

export interface StormOptions {
  seconds: number;
  /** Transactions per second on each side. */
  rate: number;
  /** Rows both sides start with (ids 1..rows). */
  rows: number;
  /** Ids the clients touch (1..keys): keys above `rows` are inserted by upserts. */
  keys: number;
  /** Clients per side. */
  clients: number;
  /** How long A and B may take to agree after the clients stop. */
  settleMs: number;
  log?: (line: string) => void;
}

export interface StormReport {
  ok: boolean;
  seconds: number;
  transactions: { A: number; B: number; failed: number };
  ops: Record<string, number>;
  /** Seconds from the clients' stop until A = B (null: they did not agree within settleMs). */
  convergedAfterS: number | null;
  rowsA: number;
  rowsB: number;
  /** Keys whose rows differ (id: A's row | B's row), at most 50. */
  differing: string[];
  differingCount: number;
  pipelines: Record<string, { applied: number; unchanged: number; conflicts: number; deadLettered: number; captured: number; echoSkipped: number }>;
}

const DDL = `create table items (id int primary key, name text not null, qty int not null, updated_at timestamptz not null default clock_timestamp())`;

export async function runStorm(o: StormOptions): Promise<StormReport> {
  const log = o.log ?? (() => undefined);
  const conflict = { strategy: 'latest-timestamp', field: 'updated_at' };
  // The retry policy a user gets by default (tests elsewhere shorten it).
  const env = await testEnv([
    { name: 'a-to-b', tables: [{ source: 'public.items' }], conflict, peer: 'b-to-a' },
    { name: 'b-to-a', tables: [{ source: 'public.items' }], conflict, peer: 'a-to-b', reverse: true },
  ], { retry: { retries: 3, initialDelayMs: 1000, maxDelayMs: 30000 } });
  try {
    const A = env.sourceDb;
    const B = env.targetDb;
    await sql(A, DDL);
    await sql(B, DDL);
    await sql(A, `insert into items (id, name, qty) select g, 'item ' || g, g from generate_series(1, $1::int) g`, [o.rows]);
    const { rt } = await startRuntime(env);
    const same = async () => {
      const [a, b] = await Promise.all([checksum(A, 'items', 'id'), checksum(B, 'items', 'id')]);
      return a.md5 === b.md5 && a.count === b.count;
    };
    await waitFor('B holds the snapshot of A', same, 120000);
    log(`storm: ${o.rows} identical rows on A and B; ${o.seconds} s of updates, upserts and deletes on ids 1-${o.keys} at ${o.rate} tx/s per side`);

    const ops: Record<string, number> = {};
    const done = { A: 0, B: 0, failed: 0 };
    const until = Date.now() + o.seconds * 1000;
    const everyMs = (1000 * o.clients) / o.rate;
    const client = (side: 'A' | 'B', n: number) =>
      withClient(side === 'A' ? A : B, async (c: pg.Client) => {
        let next = Date.now() + Math.random() * everyMs;
        let i = 0;
        while (next < until) {
          const wait = next - Date.now();
          if (wait > 0) await sleep(wait);
          next += everyMs;
          i++;
          const id = 1 + Math.floor(Math.random() * o.keys);
          const name = `${side}${n}-${i}`;
          const dice = Math.random();
          const op = dice < 0.45 ? 'update' : dice < 0.8 ? 'upsert' : 'delete';
          ops[op] = (ops[op] ?? 0) + 1;
          try {
            if (op === 'update') await c.query(`update items set name = $2, qty = qty + 1, updated_at = clock_timestamp() where id = $1`, [id, name]);
            else if (op === 'upsert') await c.query(`insert into items (id, name, qty) values ($1, $2, 0) on conflict (id) do update set name = excluded.name, qty = items.qty + 1, updated_at = clock_timestamp()`, [id, name]);
            else await c.query(`delete from items where id = $1`, [id]);
            done[side]++;
          } catch {
            // A deadlock or serialization failure between two clients of one side: the statement did
            // nothing (it is a user's transaction that failed, not a change to carry).
            done.failed++;
          }
        }
      });
    await Promise.all(Array.from({ length: o.clients }, (_, n) => [client('A', n), client('B', n)]).flat());
    const stoppedAt = Date.now();
    log(`storm: clients stopped (A ${done.A} tx, B ${done.B} tx, ${done.failed} failed); waiting for A = B`);

    let convergedAfterS: number | null = null;
    // Agreeing once is not enough: changes may still be on their way; agreeing and nothing applied for 3 s is.
    const applied = () => rt.pipelines.reduce((n, p) => n + (p.applier?.stats.applied ?? 0) + (p.applier?.stats.conflicts ?? 0), 0);
    const settleUntil = stoppedAt + o.settleMs;
    while (Date.now() < settleUntil) {
      const before = applied();
      if (await same()) {
        const at = Date.now();
        await sleep(3000);
        if (applied() === before && (await same())) {
          convergedAfterS = (at - stoppedAt) / 1000;
          break;
        }
        continue;
      }
      await sleep(500);
    }
    const rows = async (db: string) => new Map((await sql(db, 'select * from items')).rows.map((r) => [r.id as number, JSON.stringify(r)]));
    const [ra, rb] = await Promise.all([rows(A), rows(B)]);
    const diff = [...new Set([...ra.keys(), ...rb.keys()])].filter((id) => ra.get(id) !== rb.get(id)).sort((x, y) => x - y);
    const pipelines: StormReport['pipelines'] = {};
    for (const p of rt.pipelines) {
      const s = p.applier!.stats;
      pipelines[p.name] = { applied: s.applied, unchanged: s.skippedUnchanged, conflicts: s.conflicts, deadLettered: s.deadLettered, captured: p.capture!.stats.changes, echoSkipped: p.capture!.stats.echoSkipped };
    }
    return {
      ok: diff.length === 0 && convergedAfterS !== null && Object.values(pipelines).every((p) => p.deadLettered === 0),
      seconds: o.seconds,
      transactions: done,
      ops,
      convergedAfterS,
      rowsA: ra.size,
      rowsB: rb.size,
      differing: diff.slice(0, 50).map((id) => `${id}: ${ra.get(id) ?? 'none'} | ${rb.get(id) ?? 'none'}`),
      differingCount: diff.length,
      pipelines,
    };
  } finally {
    await env.cleanup();
  }
}

export function stormText(r: StormReport): string {
  const lines = [
    `two-way storm: ${r.ok ? 'PASSED' : 'FAILED'} — ${r.seconds} s, A ${r.transactions.A} tx, B ${r.transactions.B} tx (${r.transactions.failed} failed), ops ${JSON.stringify(r.ops)}`,
    `  converged ${r.convergedAfterS === null ? 'NOT within the settle time' : `${r.convergedAfterS.toFixed(1)} s after the clients stopped`}; rows A ${r.rowsA}, B ${r.rowsB}; keys that differ: ${r.differingCount}`,
    ...Object.entries(r.pipelines).map(([n, p]) => `  ${n}: captured ${p.captured} (echo skipped ${p.echoSkipped}), applied ${p.applied}, unchanged ${p.unchanged}, conflicts ${p.conflicts}, dead-lettered ${p.deadLettered}`),
    ...r.differing.map((d) => `  differs ${d}`),
  ];
  return lines.join('\n');
}
