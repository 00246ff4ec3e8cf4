/**
 * A polling source: change tracking for sources without a replication log, through plain SQL (no
 * replication rights), one `PollDialect` per database system (connectors/<system>/poll/). It is a
 * `Source` like the CDC sources, so its changes take the same way: the capture stage's topics,
 * schemas, acknowledgement, dead letters, and downstream validation, conflicts, version state, replay.
 *
 * Passes. The source reads every table once per pass and waits `intervalMs` between passes. A pass is
 * one transaction for the stage: begin, its changes, commit at the pass's end position, then flush.
 *  - Positions are 'X/Y' (src/core/envelope.ts): X the pass number, Y the sequence within the pass.
 *    A pass's changes are at X/1, X/2, … (commitPos = pos, idx 0); a table read as a snapshot has its
 *    rows at X/0 (idx 0) and its end-of-snapshot marker at X/0 idx 1, as the sink's sweep expects; the
 *    pass ends (the token acknowledged) at X/FFFFFFFF, so `confirmed` only ever holds whole passes.
 *  - Pass numbers grow: max(last acknowledged + 1, last begun + 1, seconds since the epoch). A pass
 *    that produced a change records that it began ("begun") in the offsets record before its first
 *    change, so a pass cut short by a crash is never numbered again: its changes in Kafka cannot hide
 *    a later pass's changes from the stage's resume dedup (which skips positions not above the last
 *    one a partition holds). Seconds since the epoch keep numbers above an earlier life's after
 *    `pipeline drop` (the offsets record gone).
 *  - Durable state (capture offsets record, key `<type>_<pipeline>`): `position` (last acknowledged
 *    pass end) and `state` = { pass, begun, tables: { name: { mode, column, query, watermark | chunks } } }.
 *    It is written after Kafka holds a pass (the stage's flush → acknowledge), never before: a crash
 *    reads again from the previous pass's watermarks (rows produced twice: positions differ, the sink's
 *    version state orders them and its hash delta skips unchanged rows). After a pass that handed
 *    changes on and was never acknowledged (`begun` above `pass`), the next pass reads every chunk and
 *    emits every row (PassCtx.resend): a row the lost pass changed, changed back since, matches the
 *    stored state and would otherwise never be sent again.
 *
 * Modes (per table, ./spec.ts):
 *  - timestamp: rows with column > watermark − overlapMs, in (column, key) order by keyset pages; the
 *    new watermark is the last row's column value. Rows read again in the overlap whose hash equals what
 *    the previous pass read are not emitted again (an in-memory map of the previous pass's rows, up to
 *    100,000; after a restart they are emitted once more and the sink skips them by hash). Ops 'u'.
 *  - version: the same with a numeric column and `overlap` units.
 *  - hash: the key range is cut into chunks (./chunks.ts). Per pass one aggregate query per chunk
 *    (row count and the sum of the rows' md5 prefixes, computed by the database); a chunk whose count
 *    and digest are unchanged is not read. A changed chunk is read in key order by pages and compared
 *    with its file of (key, hash): new keys 'c', changed 'u', missing keys 'd'. A chunk that grows past
 *    chunkSize is split. Memory: one page, one chunk file, never the table.
 *  - Each pass describes its tables first: after an ALTER TABLE the stage registers the new schema
 *    version (handler.columns) and the pass reads the new columns; a pass that fails because a table
 *    changed under it runs again.
 *  - The first pass of a table (no stored state, its mode/column/query changed, or its chunk files are
 *    gone) is a snapshot: every row 'r' in key order, then the table's end marker 'm', so the sink
 *    deletes target rows the snapshot did not see. timestamp/version take the column's max before the
 *    scan as their first watermark.
 */
import type { Logger } from 'pino';
import { join } from 'node:path';
import type { CaptureHandler, CaptureOffset, Source, SourceColumn, SourceTable, TableRequest } from '../source.js';
import type { ChangeEvent, Op, Row } from '../../core/envelope.js';
import { passAcknowledged, pollStopped } from './lag.js';
import { bigIntToPosition, positionToBigInt } from '../../core/envelope.js';
import { errorMessage, fatal } from '../../core/errors.js';
import { canonicalTableName, formatTableName } from '../../core/names.js';
import { parseTagged, stringifyTagged } from '../../core/tagged-json.js';
import { ALIAS, type PollDialect, type PollRelation } from './dialect.js';
import { digestQuery, keyPageQuery, trackedPageQuery } from './queries.js';
import { ChunkFiles, digestOf, type ChunkMeta } from './chunks.js';
import { PASS_END, passPosition } from './pass-loop.js';
import { pollTableSpec, type PollTableConfig } from './spec.js';

export interface PollOptions {
  pipeline: string;
  log: Logger;
  /** The key of the pipeline's record in the capture offsets topic. */
  streamId: string;
  intervalMs: number;
  pageSize: number;
  stateDir: string;
  tables: Record<string, PollTableConfig>;
  batchSize: number;
  lingerMs: number;
}

/** A table's durable tracking state (in the offsets record). */
export interface PollTableState {
  mode: PollTableConfig['mode'];
  column?: string;
  query?: string;
  /** timestamp/version: the highest tracking value of the acknowledged passes (raw driver value, tagged JSON; null: none yet). */
  watermark?: string | null;
  /** hash: the chunks of the acknowledged pass. */
  chunks?: ChunkMeta[];
}

export interface PollState {
  pass: number;
  begun: number;
  tables: Record<string, PollTableState>;
}

interface Tracked {
  name: string;
  req: TableRequest;
  rel: PollRelation;
  cfg: PollTableConfig;
  files: ChunkFiles;
  keyIdx: number[];
  colIdx: number;
  /** timestamp/version: key → row hash of the previous pass's rows (overlap dedup). */
  seen?: Map<string, string>;
}

interface PassCtx {
  n: number;
  seq: number;
  startedMs: number;
  files: number;
  begun: boolean;
  /** Changes handed on in this pass (snapshot rows and markers included). */
  emitted: number;
  /**
   * An earlier pass handed changes on and was never acknowledged: its changes may be applied while the
   * stored state is the pass before it (a row deleted and inserted again with the same values, or
   * changed and changed back, in between, looks unchanged). This pass reads every chunk and emits
   * every row (the sink's hash delta skips what the target already holds).
   */
  resend: boolean;
}

/** Rows of a pass whose hashes are kept for the overlap dedup of the next pass. */
const SEEN_MAX = 100_000;

class Stopped extends Error {}

export { passPosition };

export class PollSource implements Source {
  readonly batchSize: number;
  readonly lingerMs: number;
  private handler!: CaptureHandler;
  private tracked: Tracked[] = [];
  private state: PollState = { pass: 0, begun: 0, tables: {} };
  private acked = 0n;
  private inPass = 0;
  /** The pass a bounded run waits for (position()): passes follow each other without the interval until it is done. */
  private wanted = 0;
  private stopping = false;
  private wake?: () => void;
  private loop?: Promise<void>;
  private storing: Promise<void> = Promise.resolve();
  private firstPass = '';
  private lastStore = 0;
  private markRestored!: () => void;
  private readonly restored = new Promise<void>((resolve) => (this.markRestored = resolve));
  /** Counters since start: passes acknowledged, hash chunks whose digest was compared, and chunks read because it differed. */
  readonly stats = { passes: 0, chunksChecked: 0, chunksRead: 0, changes: 0 };

  constructor(private readonly dialect: PollDialect, private readonly o: PollOptions) {
    this.batchSize = o.batchSize;
    this.lingerMs = o.lingerMs;
  }

  get confirmed(): string {
    return this.acked === 0n ? '' : bigIntToPosition(this.acked);
  }

  /**
   * The end of the next complete pass (the one after the running pass, if any). Asked before run()
   * has read the stored state, it waits for it: the stored passes' numbers are what it must exceed.
   */
  async position(): Promise<string> {
    await this.restored;
    const base = this.inPass > 0 ? this.inPass : Math.max(this.state.pass, this.state.begun);
    // A bounded run waits for that pass: it starts as soon as the running one ends (or now), not after intervalMs.
    if (base + 1 > this.wanted) this.wanted = base + 1;
    this.wake?.();
    return passPosition(base + 1, PASS_END);
  }

  async connect(): Promise<void> {
    await this.dialect.connect();
  }

  async describe(tables: TableRequest[]): Promise<SourceTable[]> {
    const configured = new Map<string, PollTableConfig>();
    for (const [name, cfg] of Object.entries(this.o.tables)) {
      let canonical: string;
      try {
        canonical = canonicalTableName(name);
      } catch (err) {
        throw fatal('POLL_TABLE_NAME', `pipeline ${this.o.pipeline}: source.tables key '${name}' is not a table name: ${errorMessage(err)}`);
      }
      if (!tables.some((t) => t.source === canonical)) {
        throw fatal('POLL_TABLE_UNKNOWN', `pipeline ${this.o.pipeline}: source.tables names ${name}, which is not in the pipeline's tables[] (have: ${tables.map((t) => t.source).join(', ')})`);
      }
      configured.set(canonical, cfg);
    }
    this.tracked = [];
    for (const req of tables) {
      const cfg = configured.get(req.source) ?? pollTableSpec.parse({});
      const rel = await this.dialect.describe(req, cfg.query, this.o.pipeline);
      const names = rel.columns.map((c) => c.name);
      const colIdx = cfg.column === undefined ? -1 : names.indexOf(cfg.column);
      if (cfg.mode !== 'hash' && colIdx < 0) {
        throw fatal('POLL_COLUMN_UNKNOWN', `pipeline ${this.o.pipeline}: source.tables.${req.source}.column '${cfg.column}' is not a column of ${req.source} (columns: ${names.join(', ')})`);
      }
      const name = formatTableName(rel);
      this.tracked.push({ name, req, rel, cfg, colIdx, keyIdx: rel.key.map((k) => names.indexOf(k)), files: new ChunkFiles(join(this.o.stateDir, this.o.streamId, encodeURIComponent(name))) });
    }
    return this.tracked.map((t) => ({ schema: t.rel.schema, table: t.rel.table, key: t.rel.key, columns: t.rel.columns }));
  }

  async prepare(): Promise<void> {}

  async run(handler: CaptureHandler): Promise<void> {
    this.handler = handler;
    const stored = await handler.offsets.read(this.o.streamId);
    this.restore(stored);
    this.markRestored();
    handler.running();
    if (stored) await handler.resuming();
    this.loop = this.passes();
    await this.loop;
  }

  /** The stored record → state; a table whose settings changed, or whose chunk files are gone, starts again with a snapshot. */
  private restore(stored: CaptureOffset | null): void {
    const s = (stored?.state ?? null) as PollState | null;
    if (stored?.position) this.acked = positionToBigInt(stored.position);
    this.firstPass = stored?.consistentPoint ?? '';
    if (!s) return;
    this.state = { pass: s.pass ?? 0, begun: s.begun ?? 0, tables: {} };
    for (const t of this.tracked) {
      const prev = s.tables?.[t.name];
      if (!prev) continue;
      if (prev.mode !== t.cfg.mode || prev.column !== t.cfg.column || prev.query !== t.cfg.query) {
        this.o.log.warn({ table: t.name, was: { mode: prev.mode, column: prev.column }, now: { mode: t.cfg.mode, column: t.cfg.column } }, 'poll.settings.changed: the table is read again as a snapshot');
        continue;
      }
      if (prev.mode === 'hash') {
        const missing = (prev.chunks ?? []).filter((c) => !t.files.exists(c.file));
        if (!prev.chunks || missing.length > 0) {
          this.o.log.warn({ table: t.name, dir: t.files.dir, missing: missing.length }, 'poll.state.lost: chunk files of the last acknowledged pass are gone; the table is read again as a snapshot (its end-of-snapshot sweep deletes what is gone)');
          continue;
        }
        t.files.keepOnly(new Set(prev.chunks.map((c) => c.file)));
      }
      this.state.tables[t.name] = prev;
    }
    this.o.log.info({ stream: this.o.streamId, pass: this.state.pass, position: this.confirmed }, 'capture.resume');
  }

  private async passes(): Promise<void> {
    try {
      while (!this.stopping) {
        try {
          await this.pass();
        } catch (err) {
          // An ALTER TABLE between a pass's describe and its reads fails the read (a dropped column):
          // when a table's columns changed meanwhile, the pass is run again with them, else it fails.
          if (err instanceof Stopped || !(await this.columnsChanged())) throw err;
          this.o.log.info({ err: errorMessage(err) }, 'poll.pass.retry: a table changed while it was read; the pass runs again');
          continue;
        }
        if (this.stopping) break;
        if (this.wanted > this.state.pass) continue; // a run asked for a later pass (position())
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.o.intervalMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = undefined;
      }
    } catch (err) {
      if (err instanceof Stopped) return;
      throw this.dialect.classify(err, `pipeline ${this.o.pipeline}: polling ${this.dialect.system} at ${this.dialect.where}`);
    } finally {
      this.inPass = 0;
    }
  }

  private async pass(): Promise<void> {
    const n = Math.max(this.state.pass + 1, this.state.begun + 1, Math.floor(Date.now() / 1000));
    this.inPass = n;
    const ctx: PassCtx = { n, seq: 0, startedMs: Date.now(), files: 0, begun: false, emitted: 0, resend: this.state.begun > this.state.pass };
    const next: Record<string, PollTableState> = {};
    this.handler.begin({});
    for (const t of this.tracked) next[t.name] = await this.pollTable(t, ctx);
    const changes = ctx.emitted;
    const end = passPosition(n, PASS_END);
    this.handler.commit(end);
    await this.handler.flush();
    if (this.acked < positionToBigInt(end)) {
      if (this.stopping) throw new Stopped();
      return; // not acknowledged (Kafka unavailable while stopping): the pass is read again
    }
    this.state = { pass: n, begun: Math.max(this.state.begun, n), tables: next };
    passAcknowledged(this.o.streamId, ctx.startedMs);
    this.stats.passes++;
    this.stats.changes += changes;
    if (!this.firstPass) this.firstPass = end;
    this.inPass = 0;
    // A pass that changed nothing moved only `position`: stored at most once a second (and at stop);
    // a record a little behind only makes a restart read one more pass.
    if (changes > 0 || Date.now() - this.lastStore >= 1000) await this.store();
    for (const t of this.tracked) if (next[t.name]!.chunks) t.files.keepOnly(new Set(next[t.name]!.chunks!.map((c) => c.file)));
    this.o.log.debug({ pass: n, changes, ms: Date.now() - ctx.startedMs }, 'poll.pass.done');
  }

  // ------------------------------------------------------------------ emitting

  private async emit(t: Tracked, ctx: PassCtx, op: Op, raw: unknown[] | null, keyRow?: Row): Promise<void> {
    if (this.stopping) throw new Stopped();
    if (!ctx.begun) {
      ctx.begun = true;
      // Before the pass's first change reaches Kafka, its number is recorded as used (see the header).
      if (ctx.n > this.state.begun) {
        this.state.begun = ctx.n;
        await this.store();
      }
    }
    ctx.emitted++;
    const snapshot = op === 'r' || op === 'm';
    const pos = snapshot ? passPosition(ctx.n, 0) : passPosition(ctx.n, ++ctx.seq);
    let after: Row | null = null;
    let before: Row | null = null;
    if (raw) {
      after = {};
      t.rel.columns.forEach((c, i) => (after![c.name] = this.dialect.canonical(raw[i], c)));
    }
    if (op === 'd') {
      before = keyRow!;
      after = null;
    }
    const e: ChangeEvent = {
      op,
      before,
      after,
      source: { db: this.dialect.database, schema: t.rel.schema, table: t.rel.table, pos, commitPos: pos, txId: null, tsMs: ctx.startedMs, snapshot, idx: op === 'm' ? 1 : 0 },
      tsMs: Date.now(),
      unchangedToast: op === 'm' ? [...t.rel.key] : [],
    };
    await this.handler.change(e);
  }

  // ------------------------------------------------------------------ tables

  /**
   * The table's columns as the database describes them now (a few catalog queries per pass): after an
   * ALTER TABLE the stage registers the new schema version and this pass reads the new columns.
   */
  private async refresh(t: Tracked): Promise<boolean> {
    const rel = await this.dialect.describe(t.req, t.cfg.query, this.o.pipeline);
    const sig = (cols: SourceColumn[]) => cols.map((c) => `${c.name}:${c.type.kind}:${c.type.pgType}`).join(',');
    if (sig(rel.columns) === sig(t.rel.columns)) return false;
    const names = rel.columns.map((c) => c.name);
    const colIdx = t.cfg.column === undefined ? -1 : names.indexOf(t.cfg.column);
    if (t.cfg.mode !== 'hash' && colIdx < 0) throw fatal('POLL_COLUMN_UNKNOWN', `pipeline ${this.o.pipeline}: tracking column '${t.cfg.column}' of ${t.name} is gone (columns now: ${names.join(', ')})`);
    await this.handler.columns(rel.schema, rel.table, rel.columns);
    this.o.log.info({ table: t.name, columns: names }, 'poll.columns.changed: the table\'s columns changed; read with the new ones from this pass on');
    t.rel = rel;
    t.colIdx = colIdx;
    t.keyIdx = rel.key.map((k) => names.indexOf(k));
    t.seen = undefined;
    return true;
  }

  private async columnsChanged(): Promise<boolean> {
    let changed = false;
    for (const t of this.tracked) if (await this.refresh(t)) changed = true;
    return changed;
  }

  private async pollTable(t: Tracked, ctx: PassCtx): Promise<PollTableState> {
    await this.refresh(t);
    const prev = this.state.tables[t.name];
    const base = { mode: t.cfg.mode, ...(t.cfg.column !== undefined ? { column: t.cfg.column } : {}), ...(t.cfg.query !== undefined ? { query: t.cfg.query } : {}) };
    if (t.cfg.mode === 'hash') {
      if (!prev?.chunks) {
        this.o.log.info({ table: t.name, pass: ctx.n }, 'poll.snapshot.start');
        const chunks = await this.scanRange(t, ctx, { lo: null, hi: null }, null, true);
        await this.emit(t, ctx, 'm', null);
        return { ...base, chunks };
      }
      const chunks: ChunkMeta[] = [];
      for (const c of prev.chunks) {
        this.stats.chunksChecked++;
        if (!ctx.resend && (await this.chunkUnchanged(t, c))) chunks.push(c);
        else {
          this.stats.chunksRead++;
          chunks.push(...(await this.scanRange(t, ctx, c, t.files.read(c.file), true)));
        }
      }
      return { ...base, chunks };
    }
    if (prev === undefined || prev.watermark === undefined) {
      const [[max]] = (await this.dialect.query(`SELECT max(${this.colExpr(t)}) FROM ${t.rel.from}`, [])) as unknown[][] as [[unknown]];
      this.o.log.info({ table: t.name, pass: ctx.n }, 'poll.snapshot.start');
      await this.scanRange(t, ctx, { lo: null, hi: null }, null, false);
      await this.emit(t, ctx, 'm', null);
      t.seen = undefined;
      return { ...base, watermark: max === null || max === undefined ? null : stringifyTagged(max) };
    }
    return { ...base, watermark: await this.changedSince(t, ctx, prev.watermark) };
  }

  /** Key ranges and keyset pages compare keys in SQL, where NULL compares as unknown: a NULL key would end a page early. */
  private checkKey(t: Tracked, rawKey: unknown[]): void {
    if (rawKey.some((v) => v === null || v === undefined)) {
      throw fatal('POLL_KEY_NULL', `pipeline ${this.o.pipeline}: ${t.name} has a row whose key (${t.rel.key.join(', ')}) is NULL: a polled table's key columns must never be NULL (tables[].key)`);
    }
  }

  private colExpr(t: Tracked): string {
    return `${ALIAS}.${this.dialect.id(t.cfg.column!)}`;
  }

  private keyCols(t: Tracked): SourceColumn[] {
    return t.keyIdx.map((i) => t.rel.columns[i]!);
  }

  private async chunkUnchanged(t: Tracked, c: ChunkMeta): Promise<boolean> {
    const q = digestQuery(this.dialect, t.rel, this.keyCols(t), c);
    const [[count, sum]] = (await this.dialect.query(q.sql, q.params)) as [[unknown, unknown]];
    return Number(count) === c.count && String(sum) === c.digest;
  }

  /**
   * Read the key range (lo, hi] in key order by pages. With `old` (the chunk's file): emit what differs
   * from it ('c', 'u', then 'd' for keys not found); without: emit every row as a snapshot row 'r'.
   * With `chunked`, write the rows' (key, hash) as chunks of at most chunkSize and return them.
   */
  private async scanRange(t: Tracked, ctx: PassCtx, range: { lo: string | null; hi: string | null }, old: Map<string, string> | null, chunked: boolean): Promise<ChunkMeta[]> {
    const keyCols = this.keyCols(t);
    const hashIdx = t.rel.columns.length;
    const out: ChunkMeta[] = [];
    let cur: [string, string][] = [];
    let curLo = range.lo;
    const close = (hi: string | null): void => {
      const file = `${ctx.n}-${ctx.files++}.json`;
      t.files.write(file, cur);
      out.push({ lo: curLo, hi, count: cur.length, digest: digestOf(cur.map((e) => e[1])), file });
      curLo = hi;
      cur = [];
    };
    let after: unknown[] | null = null;
    for (;;) {
      if (this.stopping) throw new Stopped();
      const q = keyPageQuery(this.dialect, t.rel, keyCols, range, after, this.o.pageSize);
      const rows = await this.dialect.query(q.sql, q.params);
      for (const row of rows) {
        const rawKey = t.keyIdx.map((i) => row[i]);
        this.checkKey(t, rawKey);
        const kt = stringifyTagged(rawKey);
        const h = String(row[hashIdx]);
        if (old) {
          const prev = old.get(kt);
          old.delete(kt);
          if (prev !== h || ctx.resend) await this.emit(t, ctx, prev === undefined ? 'c' : 'u', row);
        } else {
          await this.emit(t, ctx, 'r', row);
        }
        if (chunked) {
          cur.push([kt, h]);
          if (cur.length >= t.cfg.chunkSize) close(kt);
        }
      }
      if (rows.length < this.o.pageSize) break;
      after = t.keyIdx.map((i) => rows[rows.length - 1]![i]);
    }
    if (chunked) close(range.hi);
    if (old) {
      for (const kt of old.keys()) {
        const raw = parseTagged(kt) as unknown[];
        const keyRow: Row = {};
        keyCols.forEach((c, i) => (keyRow[c.name] = this.dialect.canonical(raw[i], c)));
        await this.emit(t, ctx, 'd', null, keyRow);
      }
    }
    return out;
  }

  /** timestamp/version: the rows whose column is above the watermark (minus the overlap); returns the new watermark. */
  private async changedSince(t: Tracked, ctx: PassCtx, watermark: string | null): Promise<string | null> {
    const col = t.rel.columns[t.colIdx]!;
    const hashIdx = t.rel.columns.length;
    const overlap = t.cfg.mode === 'timestamp' ? t.cfg.overlapMs : t.cfg.overlap;
    const seen = new Map<string, string>();
    let keepSeen = true;
    let wm = watermark;
    let after: unknown[] | null = null;
    for (;;) {
      if (this.stopping) throw new Stopped();
      const q = trackedPageQuery(this.dialect, t.rel, col, this.keyCols(t), t.cfg.mode as 'timestamp' | 'version', watermark === null ? null : parseTagged(watermark), overlap, after, this.o.pageSize);
      const rows = await this.dialect.query(q.sql, q.params);
      for (const row of rows) {
        const rawKey = t.keyIdx.map((i) => row[i]);
        this.checkKey(t, rawKey);
        const kt = stringifyTagged(rawKey);
        const h = String(row[hashIdx]);
        if (t.seen?.get(kt) !== h) await this.emit(t, ctx, 'u', row);
        if (keepSeen) {
          seen.set(kt, h);
          if (seen.size > SEEN_MAX) keepSeen = false;
        }
      }
      if (rows.length > 0) wm = stringifyTagged(rows[rows.length - 1]![t.colIdx]);
      if (rows.length < this.o.pageSize) break;
      const last = rows[rows.length - 1]!;
      after = [last[t.colIdx], ...t.keyIdx.map((i) => last[i])];
    }
    t.seen = keepSeen ? seen : undefined;
    return wm;
  }

  // ------------------------------------------------------------------ acknowledgement and state

  acknowledge(end: string): void {
    const p = positionToBigInt(end);
    if (p > this.acked) this.acked = p;
  }

  /** Write the durable record: the acknowledged passes' state, and the highest pass number begun. */
  private store(): Promise<void> {
    this.lastStore = Date.now();
    const record: CaptureOffset = {
      slot: this.o.streamId,
      snapshot: this.state.pass > 0 ? 'done' : 'started',
      consistentPoint: this.firstPass,
      tables: this.tracked.map((t) => t.name),
      at: new Date().toISOString(),
      position: this.confirmed,
      state: JSON.parse(JSON.stringify(this.state)) as Record<string, unknown>,
    };
    const write = this.storing.then(() => this.handler.offsets.write(record));
    this.storing = write.catch(() => undefined);
    return write;
  }

  async quiesce(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    if (this.loop) await Promise.race([this.loop.catch(() => undefined), new Promise((r) => setTimeout(r, 5000))]);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    try {
      const last = this.handler && this.state.pass > 0 ? this.store().catch(() => undefined) : this.storing;
      await Promise.race([last, new Promise((r) => setTimeout(r, 5000))]);
    } finally {
      if (this.stats.passes > 0) pollStopped(this.o.streamId); // this instance's clock (./lag.ts)
      await this.dialect.close().catch(() => undefined);
    }
  }
}
