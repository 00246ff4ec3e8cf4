/**
 * File source: each configured table is a glob of JSON Lines, CSV or Parquet files under source.dir,
 * read once per pass (src/capture/poll/pass-loop.ts: a pass is one transaction, positions N/seq,
 * `confirmed` whole passes, state in the capture offsets record `file_<pipeline>`; ADR 0025).
 *
 * Per table the state holds, per file read: its size, mtime, content hash (sha256) and the name of a
 * file of key → row hash (under <stateDir>/<stream id>/<table>/, src/capture/poll/chunks.ts). A pass:
 *  - a file whose size, mtime and inode are as stored: nothing read (stableMs also covers the
 *    file system's coarse mtime: a file read was untouched for stableMs, so a later write moves it);
 *  - a file modified less than stableMs ago: left for a later pass (still being written);
 *  - otherwise its content hash (a streamed read of the size found): as stored → nothing to do;
 *  - otherwise its records are streamed and compared by key with the file's previous version: a new
 *    key 'c', a changed row 'u', a key gone 'd' (at the end of the pass, unless another file of the
 *    table produced that key in the same pass: a row moved between files); a deleted file (or one no
 *    longer matched) deletes its keys;
 *  - the first pass of a table (no state, its settings changed, its hash files lost) is a snapshot:
 *    every row 'r', then the end-of-snapshot marker 'm', so the sink deletes what no file holds.
 * A key is expected in one file at a time; one listed twice in a file: the last line wins.
 *
 * A record that is not a row (unparseable JSON, wrong CSV field count, a value its column does not
 * take, no key) is dead-lettered through the capture stage (handler.reject) naming `<file>:<line>`,
 * and the rest flows. It is remembered with the file's hashes, so it is dead-lettered again only when
 * its line changes (or after a crash before its pass was acknowledged).
 *
 * State is written only for acknowledged passes: after kill -9 the files are compared again with the
 * last acknowledged pass's versions; rows emitted again carry higher positions and the same content,
 * so the applier's content hash makes them no-ops.
 */
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { CaptureHandler, Source, SourceColumn, SourceTable, TableRequest } from '../../../src/capture/source.js';
import type { ChangeEvent, Op, Row } from '../../../src/core/envelope.js';
import { position as eventPosition } from '../../../src/core/envelope.js';
import { errorMessage, fatal } from '../../../src/core/errors.js';
import { canonicalTableName, formatTableName, parseTableName } from '../../../src/core/names.js';
import { parseTagged } from '../../../src/core/tagged-json.js';
import { ChunkFiles } from '../../../src/capture/poll/chunks.js';
import { PassLoop, passFailed, type PassCtx, type PassState } from '../../../src/capture/poll/pass-loop.js';
import { columnTypeOf } from '../../kafka-topic/envelope.js';
import { csvFileRecords, csvHeader, hashFile, jsonlRecords, listFiles, parquetRecords, type FileRecord } from './read.js';
import { convertRecord, type Converted } from './rows.js';
import type { FileSourceConfig, FileTable } from './spec.js';

export interface FileVersion {
  size: number;
  mtimeMs: number;
  /** The inode: a file replaced by a rename is another file even with the same size and mtime. */
  ino?: number;
  /** sha256 of the content read. */
  hash: string;
  /** The file of key → row hash under the table's state folder. */
  rows: string;
  count: number;
}

export interface FileTableState {
  /** The settings the state was made with (glob, format, key, columns): changed → snapshot. */
  sig: string;
  files: Record<string, FileVersion>;
}

interface Table {
  name: string;
  schema: string;
  table: string;
  cfg: FileTable;
  sig: string;
  key: string[];
  columns: SourceColumn[];
  files: ChunkFiles;
}

export class FileSource implements Source {
  readonly batchSize: number;
  readonly lingerMs: number;
  private handler!: CaptureHandler;
  private tables: Table[] = [];
  private readonly dir: string;
  private readonly loop: PassLoop<FileTableState>;
  /** Since start: records dead-lettered, files read, files left for later (still being written). */
  readonly stats = { rejected: 0, filesRead: 0, unstable: 0 };

  constructor(private readonly c: FileSourceConfig, private readonly o: { pipeline: string; log: Logger; streamId: string }) {
    this.batchSize = c.batchSize;
    this.lingerMs = c.lingerMs;
    this.dir = resolve(c.dir);
    this.loop = new PassLoop<FileTableState>({
      streamId: o.streamId,
      intervalMs: c.intervalMs,
      log: o.log,
      tables: () => this.tables.map((t) => t.name),
      restore: (s) => this.restore(s),
      pass: (ctx) => this.pass(ctx),
      acknowledged: (s) => {
        for (const t of this.tables) t.files.keepOnly(new Set(Object.values(s.tables[t.name]?.files ?? {}).map((f) => f.rows)));
      },
      failed: passFailed('FILE_SOURCE_FAILED', `pipeline ${o.pipeline}: file source`),
    });
  }

  get confirmed(): string {
    return this.loop.confirmed;
  }

  position(): Promise<string> {
    return this.loop.position();
  }

  async connect(): Promise<void> {
    let st;
    try {
      st = statSync(this.dir);
    } catch (err) {
      throw fatal('FILE_SOURCE_DIR', `pipeline ${this.o.pipeline}: source.dir ${this.dir} cannot be read: ${errorMessage(err)}`);
    }
    if (!st.isDirectory()) throw fatal('FILE_SOURCE_DIR', `pipeline ${this.o.pipeline}: source.dir ${this.dir} is not a directory`);
  }

  async describe(requests: TableRequest[]): Promise<SourceTable[]> {
    const configured = new Map<string, FileTable>();
    for (const cfg of this.c.tables) {
      let canonical: string;
      try {
        canonical = canonicalTableName(cfg.table);
      } catch (err) {
        throw fatal('FILE_TABLE_NAME', `pipeline ${this.o.pipeline}: source.tables table '${cfg.table}' is not a table name (schema.table): ${errorMessage(err)}`);
      }
      if (!requests.some((t) => t.source === canonical)) {
        throw fatal('FILE_TABLE_UNKNOWN', `pipeline ${this.o.pipeline}: source.tables names ${cfg.table}, which is not in the pipeline's tables[] (have: ${requests.map((t) => t.source).join(', ')})`);
      }
      configured.set(canonical, cfg);
    }
    this.tables = requests.map((req) => {
      const cfg = configured.get(req.source);
      if (!cfg) throw fatal('FILE_TABLE_MISSING', `pipeline ${this.o.pipeline}: table ${req.source} has no entry in source.tables (have: ${[...configured.keys()].join(', ') || 'none'})`);
      const names = Object.keys(cfg.columns);
      const key = req.key ?? cfg.key;
      const unknown = key.filter((k) => !names.includes(k));
      if (unknown.length) throw fatal('SOURCE_KEY_UNKNOWN', `pipeline ${this.o.pipeline}: key column(s) ${unknown.join(', ')} of ${req.source} are not in its source.tables columns`);
      const { schema, table } = parseTableName(req.source);
      const columns = names.map((n) => ({ name: n, type: columnTypeOf(cfg.columns[n]!) }));
      const sig = JSON.stringify([cfg.glob, cfg.format, cfg.delimiter, key, names.map((n) => [n, cfg.columns[n]])]);
      return { name: req.source, schema, table, cfg, sig, key, columns, files: new ChunkFiles(join(this.c.stateDir, this.o.streamId, encodeURIComponent(req.source))) };
    });
    return this.tables.map((t) => ({ schema: t.schema, table: t.table, key: t.key, columns: t.columns }));
  }

  async prepare(): Promise<void> {}

  async run(handler: CaptureHandler): Promise<void> {
    this.handler = handler;
    await this.loop.run(handler);
  }

  private restore(s: PassState<FileTableState>): PassState<FileTableState> {
    const tables: Record<string, FileTableState> = {};
    for (const t of this.tables) {
      const prev = s.tables[t.name];
      if (!prev) continue;
      if (prev.sig !== t.sig) {
        this.o.log.warn({ table: t.name }, 'poll.settings.changed: the table\'s file settings changed; its files are read again as a snapshot');
        continue;
      }
      const lost = Object.entries(prev.files ?? {}).find(([, f]) => !t.files.exists(f.rows));
      if (lost) {
        this.o.log.warn({ table: t.name, file: lost[0], dir: t.files.dir }, 'poll.state.lost: the hash file of a file\'s last acknowledged version is gone; the table is read again as a snapshot (its end-of-snapshot sweep deletes what is gone)');
        continue;
      }
      t.files.keepOnly(new Set(Object.values(prev.files ?? {}).map((f) => f.rows)));
      tables[t.name] = prev;
    }
    return { pass: s.pass, begun: s.begun, tables };
  }

  private async pass(ctx: PassCtx): Promise<Record<string, FileTableState>> {
    const next: Record<string, FileTableState> = {};
    for (const t of this.tables) next[t.name] = await this.readTable(t, ctx, this.loop.state.tables[t.name]);
    return next;
  }

  // ------------------------------------------------------------------ changes

  private async emit(t: Table, ctx: PassCtx, op: Op, row: Row | null): Promise<void> {
    await this.loop.begin(ctx);
    ctx.emitted++;
    const snapshot = op === 'r' || op === 'm';
    const pos = this.loop.next(ctx, snapshot);
    const ev: ChangeEvent = {
      op,
      before: op === 'd' ? row : null,
      after: op === 'd' || op === 'm' ? null : row,
      source: { db: this.dir, schema: t.schema, table: t.table, pos, commitPos: pos, txId: null, tsMs: ctx.startedMs, snapshot, idx: op === 'm' ? 1 : 0 },
      tsMs: Date.now(),
      unchangedToast: op === 'm' ? [...t.key] : [],
    };
    await this.handler.change(ev);
  }

  private async reject(t: Table, ctx: PassCtx, raw: string, c: Extract<Converted, { ok: false }>): Promise<void> {
    await this.loop.begin(ctx);
    this.stats.rejected++;
    const position = this.loop.next(ctx, false);
    this.o.log.warn({ table: t.name, code: c.error.code, err: c.error.message }, 'file.source.rejected: a record was dead-lettered');
    if (!this.handler.reject) throw fatal('FILE_NO_DLQ', `pipeline ${this.o.pipeline}: ${c.error.message} (and the capture stage cannot dead-letter it)`);
    await this.handler.reject({ table: formatTableName(t), position: eventPosition(position, 0), key: c.kt, value: raw, error: c.error });
  }

  private records(t: Table, path: string, size: number): AsyncGenerator<FileRecord> {
    switch (t.cfg.format) {
      case 'jsonl': return jsonlRecords(path, size);
      case 'csv': return csvFileRecords(path, size, t.cfg.delimiter);
      case 'parquet': return parquetRecords(path, size);
    }
  }

  private keyRow(t: Table, kt: string): Row {
    const vals = parseTagged(kt) as Row[string][];
    const key: Row = {};
    t.key.forEach((k, i) => (key[k] = vals[i]!));
    return key;
  }

  private async readTable(t: Table, ctx: PassCtx, prev: FileTableState | undefined): Promise<FileTableState> {
    const snapshot = !prev;
    if (snapshot) this.o.log.info({ table: t.name, pass: ctx.n }, 'poll.snapshot.start');
    const old = prev?.files ?? {};
    const files: Record<string, FileVersion> = {};
    /** Keys gone from a file, deleted at the end of the pass unless another file produced them. */
    const gone = new Set<string>();
    const produced = new Set<string>();
    let i = 0;
    for (const rel of listFiles(this.dir, t.cfg.glob)) {
      if (this.loop.stopping) break;
      const path = join(this.dir, rel);
      let st;
      try {
        st = statSync(path);
      } catch {
        if (old[rel]) files[rel] = old[rel]!; // gone between listing and stat: the next pass sees it deleted
        continue;
      }
      const was = old[rel];
      if (was && was.size === st.size && was.mtimeMs === st.mtimeMs && (was.ino ?? st.ino) === st.ino) {
        files[rel] = was;
        continue;
      }
      if (Date.now() - st.mtimeMs < this.c.stableMs) {
        this.stats.unstable++;
        this.o.log.debug({ table: t.name, file: rel }, 'file.source.unstable: modified within stableMs; left for a later pass');
        if (was) files[rel] = was;
        continue;
      }
      const size = st.size;
      const hash = await hashFile(path, size);
      if (was && was.hash === hash) {
        files[rel] = { ...was, size, mtimeMs: st.mtimeMs, ino: st.ino };
        continue;
      }
      this.stats.filesRead++;
      const oldRows = was ? t.files.read(was.rows) : null;
      const now = new Map<string, string>();
      if (t.cfg.format === 'csv') {
        const header = await csvHeader(path, size, t.cfg.delimiter);
        const missing = header ? t.key.filter((k) => !header.includes(k)) : [];
        if (missing.length) {
          // No row of this file can be keyed: the file is one dead letter (again only when it changes).
          const c = convertRecord({ line: 1, raw: header!.join(t.cfg.delimiter), bad: `the header has no key column ${missing.join(', ')} (has: ${header!.join(', ')})` }, t.columns, t.key, true, `${rel}:1`);
          if (!c.ok) {
            if (!oldRows?.has(c.kt)) await this.reject(t, ctx, `${rel}: ${header!.join(t.cfg.delimiter)}`, c);
            now.set(c.kt, c.mark);
          }
        }
        if (missing.length) {
          for (const kt of oldRows?.keys() ?? []) if (!kt.startsWith('!')) gone.add(kt);
          files[rel] = this.writeRows(t, ctx, ++i, now, { size, mtimeMs: st.mtimeMs, ino: st.ino, hash });
          continue;
        }
      }
      for await (const rec of this.records(t, path, size)) {
        const c = convertRecord(rec, t.columns, t.key, t.cfg.format === 'csv', `${rel}:${rec.line}`);
        const h = c.ok ? c.hash : c.mark;
        const again = now.get(c.kt);
        if (again === h) continue; // the same line twice in the file
        const before = again ?? oldRows?.get(c.kt);
        oldRows?.delete(c.kt);
        now.set(c.kt, h);
        if (!c.ok) {
          if (before !== h) await this.reject(t, ctx, `${rel}:${rec.line}: ${rec.raw.slice(0, 64 * 1024)}`, c);
          continue;
        }
        if (snapshot && again === undefined) await this.emit(t, ctx, 'r', c.row);
        else if (before !== h) await this.emit(t, ctx, before === undefined ? 'c' : 'u', c.row);
        produced.add(c.kt);
      }
      for (const kt of oldRows?.keys() ?? []) if (!kt.startsWith('!')) gone.add(kt);
      files[rel] = this.writeRows(t, ctx, ++i, now, { size, mtimeMs: st.mtimeMs, ino: st.ino, hash });
    }
    if (this.loop.stopping) return { sig: t.sig, files: { ...old, ...files } };
    // Files deleted (or no longer matched): their keys are gone.
    for (const [rel, was] of Object.entries(old)) {
      if (files[rel]) continue;
      this.o.log.info({ table: t.name, file: rel, rows: was.count }, 'file.source.deleted: a file is gone; its rows are deleted');
      for (const kt of t.files.read(was.rows).keys()) if (!kt.startsWith('!')) gone.add(kt);
    }
    for (const kt of gone) if (!produced.has(kt)) await this.emit(t, ctx, 'd', this.keyRow(t, kt));
    if (snapshot) await this.emit(t, ctx, 'm', null);
    return { sig: t.sig, files };
  }

  private writeRows(t: Table, ctx: PassCtx, i: number, rows: Map<string, string>, v: Omit<FileVersion, 'rows' | 'count'>): FileVersion {
    const name = `${ctx.n}-${i}.json`;
    t.files.write(name, [...rows.entries()]);
    return { ...v, rows: name, count: rows.size };
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

export const fileStreamId = (pipeline: string): string => `file_${pipeline.replace(/-/g, '_')}`;
