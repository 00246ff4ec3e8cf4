/**
 * The change history's PostgreSQL store (ADR 0031), in a metadata database (config history.url, by
 * default audit.url). Tables in schema <schema> (created when missing):
 *   changes   one row per history entry, partitioned by range of applied_at, one partition per UTC
 *             day (changes_YYYYMMDD), created ahead (yesterday..tomorrow) before writes need them
 *   coverage  per (pipeline, table): the instant from which the history holds the table completely
 *             (its baseline); `asof` refuses anything earlier
 *   trimmed   per key whose oldest entries maxPerKey trimmed: the oldest instant it still reaches back to
 * Writes: insertSql() is run by a PostgreSQL sink inside its own transaction when the store lives in
 * the target's database; insert() otherwise (after the target commit). Both skip an entry already
 * stored with the same (pipeline, table, key, position, decision), so a retried write stores it once.
 * Retention (prune): per table, entries older than the start of the UTC day `days` ago are removed
 * once the table's state at that instant has been carried forward as `baseline` entries stamped
 * with it (so asof at or after it still rebuilds every key, changed since or not); whole day
 * partitions older than every table's cutoff are dropped, shorter retentions delete rows. Keys with
 * more than maxPerKey entries lose their oldest ones, recorded in `trimmed`.
 * Clock: every method that needs "now" takes it as an argument (tests inject it).
 */
import pg from 'pg';
import { classifyPgError } from '../../connectors/postgres/errors.js';
import { fatal } from '../core/errors.js';
import type { HistoryEntry, JsonRow, StoredEntry } from './history.js';

const DAY = 86_400_000;
const dayStart = (t: number) => Math.floor(t / DAY) * DAY;
const dayName = (t: number) => new Date(t).toISOString().slice(0, 10).replace(/-/g, '');
const dayIso = (t: number) => new Date(t).toISOString().slice(0, 10);

export interface PruneResult {
  partitionsDropped: number;
  rowsDeleted: number;
  carried: number;
  trimmed: number;
}

export interface Retention {
  days: number;
  maxPerKey: number;
}

export class HistoryStore {
  readonly pool: pg.Pool;
  private ensured?: Promise<void>;
  private readonly days = new Set<number>();

  constructor(readonly url: string, readonly schema: string) {
    this.pool = new pg.Pool({ connectionString: url, max: 3, idleTimeoutMillis: 10_000, connectionTimeoutMillis: 5_000 });
    this.pool.on('error', () => undefined);
  }

  private get t(): string {
    return `${this.schema}.changes`;
  }

  /** Create schema and tables when missing (once per store; again after a failure). */
  ensure(): Promise<void> {
    this.ensured ??= this.tx(async (c) => {
      const s = this.schema;
      await c.query(`select pg_advisory_xact_lock(hashtext($1))`, [`syncline.history.${s}`]);
      await c.query(`
        create schema if not exists ${s};
        create sequence if not exists ${s}.changes_seq;
        create table if not exists ${s}.changes (
          seq bigint not null default nextval('${s}.changes_seq'),
          applied_at timestamptz not null,
          pipeline text not null,
          tbl text not null,
          key text not null,
          key_row jsonb,
          op text not null,
          position text not null,
          commit_at timestamptz,
          decision text not null,
          strategy text,
          by text,
          before jsonb,
          before_known boolean not null,
          after jsonb,
          changed boolean not null
        ) partition by range (applied_at);
        create index if not exists changes_key on ${s}.changes (pipeline, tbl, key, applied_at, seq);
        -- The insert's dedup (an entry already stored: same pipeline, table, key, position, decision)
        -- looks entries up by key and position. An index on (pipeline, tbl, applied_at) alone, which
        -- the first version had, was taken for it by the planner on day partitions without statistics
        -- (not analyzed yet): every entry of the table read per row inserted, 70 changes/s instead
        -- of 4,800 at 40,000 entries (bench/history.ts). Truncates (a table's cut) keep their own.
        drop index if exists ${s}.changes_tbl;
        create index if not exists changes_dedup on ${s}.changes (pipeline, tbl, key, position);
        create index if not exists changes_truncates on ${s}.changes (pipeline, tbl, applied_at, seq) where op = 'truncate';
        create table if not exists ${s}.coverage (pipeline text not null, tbl text not null, since timestamptz not null, primary key (pipeline, tbl));
        create table if not exists ${s}.trimmed (pipeline text not null, tbl text not null, key text not null, since timestamptz not null, primary key (pipeline, tbl, key));
      `);
    }).catch((err) => {
      this.ensured = undefined;
      throw err;
    });
    return this.ensured;
  }

  /** Day partitions covering [from, to] exist (created under an advisory lock; cached). */
  async ensureDays(from: number, to: number): Promise<void> {
    await this.ensure();
    const want: number[] = [];
    for (let d = dayStart(from); d <= dayStart(to); d += DAY) if (!this.days.has(d)) want.push(d);
    if (want.length === 0) return;
    await this.tx(async (c) => {
      await c.query(`select pg_advisory_xact_lock(hashtext($1))`, [`syncline.history.${this.schema}`]);
      for (const d of want) {
        await c.query(`create table if not exists ${this.schema}.changes_${dayName(d)} partition of ${this.t} for values from ('${dayIso(d)}') to ('${dayIso(d + DAY)}')`);
      }
    });
    for (const d of want) this.days.add(d);
  }

  /** Partitions for writes around `now` (yesterday..tomorrow, UTC). */
  ready(now = Date.now()): Promise<void> {
    return this.ensureDays(now - DAY, now + DAY);
  }

  /** The statement storing these entries (skipping any already stored); run it on any session of the store's database. */
  insertSql(entries: HistoryEntry[]): { text: string; params: unknown[] } {
    const rows = entries.map((e) => ({
      pipeline: e.pipeline, tbl: e.table, key: e.key, key_row: e.keyRow, op: e.op, position: e.position,
      commit_at: e.commitTsMs === null ? null : new Date(e.commitTsMs).toISOString(),
      decision: e.decision, strategy: e.strategy, by: e.by, before: e.before, before_known: e.beforeKnown, after: e.after, changed: e.changed,
      applied_at: e.appliedAt ? e.appliedAt.toISOString() : null,
    }));
    const text = `insert into ${this.t} (applied_at, pipeline, tbl, key, key_row, op, position, commit_at, decision, strategy, by, before, before_known, after, changed)
      select coalesce(x.applied_at, clock_timestamp()), x.pipeline, x.tbl, x.key, x.key_row, x.op, x.position, x.commit_at, x.decision, x.strategy, x.by, x.before, x.before_known, x.after, x.changed
      from jsonb_to_recordset($1::jsonb) as x(pipeline text, tbl text, key text, key_row jsonb, op text, position text, commit_at timestamptz, decision text, strategy text, "by" text, before jsonb, before_known boolean, after jsonb, changed boolean, applied_at timestamptz)
      where not exists (select 1 from ${this.t} c where c.pipeline = x.pipeline and c.tbl = x.tbl and c.key = x.key and c.position = x.position and c.decision = x.decision)`;
    return { text, params: [JSON.stringify(rows)] };
  }

  /** Store entries from a session of its own (at-least-once path); returns how many were new. */
  async insert(entries: HistoryEntry[], now = Date.now()): Promise<number> {
    if (entries.length === 0) return 0;
    const times = entries.map((e) => e.appliedAt?.getTime() ?? now);
    await this.ensureDays(Math.min(now - DAY, ...times), Math.max(now + DAY, ...times));
    const s = this.insertSql(entries);
    const r = await this.q(s.text, s.params);
    return r.rowCount ?? 0;
  }

  /** The statement recording that the table's history is complete from `since` (kept if already there). */
  coverageSql(pipeline: string, table: string, since: Date): { text: string; params: unknown[] } {
    return { text: `insert into ${this.schema}.coverage (pipeline, tbl, since) values ($1, $2, $3) on conflict do nothing`, params: [pipeline, table, since.toISOString()] };
  }

  async coverage(pipeline: string, table: string): Promise<Date | null> {
    await this.ensure();
    const r = await this.q(`select since from ${this.schema}.coverage where pipeline = $1 and tbl = $2`, [pipeline, table]);
    return r.rows[0] ? new Date(r.rows[0].since) : null;
  }

  /** A key's entries, oldest first, within [since, until). */
  async timeline(pipeline: string, table: string, keys: string[], since?: Date, until?: Date): Promise<StoredEntry[]> {
    await this.ensure();
    const r = await this.q(
      `select seq::text, applied_at, pipeline, tbl, key, key_row, op, position, commit_at, decision, strategy, by, before, before_known, after, changed
         from ${this.t} where pipeline = $1 and tbl = $2 and key = any($3) and ($4::timestamptz is null or applied_at >= $4) and ($5::timestamptz is null or applied_at < $5)
        order by applied_at, seq`,
      [pipeline, table, keys, since?.toISOString() ?? null, until?.toISOString() ?? null],
    );
    return r.rows.map(stored);
  }

  /**
   * The table's rows as they were at `at` (after every change applied at or before it), by key.
   * Refuses (fatal HISTORY_NOT_COVERED) an instant before the table's coverage or before what a
   * trimmed key still reaches back to.
   */
  async asof(pipeline: string, table: string, at: Date): Promise<{ rows: { key: string; row: JsonRow; keyRow: JsonRow | null }[]; since: Date }> {
    const since = await this.covers(pipeline, table, at);
    const r = await this.q(
      `with cut as (
         select applied_at, seq from ${this.t} where pipeline = $1 and tbl = $2 and op = 'truncate' and changed and applied_at <= $3 order by applied_at desc, seq desc limit 1
       )
       select key, after, key_row from (
         select distinct on (key) key, after, key_row from ${this.t} c
          where pipeline = $1 and tbl = $2 and changed and op <> 'truncate' and applied_at <= $3
            and (not exists (select 1 from cut) or (c.applied_at, c.seq) > (select applied_at, seq from cut))
          order by key, applied_at desc, seq desc
       ) last where after is not null order by key`,
      [pipeline, table, at.toISOString()],
    );
    return { rows: r.rows.map((x: { key: string; after: JsonRow; key_row: JsonRow | null }) => ({ key: x.key, row: x.after, keyRow: x.key_row })), since };
  }

  /** How far the table's history reaches back (its coverage), when that includes `at`; else refused (fatal HISTORY_NOT_COVERED) naming why. */
  async covers(pipeline: string, table: string, at: Date): Promise<Date> {
    const since = await this.coverage(pipeline, table);
    if (!since) throw fatal('HISTORY_NOT_COVERED', `pipeline ${pipeline} table ${table}: the history has no baseline of this table (history was never enabled for it, or the store is not in the target's database and no baseline could be taken); it cannot be rebuilt`);
    if (at < since) throw fatal('HISTORY_NOT_COVERED', `pipeline ${pipeline} table ${table}: the history reaches back to ${since.toISOString()} only (its baseline, or the retention's cutoff); ${at.toISOString()} is earlier and cannot be rebuilt`);
    const trimmed = await this.q(`select key, since from ${this.schema}.trimmed where pipeline = $1 and tbl = $2 and since > $3 order by since desc limit 5`, [pipeline, table, at.toISOString()]);
    if (trimmed.rows.length > 0) {
      const keys = trimmed.rows.map((r: { key: string; since: Date }) => `${r.key} (from ${new Date(r.since).toISOString()})`).join(', ');
      throw fatal('HISTORY_NOT_COVERED', `pipeline ${pipeline} table ${table}: keys trimmed to their newest entries (maxPerKey) no longer reach back to ${at.toISOString()}: ${keys}; choose a later instant or raise maxPerKey`);
    }
    return since;
  }

  /**
   * What changed the table after `at` (rollback: the keys whose state may differ from `at`'s):
   * each key with a changed entry applied after it, with its key row, and whether a truncate was
   * among them (then every key the table had at `at` counts too).
   */
  async changedAfter(pipeline: string, table: string, at: Date): Promise<{ keys: Map<string, JsonRow>; truncated: boolean }> {
    await this.ensure();
    const r = await this.q(
      `select distinct on (key) key, key_row, op from ${this.t}
        where pipeline = $1 and tbl = $2 and changed and applied_at > $3 order by key, (op = 'truncate') desc`,
      [pipeline, table, at.toISOString()],
    );
    const keys = new Map<string, JsonRow>();
    let truncated = false;
    for (const x of r.rows as { key: string; key_row: JsonRow | null; op: string }[]) {
      if (x.op === 'truncate') truncated = true;
      else if (x.key_row) keys.set(x.key, x.key_row);
    }
    return { keys, truncated };
  }

  /**
   * Retention: see the header. `tables`: pipeline → table → retention, for every table of the
   * config that keeps history. Returns what was removed.
   */
  async prune(tables: Map<string, Map<string, Retention>>, now = Date.now()): Promise<PruneResult> {
    await this.ensure();
    const out: PruneResult = { partitionsDropped: 0, rowsDeleted: 0, carried: 0, trimmed: 0 };
    let longest = Infinity;
    for (const [pipeline, m] of tables) {
      for (const [table, ret] of m) {
        const cutoff = dayStart(now) - ret.days * DAY;
        longest = Math.min(longest, cutoff);
        await this.ensureDays(cutoff, cutoff);
        await this.tx(async (c) => {
          const old = await c.query(`select 1 from ${this.t} where pipeline = $1 and tbl = $2 and applied_at < $3 limit 1`, [pipeline, table, new Date(cutoff).toISOString()]);
          if (old.rowCount === 0) return;
          // The state at the cutoff, carried forward as baseline entries stamped with it.
          const carried = await c.query(
            `insert into ${this.t} (applied_at, pipeline, tbl, key, key_row, op, position, commit_at, decision, strategy, by, before, before_known, after, changed)
             select $3::timestamptz, pipeline, tbl, key, key_row, 'baseline', 'carried@' || $3, commit_at, 'baseline', null, null, null, false, after, true from (
               select distinct on (key) * from ${this.t} c
                where pipeline = $1 and tbl = $2 and changed and op <> 'truncate' and applied_at < $3
                  and not exists (select 1 from ${this.t} t where t.pipeline = $1 and t.tbl = $2 and t.op = 'truncate' and t.changed and t.applied_at < $3 and (t.applied_at, t.seq) > (c.applied_at, c.seq))
                order by key, applied_at desc, seq desc
             ) last where after is not null
               and not exists (select 1 from ${this.t} x where x.pipeline = $1 and x.tbl = $2 and x.key = last.key and x.position = 'carried@' || $3)`,
            [pipeline, table, new Date(cutoff).toISOString()],
          );
          out.carried += carried.rowCount ?? 0;
          const del = await c.query(`delete from ${this.t} where pipeline = $1 and tbl = $2 and applied_at < $3`, [pipeline, table, new Date(cutoff).toISOString()]);
          out.rowsDeleted += del.rowCount ?? 0;
          await c.query(
            `insert into ${this.schema}.coverage (pipeline, tbl, since) values ($1, $2, $3) on conflict (pipeline, tbl) do update set since = greatest(${this.schema}.coverage.since, excluded.since)`,
            [pipeline, table, new Date(cutoff).toISOString()],
          );
          await c.query(`delete from ${this.schema}.trimmed where pipeline = $1 and tbl = $2 and since <= $3`, [pipeline, table, new Date(cutoff).toISOString()]);
        });
        // maxPerKey: the newest entries of each key are kept; the oldest kept one's instant is how far the key reaches back.
        await this.tx(async (c) => {
          const over = await c.query(
            `with ranked as (
               select seq, key, applied_at, row_number() over (partition by key order by applied_at desc, seq desc) rn from ${this.t} where pipeline = $1 and tbl = $2
             ), reach as (
               select key, applied_at as since from ranked where rn = $3
             ), gone as (
               delete from ${this.t} c using ranked r where c.pipeline = $1 and c.tbl = $2 and c.seq = r.seq and c.applied_at = r.applied_at and r.rn > $3 returning c.key
             ), marked as (
               insert into ${this.schema}.trimmed (pipeline, tbl, key, since) select $1, $2, key, since from reach where key in (select key from gone)
               on conflict (pipeline, tbl, key) do update set since = greatest(${this.schema}.trimmed.since, excluded.since) returning 1
             )
             select (select count(*) from gone)::int as n, (select count(*) from marked)::int as m`,
            [pipeline, table, ret.maxPerKey],
          );
          out.trimmed += over.rows[0].n;
        });
      }
    }
    // Whole partitions older than every table's cutoff (their rows were carried forward and deleted above).
    if (longest !== Infinity) {
      const parts = await this.q(
        `select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent join pg_namespace n on n.oid = p.relnamespace
          where n.nspname = $1 and p.relname = 'changes'`,
        [this.schema],
      );
      for (const { relname } of parts.rows as { relname: string }[]) {
        const m = /^changes_(\d{4})(\d{2})(\d{2})$/.exec(relname);
        if (!m) continue;
        const start = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
        if (start + DAY > longest) continue;
        await this.q(`drop table if exists ${this.schema}.${relname}`);
        this.days.delete(start);
        out.partitionsDropped++;
      }
    }
    return out;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  private async q(text: string, params: unknown[] = []): Promise<pg.QueryResult> {
    try {
      return await this.pool.query(text, params);
    } catch (err) {
      throw classifyPgError(err, `history store (${this.schema})`);
    }
  }

  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let c: pg.PoolClient;
    try {
      c = await this.pool.connect();
    } catch (err) {
      throw classifyPgError(err, `history store (${this.schema}): connect`);
    }
    try {
      await c.query('begin');
      const v = await fn(c);
      await c.query('commit');
      c.release();
      return v;
    } catch (err) {
      await c.query('rollback').catch(() => undefined);
      c.release();
      throw classifyPgError(err, `history store (${this.schema})`);
    }
  }
}

function stored(r: Record<string, unknown>): StoredEntry {
  const iso = (v: unknown) => (v === null || v === undefined ? null : new Date(v as string).toISOString());
  return {
    seq: r.seq as string, appliedAt: iso(r.applied_at)!, pipeline: r.pipeline as string, table: r.tbl as string, key: r.key as string, keyRow: r.key_row as JsonRow | null,
    op: r.op as StoredEntry['op'], position: r.position as string, commitAt: iso(r.commit_at), commitTsMs: r.commit_at ? new Date(r.commit_at as string).getTime() : null,
    decision: r.decision as StoredEntry['decision'], strategy: r.strategy as string | null, by: r.by as string | null,
    before: r.before as JsonRow | null, beforeKnown: r.before_known as boolean, after: r.after as JsonRow | null, changed: r.changed as boolean,
  };
}
