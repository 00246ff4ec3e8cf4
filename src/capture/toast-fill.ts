/**
 * Whole rows for targets that cannot keep a column's current value.
 *
 * PostgreSQL does not send an unchanged TOASTed value with an update (pgoutput's 'u'): the change
 * lists the column in `unchangedToast` and carries no value for it. A PostgreSQL target keeps its own
 * column; a target registered with `wholeRows` (HTTP, RabbitMQ, files, MariaDB: src/core/registry.ts)
 * must receive the real value, never a placeholder. The capture stage fills it, in this order:
 *
 *  1. the source itself, when it can (PostgreSQL with REPLICA IDENTITY FULL sends the old row with
 *     the value: connectors/postgres/source/postgres-source.ts): exact, free, never reaches here;
 *  2. the last value this capture saw for that row and column (a change or a snapshot row): exact,
 *     since changes arrive in commit order. Only values of at least `minBytes` are remembered (a
 *     smaller value is never moved out of line, so never left out), in an LRU bounded by `maxBytes`;
 *  3. a re-select of the row at the source (`Source.reselect`): the value as it is now, which may be
 *     newer than this change (a later change of that column then carries its own value, so the
 *     target ends right; in between it may see the newer value early);
 *  4. otherwise a miss: the row is gone from the source (a delete follows in the stream) or could not
 *     be read; the change keeps `unchangedToast`, and the target decides (whole-row targets refuse to
 *     send a partial row as if it were whole: see each target's README).
 *
 * Each outcome is counted (`syncline_capture_toast_fills_total{via}`).
 */
import type { Logger } from 'pino';
import { setColumn, type ChangeEvent, type Row, type Value } from '../core/envelope.js';
import { errorMessage } from '../core/errors.js';
import type { SourceTable } from './source.js';

export interface ToastCounters {
  cache: number;
  reselect: number;
  miss: number;
}

export interface ToastFillOptions {
  /** Re-read some columns of one row at the source now (null: no such row); absent when the source cannot. */
  reselect?: (table: SourceTable, key: Row, columns: string[]) => Promise<Row | null>;
  log: Logger;
  /** Remembered values' total size (bytes, about). Default 64 MiB. */
  maxBytes?: number;
  /** Smallest value remembered (bytes). Default 1,000: PostgreSQL moves a value out of line only above ~2 kB. */
  minBytes?: number;
}

const sizeOf = (v: Value): number => (typeof v === 'string' ? v.length * 2 : Buffer.isBuffer(v) ? v.length : 0);

export class ToastFill {
  readonly counters: ToastCounters = { cache: 0, reselect: 0, miss: 0 };
  /** `<table>\0<key>` → large values of that row, least recently used first. */
  private readonly rows = new Map<string, { values: Row; bytes: number }>();
  private bytes = 0;
  private readonly maxBytes: number;
  private readonly minBytes: number;
  private warned = false;

  constructor(private readonly o: ToastFillOptions) {
    this.maxBytes = o.maxBytes ?? 64 * 1024 * 1024;
    this.minBytes = o.minBytes ?? 1000;
  }

  /**
   * Called for every change of a table before it is produced: fills `e.after` where the change left
   * columns out, then remembers the row's large values (or forgets the row on delete).
   */
  async apply(table: SourceTable, id: string, key: Row, e: ChangeEvent): Promise<void> {
    if (e.op === 'd') return this.forget(id);
    if (!e.after) return;
    if (e.unchangedToast.length > 0 && e.op !== 'r') await this.fill(table, id, key, e);
    this.remember(id, e.after, e.unchangedToast);
  }

  private async fill(table: SourceTable, id: string, key: Row, e: ChangeEvent): Promise<void> {
    const after = e.after!;
    let missing = e.unchangedToast;
    const known = this.rows.get(id);
    if (known) {
      const left: string[] = [];
      for (const c of missing) {
        if (Object.hasOwn(known.values, c)) setColumn(after, c, known.values[c]!);
        else left.push(c);
      }
      if (left.length < missing.length) this.counters.cache++;
      missing = left;
    }
    if (missing.length > 0 && this.o.reselect) {
      try {
        const now = await this.o.reselect(table, key, missing);
        if (now) {
          for (const c of missing) if (Object.hasOwn(now, c)) setColumn(after, c, now[c]!);
          missing = missing.filter((c) => !Object.hasOwn(now, c));
          this.counters.reselect++;
        }
      } catch (err) {
        if (!this.warned) {
          this.warned = true;
          this.o.log.warn({ table: `${table.schema}.${table.table}`, err: errorMessage(err) }, 'capture.toast.reselect_failed: unchanged TOASTed values could not be re-read at the source (counted as misses; logged once)');
        }
      }
    }
    if (missing.length > 0) this.counters.miss++;
    e.unchangedToast = missing;
  }

  private remember(id: string, after: Row, left: readonly string[]): void {
    let entry = this.rows.get(id);
    for (const [c, v] of Object.entries(after)) {
      if (left.includes(c)) continue;
      const size = sizeOf(v);
      const had = entry?.values[c];
      if (size < this.minBytes) {
        if (entry && had !== undefined) {
          entry.bytes -= sizeOf(had);
          this.bytes -= sizeOf(had);
          delete entry.values[c];
        }
        continue;
      }
      if (!entry) this.rows.set(id, (entry = { values: {}, bytes: 0 }));
      const delta = size - (had === undefined ? 0 : sizeOf(had));
      entry.values[c] = v;
      entry.bytes += delta;
      this.bytes += delta;
    }
    if (!entry) return;
    if (entry.bytes === 0) {
      this.rows.delete(id);
      return;
    }
    // Most recently used last.
    this.rows.delete(id);
    this.rows.set(id, entry);
    for (const [oldest, e] of this.rows) {
      if (this.bytes <= this.maxBytes) break;
      this.rows.delete(oldest);
      this.bytes -= e.bytes;
    }
  }

  private forget(id: string): void {
    const entry = this.rows.get(id);
    if (!entry) return;
    this.rows.delete(id);
    this.bytes -= entry.bytes;
  }

  /** Remembered bytes (for tests). */
  get size(): number {
    return this.bytes;
  }
}
