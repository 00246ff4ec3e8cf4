/**
 * HTTP API source: each configured endpoint (one per table) is listed page by page once per pass,
 * and what changed since the last pass becomes changes in the same envelope, topics and downstream
 * guarantees as the other sources. It follows the polling sources' rules (ADR 0015,
 * src/capture/poll/README.md) with the listing in place of SQL (ADR 0023):
 *
 *  - A pass is one transaction: changes of pass N at N/1, N/2, …, snapshot rows at N/0 (the table's
 *    end-of-snapshot marker at N/0 idx 1), the pass ends at N/FFFFFFFF (`passPosition`). `confirmed`
 *    only ever holds whole passes; `position()` is the end of the next complete pass, so scheduled
 *    and manual runs (src/sync/) end once a whole listing after their start is in Kafka.
 *  - Pass numbers grow: max(last acknowledged + 1, last begun + 1, seconds since the epoch); "begun"
 *    is stored before a pass's first change reaches Kafka, so a pass cut short by a crash (kill -9)
 *    is never numbered again and the stage's resume dedup cannot hide a later pass's changes.
 *  - Durable state, capture offsets record `http_<pipeline>`: `position` and `state` = { pass, begun,
 *    tables: { name: { sig, mode, watermark | file } } }, written after Kafka acknowledged the pass.
 *    A crash reads again from the previous pass: records are emitted again at higher positions and
 *    the sink's version state and hash delta make them no-ops. After a pass that sent changes and was
 *    never acknowledged, the next pass emits every record it lists (PassCtx.resend): the lost pass may
 *    have deleted a record a shifting page hid, which the stored state still holds as unchanged.
 *
 * Modes (per endpoint, ./spec.ts):
 *  - hash: the whole listing each pass; each record's canonical row hash is compared with the last
 *    acknowledged pass's (a file of key → hash under <stateDir>/<stream id>/<table>/, one per pass,
 *    via src/capture/poll/chunks.ts as one chunk): new keys 'c', changed 'u', keys not listed 'd'.
 *    Memory holds the endpoint's key → hash map (about 100 bytes a record).
 *  - timestamp / version: the first pass lists everything (a snapshot) and takes the highest value
 *    of the tracking column as the watermark; later passes send `since.param` = watermark minus the
 *    overlap and emit the records whose hash differs from what the previous pass read (an in-memory
 *    map, as PollSource's overlap dedup). Ops 'u'. Never sees deletes.
 *  - The first pass of an endpoint (no stored state, its settings changed, its hash file lost) is a
 *    snapshot: every record 'r', then the end marker 'm' so the sink deletes what the listing lacked.
 *  - A record listed twice in one pass (offset pages shifting under inserts) is emitted once unless
 *    its content changed in between.
 *
 * Records that do not fit (not an object, a key column missing, a value its column's type does not
 * take) are dead-lettered through the capture stage (handler.reject) with the URL, page and index;
 * the rest flows. A rejected record is remembered by the hash of its JSON with the pass's state, so
 * it is dead-lettered again only when it changes.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { CaptureHandler, Source, SourceColumn, SourceTable, TableRequest } from '../../../src/capture/source.js';
import type { ChangeEvent, Op, Row } from '../../../src/core/envelope.js';
import { position as eventPosition, setColumn } from '../../../src/core/envelope.js';
import { errorMessage, fatal, poison, SynclineError } from '../../../src/core/errors.js';
import { rowHash } from '../../../src/core/hash.js';
import { canonicalTableName, formatTableName, parseTableName } from '../../../src/core/names.js';
import { parseTagged, stringifyTagged } from '../../../src/core/tagged-json.js';
import { ChunkFiles } from '../../../src/capture/poll/chunks.js';
import { PassLoop, PassStopped, passFailed, type PassCtx, type PassState } from '../../../src/capture/poll/pass-loop.js';
import { HttpSourceClient } from './client.js';
import { compilePath } from './jsonpath.js';
import { firstPage, pager, type NextPage, type PageRequest } from './pages.js';
import type { HttpEndpoint, HttpSourceConfig } from './spec.js';
import { below, canonicalValue, columnType, sinceValue, type HttpColumnType } from './values.js';

/** Records of a pass whose hashes are kept for the overlap dedup of the next pass (timestamp/version). */
const SEEN_MAX = 100_000;

export interface EndpointState {
  /** The settings the state was made with (mode, column, url, params, records path, columns): changed → snapshot. */
  sig: string;
  mode: HttpEndpoint['mode'];
  /** timestamp/version: the highest tracking value acknowledged (canonical text; null: none yet). */
  watermark?: string | null;
  /** hash: the file of key → hash of the acknowledged pass, and its record count. */
  file?: string;
  count?: number;
}

export type HttpPollState = PassState<EndpointState>;

interface Endpoint {
  name: string;
  schema: string;
  table: string;
  cfg: HttpEndpoint;
  sig: string;
  columns: SourceColumn[];
  types: HttpColumnType[];
  paths: ((record: unknown) => unknown)[];
  key: string[];
  keyIdx: number[];
  colIdx: number;
  records: (doc: unknown) => unknown;
  next: NextPage;
  files: ChunkFiles;
  /** timestamp/version: key → hash of the previous pass's records (overlap dedup). */
  seen?: Map<string, string>;
}

type Converted = { ok: true; row: Row; kt: string; hash: string } | { ok: false; kt: string; mark: string; error: SynclineError };

export class HttpSource implements Source {
  readonly batchSize: number;
  readonly lingerMs: number;
  readonly client: HttpSourceClient;
  private handler!: CaptureHandler;
  private endpoints: Endpoint[] = [];
  /** The pass loop: pass numbers, begun, positions, acknowledgement, the stored state (src/capture/poll/pass-loop.ts). */
  private readonly loop: PassLoop<EndpointState>;
  /** Since start: records dead-lettered, pages read (passes and changes: loop.stats). */
  readonly stats = { rejected: 0, pages: 0 };

  constructor(private readonly c: HttpSourceConfig, private readonly o: { pipeline: string; log: Logger; streamId: string }) {
    this.batchSize = c.batchSize;
    this.lingerMs = c.lingerMs;
    this.client = new HttpSourceClient(c, o.pipeline, o.log);
    this.loop = new PassLoop<EndpointState>({
      streamId: o.streamId,
      intervalMs: c.intervalMs,
      log: o.log,
      tables: () => this.endpoints.map((e) => e.name),
      restore: (s) => this.restore(s),
      pass: async (ctx) => {
        const next: Record<string, EndpointState> = {};
        for (const e of this.endpoints) next[e.name] = await this.pollEndpoint(e, ctx);
        return next;
      },
      acknowledged: (s) => {
        for (const e of this.endpoints) if (s.tables[e.name]?.file) e.files.keepOnly(new Set([s.tables[e.name]!.file!]));
      },
      failed: passFailed('HTTP_SOURCE_FAILED', `pipeline ${o.pipeline}: HTTP source`),
    });
  }

  get confirmed(): string {
    return this.loop.confirmed;
  }

  position(): Promise<string> {
    return this.loop.position();
  }

  private get stopping(): boolean {
    return this.loop.stopping;
  }

  async connect(): Promise<void> {}

  async describe(tables: TableRequest[]): Promise<SourceTable[]> {
    const configured = new Map<string, HttpEndpoint>();
    for (const [name, cfg] of Object.entries(this.c.endpoints)) {
      let canonical: string;
      try {
        canonical = canonicalTableName(name);
      } catch (err) {
        throw fatal('HTTP_TABLE_NAME', `pipeline ${this.o.pipeline}: source.endpoints key '${name}' is not a table name (schema.table): ${errorMessage(err)}`);
      }
      if (!tables.some((t) => t.source === canonical)) {
        throw fatal('HTTP_TABLE_UNKNOWN', `pipeline ${this.o.pipeline}: source.endpoints names ${name}, which is not in the pipeline's tables[] (have: ${tables.map((t) => t.source).join(', ')})`);
      }
      configured.set(canonical, cfg);
    }
    this.endpoints = tables.map((req) => {
      const cfg = configured.get(req.source);
      if (!cfg) throw fatal('HTTP_ENDPOINT_MISSING', `pipeline ${this.o.pipeline}: table ${req.source} has no endpoint in source.endpoints (have: ${[...configured.keys()].join(', ') || 'none'})`);
      const names = Object.keys(cfg.columns);
      const key = req.key ?? cfg.key;
      const unknown = key.filter((k) => !names.includes(k));
      if (unknown.length) throw fatal('SOURCE_KEY_UNKNOWN', `pipeline ${this.o.pipeline}: key column(s) ${unknown.join(', ')} of ${req.source} are not in source.endpoints.${req.source}.columns`);
      const { schema, table } = parseTableName(req.source);
      const types = names.map((n) => cfg.columns[n]!.type);
      const sig = JSON.stringify([cfg.mode, cfg.column ?? null, cfg.url, cfg.params, cfg.recordsPath, key, names.map((n) => [n, cfg.columns[n]!.path ?? null, cfg.columns[n]!.type])]);
      return {
        name: req.source, schema, table, cfg, sig, key, types,
        columns: names.map((n, i) => ({ name: n, type: columnType(types[i]!) })),
        paths: names.map((n) => compilePath(cfg.columns[n]!.path ?? `$['${n.replace(/(['\\])/g, '\\$1')}']`)),
        keyIdx: key.map((k) => names.indexOf(k)),
        colIdx: cfg.column === undefined ? -1 : names.indexOf(cfg.column),
        records: compilePath(cfg.recordsPath),
        next: pager(cfg.pagination),
        files: new ChunkFiles(join(this.c.stateDir, this.o.streamId, encodeURIComponent(req.source))),
      };
    });
    return this.endpoints.map((e) => ({ schema: e.schema, table: e.table, key: e.key, columns: e.columns }));
  }

  async prepare(): Promise<void> {}

  async run(handler: CaptureHandler): Promise<void> {
    this.handler = handler;
    await this.loop.run(handler);
  }

  private restore(s: HttpPollState): HttpPollState {
    const tables: Record<string, EndpointState> = {};
    for (const e of this.endpoints) {
      const prev = s.tables[e.name];
      if (!prev) continue;
      if (prev.sig !== e.sig) {
        this.o.log.warn({ table: e.name }, 'poll.settings.changed: the endpoint\'s settings changed; it is read again as a snapshot');
        continue;
      }
      if (prev.mode === 'hash') {
        if (!prev.file || !e.files.exists(prev.file)) {
          this.o.log.warn({ table: e.name, dir: e.files.dir }, 'poll.state.lost: the hash file of the last acknowledged pass is gone; the endpoint is read again as a snapshot (its end-of-snapshot sweep deletes what is gone)');
          continue;
        }
        e.files.keepOnly(new Set([prev.file]));
      }
      tables[e.name] = prev;
    }
    return { pass: s.pass, begun: s.begun, tables };
  }

  // ------------------------------------------------------------------ records

  private async emit(e: Endpoint, ctx: PassCtx, op: Op, row: Row | null): Promise<void> {
    await this.loop.begin(ctx);
    ctx.emitted++;
    const snapshot = op === 'r' || op === 'm';
    const pos = this.loop.next(ctx, snapshot);
    const ev: ChangeEvent = {
      op,
      before: op === 'd' ? row : null,
      after: op === 'd' || op === 'm' ? null : row,
      source: { db: new URL(e.cfg.url).host, schema: e.schema, table: e.table, pos, commitPos: pos, txId: null, tsMs: ctx.startedMs, snapshot, idx: op === 'm' ? 1 : 0 },
      tsMs: Date.now(),
      unchangedToast: op === 'm' ? [...e.key] : [],
    };
    await this.handler.change(ev);
  }

  private async reject(e: Endpoint, ctx: PassCtx, raw: unknown, c: Extract<Converted, { ok: false }>): Promise<void> {
    await this.loop.begin(ctx);
    this.stats.rejected++;
    const position = this.loop.next(ctx, false);
    let value: string;
    try {
      value = JSON.stringify(raw) ?? 'undefined';
    } catch {
      value = String(raw);
    }
    this.o.log.warn({ table: e.name, code: c.error.code, err: c.error.message }, 'http.source.rejected: a record was dead-lettered');
    if (!this.handler.reject) throw fatal('HTTP_NO_DLQ', `pipeline ${this.o.pipeline}: ${c.error.message} (and the capture stage cannot dead-letter it)`);
    await this.handler.reject({ table: formatTableName(e), position: eventPosition(position, 0), key: c.kt, value, error: c.error });
  }

  /** A record → its row and key, or why it cannot be one (naming the URL, page and index). */
  private convert(e: Endpoint, raw: unknown, req: PageRequest, index: number): Converted {
    const where = `pipeline ${this.o.pipeline}: ${e.name}: record ${index} of page ${req.page} (GET ${req.url})`;
    const mark = () => 'x' + createHash('sha1').update(JSON.stringify(raw) ?? '').digest('hex');
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      const m = mark();
      return { ok: false, kt: '!' + m, mark: m, error: poison('HTTP_RECORD_INVALID', `${where}: not a JSON object: ${String(JSON.stringify(raw)).slice(0, 200)}`) };
    }
    const row: Row = {};
    const keyVals: unknown[] = [];
    let error: SynclineError | null = null;
    for (let i = 0; i < e.columns.length; i++) {
      const name = e.columns[i]!.name;
      try {
        setColumn(row, name, canonicalValue(name, e.types[i]!, e.paths[i]!(raw)));
      } catch (err) {
        error ??= poison((err as SynclineError).code ?? 'HTTP_VALUE_TYPE', `${where}: ${errorMessage(err)}`);
        setColumn(row, name, null);
      }
    }
    for (const i of e.keyIdx) keyVals.push(row[e.columns[i]!.name]);
    const keyMissing = keyVals.some((v) => v === null || v === undefined);
    if (keyMissing && !error) error = poison('HTTP_KEY_MISSING', `${where}: key ${e.key.join(', ')} missing or null`);
    if (error) {
      const m = mark();
      return { ok: false, kt: keyMissing ? '!' + m : stringifyTagged(keyVals), mark: m, error };
    }
    return { ok: true, row, kt: stringifyTagged(keyVals), hash: rowHash(row) };
  }

  /** List the endpoint page by page, calling `each` with every record in order. */
  private async list(e: Endpoint, extra: Record<string, string>, each: (raw: unknown, req: PageRequest, index: number) => Promise<void>): Promise<void> {
    let req: PageRequest | null = firstPage(e.cfg.url, { ...e.cfg.params, ...extra }, e.cfg.pagination);
    while (req) {
      if (this.stopping) throw new PassStopped();
      const page = await this.client.get(req.url, `${e.name} page ${req.page}`);
      this.stats.pages++;
      const arr = e.records(page.body);
      if (arr !== undefined && arr !== null && !Array.isArray(arr)) {
        throw fatal('HTTP_RECORDS_PATH', `pipeline ${this.o.pipeline}: ${e.name}: recordsPath ${e.cfg.recordsPath} is not an array in the response of GET ${req.url}: ${JSON.stringify(page.body)?.slice(0, 1024)}`);
      }
      const records = (arr ?? []) as unknown[];
      for (let i = 0; i < records.length; i++) await each(records[i], req, i);
      let next: PageRequest | null;
      try {
        next = e.next(req, page.body, records.length, page.link);
      } catch (err) {
        throw fatal('HTTP_PAGINATION', `pipeline ${this.o.pipeline}: ${e.name}: GET ${req.url}: ${errorMessage(err)}`);
      }
      if (next && next.url === req.url) throw fatal('HTTP_PAGINATION_LOOP', `pipeline ${this.o.pipeline}: ${e.name}: the next page of GET ${req.url} is the same URL (check source.endpoints.${e.name}.pagination)`);
      req = next;
    }
  }

  private async pollEndpoint(e: Endpoint, ctx: PassCtx): Promise<EndpointState> {
    const prev = this.loop.state.tables[e.name];
    const base = { sig: e.sig, mode: e.cfg.mode };
    if (e.cfg.mode === 'hash') return { ...base, ...(await this.hashPass(e, ctx, prev?.file ? e.files.read(prev.file) : null)) };
    return { ...base, watermark: await this.trackedPass(e, ctx, prev?.watermark) };
  }

  /** hash mode: the whole listing compared with `old` (null: a snapshot); writes the pass's file. */
  private async hashPass(e: Endpoint, ctx: PassCtx, old: Map<string, string> | null): Promise<{ file: string; count: number }> {
    if (!old) this.o.log.info({ table: e.name, pass: ctx.n }, 'poll.snapshot.start');
    const now = new Map<string, string>();
    await this.list(e, {}, async (raw, req, index) => {
      const c = this.convert(e, raw, req, index);
      const h = c.ok ? c.hash : c.mark;
      const again = now.get(c.kt);
      if (again === h) return; // listed twice in this pass, unchanged
      const prev = again ?? old?.get(c.kt);
      old?.delete(c.kt);
      now.set(c.kt, h);
      if (!c.ok) {
        if (prev !== h) await this.reject(e, ctx, raw, c);
        return;
      }
      if (again === undefined && !old) await this.emit(e, ctx, 'r', c.row);
      else if (prev !== h || (ctx.resend && again === undefined)) await this.emit(e, ctx, prev === undefined ? 'c' : 'u', c.row);
    });
    if (!old) await this.emit(e, ctx, 'm', null);
    else {
      for (const kt of old.keys()) {
        if (kt.startsWith('!')) continue; // a record without a key, dead-lettered: nothing to delete
        const vals = parseTagged(kt) as Row[string][];
        const key: Row = {};
        e.keyIdx.forEach((ci, i) => (key[e.columns[ci]!.name] = vals[i]!));
        await this.emit(e, ctx, 'd', key);
      }
    }
    const file = `${ctx.n}.json`;
    e.files.write(file, [...now.entries()]);
    return { file, count: now.size };
  }

  /** timestamp/version: the records since the watermark (all of them as a snapshot the first time); returns the new watermark. */
  private async trackedPass(e: Endpoint, ctx: PassCtx, watermark: string | null | undefined): Promise<string | null> {
    const mode = e.cfg.mode as 'timestamp' | 'version';
    const snapshot = watermark === undefined;
    const extra: Record<string, string> = {};
    if (!snapshot && watermark !== null) extra[e.cfg.since!.param] = sinceValue(mode, watermark, mode === 'timestamp' ? e.cfg.overlapMs : e.cfg.overlap, e.cfg.since!.format);
    if (snapshot) this.o.log.info({ table: e.name, pass: ctx.n }, 'poll.snapshot.start');
    const seen = new Map<string, string>();
    let keepSeen = true;
    let wm = watermark ?? null;
    const trackCol = e.columns[e.colIdx]!.name;
    await this.list(e, extra, async (raw, req, index) => {
      const c = this.convert(e, raw, req, index);
      const h = c.ok ? c.hash : c.mark;
      const again = seen.get(c.kt);
      if (again === h) return;
      if (keepSeen) {
        seen.set(c.kt, h);
        if (seen.size > SEEN_MAX) keepSeen = false;
      }
      if (!c.ok) {
        if (e.seen?.get(c.kt) !== h) await this.reject(e, ctx, raw, c);
        return;
      }
      const v = c.row[trackCol];
      if (typeof v === 'string' || typeof v === 'bigint') {
        const t = String(v);
        if (wm === null || below(mode, wm, t)) wm = t;
      }
      if (snapshot && again === undefined) await this.emit(e, ctx, 'r', c.row);
      else if (e.seen?.get(c.kt) !== h || again !== undefined) await this.emit(e, ctx, 'u', c.row);
    });
    if (snapshot) await this.emit(e, ctx, 'm', null);
    e.seen = keepSeen ? seen : undefined;
    return wm;
  }

  // ------------------------------------------------------------------ acknowledgement and state

  acknowledge(end: string): void {
    this.loop.acknowledge(end);
  }

  quiesce(): Promise<void> {
    return this.loop.quiesce();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }
}

export const httpStreamId = (pipeline: string): string => `http_${pipeline.replace(/-/g, '_')}`;
