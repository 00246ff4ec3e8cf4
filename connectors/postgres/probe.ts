/**
 * PostgreSQL connections for probes and metrics queries (PgProbe), and the source monitor built on
 * one (src/capture/source.ts SourceMonitor: select 1, and the replication slot's lag and retained WAL).
 */
import pg from 'pg';
import type { SourceLag, SourceMonitor } from '../../src/capture/source.js';
import { errorMessage } from '../../src/core/errors.js';
import type { PgConnection, PgSourceConfig } from './spec.js';
import { pgClientConfig } from './connection.js';

/**
 * One lazily opened PostgreSQL connection for probes and metrics queries (select 1, slot lag).
 * A connection that breaks is dropped; the next query opens a new one.
 */
export class PgProbe {
  private conn?: { client: pg.Client; ready: Promise<pg.Client> };

  constructor(private readonly cfg: PgConnection, private readonly timeoutMs = 3000) {}

  private get where(): string {
    return `postgres ${this.cfg.host}:${this.cfg.port}/${this.cfg.database}`;
  }

  async query(text: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
    const client = await this.connect();
    try {
      return (await client.query(text, params)).rows;
    } catch (err) {
      // Not an SQLSTATE from the server: the connection itself is in trouble; open a new one next time.
      if (!/^[0-9A-Z]{5}$/.test((err as { code?: string }).code ?? '')) this.drop(client);
      throw new Error(`${this.where}: ${errorMessage(err)}`);
    }
  }

  private connect(): Promise<pg.Client> {
    if (!this.conn) {
      const client = new pg.Client(pgClientConfig(this.cfg, { application_name: 'syncline-probe', connectionTimeoutMillis: this.timeoutMs, query_timeout: this.timeoutMs }));
      client.on('error', () => this.drop(client));
      client.on('end', () => this.drop(client));
      const ready = client.connect().then(
        () => client,
        (err: unknown) => {
          this.drop(client);
          throw new Error(`${this.where}: cannot connect: ${errorMessage(err)}`);
        },
      );
      this.conn = { client, ready };
    }
    return this.conn.ready;
  }

  private drop(client: pg.Client): void {
    if (this.conn?.client !== client) return;
    this.conn = undefined;
    void client.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    const c = this.conn;
    this.conn = undefined;
    await c?.client.end().catch(() => undefined);
  }
}

/** The monitor of a PostgreSQL source: readiness, and its slot's lag and retained WAL in bytes. */
export class PgSourceMonitor implements SourceMonitor {
  private readonly probe: PgProbe;

  constructor(private readonly config: PgSourceConfig, timeoutMs: number) {
    this.probe = new PgProbe(config.connection, timeoutMs);
  }

  async ping(): Promise<void> {
    await this.probe.query('select 1');
  }

  async lag(): Promise<SourceLag | null> {
    const rows = await this.probe.query(
      `select (pg_current_wal_lsn() - confirmed_flush_lsn)::float8 as lag, (pg_current_wal_lsn() - restart_lsn)::float8 as retained, active
         from pg_replication_slots where slot_name = $1`,
      [this.config.slot],
    );
    const row = rows[0];
    if (!row) return null; // no slot (yet)
    return { lagBytes: row.lag == null ? null : Number(row.lag), retainedBytes: row.retained == null ? null : Number(row.retained), active: row.active === true };
  }

  async acknowledged(): Promise<string | null> {
    const rows = await this.probe.query(`select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1`, [this.config.slot]);
    return (rows[0]?.lsn as string | null | undefined) ?? null;
  }

  close(): Promise<void> {
    return this.probe.close();
  }
}

/** A monitor that only answers readiness, over a probe the caller also queries (`syncline doctor`). */
export function pingMonitor(probe: PgProbe): SourceMonitor {
  return { ping: async () => void (await probe.query('select 1')), lag: async () => null, close: () => probe.close() };
}
