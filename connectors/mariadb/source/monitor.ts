/**
 * The monitor of a MariaDB source (src/capture/source.ts SourceMonitor): readiness and stream lag
 * over one lazily opened connection. The server keeps no position for its binlog readers (ours
 * lives in the capture offsets topic), so lag is measured from the capture's acknowledged position
 * when it runs in this process: the bytes of binlog after it (SHOW BINARY LOGS), as
 * syncline_slot_lag_bytes; retained bytes are the binlog files from it on (what a purge must keep
 * for this reader). Without a capture here (or before its first acknowledgement): null, no series.
 */
import type mysql from 'mysql2/promise';
import type { SourceLag, SourceMonitor } from '../../../src/capture/source.js';
import { errorMessage } from '../../../src/core/errors.js';
import { connectMysql, where } from './prepare.js';
import { fileNumber } from './mariadb-source.js';
import { positionToBigInt } from '../../../src/core/envelope.js';

/** 'X/Y' (binlogLsn) → binlog file sequence number and offset. */
function splitPosition(p: string): { file: number; offset: number } {
  const v = positionToBigInt(p);
  return { file: Number(v >> 32n), offset: Number(v & 0xffffffffn) };
}
import type { MariadbSourceConfig } from './spec.js';

export class MariadbSourceMonitor implements SourceMonitor {
  private conn?: Promise<mysql.Connection>;

  constructor(private readonly config: MariadbSourceConfig, private readonly timeoutMs: number) {}

  private async connection(): Promise<mysql.Connection> {
    this.conn ??= connectMysql({ ...this.config.connection }, 'probe');
    try {
      return await this.conn;
    } catch (err) {
      this.conn = undefined;
      throw err;
    }
  }

  async ping(): Promise<void> {
    const c = this.config.connection;
    try {
      const conn = await this.connection();
      await conn.query({ sql: 'SELECT 1', timeout: this.timeoutMs });
    } catch (err) {
      // A broken connection is dropped; the next ping opens a new one.
      const old = this.conn;
      this.conn = undefined;
      void old?.then((x) => x.destroy()).catch(() => undefined);
      throw new Error(`mariadb ${where(c)}: ${errorMessage(err)}`);
    }
  }

  async lag(confirmed?: string): Promise<SourceLag | null> {
    if (!confirmed) return null;
    const { file, offset } = splitPosition(confirmed);
    const conn = await this.connection();
    const [rows] = await conn.query<mysql.RowDataPacket[]>({ sql: 'SHOW BINARY LOGS', timeout: this.timeoutMs });
    let lag = 0;
    let retained = 0;
    for (const r of rows) {
      const n = fileNumber(String(r.Log_name));
      const size = Number(r.File_size);
      if (n < file) continue;
      retained += size;
      lag += n === file ? Math.max(0, size - offset) : size;
    }
    return { lagBytes: lag, retainedBytes: retained, active: true };
  }

  async close(): Promise<void> {
    const old = this.conn;
    this.conn = undefined;
    await old?.then((x) => x.end()).catch(() => undefined);
  }
}
