/**
 * The PostgreSQL capture lock (src/capture/leadership.ts, docs/adr/0034-standby-capture.md): a
 * session-level advisory lock on the source database, key hashtextextended('syncline.capture:' ||
 * slot, 0), held on a connection of its own. PostgreSQL releases a session lock when its backend
 * ends, so a killed holder frees it as soon as its connection is gone. The connection is checked
 * every poll interval while held (a query), so a lost lock is seen within that bound.
 */
import os from 'node:os';
import pg from 'pg';
import type { PgConnection } from '../spec.js';
import { pgClientConfig } from '../connection.js';
import { classifyPgError } from '../errors.js';
import { ConnectionLeaderLock } from '../../../src/capture/leadership.js';

const KEY = `hashtextextended('syncline.capture:' || $1::text, 0)`;

export class PgLeaderLock extends ConnectionLeaderLock<pg.Client> {
  constructor(private readonly c: PgConnection, private readonly slot: string, pipeline: string, pollMs: number) {
    super(`advisory lock syncline.capture:${slot} on ${c.host}:${c.port}/${c.database}`, pollMs, pipeline);
  }

  protected async connect(dropped: (err: Error) => void): Promise<pg.Client> {
    const client = new pg.Client(pgClientConfig(this.c, { application_name: `syncline capture ${this.pipeline} (${os.hostname()} pid ${process.pid})`.slice(0, 63), keepAlive: true }));
    client.on('error', (err) => dropped(err));
    client.on('end', () => dropped(new Error('connection closed')));
    try {
      await client.connect();
    } catch (err) {
      throw classifyPgError(err, `pipeline ${this.pipeline} capture: cannot connect to PostgreSQL ${this.c.user}@${this.c.host}:${this.c.port}/${this.c.database}`);
    }
    return client;
  }

  protected async tryLock(client: pg.Client): Promise<boolean> {
    try {
      const r = await client.query<{ got: boolean }>(`select pg_try_advisory_lock(${KEY}) as got`, [this.slot]);
      return r.rows[0]!.got;
    } catch (err) {
      throw classifyPgError(err, `pipeline ${this.pipeline} capture lock`);
    }
  }

  protected ping(client: pg.Client): Promise<unknown> {
    return client.query('select 1');
  }

  protected close(client: pg.Client): Promise<void> {
    return client.end();
  }

  async holder(): Promise<Record<string, unknown> | undefined> {
    const client = await this.connection();
    const r = await client.query<{ pid: number; application_name: string; client_addr: string | null; backend_start: string }>(
      `select a.pid, a.application_name, a.client_addr::text as client_addr, a.backend_start::text as backend_start
         from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.granted and l.objsubid = 1 and l.database = (select oid from pg_database where datname = current_database())
          and ((l.classid::bigint << 32) | l.objid::bigint) = ${KEY}`,
      [this.slot],
    );
    const row = r.rows[0];
    return row ? { pid: row.pid, applicationName: row.application_name, clientAddr: row.client_addr, since: row.backend_start } : undefined;
  }
}
