/**
 * The Acme source (src/capture/source.ts): reads Acme's change log, a binlog-like log addressed by
 * (file, offset) in commit order, and hands every change to the capture stage in that order.
 *
 *  - Positions: 'X/Y' = log file / offset in hexadecimal (each below 2^32), so core/envelope.ts
 *    position() sorts them. A change's commitPos is its transaction's commit record; every change of
 *    a transaction has it, with idx 0, 1, 2, … in the order of the transaction.
 *  - Snapshot: a consistent read view at log position P; rows carry commitPos = P, idx 0, then one
 *    end-of-table marker ('m', idx 1). Streaming starts at P, and every transaction read from there
 *    commits after P, so its changes supersede the snapshot rows downstream.
 *  - Acknowledgement: commit(end) hands the stage the position after the commit record; the stage
 *    gives it back to acknowledge(end) once Kafka holds the transaction. The server keeps no position
 *    for its readers, so the source saves the acknowledged one in <prefix>.capture.offsets
 *    (CaptureOffset.position) every saveEveryMs and at stop(). A crash replays from the last saved
 *    position: changes read twice, never lost (the stage's resuming() keeps repeats off the topics).
 */
import type { Logger } from 'pino';
import type { CaptureHandler, CaptureOffset, Source, SourceColumn, SourceLag, SourceMonitor, SourceTable, TableRequest } from '../../../src/capture/source.js';
import { bigIntToPosition, positionToBigInt, type ChangeEvent, type Row, type SourceInfo } from '../../../src/core/envelope.js';
import { errorMessage, fatal, retriable, withDeadline } from '../../../src/core/errors.js';
import { formatTableName, parseTableName } from '../../../src/core/names.js';
import { sleep } from '../../../src/core/retry.js';
import { acmeWhere, connectAcme } from './connection.js';
import type { AcmeClient, AcmeLogEvent, AcmeLogPosition, AcmeLogReader } from './driver.js';
import { classifyAcmeError } from './errors.js';
import type { AcmeSourceConfig } from './spec.js';
import { canonical, columnType } from './types.js';

/** (file, offset) ↔ the 'X/Y' notation of ChangeEvent.source.pos / commitPos. */
export const positionText = (p: AcmeLogPosition): string => bigIntToPosition((BigInt(p.file) << 32n) | BigInt(p.offset));
export function parsePosition(text: string): AcmeLogPosition {
  const v = positionToBigInt(text);
  return { file: Number(v >> 32n), offset: Number(v & 0xffffffffn) };
}

interface TableState {
  src: SourceTable;
}

export class AcmeSource implements Source {
  readonly batchSize: number;
  readonly lingerMs: number;
  private client?: AcmeClient;
  private handler?: CaptureHandler;
  private reader?: AcmeLogReader;
  private readonly tables = new Map<string, TableState>(); // canonical table name (core/names.ts) → state
  private tx: { commitPos: string; txId: number; tsMs: number; idx: number } | null = null;
  /** Last acknowledged position (bigint of 'X/Y'), and the record it is saved in. */
  private acked = 0n;
  private stored: CaptureOffset | null = null;
  private savedText = '';
  private saving?: Promise<void>;
  private saveTimer?: NodeJS.Timeout;
  private busy: Promise<void> = Promise.resolve();
  private stopping = false;

  constructor(private readonly config: AcmeSourceConfig, private readonly pipeline: string, private readonly log: Logger) {
    this.batchSize = config.batchSize;
    this.lingerMs = config.lingerMs;
  }

  get confirmed(): string {
    return this.acked === 0n ? '' : bigIntToPosition(this.acked);
  }

  async connect(): Promise<void> {
    this.client = await connectAcme(this.config.connection, `pipeline ${this.pipeline} capture`);
  }

  async describe(requests: TableRequest[]): Promise<SourceTable[]> {
    const out: SourceTable[] = [];
    for (const r of requests) {
      const { schema, table } = parseTableName(r.source); // canonical names: never split at a dot
      const info = await this.client!.tableInfo(schema, table).catch((err: unknown) => {
        throw classifyAcmeError(err, `pipeline ${this.pipeline}: cannot describe ${r.source}`);
      });
      // SOURCE_TABLE_MISSING by name: a two-way peer that creates tables is waited for (capture.ts describe()).
      if (!info) throw fatal('SOURCE_TABLE_MISSING', `pipeline ${this.pipeline}: source table ${r.source} does not exist in ${acmeWhere(this.config.connection)}`);
      const columns: SourceColumn[] = info.columns.map((c) => ({ name: c.name, type: columnType(c.type) }));
      // Acme logs full before-images, so any configured key works; else the primary key.
      const key = r.key ?? info.primaryKey;
      const unknown = key.find((k) => !columns.some((c) => c.name === k));
      if (key.length === 0) throw fatal('SOURCE_NO_KEY', `pipeline ${this.pipeline}: table ${r.source} has no primary key; configure 'key' for it`);
      if (unknown !== undefined) throw fatal('SOURCE_KEY_UNKNOWN', `pipeline ${this.pipeline}: key column '${unknown}' of ${r.source} does not exist`);
      const src: SourceTable = { schema, table, key, columns };
      this.tables.set(formatTableName(src), { src });
      out.push(src);
    }
    return out;
  }

  async prepare(_tables: SourceTable[]): Promise<void> {
    // Nothing to create: the log holds every table. (PostgreSQL creates or extends its publication here.)
  }

  async run(handler: CaptureHandler): Promise<void> {
    this.handler = handler;
    const { slot } = this.config;
    const stored = await handler.offsets.read(slot);
    handler.running();
    let from: AcmeLogPosition;
    if (stored && stored.snapshot !== 'started') {
      // Resume where Kafka was known to hold everything; the stage skips what it holds beyond that.
      from = parsePosition(stored.position ?? stored.consistentPoint);
      this.acked = positionToBigInt(positionText(from));
      this.stored = stored;
      this.log.info({ slot, from: positionText(from) }, 'capture.resume');
      await handler.resuming();
    } else if (this.config.snapshot === 'initial') {
      from = await this.snapshot(handler); // none yet, or one interrupted ('started'): from the start again
    } else {
      from = await this.client!.head();
      this.stored = { slot, snapshot: 'skipped', consistentPoint: positionText(from), tables: [...this.tables.keys()], at: new Date().toISOString(), position: positionText(from) };
      await handler.offsets.write(this.stored);
    }
    if (handler.stopped) return;
    this.saveTimer = setInterval(() => void this.save(), this.config.saveEveryMs);
    await this.stream(from);
  }

  /** Copy every table from one read view; returns the position the stream starts at. */
  private async snapshot(handler: CaptureHandler): Promise<AcmeLogPosition> {
    const view = await this.client!.snapshot();
    try {
      const cp = positionText(view.at);
      const record = { slot: this.config.slot, consistentPoint: cp, tables: [...this.tables.keys()], at: new Date().toISOString() };
      await handler.offsets.write({ ...record, snapshot: 'started' });
      const startedMs = Date.now();
      for (const { src } of this.tables.values()) {
        const source = (idx: number): SourceInfo => ({ db: this.config.connection.database, schema: src.schema, table: src.table, pos: cp, commitPos: cp, txId: null, tsMs: startedMs, snapshot: true, idx });
        for await (const raw of view.rows(src.schema, src.table, src.columns.map((c) => c.name))) {
          await handler.change({ op: 'r', before: null, after: this.row(src, raw), source: source(0), tsMs: Date.now(), unchangedToast: [] });
          if (handler.stopped) throw new Error('stopped during snapshot');
        }
        // End of the table's snapshot (its key columns in unchangedToast): the sink side deletes
        // target rows the snapshot did not see, and creates the table of an empty source table.
        await handler.change({ op: 'm', before: null, after: null, source: source(1), tsMs: Date.now(), unchangedToast: [...src.key] });
      }
      await handler.flush(); // Kafka holds every snapshot row before 'done' is recorded
      this.stored = { ...record, snapshot: 'done', position: cp, at: new Date().toISOString() };
      await handler.offsets.write(this.stored);
      this.acked = positionToBigInt(cp);
      return view.at;
    } finally {
      await view.close();
    }
  }

  private async stream(from: AcmeLogPosition): Promise<void> {
    const reader = this.client!.readLog(from, this.config.slot);
    this.reader = reader;
    try {
      for await (const ev of reader) {
        if (this.stopping) return;
        this.busy = this.handle(ev);
        await this.busy;
      }
    } catch (err) {
      if (this.stopping) return;
      // A position the server no longer retains cannot be resumed: say so (fatal), don't retry for ever.
      if ((err as { code?: string }).code === 'POSITION_PURGED') throw fatal('ACME_POSITION_PURGED', `pipeline ${this.pipeline}: ${acmeWhere(this.config.connection)} no longer holds log position ${positionText(from)}; drop the pipeline's capture offsets to snapshot again`, err);
      throw classifyAcmeError(err, `pipeline ${this.pipeline}: change log stream failed`);
    }
    if (!this.stopping) throw retriable('ACME_STREAM_ENDED', `pipeline ${this.pipeline}: ${acmeWhere(this.config.connection)} ended the change log stream`);
  }

  /** One log event, in log order; resolves when the stage has buffered it (back-pressure). */
  private async handle(ev: AcmeLogEvent): Promise<void> {
    const handler = this.handler!;
    switch (ev.kind) {
      case 'begin':
        this.tx = { commitPos: positionText(ev.commitAt), txId: ev.txId, tsMs: ev.tsMs, idx: 0 };
        handler.begin({ origin: ev.origin }); // two-way sync: the stage skips the peer's own writes by origin
        return;
      case 'commit':
        this.tx = null;
        handler.commit(positionText(ev.next));
        return;
      case 'columns': {
        const st = this.tables.get(formatTableName(ev));
        if (!st) return;
        st.src = { ...st.src, columns: ev.columns.map((c) => ({ name: c.name, type: columnType(c.type) })) };
        await handler.columns(ev.schema, ev.table, st.src.columns); // registers the new schema version
        return;
      }
      case 'truncate': {
        const st = this.tables.get(formatTableName(ev));
        if (!st || !this.tx) return;
        await handler.change({ op: 't', before: null, after: null, source: this.info(st.src, ev.at), tsMs: Date.now(), unchangedToast: [] });
        return;
      }
      case 'row': {
        const st = this.tables.get(formatTableName(ev));
        if (!st || !this.tx) return; // not a configured table
        const before = ev.before ? this.row(st.src, ev.before) : null;
        const after = ev.after ? this.row(st.src, ev.after) : null;
        const op = ev.op === 'insert' ? 'c' : ev.op === 'update' ? 'u' : 'd';
        const e: ChangeEvent = { op, before, after, source: this.info(st.src, ev.at), tsMs: Date.now(), unchangedToast: [] };
        // A key change is a delete of the old key, then an insert of the new one (each its own idx),
        // so each key's changes stay on its own partition in order.
        if (op === 'u' && before && after && st.src.key.some((k) => String(before[k]) !== String(after[k]))) {
          await handler.change({ ...e, op: 'd', after: null });
          await handler.change({ ...e, op: 'c', before: null, source: this.info(st.src, ev.at) });
          return;
        }
        await handler.change(e);
        return;
      }
    }
  }

  private info(src: SourceTable, at: AcmeLogPosition): SourceInfo {
    const tx = this.tx!;
    return { db: this.config.connection.database, schema: src.schema, table: src.table, pos: positionText(at), commitPos: tx.commitPos, txId: tx.txId, tsMs: tx.tsMs, snapshot: false, idx: tx.idx++ };
  }

  private row(src: SourceTable, raw: unknown[]): Row {
    const out: Row = {};
    src.columns.forEach((c, i) => (out[c.name] = canonical(raw[i], c.type)));
    return out;
  }

  acknowledge(end: string): void {
    const v = positionToBigInt(end);
    if (v > this.acked) this.acked = v; // only forwards
  }

  /** Save the acknowledged position (one save at a time; a failed one is tried again at the next tick). */
  private save(): Promise<void> {
    if (this.saving || !this.stored || !this.handler || this.confirmed === this.savedText) return this.saving ?? Promise.resolve();
    const position = this.confirmed;
    const record: CaptureOffset = { ...this.stored, position, at: new Date().toISOString() };
    this.saving = this.handler.offsets
      .write(record)
      .then(() => void (this.savedText = position))
      .catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'capture.offsets.save_failed'))
      .finally(() => (this.saving = undefined));
    return this.saving;
  }

  async quiesce(): Promise<void> {
    this.stopping = true;
    clearInterval(this.saveTimer);
    await Promise.race([this.busy.catch(() => undefined), sleep(2000)]); // the event being handled finishes
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.saveTimer);
    try {
      await this.saving;
      await this.save();
    } finally {
      await this.reader?.close().catch(() => undefined);
      await this.client?.close().catch(() => undefined); // safe after a failed connect(): nothing to close
    }
  }
}

/**
 * Readiness and lag for /ready, `syncline status` and the metrics, over one lazily opened client
 * (dropped when it fails, opened again at the next call). Acme keeps no position for its readers and
 * the acknowledged one is in Kafka, so lagBytes is null; retained bytes and whether a reader is
 * attached come from the server.
 */
export class AcmeSourceMonitor implements SourceMonitor {
  private client?: Promise<AcmeClient>;

  constructor(private readonly config: AcmeSourceConfig, private readonly timeoutMs: number) {}

  private async call<T>(fn: (c: AcmeClient) => Promise<T>): Promise<T> {
    const where = acmeWhere(this.config.connection);
    this.client ??= connectAcme(this.config.connection, 'probe', { connectTimeoutMs: this.timeoutMs });
    const pending = this.client;
    try {
      return await withDeadline(pending.then(fn), this.timeoutMs, () => retriable('ACME_TIMEOUT', `${where}: no answer within ${this.timeoutMs} ms`));
    } catch (err) {
      if (this.client === pending) this.client = undefined;
      void pending.then((c) => c.close()).catch(() => undefined);
      throw new Error(`${where}: ${errorMessage(err)}`);
    }
  }

  async ping(): Promise<void> {
    await this.call((c) => c.ping());
  }

  async lag(): Promise<SourceLag | null> {
    const s = await this.call((c) => c.logStatus());
    return { lagBytes: null, retainedBytes: s.retainedBytes, active: s.readers.includes(this.config.slot) };
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    await c?.then((x) => x.close()).catch(() => undefined);
  }
}
