/**
 * Backfill: re-read one captured table in key-ordered chunks while streaming goes on, without ever
 * letting a chunk row overwrite a newer streamed change (the DBLog / Debezium incremental-snapshot
 * algorithm). Generic; what a source provides is BackfillSupport (./source.ts).
 *
 * Per chunk:
 *   1. write a low watermark into the change stream (the source: PostgreSQL pg_logical_emit_message);
 *   2. SELECT the chunk: key > last, ORDER BY key, LIMIT chunkSize (and the `where`, if any);
 *   3. write a high watermark.
 * While the stream is between low and high (the window), every key the stream changes in the table
 * is remembered (in fact from the chunk's start, before its low watermark: see Window.open); at the high watermark the chunk's rows whose key was not changed are emitted as
 * snapshot reads ('r'), in stream order, at the high watermark's position. A changed key's streamed
 * change is newer than (or as new as) what the SELECT saw, so its chunk row is dropped; every other
 * chunk row is the key's state at the high watermark. Downstream, positions order the rest (a later
 * streamed change has a higher position than the chunk's rows).
 *
 * State (status, the last finished chunk's last key, counts) is durable in the capture offsets topic
 * (`<prefix>.capture.offsets`, key `backfill:<pipeline>`, ./offsets.ts), written after Kafka holds a
 * chunk's rows: after a crash the backfill goes on after the last finished chunk (a chunk in flight is
 * read again; its rows are idempotent downstream). One backfill runs at a time per pipeline; others queue.
 *
 * Control: requests, pause, resume and cancel reach the capture as signals written into the change
 * stream by BackfillSupport.signal (from `syncline backfill` in any process, ../cli/backfill.ts), or
 * as direct calls from the HTTP API of the process that runs the capture (./backfill-api.ts).
 */
import { audit } from '../security/audit/recorder.js';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ChangeEvent, Row } from '../core/envelope.js';
import { errorKind, errorMessage, fatal } from '../core/errors.js';
import { sleep } from '../core/retry.js';
import { formatTableName, parseTableName } from '../core/names.js';
import { keyStringOf } from '../sink/sink.js';
import type { BackfillSupport, SourceTable } from './source.js';
import { HttpError } from '../core/errors.js';

export type BackfillStatus = 'running' | 'paused' | 'cancelled' | 'done' | 'failed';

export interface BackfillState {
  id: string;
  /** Canonical source table name. */
  table: string;
  where?: string;
  chunkSize: number;
  status: BackfillStatus;
  /** The last key of the last finished chunk, in the source's notation (null: no chunk finished yet). */
  last: string[] | null;
  chunks: number;
  rows: number;
  /** Rows the source counted at the start (progress and ETA). */
  total: number;
  requestedAt: string;
  updatedAt: string;
  finishedAt?: string;
  /** Time spent reading (pauses excluded), for the rate and the ETA. */
  elapsedMs: number;
  error?: string;
  /**
   * A repair backfill (`syncline verify --repair`, src/verify/): exactly these keys (text, in the
   * source's key order) in one chunk; a key the chunk does not find (and the stream did not change
   * inside the window) is emitted as a delete. Dropped from the state once done.
   */
  keys?: string[][];
}

/** What `GET …/backfills/:id` and `syncline backfill --status` show: the state plus derived progress. */
export interface BackfillView extends BackfillState {
  percent: number;
  rowsPerSec: number;
  etaSeconds: number | null;
}

export interface BackfillRequest {
  table: string;
  where?: string;
  chunkSize?: number;
  /** Chosen by the requester (the CLI prints it before the capture reads the signal); made here when absent. */
  id?: string;
  /** A repair: exactly these keys (see BackfillState.keys); not with `where`. At most MAX_REPAIR_KEYS. */
  keys?: string[][];
}

/** Keys of one repair backfill (one chunk; the requester splits longer lists). */
export const MAX_REPAIR_KEYS = 1000;

/** A signal written into the change stream (BackfillSupport.signal), JSON. */
export type BackfillSignal =
  | ({ op: 'backfill'; pipeline: string } & BackfillRequest)
  | { op: 'pause' | 'resume' | 'cancel'; pipeline: string; id: string };

export interface BackfillRecord {
  pipeline: string;
  backfills: BackfillState[];
  /**
   * The tables the capture had at its last start. A configured table missing here was added to the
   * config since (a restart or a reload): it is backfilled (when the source's addedTables says so),
   * since the stream only carries its changes from now on. Absent in a first start: the initial
   * snapshot covers every table.
   */
  tables?: string[];
}

export const backfillRecordKey = (pipeline: string) => `backfill:${pipeline}`;
export const DEFAULT_CHUNK_SIZE = 2000;
/** Finished backfills kept in the record (the newest). */
const KEEP_FINISHED = 20;

export function viewOf(b: BackfillState): BackfillView {
  const rowsPerSec = b.elapsedMs > 0 ? Math.round((b.rows * 1000) / b.elapsedMs) : 0;
  const left = Math.max(0, b.total - b.rows);
  const percent = b.status === 'done' ? 100 : b.total > 0 ? Math.min(99.9, Math.round((1000 * b.rows) / b.total) / 10) : 0;
  const etaSeconds = b.status === 'done' ? 0 : rowsPerSec > 0 ? Math.ceil(left / rowsPerSec) : null;
  return { ...b, percent, rowsPerSec, etaSeconds };
}

export class BackfillError extends HttpError {}

interface Window {
  table: string;
  key: string[];
  lowId: string;
  highId: string;
  /**
   * Keys are recorded from the moment the chunk starts, before its low watermark is even written,
   * not from the low watermark on as in DBLog: PostgreSQL makes a commit visible to other sessions
   * a moment after it writes its commit record, so a transaction committed before the low watermark
   * in the stream can still be invisible to the chunk's SELECT; its keys must leave the chunk too.
   * Dropping a key a streamed change carried is always safe (that change holds the row as new as
   * the chunk would), so the wider window costs only a few more dropped rows.
   */
  open: boolean;
  changed: Set<string>;
  truncated: boolean;
  rows?: Row[];
  /** A repair's keys: those the chunk lacks become deletes. */
  keys?: string[][];
  emitted: number;
  close: () => void;
  closed: Promise<void>;
}

export interface BackfillerOptions {
  pipeline: string;
  support: BackfillSupport;
  /** The captured tables by canonical name (the capture's current description). */
  tables: () => Map<string, SourceTable>;
  store: { readRecord<T>(key: string): Promise<T | null>; writeRecord(key: string, value: unknown): Promise<void> };
  /** Hand a snapshot read to the capture's outbox (resolves when buffered). */
  emit: (e: ChangeEvent) => Promise<void>;
  /** Resolves once Kafka holds everything handed over so far. */
  produced: () => Promise<void>;
  log: Logger;
}

export interface BackfillCounters {
  backfillRows: number;
  backfillChunks: number;
  /** Chunk rows dropped because the stream changed their key inside the chunk's window. */
  backfillDropped: number;
}

export class Backfiller {
  private backfills: BackfillState[] = [];
  private known?: string[];
  private window?: Window;
  private wake?: () => void;
  private loop?: Promise<void>;
  private stopped = false;
  /** Serialises the state writes (the loop and the control calls both write). */
  private writing: Promise<void> = Promise.resolve();
  private signals: Promise<void> = Promise.resolve();
  readonly counters: BackfillCounters = { backfillRows: 0, backfillChunks: 0, backfillDropped: 0 };

  constructor(private readonly opts: BackfillerOptions) {}

  /**
   * Load the durable state and go on with any backfill that was running (after a restart); backfill
   * the tables added to the config since the last start.
   */
  async start(): Promise<void> {
    const rec = await this.opts.store.readRecord<BackfillRecord>(backfillRecordKey(this.opts.pipeline));
    this.backfills = rec?.backfills ?? [];
    const going = this.backfills.filter((b) => b.status === 'running');
    if (going.length > 0) this.opts.log.info({ backfills: going.map((b) => ({ id: b.id, table: b.table, chunks: b.chunks, rows: b.rows })) }, 'capture.backfill.resume: going on after the last finished chunk');
    const configured = [...this.opts.tables().keys()];
    const added = rec?.tables ? configured.filter((t) => !rec.tables!.includes(t)) : [];
    this.known = configured;
    if (added.length > 0 && this.opts.support.addedTables) {
      for (const table of added) {
        if (this.backfills.some((b) => b.table === table && (b.status === 'running' || b.status === 'paused'))) continue;
        this.opts.log.info({ table }, 'capture.backfill.added-table: the table was added to the config; its rows are backfilled while its changes stream');
        await this.request({ table });
      }
    }
    if (!rec || rec.tables?.join(',') !== configured.join(',')) await this.persist();
    this.loop = this.run().catch((err: unknown) => this.opts.log.error({ err: errorMessage(err) }, 'capture.backfill.loop.failed'));
  }

  /**
   * Tables added to the running capture (a reload, Capture.addTables): backfilled like tables added
   * since the last start (when the source's addedTables says so), and remembered as known.
   */
  async added(tables: string[]): Promise<void> {
    const fresh = tables.filter((t) => !this.known?.includes(t));
    this.known = [...(this.known ?? []), ...fresh];
    for (const table of this.opts.support.addedTables ? fresh : []) {
      if (this.backfills.some((b) => b.table === table && (b.status === 'running' || b.status === 'paused'))) continue;
      this.opts.log.info({ table }, 'capture.backfill.added-table: the table was added to the config; its rows are backfilled while its changes stream');
      await this.request({ table });
    }
    await this.persist();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.window?.close();
    this.wake?.();
    await this.loop;
    await this.signals;
  }

  list(): BackfillView[] {
    return this.backfills.map(viewOf);
  }

  get(id: string): BackfillView {
    const b = this.backfills.find((x) => x.id === id);
    if (!b) throw new BackfillError(404, `no backfill ${id} in pipeline ${this.opts.pipeline}`);
    return viewOf(b);
  }

  /** Start a backfill (queued behind a running one). A table the pipeline does not capture, or a `where` the source refuses, is refused. */
  async request(req: BackfillRequest): Promise<BackfillView> {
    const name = canonical(req.table);
    const st = this.opts.tables().get(name);
    if (!st) throw new BackfillError(400, `pipeline ${this.opts.pipeline} does not capture table ${req.table} (captures: ${[...this.opts.tables().keys()].join(', ')})`);
    if (req.id !== undefined && this.backfills.some((b) => b.id === req.id)) return this.get(req.id); // the same signal read again after a restart
    let keys: string[][] | undefined;
    if (req.keys !== undefined) {
      const support = this.opts.support;
      if (!support.keysWhere || !support.keyRow) throw new BackfillError(400, `the source of pipeline ${this.opts.pipeline} cannot backfill a list of keys (repair)`);
      if (req.where !== undefined) throw new BackfillError(400, 'a backfill takes keys or where, not both');
      if (!Array.isArray(req.keys) || req.keys.length === 0 || req.keys.length > MAX_REPAIR_KEYS) throw new BackfillError(400, `keys must be a list of 1-${MAX_REPAIR_KEYS} keys`);
      for (const k of req.keys) {
        if (!Array.isArray(k) || k.length !== st.key.length || k.some((v) => typeof v !== 'string')) throw new BackfillError(400, `each key must be a list of ${st.key.length} string(s) (${st.key.join(', ')}); got ${JSON.stringify(k).slice(0, 100)}`);
      }
      keys = req.keys;
    }
    const chunkSize = keys ? keys.length + 1 : (req.chunkSize ?? DEFAULT_CHUNK_SIZE);
    if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > 100_000) throw new BackfillError(400, `chunkSize must be an integer 1-100000 (got ${req.chunkSize})`);
    const where = keys ? this.opts.support.keysWhere!(st, keys) : req.where?.trim() || undefined;
    if (where !== undefined && !keys) {
      try {
        await this.opts.support.checkWhere?.(st, where);
      } catch (err) {
        throw new BackfillError(400, `--where of the backfill of ${name} is refused by the source: ${errorMessage(err)}`);
      }
    }
    const total = keys ? keys.length : await this.opts.support.count(st, where);
    const now = new Date().toISOString();
    const b: BackfillState = { id: req.id ?? randomUUID().slice(0, 8), table: name, where, chunkSize, status: 'running', last: null, chunks: 0, rows: 0, total, requestedAt: now, updatedAt: now, elapsedMs: 0, ...(keys ? { keys } : {}) };
    this.backfills.push(b);
    await this.persist();
    this.opts.log.info({ id: b.id, table: name, where, chunkSize, total }, 'capture.backfill.requested');
    audit.record({ action: 'backfill.start', object: `backfill:${this.opts.pipeline}/${b.id}`, details: { pipeline: this.opts.pipeline, table: name, ...(keys ? { repairKeys: keys.length } : { where }), chunkSize, total } });
    this.wake?.();
    return viewOf(b);
  }

  async control(id: string, op: 'pause' | 'resume' | 'cancel'): Promise<BackfillView> {
    const b = this.backfills.find((x) => x.id === id);
    if (!b) throw new BackfillError(404, `no backfill ${id} in pipeline ${this.opts.pipeline}`);
    const from = b.status;
    if (from === 'done' || from === 'cancelled' || from === 'failed') throw new BackfillError(409, `backfill ${id} is ${from}; it cannot be ${op === 'pause' ? 'paused' : op === 'resume' ? 'resumed' : 'cancelled'}`);
    b.status = op === 'pause' ? 'paused' : op === 'resume' ? 'running' : 'cancelled';
    if (op === 'cancel') b.finishedAt = new Date().toISOString();
    b.updatedAt = new Date().toISOString();
    await this.persist();
    this.opts.log.info({ id, table: b.table, from, to: b.status, chunks: b.chunks, rows: b.rows }, `capture.backfill.${op}`);
    audit.record({ action: `backfill.${op}`, object: `backfill:${this.opts.pipeline}/${id}`, details: { pipeline: this.opts.pipeline, table: b.table, from, to: b.status, chunks: b.chunks, rows: b.rows } });
    this.wake?.();
    return viewOf(b);
  }

  /**
   * A signal the stream carried (BackfillSupport.signal): applied in order, off the stream's path (a
   * request counts the table's rows, which must not hold the stream); a bad one is logged, never fatal.
   */
  signal(text: string): Promise<void> {
    this.signals = this.signals.then(() => this.applySignal(text));
    return Promise.resolve();
  }

  private async applySignal(text: string): Promise<void> {
    let s: BackfillSignal;
    try {
      s = JSON.parse(text) as BackfillSignal;
    } catch {
      this.opts.log.warn({ signal: text.slice(0, 200) }, 'capture.backfill.signal.invalid: not JSON; ignored');
      return;
    }
    if (s.pipeline !== this.opts.pipeline) return;
    try {
      if (s.op === 'backfill') await this.request(s);
      else if (s.op === 'pause' || s.op === 'resume' || s.op === 'cancel') await this.control(s.id, s.op);
      else this.opts.log.warn({ signal: text.slice(0, 200) }, 'capture.backfill.signal.invalid: unknown op; ignored');
    } catch (err) {
      // A pause/resume/cancel of a backfill that has ended (or is forgotten) is what a restarted
      // capture reads again from the unacknowledged part of the stream: nothing to do, not a warning.
      if (s.op !== 'backfill' && err instanceof BackfillError && (err.status === 409 || err.status === 404)) {
        this.opts.log.info({ signal: text.slice(0, 200), reason: errorMessage(err) }, 'capture.backfill.signal.ignored: the backfill has ended (a signal read again after a restart, or sent too late)');
        return;
      }
      this.opts.log.warn({ signal: text.slice(0, 200), err: errorMessage(err) }, 'capture.backfill.signal.refused');
    }
  }

  // ------------------------------------------------------------------ in stream order

  /** Every streamed change (called by the capture before it buffers it): keys changed inside a window leave the chunk. */
  observe(e: ChangeEvent): void {
    const w = this.window;
    if (!w || !w.open || e.op === 'r' || e.op === 'm') return;
    if (formatTableName(e.source) !== w.table) return;
    if (e.op === 't') {
      w.truncated = true;
      return;
    }
    for (const row of [e.before, e.after]) {
      if (!row) continue;
      w.changed.add(keyStringOf(w.key.map((k) => row[k] ?? null)));
    }
  }

  /** The stream reached a watermark: opens a window, or closes it and emits what is left of the chunk. */
  async watermark(id: string, at: { db: string; commitPos: string; pos: string; tsMs: number }): Promise<void> {
    const w = this.window;
    if (!w) return; // a watermark of an earlier process (the stream repeats what was not acknowledged)
    if (id === w.lowId) {
      w.open = true;
      return;
    }
    if (id !== w.highId || !w.open) return;
    const st = this.opts.tables().get(w.table);
    const rows = w.rows ?? [];
    if (st && !w.truncated) {
      const { schema, table } = st;
      let idx = 0;
      for (const after of rows) {
        if (w.changed.has(keyStringOf(st.key.map((k) => after[k] ?? null)))) {
          this.counters.backfillDropped++;
          continue;
        }
        await this.opts.emit({
          op: 'r', before: null, after,
          source: { db: at.db, schema, table, pos: at.pos, commitPos: at.commitPos, txId: null, tsMs: at.tsMs, snapshot: true, idx: idx++ },
          tsMs: Date.now(), unchangedToast: [],
        });
        w.emitted++;
      }
      if (w.keys && this.opts.support.keyRow) {
        // A repair: the keys the source no longer has are deleted (unless the stream changed them in the window).
        const present = new Set(rows.map((r) => keyStringOf(st.key.map((k) => r[k] ?? null))));
        for (const text of w.keys) {
          const before = this.opts.support.keyRow(st, text);
          const ks = keyStringOf(st.key.map((k) => before[k] ?? null));
          if (present.has(ks)) continue;
          if (w.changed.has(ks)) {
            this.counters.backfillDropped++;
            continue;
          }
          await this.opts.emit({
            op: 'd', before, after: null,
            source: { db: at.db, schema, table, pos: at.pos, commitPos: at.commitPos, txId: null, tsMs: at.tsMs, snapshot: true, idx: idx++ },
            tsMs: Date.now(), unchangedToast: [],
          });
          w.emitted++;
        }
      }
    } else if (w.truncated) this.counters.backfillDropped += rows.length;
    w.close();
  }

  // ------------------------------------------------------------------ the chunk loop

  private next(): BackfillState | undefined {
    return this.backfills.find((b) => b.status === 'running');
  }

  private async run(): Promise<void> {
    let retries = 0;
    while (!this.stopped) {
      const b = this.next();
      if (!b) {
        await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
        continue;
      }
      try {
        await this.chunk(b);
        retries = 0;
      } catch (err) {
        if (this.stopped) return;
        if (errorKind(err) === 'retriable' && retries < 30) {
          // The source is away for a moment: the same chunk again (nothing of it was counted).
          const delay = Math.min(10_000, 200 * 2 ** retries++);
          this.opts.log.warn({ id: b.id, table: b.table, err: errorMessage(err), retryInMs: delay }, 'capture.backfill.retry');
          await sleep(delay);
          continue;
        }
        b.status = 'failed';
        b.error = errorMessage(err);
        b.finishedAt = b.updatedAt = new Date().toISOString();
        this.opts.log.error({ id: b.id, table: b.table, err: b.error }, 'capture.backfill.failed');
        audit.record({ action: 'backfill.end', object: `backfill:${this.opts.pipeline}/${b.id}`, details: { pipeline: this.opts.pipeline, table: b.table, status: 'failed', chunks: b.chunks, rows: b.rows } });
        await this.persist().catch(() => undefined);
      }
    }
  }

  private async chunk(b: BackfillState): Promise<void> {
    const st = this.opts.tables().get(b.table);
    if (!st) throw fatal('BACKFILL_TABLE_GONE', `table ${b.table} is no longer captured by pipeline ${this.opts.pipeline}`);
    const started = Date.now();
    const n = b.chunks + 1;
    let close!: () => void;
    const closed = new Promise<void>((r) => (close = r));
    const w: Window = { table: b.table, key: st.key, keys: b.keys, lowId: `${b.id}:${n}:low:${randomUUID().slice(0, 8)}`, highId: `${b.id}:${n}:high:${randomUUID().slice(0, 8)}`, open: true, changed: new Set(), truncated: false, emitted: 0, close, closed };
    this.window = w;
    try {
      await this.opts.support.watermark(w.lowId);
      const { rows, last } = await this.opts.support.chunk(st, b.last, b.chunkSize, b.where);
      w.rows = rows;
      await this.opts.support.watermark(w.highId);
      await closed;
      if (this.stopped) return;
      await this.opts.produced();
      if (this.stopped) return;
      b.chunks = n;
      b.rows += w.emitted;
      b.last = last ?? b.last;
      b.elapsedMs += Date.now() - started;
      b.updatedAt = new Date().toISOString();
      this.counters.backfillChunks++;
      this.counters.backfillRows += w.emitted;
      // A cancel or pause that came during the chunk stands (control() set it).
      if (rows.length < b.chunkSize && b.status === 'running') {
        b.status = 'done';
        delete b.keys;
        b.finishedAt = b.updatedAt;
        if (b.total < b.rows) b.total = b.rows;
        this.opts.log.info({ id: b.id, table: b.table, chunks: b.chunks, rows: b.rows, dropped: this.counters.backfillDropped, rowsPerSec: viewOf(b).rowsPerSec }, 'capture.backfill.done');
        audit.record({ action: 'backfill.end', object: `backfill:${this.opts.pipeline}/${b.id}`, details: { pipeline: this.opts.pipeline, table: b.table, status: 'done', chunks: b.chunks, rows: b.rows } });
      }
      await this.persist();
    } finally {
      if (this.window === w) this.window = undefined;
    }
  }

  private persist(): Promise<void> {
    const write = async () => {
      const finished = this.backfills.filter((b) => b.status === 'done' || b.status === 'cancelled' || b.status === 'failed');
      const drop = new Set(finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED)));
      this.backfills = this.backfills.filter((b) => !drop.has(b));
      const rec: BackfillRecord = { pipeline: this.opts.pipeline, backfills: this.backfills, tables: this.known };
      await this.opts.store.writeRecord(backfillRecordKey(this.opts.pipeline), rec);
    };
    this.writing = this.writing.then(write, write);
    return this.writing;
  }
}

function canonical(name: string): string {
  try {
    return formatTableName(parseTableName(name));
  } catch (err) {
    throw new BackfillError(400, `table ${name}: ${errorMessage(err)}`);
  }
}
