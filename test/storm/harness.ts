/**
 * Two-way and multi-way storm (`npm run storm`, and short runs in test/two-way.int.test.ts and
 * test/multi-way.int.test.ts). Two sides: databases A and B paired as in docs/conflicts.md (a-to-b
 * and b-to-a, latest-timestamp on updated_at, peers, B's change topics under their own
 * changeTopicPrefix). Three sides: the mesh of docs/conflicts.md, Multi-way sync (a pipeline each way
 * between every two of A, B, C, peers pairwise; the second pipeline leaving each database follows
 * the first, one capture per database). `rows` identical rows, then `seconds` of random updates,
 * upserts (INSERT … ON CONFLICT DO UPDATE) and deletes on ids 1..`keys` from every side at `rate`
 * transactions per second each, every statement its own transaction. The verdict: after the
 * clients stop, every side holds the same rows (compared row by row), with the keys that differ, and
 * each pipeline's counters; the writes into each side are bounded by the changes made elsewhere (an
 * echo or a ping-pong would multiply them).
 */
import { checksum, sleep, sql, startRuntime, testEnv, waitFor, withClient, type TestPipeline } from '../helpers.js';
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
  /** How long the sides may take to agree after the clients stop. */
  settleMs: number;
  /** Databases kept equal: 2 (a two-way pair, the default) or 3 (a mesh). */
  sides?: 2 | 3;
  log?: (line: string) => void;
}

export interface StormReport {
  ok: boolean;
  seconds: number;
  sides: string[];
  /** Transactions committed on each side, and failed ones (deadlocks between a side's own clients). */
  transactions: Record<string, number>;
  ops: Record<string, number>;
  /** Seconds from the clients' stop until every side agreed (null: not within settleMs). */
  convergedAfterS: number | null;
  /** Rows on each side at the end. */
  rows: Record<string, number>;
  /** Keys whose rows differ (id: each side's row), at most 50. */
  differing: string[];
  differingCount: number;
  /** Every change of the first keys that differ, on every side, in time order (seconds from the clients' start). */
  trails: string[];
  /** Rows written into each side by syncline (applied, conflicts settled, re-published) against the transactions made on the other sides. */
  writesInto: Record<string, { written: number; madeElsewhere: number }>;
  pipelines: Record<string, { applied: number; unchanged: number; conflicts: number; republished: number; deadLettered: number; captured: number | null; echoSkipped: number | null }>;
}

const DDL = `create table items (id int primary key, name text not null, qty int not null, updated_at timestamptz not null default clock_timestamp())`;
/**
 * Every row change of items on a side, with who made it (application_name: a client of the storm,
 * or syncline-sink-<pipeline>) and its transaction: the trail of a key that ends different.
 */
const TRAIL_DDL = `
  create table storm_log (n bigserial primary key, at timestamptz not null default clock_timestamp(), xid bigint not null default txid_current(), app text not null default current_setting('application_name'), op text not null, id int not null, name text, updated_at timestamptz);
  create function storm_log() returns trigger language plpgsql as $$ begin
    if tg_op = 'DELETE' then insert into storm_log (op, id, name, updated_at) values ('D', old.id, old.name, old.updated_at); return old; end if;
    insert into storm_log (op, id, name, updated_at) values (left(tg_op, 1), new.id, new.name, new.updated_at); return new; end $$;
  create trigger storm_log after insert or update or delete on items for each row execute function storm_log();`;

export async function runStorm(o: StormOptions): Promise<StormReport> {
  const log = o.log ?? (() => undefined);
  const conflict = { strategy: 'latest-timestamp', field: 'updated_at' };
  const sides = o.sides === 3 ? ['A', 'B', 'C'] : ['A', 'B'];
  const lower = (x: string) => x.toLowerCase();
  const pipelines: TestPipeline[] =
    sides.length === 2
      ? [
          { name: 'a-to-b', tables: [{ source: 'public.items' }], conflict, peer: 'b-to-a' },
          { name: 'b-to-a', tables: [{ source: 'public.items' }], conflict, peer: 'a-to-b', reverse: true },
        ]
      : // Each database's first pipeline captures it, the second follows that one.
        sides.flatMap((from, i) => {
          const others = sides.filter((x) => x !== from);
          const name = (to: string) => `${lower(from)}-to-${lower(to)}`;
          return others.map((to, k) => ({
            name: name(to),
            tables: [{ source: 'public.items' }],
            conflict,
            peer: `${lower(to)}-to-${lower(from)}`,
            between: [i, sides.indexOf(to)] as [number, number],
            ...(k > 0 ? { follows: name(others[0]!) } : {}),
          }));
        });
  // The retry policy a user gets by default (tests elsewhere shorten it).
  const env = await testEnv(pipelines, { retry: { retries: 3, initialDelayMs: 1000, maxDelayMs: 30000 }, databases: sides.length });
  try {
    const db = Object.fromEntries(sides.map((x, i) => [x, env.dbs[i]!]));
    for (const x of sides) await sql(db[x]!, DDL + ';' + TRAIL_DDL);
    await sql(db.A!, `insert into items (id, name, qty) select g, 'item ' || g, g from generate_series(1, $1::int) g`, [o.rows]);
    // The other sides start empty and receive A's rows by A's snapshot (B's and C's captures leave out what a-to-b and a-to-c wrote).
    const { rt } = await startRuntime(env);
    const same = async () => {
      const sums = await Promise.all(sides.map((x) => checksum(db[x]!, 'items', 'id')));
      return sums.every((c) => c.md5 === sums[0]!.md5 && c.count === sums[0]!.count);
    };
    await waitFor(`${sides.slice(1).join(' and ')} hold the snapshot of A`, same, 120000);
    log(`storm: ${o.rows} identical rows on ${sides.join(', ')}; ${o.seconds} s of updates, upserts and deletes on ids 1-${o.keys} at ${o.rate} tx/s per side`);

    const ops: Record<string, number> = {};
    const done: Record<string, number> = Object.fromEntries([...sides.map((x) => [x, 0]), ['failed', 0]]);
    const until = Date.now() + o.seconds * 1000;
    const everyMs = (1000 * o.clients) / o.rate;
    const client = (side: string, n: number) =>
      withClient(db[side]!, async (c: pg.Client) => {
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
            done[side]!++;
          } catch {
            // A deadlock or serialization failure between two clients of one side: the statement did
            // nothing (it is a user's transaction that failed, not a change to carry).
            done.failed!++;
          }
        }
      });
    await Promise.all(Array.from({ length: o.clients }, (_, n) => sides.map((x) => client(x, n))).flat());
    const stoppedAt = Date.now();
    log(`storm: clients stopped (${sides.map((x) => `${x} ${done[x]} tx`).join(', ')}, ${done.failed} failed); waiting for ${sides.join(' = ')}`);

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
    const rowsOf = async (d: string) => new Map((await sql(d, 'select * from items')).rows.map((r) => [r.id as number, JSON.stringify(r)]));
    const all = await Promise.all(sides.map((x) => rowsOf(db[x]!)));
    const ids = [...new Set(all.flatMap((m) => [...m.keys()]))];
    const diff = ids.filter((id) => all.some((m) => m.get(id) !== all[0]!.get(id))).sort((x, y) => x - y);
    // The trail of the first keys that differ: every change of the key on every side, in time order.
    const trails: string[] = [];
    if (diff.length > 0) {
      const picked = diff.slice(0, 5);
      const logs = await Promise.all(sides.map(async (x) => (await sql(db[x]!, `select (extract(epoch from at) * 1000)::float8 as at, xid, app, op, id, name, (extract(epoch from updated_at) * 1000)::float8 as ts from storm_log where id = any($1::int[])`, [picked])).rows.map((r) => ({ side: x, ...r }))));
      const t0 = stoppedAt - o.seconds * 1000;
      for (const id of picked) {
        const lines = logs.flat().filter((r) => r.id === id).sort((a, b) => a.at - b.at);
        trails.push(`key ${id}:`, ...lines.map((r) => `    +${((r.at - t0) / 1000).toFixed(3)} s ${r.side} ${r.op} ${String(r.name ?? '').padEnd(10)} ts +${r.ts === null ? '-' : ((r.ts - t0) / 1000).toFixed(3)} xid ${r.xid} by ${String(r.app).replace('syncline-sink-', 'sink ')}`));
      }
    }
    const perPipeline: StormReport['pipelines'] = {};
    for (const p of rt.pipelines) {
      const s = p.applier!.stats;
      perPipeline[p.name] = { applied: s.applied, unchanged: s.skippedUnchanged, conflicts: s.conflicts, republished: s.republished, deadLettered: s.deadLettered, captured: p.capture?.stats.changes ?? null, echoSkipped: p.capture?.stats.echoSkipped ?? null };
    }
    const writesInto: StormReport['writesInto'] = {};
    for (const x of sides) {
      const into = Object.entries(perPipeline).filter(([n]) => n.endsWith(`-to-${lower(x)}`)).map(([, v]) => v);
      writesInto[x] = { written: into.reduce((n, v) => n + v.applied + v.conflicts + v.republished, 0), madeElsewhere: sides.filter((y) => y !== x).reduce((n, y) => n + done[y]!, 0) };
    }
    return {
      ok: diff.length === 0 && convergedAfterS !== null && Object.values(perPipeline).every((p) => p.deadLettered === 0),
      seconds: o.seconds,
      sides,
      transactions: done,
      ops,
      convergedAfterS,
      rows: Object.fromEntries(sides.map((x, i) => [x, all[i]!.size])),
      differing: diff.slice(0, 50).map((id) => `${id}: ${all.map((m) => m.get(id) ?? 'none').join(' | ')}`),
      differingCount: diff.length,
      trails,
      writesInto,
      pipelines: perPipeline,
    };
  } finally {
    await env.cleanup();
  }
}

export function stormText(r: StormReport): string {
  const lines = [
    `${r.sides.length === 2 ? 'two-way' : `${r.sides.length}-way`} storm: ${r.ok ? 'PASSED' : 'FAILED'} — ${r.seconds} s, ${r.sides.map((x) => `${x} ${r.transactions[x]} tx`).join(', ')} (${r.transactions.failed} failed), ops ${JSON.stringify(r.ops)}`,
    `  converged ${r.convergedAfterS === null ? 'NOT within the settle time' : `${r.convergedAfterS.toFixed(1)} s after the clients stopped`}; rows ${r.sides.map((x) => `${x} ${r.rows[x]}`).join(', ')}; keys that differ: ${r.differingCount}`,
    `  writes into each side (applied + conflicts + re-published) against the transactions made on the others: ${r.sides.map((x) => `${x} ${r.writesInto[x]!.written} / ${r.writesInto[x]!.madeElsewhere}`).join(', ')}`,
    ...Object.entries(r.pipelines).map(([n, p]) => `  ${n}: ${p.captured === null ? 'no capture of its own' : `captured ${p.captured} (echo skipped ${p.echoSkipped})`}, applied ${p.applied}, unchanged ${p.unchanged}, conflicts ${p.conflicts}, re-published ${p.republished}, dead-lettered ${p.deadLettered}`),
    ...r.differing.map((d) => `  differs ${d}`),
    ...r.trails.map((t) => `  ${t}`),
  ];
  return lines.join('\n');
}
