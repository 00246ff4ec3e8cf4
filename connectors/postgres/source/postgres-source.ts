/**
 * The PostgreSQL source: logical replication with pgoutput, one replication slot per pipeline.
 *
 *  - Start: check tables and keys, ensure the publication; then either (a) create the slot with an
 *    exported snapshot, copy every table from that snapshot (op 'r'), record "snapshot done" in the
 *    capture offsets (key = slot name), or (b) reuse the existing slot. Then stream from the slot.
 *  - Positions are LSNs ('X/Y'); a change's commit position is its transaction's commit LSN.
 *  - Acknowledgement: the slot's confirmed LSN advances only to what the capture stage acknowledged
 *    (the end LSN of the last transaction Kafka holds entirely). A crash (kill -9) streams again
 *    from there.
 *  - Back-pressure: messages wait in `queue` while the stage buffers; above 2,000 the replication
 *    socket is paused, so memory does not grow with the WAL backlog.
 *  - Idle slots: keepalives and a timer advance the confirmed LSN to the server's sent position when
 *    nothing is in flight, so an idle slot does not retain WAL.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import type { PgSourceConfig } from '../spec.js';
import type { ChangeEvent, Op, Row, Value } from '../../../src/core/envelope.js';
import { bigIntToPosition, positionToBigInt, setColumn } from '../../../src/core/envelope.js';
import { errorMessage, fatal } from '../../../src/core/errors.js';
import { classifyPgError } from '../errors.js';
import { TypeCatalog, columnType, parsePgText, toPgParam } from '../pgtypes.js';
import type { CaptureHandler, Source, SourceColumn, SourceTable, TableRequest } from '../../../src/capture/source.js';
import { ReplicationService, TextPgoutputPlugin, type Pgoutput } from './pgoutput.js';
import { pgClientConfig, rawTypes } from '../connection.js';
import { connectSource, ensurePublication, inspectTables, quoteIdent, quoteTable, replicationGrantHint, slotDropped, type PgTable } from './prepare.js';
import { sleep } from '../../../src/core/retry.js';
import { formatTableName, parseTableName } from '../../../src/core/names.js';
import { DDL_PREFIX, DDL_TRIGGER, ensureDdlTrigger, parseDdlMessage } from './ddl-trigger.js';
import { PgLeaderLock } from './leader-lock.js';
import { PgBackfill, SIGNAL_PREFIX, WATERMARK_PREFIX, type PgSyncMessage } from './backfill.js';

interface TableState {
  /** The table as configured: its changes carry this name (and go to its topic) even after a rename. */
  src: PgTable;
  columns: SourceColumn[];
  signature: string;
  /** pg_class OID: a rename keeps it (the Relation message and the DDL message show the new name). */
  oid: number;
  /** Its name in the database now (canonical). */
  current: string;
}

type Queued = { kind: 'data'; lsn: string; msg: Pgoutput.Message } | { kind: 'keepalive'; lsn: string; reply: boolean };

/**
 * Rows per FETCH of the snapshot cursor: each fetched chunk is held whole (its text, then its rows)
 * while its changes are encoded, so its size is bounded in bytes, not only in rows: about
 * `chunkBytes` of column text (5,000 narrow rows; about 1,000 rows of 1 KB; 16 rows of 64 KB).
 * The first FETCH takes `firstRows`; each next one is sized from the rows the last one returned.
 */
export const SNAPSHOT_FETCH = { firstRows: 500, minRows: 16, maxRows: 5000, chunkBytes: 1 << 20 } as const;

export function snapshotFetchRows(rows: readonly (readonly (string | null)[])[]): number {
  if (rows.length === 0) return SNAPSHOT_FETCH.firstRows;
  let bytes = 0;
  for (const row of rows) for (const v of row) bytes += v === null ? 1 : v.length + 1;
  const n = Math.floor(SNAPSHOT_FETCH.chunkBytes / (bytes / rows.length));
  return Math.max(SNAPSHOT_FETCH.minRows, Math.min(SNAPSHOT_FETCH.maxRows, n));
}

export class PostgresSource implements Source {
  readonly batchSize: number;
  readonly lingerMs: number;
  private meta?: pg.Client;
  private catalog!: TypeCatalog;
  private tables = new Map<string, TableState>(); // canonical table name (core/names.ts) → state; a renamed table under both names
  private readonly byOid = new Map<number, TableState>();
  private service?: ReplicationService;
  /** relationName()'s cache, by the parser's relation object. */
  private readonly relationNames = new WeakMap<object, string>();
  private handler!: CaptureHandler;
  private heartbeatTimer?: NodeJS.Timeout;

  // Streaming state
  private queue: Queued[] = [];
  private pumping = false;
  private paused = false;
  private tx: { commitPos: string; xid: number; tsMs: number; idx: number } | null = null;
  private watermark = 0n; // confirmed LSN we may report
  private lastServerLsn = 0n;
  private stopping = false;
  private failure?: (err: Error) => void;
  private stopResolve?: () => void;

  /** Backfills: watermarks and signals as logical messages, key-ordered chunks (./backfill.ts). */
  readonly backfill: PgBackfill;

  constructor(private readonly config: PgSourceConfig, private readonly pipeline: string, private readonly log: Logger) {
    this.batchSize = config.batchSize;
    this.lingerMs = config.lingerMs;
    this.backfill = new PgBackfill(config, pipeline);
  }

  get confirmed(): string {
    return this.watermark === 0n ? '' : bigIntToPosition(this.watermark);
  }

  /**
   * The server's WAL end now (pg_current_wal_lsn, 'X/Y'): a bounded run (src/sync/) ends once the
   * slot's confirmed position reached it — by the run's own commits, or by the keepalives that move an
   * idle slot to the server's position.
   */
  async position(): Promise<string> {
    const r = await this.meta!.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
    return r.rows[0]!.lsn;
  }

  /** The capture lock: a session advisory lock on the source database, keyed by the slot (./leader-lock.ts). */
  leaderLock(): PgLeaderLock {
    return new PgLeaderLock(this.config.connection, this.config.slot, this.pipeline, this.config.standbyPollMs);
  }

  async connect(): Promise<void> {
    // Connected before (a restarted stage): the earlier catalog connection is closed, not left open.
    await this.meta?.end().catch(() => undefined);
    this.meta = await connectSource(this.config.connection, `pipeline ${this.pipeline} capture`);
    this.catalog = await TypeCatalog.load(this.meta);
  }

  async describe(tables: TableRequest[]): Promise<SourceTable[]> {
    const found = await inspectTables(this.meta!, tables, this.pipeline);
    const out: SourceTable[] = [];
    for (const t of found) {
      const st = await this.loadTableFromCatalog(t);
      out.push({ schema: t.schema, table: t.table, key: t.key, columns: st.columns });
    }
    return out;
  }

  /** describe() and prepare() while streaming take tables added by a reload: the running walsender decodes a table from the ALTER PUBLICATION's commit on. */
  readonly addsTablesWhileRunning = true;

  async prepare(tables: SourceTable[]): Promise<void> {
    const pgTables = tables.map((t) => this.tables.get(formatTableName(t))!.src);
    await ensurePublication(this.meta!, this.config.publication, pgTables, this.config.connection);
    // DDL seen when it happens (./ddl-trigger.ts); without a superuser, through Relation messages.
    try {
      const r = await ensureDdlTrigger(this.meta!);
      if (r.state === 'installed') this.log.info({ trigger: DDL_TRIGGER }, 'capture.ddl.trigger.installed: ALTER TABLE is emitted into the change stream');
      else if (r.state === 'denied') this.log.warn({ trigger: DDL_TRIGGER, err: r.message }, `capture.ddl.trigger.unavailable: creating an event trigger needs a superuser (${r.message}); schema changes are seen through pgoutput's Relation messages instead (at the table's next row change; a table rename is not seen). A superuser can install it: run the pipeline once as one, or see connectors/postgres/README.md`);
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'capture.ddl.trigger.unavailable: could not install the DDL event trigger; schema changes are seen through Relation messages');
    }
  }

  async run(handler: CaptureHandler): Promise<void> {
    this.handler = handler;
    const { slot: slotName } = this.config;
    const stored = await handler.offsets.read(slotName);
    const slot = await this.slotInfo();
    const wantSnapshot = this.config.snapshot === 'initial';
    handler.running();
    if (slot && stored?.snapshot === 'done' || slot && !wantSnapshot) {
      this.log.info({ slot: slotName, confirmed: slot.confirmed }, 'capture.resume');
      this.watermark = positionToBigInt(slot.confirmed ?? '0/0');
      await handler.resuming();
    } else {
      if (slot) {
        this.log.warn({ slot: slotName, stored: stored?.snapshot ?? 'none' }, 'capture.snapshot.incomplete: dropping slot and snapshotting again');
        await this.dropSlot();
      } else if (stored?.snapshot === 'done') {
        this.log.warn({ slot: slotName }, 'capture.slot.missing: the replication slot was dropped; re-snapshotting (hash delta skips unchanged rows)');
      } else if (stored?.snapshot === 'skipped') {
        // snapshot: never, so nothing can fill the gap: say so rather than stream on silently.
        this.log.warn({ slot: slotName, since: stored.consistentPoint }, 'capture.slot.missing: the replication slot was dropped and snapshot is never: changes made while it was gone are NOT captured');
      }
      this.watermark = await this.createSlotAndSnapshot(wantSnapshot);
    }
    if (handler.stopped) return;
    await this.waitSlotFree();
    await this.stream();
  }

  private async slotInfo(): Promise<{ confirmed: string | null; plugin: string } | null> {
    const r = await this.meta!.query<{ confirmed_flush_lsn: string | null; plugin: string }>(
      `select confirmed_flush_lsn::text, plugin from pg_replication_slots where slot_name = $1`,
      [this.config.slot],
    );
    if (r.rowCount === 0) return null;
    const row = r.rows[0]!;
    if (row.plugin !== 'pgoutput') throw fatal('SLOT_PLUGIN', `replication slot ${this.config.slot} uses plugin ${row.plugin}, expected pgoutput`);
    return { confirmed: row.confirmed_flush_lsn, plugin: row.plugin };
  }

  /** A previous capture killed with -9 leaves its walsender holding the slot for a moment. */
  private async waitSlotFree(): Promise<void> {
    for (let i = 0; i < 120; i++) {
      const r = await this.meta!.query(`select 1 from pg_replication_slots where slot_name = $1 and active`, [this.config.slot]);
      if (r.rowCount === 0) return;
      if (i === 0) this.log.info({ slot: this.config.slot }, 'capture.slot.busy: waiting for the previous holder to go away');
      await sleep(250);
    }
    throw fatal('SLOT_IN_USE', `replication slot ${this.config.slot} is held by another process (is another capture for this pipeline running?)`);
  }

  private async dropSlot(): Promise<void> {
    // A slot still held by a dying walsender (previous process killed) frees itself shortly.
    for (let i = 0; ; i++) {
      try {
        await this.meta!.query(`select pg_drop_replication_slot($1)`, [this.config.slot]);
        return;
      } catch (err) {
        if (i >= 30 || (err as { code?: string }).code !== '55006') throw classifyPgError(err, `cannot drop slot ${this.config.slot}`);
        await sleep(500);
      }
    }
  }

  /**
   * Create the slot over a replication connection with EXPORT_SNAPSHOT and, while that connection
   * stays idle (keeping the snapshot valid), copy every table inside a REPEATABLE READ transaction
   * that imports the snapshot. Rows get the consistent point as position: every streamed change
   * commits after it, so nothing is missed and nothing is applied twice across the handoff.
   */
  private async createSlotAndSnapshot(wantSnapshot: boolean): Promise<bigint> {
    const { connection, slot } = this.config;
    const offsets = this.handler.offsets;
    const repl = new pg.Client({ ...pgClientConfig(connection), replication: 'database' } as pg.ClientConfig);
    repl.on('error', () => undefined);
    try {
      await repl.connect();
    } catch (err) {
      const e = classifyPgError(err, `pipeline ${this.pipeline}: cannot open a replication connection to ${connection.host}:${connection.port}/${connection.database} for slot ${slot}`);
      if ((err as { code?: string }).code === '42501') e.message += `; ${replicationGrantHint(connection)}`;
      throw e;
    }
    try {
      let created: { consistent_point: string; snapshot_name: string | null };
      for (let i = 0; ; i++) {
        try {
          const r = await repl.query(`CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput ${wantSnapshot ? 'EXPORT_SNAPSHOT' : 'NOEXPORT_SNAPSHOT'}`);
          created = r.rows[0];
          break;
        } catch (err) {
          const code = (err as { code?: string }).code;
          if (code === '55000' && /wal_level/.test(errorMessage(err))) throw fatal('WAL_LEVEL', `PostgreSQL must run with wal_level=logical: ${errorMessage(err)}`, err);
          if (i < 20 && code === '55006') { await sleep(500); continue; }
          throw classifyPgError(err, `pipeline ${this.pipeline}: cannot create replication slot ${slot}`);
        }
      }
      const cp = positionToBigInt(created.consistent_point);
      const tables = [...this.tables.keys()];
      if (!wantSnapshot) {
        await offsets.write({ slot, snapshot: 'skipped', consistentPoint: created.consistent_point, tables, at: new Date().toISOString() });
        return cp;
      }
      await offsets.write({ slot, snapshot: 'started', consistentPoint: created.consistent_point, tables, at: new Date().toISOString() });
      this.log.info({ slot, consistentPoint: created.consistent_point, tables }, 'capture.snapshot.start');
      const rows = await this.snapshot(created.snapshot_name!, created.consistent_point);
      await this.handler.flush();
      await offsets.write({ slot, snapshot: 'done', consistentPoint: created.consistent_point, tables, at: new Date().toISOString() });
      this.log.info({ slot, rows }, 'capture.snapshot.done');
      return cp;
    } finally {
      await repl.end().catch(() => undefined);
    }
  }

  private async snapshot(snapshotName: string, consistentPoint: string): Promise<number> {
    const { connection } = this.config;
    const client = new pg.Client({ ...pgClientConfig(connection), types: rawTypes });
    await client.connect();
    const startedMs = Date.now();
    let rows = 0;
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query(`SET TRANSACTION SNAPSHOT '${snapshotName.replace(/'/g, "''")}'`);
      // The snapshot's rows are ordered just before the consistent point: a transaction whose commit
      // record is at the consistent point itself is streamed, not in the snapshot, and its changes
      // (position consistentPoint:0…) must come after the rows (a snapshot row at the same position
      // was taken for the same change, and the streamed update dropped as a repeat).
      const snapshotPos = bigIntToPosition(positionToBigInt(consistentPoint) - 1n);
      for (const st of this.tables.values()) {
        const { src } = st;
        const cols = st.columns.map((c) => quoteIdent(c.name)).join(', ');
        await client.query(`DECLARE snap NO SCROLL CURSOR FOR SELECT ${cols} FROM ${quoteTable(src.schema, src.table)}`);
        let fetchRows: number = SNAPSHOT_FETCH.firstRows;
        for (;;) {
          const r = await client.query({ text: `FETCH ${fetchRows} FROM snap`, rowMode: 'array' });
          if (r.rows.length === 0) break;
          fetchRows = snapshotFetchRows(r.rows as (string | null)[][]);
          for (const raw of r.rows as (string | null)[][]) {
            const values = new Array<Value>(st.columns.length);
            for (let i = 0; i < st.columns.length; i++) values[i] = parsePgText(raw[i] ?? null, st.columns[i]!.type);
            const make = rowMaker(st.columns);
            const after: Row = make ? make(values) : Object.fromEntries(st.columns.map((c, i) => [c.name, values[i]!]));
            await this.handler.change({
              op: 'r',
              before: null,
              after,
              source: { db: connection.database, schema: src.schema, table: src.table, pos: consistentPoint, commitPos: snapshotPos, txId: null, tsMs: startedMs, snapshot: true, idx: 0 },
              tsMs: Date.now(),
              unchangedToast: [],
            });
            rows++;
          }
          if (this.handler.stopped) throw new Error('stopped during snapshot');
        }
        await client.query('CLOSE snap');
        // End of this table's snapshot, on every partition after its rows: lets the sink delete
        // target rows the snapshot did not see (deleted at the source while a slot was gone).
        await this.handler.change({
          op: 'm', before: null, after: null,
          source: { db: connection.database, schema: src.schema, table: src.table, pos: consistentPoint, commitPos: snapshotPos, txId: null, tsMs: startedMs, snapshot: true, idx: 1 },
          tsMs: Date.now(), unchangedToast: [...src.key],
        });
      }
      await client.query('COMMIT');
    } finally {
      await client.end().catch(() => undefined);
    }
    return rows;
  }

  // ------------------------------------------------------------------ columns

  private async loadTableFromCatalog(src: PgTable): Promise<TableState> {
    const r = await this.meta!.query<{ attname: string; atttypid: string; atttypmod: number; oid: string }>(
      `select a.attname, a.atttypid::int::text as atttypid, a.atttypmod, a.attrelid::int8::text as oid from pg_attribute a
        where a.attrelid = $1::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum`,
      [quoteTable(src.schema, src.table)],
    );
    const oid = Number(r.rows[0]?.oid ?? 0);
    return this.setColumns(src, r.rows.map((c) => ({ name: c.attname, typeOid: Number(c.atttypid), typeMod: Number(c.atttypmod) })), { oid });
  }

  /** The table's columns as typed values; a change of them (relation message mid-stream) is handed to the stage. */
  private async setColumns(src: PgTable, cols: { name: string; typeOid: number; typeMod: number }[], seen: { oid?: number; current?: string; key?: string[]; ddl?: string } = {}): Promise<TableState> {
    const name = formatTableName(src);
    const signature = cols.map((c) => `${c.name}:${c.typeOid}:${c.typeMod}`).join(',');
    const prev = this.tables.get(name);
    const current = seen.current ?? prev?.current ?? name;
    const keyNow = seen.key && seen.key.length > 0 ? seen.key : undefined;
    const keyChanged = keyNow !== undefined && keyNow.join('\u0000') !== src.key.join('\u0000');
    if (prev && prev.signature === signature && prev.current === current && !keyChanged) return prev;
    if (cols.some((c) => !this.catalog.get(c.typeOid))) await this.catalog.ensure(this.meta!, cols.map((c) => c.typeOid));
    const st: TableState = { src: keyChanged ? { ...src, key: keyNow } : src, columns: cols.map((c) => ({ name: c.name, type: columnType(c.typeOid, c.typeMod, this.catalog) })), signature, oid: seen.oid ?? prev?.oid ?? 0, current };
    this.tables.set(name, st);
    if (current !== name) this.tables.set(current, st);
    if (st.oid) this.byOid.set(st.oid, st);
    if (prev) {
      const renamedTo = current !== name ? parseTableName(current) : undefined;
      const at = this.tx ? { commitPos: this.tx.commitPos, idx: this.tx.idx } : undefined;
      await this.handler.columns(src.schema, src.table, st.columns, { key: keyNow, renamedTo, at, ddl: seen.ddl });
    }
    return st;
  }

  // ------------------------------------------------------------------ acknowledgement

  acknowledge(end: string): void {
    const lsn = positionToBigInt(end);
    if (lsn <= this.watermark) return;
    this.watermark = lsn;
    this.sendStatus();
  }

  private sendStatus(): void {
    if (!this.service || this.watermark === 0n) return;
    // The library reports lsn+1 as flushed; pass watermark-1 so PostgreSQL receives the watermark.
    void this.service.acknowledge(bigIntToPosition(this.watermark - 1n)).catch(() => undefined);
  }

  private idle(): boolean {
    return this.tx === null && this.queue.length === 0 && this.handler.idle();
  }

  private heartbeat(): void {
    if (this.idle() && this.lastServerLsn > this.watermark) this.watermark = this.lastServerLsn;
    this.sendStatus();
  }

  // ------------------------------------------------------------------ streaming

  private async stream(): Promise<void> {
    const { connection, publication, slot } = this.config;
    const service = new ReplicationService(pgClientConfig(connection), {
      acknowledge: { auto: false, timeoutSeconds: 0 },
    });
    this.service = service;
    // Quoted: pgoutput reads the list as identifiers and would fold an unquoted name to lower case.
    // messages: the backfill's watermarks and signals (pg_logical_emit_message, ./backfill.ts).
    const plugin = new TextPgoutputPlugin({ protoVersion: 1, publicationNames: [quoteIdent(publication)], messages: true });
    const done = new Promise<void>((resolve, reject) => {
      this.failure = (err) => reject(err);
      this.stopResolve = resolve;
    });
    service.onData = (lsn, msg) => {
      this.queue.push({ kind: 'data', lsn, msg });
      this.pump();
    };
    service.onKeepalive = (lsn, reply) => {
      this.queue.push({ kind: 'keepalive', lsn, reply });
      this.pump();
    };
    service.on('error', (err: Error) => {
      if (this.stopping) return;
      void this.streamFailed(err, `pipeline ${this.pipeline}: replication stream failed`);
    });
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.config.heartbeatMs);
    this.log.info({ slot, from: bigIntToPosition(this.watermark) }, 'capture.stream.start');
    service.subscribe(plugin, slot, bigIntToPosition(this.watermark)).catch((err: unknown) => {
      if (this.stopping) return;
      const code = (err as { code?: string }).code;
      if (code === '42704') this.failure?.(fatal('SLOT_MISSING', `replication slot ${slot} does not exist (dropped while running); restart to re-snapshot`, err));
      else if (code === '55006') this.failure?.(classifyPgError(err, `replication slot ${slot} is in use by another process`));
      else void this.streamFailed(err, `pipeline ${this.pipeline}: replication stream ended`);
    });
    await done;
  }

  /** A stream that fails because its slot was dropped (walsender terminated, slot dropped) says so. */
  private async streamFailed(err: unknown, context: string): Promise<void> {
    const slot = this.config.slot;
    if (await slotDropped(this.meta!, slot)) this.failure?.(fatal('SLOT_MISSING', `replication slot ${slot} does not exist (dropped while running); restart to re-snapshot`, err));
    else this.failure?.(classifyPgError(err, context));
  }

  private pump(): void {
    if (this.queue.length > 2000 && !this.paused) this.pause();
    if (this.pumping) return;
    this.pumping = true;
    void (async () => {
      try {
        while (this.queue.length > 0 && !this.stopping) {
          const item = this.queue.shift()!;
          if (item.kind === 'keepalive') {
            const lsn = positionToBigInt(item.lsn);
            if (lsn > this.lastServerLsn) this.lastServerLsn = lsn;
            if (this.idle() && lsn > this.watermark) this.watermark = lsn;
            if (item.reply || this.idle()) this.sendStatus();
            continue;
          }
          await this.handle(item.lsn, item.msg);
          if (this.queue.length < 500) this.resumeIfPaused();
        }
      } catch (err) {
        this.failure?.(err instanceof Error ? err : new Error(String(err)));
      } finally {
        this.pumping = false;
        if (this.queue.length > 0 && !this.stopping) this.pump();
      }
    })();
  }

  private pause(): void {
    const stream = (this.service as unknown as { _connection?: { stream?: { pause(): void } } })?._connection?.stream;
    stream?.pause();
    this.paused = true;
  }

  private resumeIfPaused(): void {
    if (!this.paused) return;
    const stream = (this.service as unknown as { _connection?: { stream?: { resume(): void } } })?._connection?.stream;
    stream?.resume();
    this.paused = false;
  }

  private async handle(lsn: string, msg: Pgoutput.Message): Promise<void> {
    switch (msg.tag) {
      case 'begin':
        this.tx = { commitPos: msg.commitLsn ?? lsn, xid: msg.xid, tsMs: Number(BigInt(msg.commitTime as bigint) / 1000n), idx: 0 };
        this.handler.begin({});
        return;
      case 'commit':
        this.tx = null;
        this.handler.commit(msg.commitEndLsn ?? lsn);
        return;
      case 'origin':
        // Sent after 'begin' for a transaction committed by a session with a replication origin.
        if (this.tx) this.handler.begin({ origin: (msg as { originName?: string }).originName ?? '' });
        return;
      case 'relation': {
        const current = formatTableName({ schema: msg.schema, table: msg.name });
        // By OID: a renamed table (without the DDL trigger, its first Relation message is where the rename shows).
        const st = this.byOid.get(msg.relationOid) ?? this.tables.get(current);
        if (!st) return; // not one of ours (publication shared)
        // Key columns from the relation only with the default replica identity (the primary key's).
        const key = msg.replicaIdentity === 'default' ? msg.columns.filter((c) => (c.flags & 1) === 1).map((c) => c.name) : undefined;
        await this.setColumns(st.src, msg.columns.map((c) => ({ name: c.name, typeOid: c.typeOid, typeMod: c.typeMod })), { current, key });
        return;
      }
      case 'insert':
      case 'update':
      case 'delete': {
        const st = this.tables.get(this.relationName(msg.relation));
        if (!st || !this.tx) return;
        const op: Op = msg.tag === 'insert' ? 'c' : msg.tag === 'update' ? 'u' : 'd';
        const unchangedToast: string[] = [];
        const oldTuple = msg.tag === 'insert' ? null : (msg.old ?? msg.key);
        // REPLICA IDENTITY FULL: the old row carries every value, unchanged TOASTed ones included.
        const after = msg.tag === 'delete' ? null : this.row(st, msg.new, unchangedToast, msg.tag === 'update' ? msg.old : null);
        const before = oldTuple ? this.row(st, oldTuple, null) : null;
        // With the default replica identity an update that does not change the key sends no old tuple.
        const e: ChangeEvent = {
          op,
          before,
          after,
          source: { db: this.config.connection.database, schema: st.src.schema, table: st.src.table, pos: lsn, commitPos: this.tx.commitPos, txId: this.tx.xid, tsMs: this.tx.tsMs, snapshot: false, idx: this.tx.idx++ },
          tsMs: Date.now(),
          unchangedToast,
        };
        if (op === 'u' && before) {
          // Key changed: emit a delete of the old key, then the new row (Debezium does the same).
          const keyChanged = st.src.key.some((k) => !sameValue(before[k] ?? null, after![k] ?? null));
          if (keyChanged) {
            await this.handler.change({ ...e, op: 'd', after: null, unchangedToast: [] });
            e.source = { ...e.source, idx: this.tx.idx++ };
            e.op = 'c';
          }
        }
        await this.handler.change(e);
        return;
      }
      case 'truncate':
        for (const rel of msg.relations) {
          const st = this.tables.get(this.relationName(rel));
          if (!st || !this.tx) continue;
          await this.handler.change({
            op: 't', before: null, after: null,
            source: { db: this.config.connection.database, schema: st.src.schema, table: st.src.table, pos: lsn, commitPos: this.tx.commitPos, txId: this.tx.xid, tsMs: this.tx.tsMs, snapshot: false, idx: this.tx.idx++ },
            tsMs: Date.now(), unchangedToast: [],
          });
        }
        return;
      case 'message':
        return this.message(lsn, msg);
      default:
        return;
    }
  }

  /**
   * The table name of a relation of the stream, formatted once per Relation message: the parser
   * keeps one object per relation until PostgreSQL sends that relation again (a new object).
   */
  private relationName(rel: { schema: string; name: string }): string {
    let name = this.relationNames.get(rel);
    if (name === undefined) this.relationNames.set(rel, (name = formatTableName({ schema: rel.schema, table: rel.name })));
    return name;
  }

  /** A logical message: a backfill watermark or signal of this slot (./backfill.ts); anything else is not ours. */
  private async message(lsn: string, msg: Pgoutput.MessageMessage): Promise<void> {
    if (msg.prefix === DDL_PREFIX) {
      // An ALTER TABLE (./ddl-trigger.ts), in its transaction: one of ours by OID.
      const ddl = parseDdlMessage(msg.content);
      const st = ddl ? this.byOid.get(ddl.oid) : undefined;
      if (!ddl || !st) return;
      await this.setColumns(st.src, ddl.columns, { current: formatTableName({ schema: ddl.schema, table: ddl.table }), key: ddl.key, ddl: ddl.query });
      return;
    }
    if (msg.prefix !== WATERMARK_PREFIX && msg.prefix !== SIGNAL_PREFIX) return;
    let body: PgSyncMessage;
    try {
      body = JSON.parse(Buffer.from(msg.content).toString('utf8')) as PgSyncMessage;
    } catch {
      return;
    }
    if (body.slot !== this.config.slot) return; // another pipeline's (messages are database-wide)
    if (msg.prefix === WATERMARK_PREFIX && body.id !== undefined) {
      const at = { db: this.config.connection.database, commitPos: this.tx?.commitPos ?? lsn, pos: lsn, tsMs: this.tx?.tsMs ?? Date.now() };
      await this.handler.watermark?.(body.id, at);
    } else if (msg.prefix === SIGNAL_PREFIX && body.text !== undefined) {
      this.log.info({ signal: body.text.slice(0, 200) }, 'capture.signal');
      await this.handler.signal?.(body.text);
    }
  }

  private row(st: TableState, tuple: Record<string, unknown>, unchangedToast: string[] | null, old?: Record<string, unknown> | null): Row {
    const cols = st.columns;
    const values = new Array<Value>(cols.length);
    let complete = true;
    for (let i = 0; i < cols.length; i++) {
      const c = cols[i]!;
      let raw = tuple[c.name];
      if (raw === undefined) {
        if (!(c.name in tuple)) {
          complete = false; // not in the message: the row goes without it
          values[i] = undefined as never;
          continue;
        }
        if (old && old[c.name] !== undefined) raw = old[c.name];
      }
      if (raw === undefined) {
        // 'u' in pgoutput: an unchanged TOASTed value PostgreSQL did not send.
        if (unchangedToast) unchangedToast.push(c.name);
        values[i] = null;
        continue;
      }
      values[i] = parsePgText(raw as string | null, c.type);
    }
    const make = complete ? rowMaker(cols) : null;
    if (make) return make(values);
    // Own properties even for a column named __proto__ (an assignment would set the prototype).
    return Object.fromEntries(cols.flatMap((c, i) => (values[i] === undefined ? [] : [[c.name, values[i]!]])));
  }

  /** Unchanged TOASTed values for whole-row targets (src/capture/toast-fill.ts): the row as it is now, as text through the types' output functions (as pgoutput sends them). */
  async reselect(table: SourceTable, key: Row, columns: string[]): Promise<Row | null> {
    const st = this.tables.get(formatTableName(table));
    if (!st || !this.meta) return null;
    const cols = columns.map((n) => st.columns.find((c) => c.name === n)).filter((c) => c !== undefined);
    const keys = st.src.key.map((k) => st.columns.find((c) => c.name === k)!);
    if (cols.length === 0 || keys.some((k) => k === undefined)) return null;
    const r = await this.meta.query<string[]>({
      text: `select ${cols.map((c) => `${quoteIdent(c.name)}::text`).join(', ')} from ${quoteTable(st.src.schema, st.src.table)} where ${keys.map((k, i) => `${quoteIdent(k.name)} = $${i + 1}`).join(' and ')}`,
      values: keys.map((k) => toPgParam(key[k.name] ?? null, k.type)),
      rowMode: 'array',
    });
    const found = r.rows[0];
    if (!found) return null;
    const out: Row = {};
    cols.forEach((c, i) => setColumn(out, c.name, parsePgText(found[i] ?? null, c.type)));
    return out;
  }

  async quiesce(): Promise<void> {
    this.stopping = true;
    clearInterval(this.heartbeatTimer);
    // Let the pump finish the message it is handling.
    for (let i = 0; i < 100 && this.pumping; i++) await sleep(20);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.heartbeatTimer);
    try {
      this.sendStatus();
      await sleep(50);
    } finally {
      await this.service?.stop().catch(() => undefined);
      await this.backfill.close();
      await this.meta?.end().catch(() => undefined);
      this.stopResolve?.();
    }
  }
}

function sameValue(a: Value, b: Value): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return jsonOf(a) === jsonOf(b);
}

function jsonOf(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
}

/**
 * A function that makes a table's row from its values in column order as one object literal. A row
 * built by assigning `row[name]` one column at a time turns into a dictionary (hash-table) object in
 * V8 past 12 columns, and every later read of it (the Avro writer's, the for-in checks) is a hash
 * lookup: with 25 columns, making and encoding a row took 1.5× as long. A table with a column named
 * `__proto__` (an object literal would set the prototype) gets null here: its rows are made with
 * Object.fromEntries, which keeps it an own property.
 */
const rowMakers = new WeakMap<SourceColumn[], ((values: Value[]) => Row) | null>();
export function rowMaker(cols: SourceColumn[]): ((values: Value[]) => Row) | null {
  let make = rowMakers.get(cols);
  if (make === undefined) {
    make = cols.some((c) => c.name === '__proto__')
      ? null
      : (new Function('v', `return {${cols.map((c, i) => `${JSON.stringify(c.name)}: v[${i}]`).join(', ')}};`) as (values: Value[]) => Row);
    rowMakers.set(cols, make);
  }
  return make;
}
