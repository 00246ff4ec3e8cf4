/**
 * The audit trail's PostgreSQL store (config `audit`): one table of entries and one of signed
 * checkpoints in a metadata database, created when missing.
 *
 * Append-only: a trigger refuses UPDATE, TRUNCATE and DELETE on both tables, except DELETE of
 * entries inside <table>_prune(seq), which deletes only up to a signed checkpoint. (A database
 * superuser can still disable triggers: that is what the hash chain and the signatures detect.)
 *
 * Concurrency: every append, checkpoint and prune takes a transaction-level advisory lock on the
 * table's name and reads the chain's tip in the same transaction, so appenders in several processes
 * never fork the chain. A batch carries ids given when the actions were recorded: an append retried
 * after an ambiguous commit skips those already stored.
 */
import type { KeyObject } from 'node:crypto';
import pg from 'pg';
import { classifyPgError } from '../../../connectors/postgres/errors.js';
import { entryHash, GENESIS, signCheckpoint, type AuditEntry, type Checkpoint, type Json } from './chain.js';

/** An action recorded, before it has its place in the chain. */
export interface PendingEntry {
  id: string;
  at: string;
  actor: string;
  role: string | null;
  action: string;
  object: string | null;
  details: { [k: string]: Json };
}

export interface ListFilter {
  since?: string;
  actor?: string;
  action?: string;
  limit?: number;
  /** Newest first (list) or oldest first (export, verify). */
  order?: 'asc' | 'desc';
}

const iso = (v: Date | string) => new Date(v).toISOString();

export class AuditStore {
  readonly pool: pg.Pool;
  private ensured?: Promise<void>;

  constructor(readonly url: string, readonly table: string) {
    this.pool = new pg.Pool({ connectionString: url, max: 2, idleTimeoutMillis: 10_000, connectionTimeoutMillis: 5_000 });
    this.pool.on('error', () => undefined); // an idle client's lost connection: the next query reconnects
  }

  private get cp(): string {
    return `${this.table}_checkpoints`;
  }

  /** Create the tables, trigger and prune function when missing (once per store; retried after a failure). */
  ensure(): Promise<void> {
    this.ensured ??= this.tx(async (c) => {
      const t = this.table;
      const exists = await c.query(`select to_regclass($1) is not null and to_regproc($2) is not null as ok`, [t, `${t}_prune`]);
      if (exists.rows[0].ok) return;
      await c.query(`
        create table if not exists ${t} (
          seq bigint primary key,
          id uuid not null unique,
          at timestamptz not null,
          actor text not null,
          role text,
          action text not null,
          object text,
          details text not null,
          prev_hash char(64) not null,
          hash char(64) not null
        );
        create index if not exists ${t}_at on ${t} (at);
        create table if not exists ${this.cp} (
          seq bigint primary key,
          hash char(64) not null,
          at timestamptz not null,
          key_id text not null,
          signature text not null
        );
        create or replace function ${t}_append_only() returns trigger language plpgsql as $f$
        begin
          if TG_OP = 'DELETE' and TG_TABLE_NAME = '${t}' and current_setting('syncline.audit_prune', true) = 'on' then return old; end if;
          raise exception 'the audit trail table % is append-only: % refused', TG_TABLE_NAME, TG_OP using errcode = '42501';
        end $f$;
        create or replace trigger ${t}_append_only before update or delete on ${t} for each row execute function ${t}_append_only();
        create or replace trigger ${t}_no_truncate before truncate on ${t} for each statement execute function ${t}_append_only();
        create or replace trigger ${t}_cp_append_only before update or delete on ${this.cp} for each row execute function ${t}_append_only();
        create or replace trigger ${t}_cp_no_truncate before truncate on ${this.cp} for each statement execute function ${t}_append_only();
        create or replace function ${t}_prune(through bigint) returns bigint language plpgsql as $f$
        declare n bigint;
        begin
          if not exists (select 1 from ${this.cp} where seq = through) then
            raise exception 'audit prune: no signed checkpoint at seq % (pruning stops at a checkpoint)', through;
          end if;
          perform set_config('syncline.audit_prune', 'on', true);
          delete from ${t} where seq <= through;
          get diagnostics n = row_count;
          perform set_config('syncline.audit_prune', 'off', true);
          return n;
        end $f$;
      `);
    }).catch((err: unknown) => {
      this.ensured = undefined;
      throw err;
    });
    return this.ensured;
  }

  /** A transaction holding the chain's advisory lock. */
  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let c: pg.PoolClient;
    try {
      c = await this.pool.connect();
    } catch (err) {
      throw classifyPgError(err, `audit database (audit.url)`);
    }
    // A connection lost mid-transaction is reported by the query that fails; the client's own error event must not go unheard.
    const quiet = () => undefined;
    c.on('error', quiet);
    let broken: Error | undefined;
    try {
      await c.query('begin');
      await c.query('select pg_advisory_xact_lock(hashtext($1))', [`syncline.audit:${this.table}`]);
      const r = await fn(c);
      await c.query('commit');
      return r;
    } catch (err) {
      broken = err as Error;
      await c.query('rollback').catch(() => undefined);
      throw classifyPgError(err, `audit database (audit.url), table ${this.table}`);
    } finally {
      c.off('error', quiet);
      c.release(broken);
    }
  }

  /** The chain's tip: the last entry, else the last checkpoint (everything pruned), else the genesis. */
  private async tip(c: pg.PoolClient): Promise<{ seq: number; hash: string }> {
    const r = await c.query(`select seq, hash from ${this.table} order by seq desc limit 1`);
    if (r.rows[0]) return { seq: Number(r.rows[0].seq), hash: r.rows[0].hash };
    const k = await c.query(`select seq, hash from ${this.cp} order by seq desc limit 1`);
    if (k.rows[0]) return { seq: Number(k.rows[0].seq), hash: k.rows[0].hash };
    return { seq: 0, hash: GENESIS };
  }

  /** Append entries in order at the chain's tip; returns those appended (ids already stored are skipped). */
  async append(batch: PendingEntry[]): Promise<AuditEntry[]> {
    await this.ensure();
    if (batch.length === 0) return [];
    return this.tx(async (c) => {
      const have = await c.query(`select id::text from ${this.table} where id = any($1::uuid[])`, [batch.map((b) => b.id)]);
      const stored = new Set(have.rows.map((r: { id: string }) => r.id));
      let { seq, hash } = await this.tip(c);
      const out: AuditEntry[] = [];
      for (const b of batch) {
        if (stored.has(b.id)) continue;
        const e = { ...b, seq: ++seq };
        const h = entryHash(hash, e);
        out.push({ ...e, prevHash: hash, hash: h });
        hash = h;
      }
      if (out.length === 0) return out;
      await c.query(
        `insert into ${this.table} (seq, id, at, actor, role, action, object, details, prev_hash, hash)
         select * from unnest($1::bigint[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])`,
        [out.map((e) => e.seq), out.map((e) => e.id), out.map((e) => e.at), out.map((e) => e.actor), out.map((e) => e.role), out.map((e) => e.action), out.map((e) => e.object), out.map((e) => JSON.stringify(e.details)), out.map((e) => e.prevHash), out.map((e) => e.hash)],
      );
      return out;
    });
  }

  /** Sign a checkpoint at the tip when entries came since the last one; returns it (undefined: nothing new). */
  async checkpoint(privateKey: KeyObject, publicKey: KeyObject): Promise<Checkpoint | undefined> {
    await this.ensure();
    return this.tx(async (c) => {
      const last = await c.query(`select seq, hash from ${this.table} order by seq desc limit 1`);
      if (!last.rows[0]) return undefined;
      const seq = Number(last.rows[0].seq);
      const prev = await c.query(`select max(seq) as seq from ${this.cp}`);
      if (prev.rows[0].seq !== null && Number(prev.rows[0].seq) >= seq) return undefined;
      const cp = signCheckpoint({ seq, hash: last.rows[0].hash, at: new Date().toISOString() }, privateKey, publicKey);
      await c.query(`insert into ${this.cp} (seq, hash, at, key_id, signature) values ($1, $2, $3, $4, $5)`, [cp.seq, cp.hash, cp.at, cp.keyId, cp.signature]);
      return cp;
    });
  }

  /**
   * Prune entries older than `before`, up to the newest signed checkpoint whose entry is older than
   * that (the chain stays verifiable from it). Returns the checkpoint pruned through and the count.
   */
  async prune(before: Date): Promise<{ through: number; hash: string; deleted: number } | undefined> {
    await this.ensure();
    return this.tx(async (c) => {
      const r = await c.query(`select k.seq, k.hash from ${this.cp} k join ${this.table} e on e.seq = k.seq where e.at < $1 order by k.seq desc limit 1`, [before.toISOString()]);
      if (!r.rows[0]) return undefined;
      const through = Number(r.rows[0].seq);
      const d = await c.query(`select ${this.table}_prune($1) as n`, [through]);
      return { through, hash: r.rows[0].hash as string, deleted: Number(d.rows[0].n) };
    });
  }

  async list(f: ListFilter = {}): Promise<AuditEntry[]> {
    await this.ensure();
    const where: string[] = [];
    const params: unknown[] = [];
    if (f.since) where.push(`at >= $${params.push(f.since)}`);
    if (f.actor) where.push(`actor = $${params.push(f.actor)}`);
    if (f.action) where.push(f.action.endsWith('*') ? `action like $${params.push(f.action.slice(0, -1).replace(/[\\%_]/g, '\\$&') + '%')}` : `action = $${params.push(f.action)}`);
    const limit = f.limit !== undefined ? ` limit ${Math.max(0, Math.floor(f.limit))}` : '';
    const r = await this.query(`select * from ${this.table}${where.length ? ` where ${where.join(' and ')}` : ''} order by seq ${f.order === 'desc' ? 'desc' : 'asc'}${limit}`, params);
    return r.rows.map(rowEntry);
  }

  async checkpoints(): Promise<Checkpoint[]> {
    await this.ensure();
    const r = await this.query(`select * from ${this.cp} order by seq`);
    return r.rows.map((k: Record<string, unknown>) => ({ seq: Number(k.seq), hash: String(k.hash), at: iso(k.at as Date), keyId: String(k.key_id), signature: String(k.signature) }));
  }

  private async query(text: string, params: unknown[] = []): Promise<pg.QueryResult> {
    try {
      return await this.pool.query(text, params);
    } catch (err) {
      throw classifyPgError(err, `audit database (audit.url), table ${this.table}`);
    }
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}

function rowEntry(r: Record<string, unknown>): AuditEntry {
  let details: AuditEntry['details'];
  try {
    details = JSON.parse(String(r.details)) as AuditEntry['details'];
  } catch {
    details = { unreadable: String(r.details) };
  }
  return {
    seq: Number(r.seq), id: String(r.id), at: iso(r.at as Date), actor: String(r.actor), role: r.role === null ? null : String(r.role),
    action: String(r.action), object: r.object === null ? null : String(r.object), details, prevHash: String(r.prev_hash), hash: String(r.hash),
  };
}
