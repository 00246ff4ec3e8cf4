/**
 * The MariaDB capture lock (src/capture/leadership.ts, docs/adr/0034-standby-capture.md): a named
 * user lock, GET_LOCK(name, 0), held on a connection of its own. MariaDB releases it when the
 * connection ends, so a killed holder frees it as soon as the server sees its connection gone.
 * User locks are server-wide: the name carries the database and the pipeline's stream id (hashed to
 * fit 64 characters). The connection is checked every poll interval while held.
 */
import { createHash } from 'node:crypto';
import type mysql from 'mysql2/promise';
import type { MariadbConnection } from './spec.js';
import { classifyMysqlError, connectMysql, where } from './prepare.js';
import { ConnectionLeaderLock } from '../../../src/capture/leadership.js';

export function mariadbLockName(database: string, streamId: string): string {
  const name = `syncline.capture:${database}:${streamId}`;
  return name.length <= 64 ? name : `syncline.capture:${createHash('sha256').update(name).digest('hex').slice(0, 40)}`;
}

export class MariadbLeaderLock extends ConnectionLeaderLock<mysql.Connection> {
  private readonly lockName: string;

  constructor(private readonly c: MariadbConnection, streamId: string, pipeline: string, pollMs: number) {
    const lockName = mariadbLockName(c.database, streamId);
    super(`user lock ${lockName} on ${where(c)}`, pollMs, pipeline);
    this.lockName = lockName;
  }

  protected async connect(dropped: (err: Error) => void): Promise<mysql.Connection> {
    const conn = await connectMysql(this.c, `pipeline ${this.pipeline} capture`);
    conn.on('error', (err: Error) => dropped(err));
    conn.on('end', () => dropped(new Error('connection closed')));
    return conn;
  }

  protected async tryLock(conn: mysql.Connection): Promise<boolean> {
    try {
      const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT GET_LOCK(?, 0) AS got', [this.lockName]);
      return Number(rows[0]?.got) === 1;
    } catch (err) {
      throw classifyMysqlError(err, this.c, `pipeline ${this.pipeline} capture lock`);
    }
  }

  protected ping(conn: mysql.Connection): Promise<unknown> {
    return conn.query('SELECT 1');
  }

  protected async close(conn: mysql.Connection, hard: boolean): Promise<void> {
    if (hard) conn.destroy();
    else await conn.end().catch(() => conn.destroy());
  }

  async holder(): Promise<Record<string, unknown> | undefined> {
    const conn = await this.connection();
    const [rows] = await conn.query<mysql.RowDataPacket[]>(
      `SELECT p.ID AS id, p.USER AS user, p.HOST AS host FROM information_schema.PROCESSLIST p WHERE p.ID = IS_USED_LOCK(?)`, [this.lockName]);
    const row = rows[0];
    return row ? { connectionId: Number(row.id), user: row.user, host: row.host } : undefined;
  }
}
