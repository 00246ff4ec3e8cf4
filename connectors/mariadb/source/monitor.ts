/**
 * The monitor of a MariaDB source (src/capture/source.ts SourceMonitor): readiness over one lazily
 * opened connection. Stream lag is not reported yet: the acknowledged position lives in the capture
 * offsets topic, not on the server, so the server cannot say how far behind the reader is (null: no
 * syncline_slot_* series for the pipeline).
 */
import type mysql from 'mysql2/promise';
import type { SourceLag, SourceMonitor } from '../../../src/capture/source.js';
import { errorMessage } from '../../../src/core/errors.js';
import { connectMysql, where } from './prepare.js';
import type { MariadbSourceConfig } from './spec.js';

export class MariadbSourceMonitor implements SourceMonitor {
  private conn?: Promise<mysql.Connection>;

  constructor(private readonly config: MariadbSourceConfig, private readonly timeoutMs: number) {}

  async ping(): Promise<void> {
    const c = this.config.connection;
    this.conn ??= connectMysql({ ...c }, 'probe');
    try {
      const conn = await this.conn;
      await conn.query({ sql: 'SELECT 1', timeout: this.timeoutMs });
    } catch (err) {
      // A broken connection is dropped; the next ping opens a new one.
      const old = this.conn;
      this.conn = undefined;
      void old?.then((x) => x.destroy()).catch(() => undefined);
      throw new Error(`mariadb ${where(c)}: ${errorMessage(err)}`);
    }
  }

  async lag(): Promise<SourceLag | null> {
    return null;
  }

  async close(): Promise<void> {
    const old = this.conn;
    this.conn = undefined;
    await old?.then((x) => x.end()).catch(() => undefined);
  }
}
