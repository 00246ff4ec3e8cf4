/**
 * Capture stage: one process per replication slot. Reads a PostgreSQL database's changes through
 * logical replication (pgoutput) and produces them to Kafka, one topic per table
 * (`<prefix>.cdc.<schema>.<table>`, key = the table's key, so one key always lands on one partition),
 * Avro-encoded against the schema registry.
 *
 * Lifecycle and guarantees
 *  - Start: check tables and keys, ensure the publication and topics, then either (a) create the slot
 *    with an exported snapshot, copy every table from that snapshot (op 'r'), record "snapshot done"
 *    in `<prefix>.capture.offsets`, or (b) reuse the existing slot. Then stream from the slot.
 *  - Buffers: changes wait in `outbox` until produced; at most `maxBuffered` before the replication
 *    socket is paused (back-pressure), so memory does not grow with the WAL backlog.
 *  - Acknowledgement: the slot's confirmed LSN advances only to the end LSN of the last transaction
 *    whose every change Kafka acknowledged (acks=all). A crash (kill -9) replays from that point:
 *    changes may be produced twice, never lost; downstream version state makes repeats no-ops.
 *  - Idle slots: keepalives and a timer advance the confirmed LSN to the server's sent position when
 *    nothing is in flight, so an idle slot does not retain WAL.
 */
import pg from 'pg';
import { LogicalReplicationService } from 'pg-logical-replication';
import type { Logger } from 'pino';
import type { PgSourceConfig } from '../../connectors/postgres/spec.js';
import type { ChangeEvent, Op, Row, Value } from '../core/envelope.js';
import { bigIntToLsn, DECIDED_HEADER, eventPosition, lsnToBigInt, type Decided } from '../core/envelope.js';
import { envelopeFromAvro } from '../core/avro.js';
import { readRanges, topicBounds } from '../core/topic-reader.js';
import { kafkaPartition } from '../core/kafkajs-patch.js';
import { errorCode, errorMessage, fatal, classifyPgError, SynclineError, errorKind, retriable, withDeadline } from '../core/errors.js';
import { topics, type KafkaClient, type OutMessage } from '../core/kafka.js';
import type { AvroCodec } from '../core/codec.js';
import { TypeCatalog, columnType, parsePgText, type ColumnType } from '../core/pgtypes.js';
import { canHoldSpecials, envelopeToAvro, keySchema, specialDecimalColumns, valueSchema } from '../core/avro.js';
import { encodeRefusal, holdsSpecial } from './refusal.js';
import { stringifyTagged } from '../core/tagged-json.js';
import { keyStringOf } from '../sink/sink.js';
import type { ConflictConfig, TableConfig } from '../core/config/schema.js';
import { timestampFieldProblem } from '../sink/conflicts.js';
import { TextPgoutputPlugin, type Pgoutput } from './pgoutput.js';
import { CaptureOffsets } from './offsets.js';
import { connectSource, ensurePublication, inspectTables, pgClientConfig, quoteIdent, quoteTable, rawTypes, replicationGrantHint, slotDropped, type SourceTable } from './source.js';
import { DeadLetters } from '../sink/dead-letters.js';
import { backoffDelay, sleep } from '../core/retry.js';
import { formatTableName } from '../core/names.js';

/** Capture retries Kafka outages for as long as they last; only the pace is bounded. */
const KAFKA_OUTAGE_BACKOFF = { retries: Infinity, initialDelayMs: 200, maxDelayMs: 10_000, multiplier: 2, jitter: 0.2 };
/** A registry that accepts connections but never answers must not hold capture (at start: the process) forever. */
const REGISTRY_DEADLINE_MS = 30_000;

export interface CaptureOptions {
  pipeline: string;
  /** Prefix of dead-letter, offsets and reader topics (topicPrefix). */
  prefix: string;
  /** Prefix of the change topics: `<changePrefix>.cdc.<schema>.<table>` (config changeTopicPrefix). */
  changePrefix: string;
  source: PgSourceConfig;
  tables: TableConfig[];
  kafka: KafkaClient;
  codec: AvroCodec;
  log: Logger;
  /** Most changes held in memory before the replication stream is paused. */
  maxBuffered?: number;
  /** Two-way sync: transactions whose replication origin name starts with one of these are not captured (the peer's own writes). */
  skipOrigins?: string[];
  /**
   * Two-way sync: transactions whose replication origin name starts with one of these are rows the
   * peer re-published after its conflict resolution kept them; their changes carry the
   * `syncline.peer-decided` header with what they were kept over (see DECIDED_HEADER).
   */
  decidedOrigins?: { prefix: string; over: Decided }[];
  /** The pipeline's conflict settings (tables may override them): latest-timestamp needs its column, checked at start. */
  conflict?: ConflictConfig;
  /**
   * Two-way sync: the peer pipeline, when it creates missing tables in its target (which is this
   * pipeline's source). A source table that does not exist yet is then waited for (logged once per
   * start), instead of being fatal: the peer creates it with its first change or snapshot.
   */
  awaitTablesFrom?: string;
  /** Called once capture is started (its topics, schemas and slot state known; snapshot or stream next). */
  onRunning?: () => void;
}

export interface CaptureStats {
  snapshotRows: number;
  changes: number;
  produced: number;
  transactions: number;
  confirmedLsn: string;
  deadLettered: number;
  /** Produce attempts retried because Kafka did not accept a batch. */
  produceRetries: number;
  /** Changes not captured because a peer pipeline wrote them (two-way sync: no echo). */
  echoSkipped: number;
  /** Changes streamed again after a restart that Kafka already had (not produced twice). */
  duplicatesSkipped: number;
}

interface TableState {
  src: SourceTable;
  topic: string;
  columns: { name: string; type: ColumnType }[];
  signature: string;
  /**
   * Decimal columns written as ["null", decimal, "string"] because they have held NaN/±Infinity
   * (see widenForSpecials). Only grows: kept across column changes, and read back from the registry's
   * latest value schema at start, so a column never goes back to the plain decimal.
   */
  specials: ReadonlySet<string>;
  keyId: number;
  valueId: number;
}

interface TxMark {
  /** Number of messages enqueued when the transaction's commit was seen. */
  upTo: number;
  endLsn: bigint;
}

export class Capture {
  readonly stats: CaptureStats = { snapshotRows: 0, changes: 0, produced: 0, transactions: 0, confirmedLsn: '0/0', deadLettered: 0, produceRetries: 0, echoSkipped: 0, duplicatesSkipped: 0 };
  private readonly log: Logger;
  private catalog!: TypeCatalog;
  private meta!: pg.Client;
  private tables = new Map<string, TableState>(); // canonical table name (core/names.ts) → state
  private sourceTables: SourceTable[] = [];
  private service?: LogicalReplicationService;
  private readonly dlq: DeadLetters;

  // Outbox: messages waiting to be produced, in source order.
  private outbox: OutMessage[] = [];
  private enqueued = 0;
  private sent = 0;
  private marks: TxMark[] = [];
  private flushing?: Promise<void>;
  private drainWaiters: (() => void)[] = [];
  private lingerTimer?: NodeJS.Timeout;
  private heartbeatTimer?: NodeJS.Timeout;
  private readonly maxBuffered: number;

  // Streaming state
  private queue: ({ kind: 'data'; lsn: string; msg: Pgoutput.Message } | { kind: 'keepalive'; lsn: string; reply: boolean })[] = [];
  private pumping = false;
  private paused = false;
  /** Last position each change-topic partition held at start (resume), for alreadyProduced(). */
  private readonly produced = new Map<string, Map<number, string>>();
  private readonly partitions = new Map<string, number>();
  private tx: { commitLsn: string; xid: number; tsMs: number; idx: number; skip?: boolean; decided?: Decided } | null = null;
  private watermark = 0n; // confirmed LSN we may report
  private lastServerLsn = 0n;
  private stopped = false;
  private failure?: (err: Error) => void;
  private done?: Promise<void>;

  constructor(private readonly opts: CaptureOptions) {
    this.log = opts.log;
    this.maxBuffered = opts.maxBuffered ?? Math.max(opts.source.batchSize * 8, 20000);
    this.dlq = new DeadLetters(opts.kafka, opts.prefix, opts.pipeline, opts.log);
  }

  /** Run until stop() or a fatal error. Resolves when stopped cleanly. */
  async run(): Promise<void> {
    const { source, pipeline, prefix, changePrefix, kafka } = this.opts;
    this.meta = await connectSource(source.connection, `pipeline ${pipeline} capture`);
    this.catalog = await TypeCatalog.load(this.meta);
    const inspected = await this.inspect();
    if (inspected === null) return; // stopped while waiting for tables
    this.sourceTables = inspected;
    this.checkConflictFields();
    await ensurePublication(this.meta, source.publication, this.sourceTables, source.connection);
    await kafka.ensureTopics(this.sourceTables.map((t) => topics.cdc(changePrefix, t.schema, t.table)));
    await this.dlq.ensure();
    for (const t of this.sourceTables) await this.loadTableFromCatalog(t);

    const offsets = new CaptureOffsets(kafka, prefix);
    const stored = await offsets.read(source.slot);
    const slot = await this.slotInfo();
    const wantSnapshot = source.snapshot === 'initial';
    this.opts.onRunning?.();
    if (slot && stored?.snapshot === 'done' || slot && !wantSnapshot) {
      this.log.info({ slot: source.slot, confirmed: slot.confirmed }, 'capture.resume');
      this.watermark = lsnToBigInt(slot.confirmed ?? '0/0');
      await this.loadProducedPositions();
    } else {
      if (slot) {
        this.log.warn({ slot: source.slot, stored: stored?.snapshot ?? 'none' }, 'capture.snapshot.incomplete: dropping slot and snapshotting again');
        await this.dropSlot();
      } else if (stored?.snapshot === 'done') {
        this.log.warn({ slot: source.slot }, 'capture.slot.missing: the replication slot was dropped; re-snapshotting (hash delta skips unchanged rows)');
      } else if (stored?.snapshot === 'skipped') {
        // snapshot: never, so nothing can fill the gap: say so rather than stream on silently.
        this.log.warn({ slot: source.slot, since: stored.consistentPoint }, 'capture.slot.missing: the replication slot was dropped and snapshot is never: changes made while it was gone are NOT captured');
      }
      const cp = await this.createSlotAndSnapshot(wantSnapshot, offsets);
      this.watermark = cp;
    }
    this.stats.confirmedLsn = bigIntToLsn(this.watermark);
    if (this.stopped) return;
    await this.waitSlotFree();
    await this.stream();
  }

  /**
   * inspectTables; with awaitTablesFrom, a missing source table is waited for (the peer creates it),
   * with one warn line per start. Null when stop() came meanwhile.
   */
  private async inspect(): Promise<SourceTable[] | null> {
    const { tables, pipeline, awaitTablesFrom } = this.opts;
    let waiting = false;
    for (let attempt = 1; ; attempt++) {
      try {
        const found = await inspectTables(this.meta, tables, pipeline);
        if (waiting) this.log.info({ peer: awaitTablesFrom }, 'capture.source.ready: every source table exists now');
        return found;
      } catch (err) {
        if (this.stopped) return null;
        if (awaitTablesFrom === undefined || errorCode(err) !== 'SOURCE_TABLE_MISSING') throw err;
        if (!waiting) {
          waiting = true;
          this.log.warn({ peer: awaitTablesFrom, err: errorMessage(err) }, `capture.source.awaiting: a source table does not exist yet; waiting for pipeline ${awaitTablesFrom} (two-way peer, autoCreate) to create it`);
        }
        await sleep(Math.min(5000, 200 * attempt));
        if (this.stopped) return null;
      }
    }
  }

  /** latest-timestamp needs its column in every table that uses it: refused at start (timestampFieldProblem). */
  private checkConflictFields(): void {
    const base = this.opts.conflict;
    if (!base) return;
    const problems: string[] = [];
    this.opts.tables.forEach((t, i) => {
      const p = timestampFieldProblem(this.opts.pipeline, t, base, this.sourceTables[i]!.columns);
      if (p) problems.push(p);
    });
    if (problems.length > 0) throw fatal('CONFLICT_FIELD_MISSING', problems.join('\n'));
  }

  private async slotInfo(): Promise<{ confirmed: string | null; plugin: string } | null> {
    const r = await this.meta.query<{ confirmed_flush_lsn: string | null; plugin: string }>(
      `select confirmed_flush_lsn::text, plugin from pg_replication_slots where slot_name = $1`,
      [this.opts.source.slot],
    );
    if (r.rowCount === 0) return null;
    const row = r.rows[0]!;
    if (row.plugin !== 'pgoutput') throw fatal('SLOT_PLUGIN', `replication slot ${this.opts.source.slot} uses plugin ${row.plugin}, expected pgoutput`);
    return { confirmed: row.confirmed_flush_lsn, plugin: row.plugin };
  }

  /** A previous capture killed with -9 leaves its walsender holding the slot for a moment. */
  private async waitSlotFree(): Promise<void> {
    for (let i = 0; i < 120; i++) {
      const r = await this.meta.query(`select 1 from pg_replication_slots where slot_name = $1 and active`, [this.opts.source.slot]);
      if (r.rowCount === 0) return;
      if (i === 0) this.log.info({ slot: this.opts.source.slot }, 'capture.slot.busy: waiting for the previous holder to go away');
      await sleep(250);
    }
    throw fatal('SLOT_IN_USE', `replication slot ${this.opts.source.slot} is held by another process (is another capture for this pipeline running?)`);
  }

  private async dropSlot(): Promise<void> {
    // A slot still held by a dying walsender (previous process killed) frees itself shortly.
    for (let i = 0; ; i++) {
      try {
        await this.meta.query(`select pg_drop_replication_slot($1)`, [this.opts.source.slot]);
        return;
      } catch (err) {
        if (i >= 30 || (err as { code?: string }).code !== '55006') throw classifyPgError(err, `cannot drop slot ${this.opts.source.slot}`);
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
  private async createSlotAndSnapshot(wantSnapshot: boolean, offsets: CaptureOffsets): Promise<bigint> {
    const { source, pipeline } = this.opts;
    const repl = new pg.Client({ ...pgClientConfig(source.connection), replication: 'database' } as pg.ClientConfig);
    repl.on('error', () => undefined);
    try {
      await repl.connect();
    } catch (err) {
      const e = classifyPgError(err, `pipeline ${pipeline}: cannot open a replication connection to ${source.connection.host}:${source.connection.port}/${source.connection.database} for slot ${source.slot}`);
      if ((err as { code?: string }).code === '42501') e.message += `; ${replicationGrantHint(source.connection)}`;
      throw e;
    }
    try {
      let created: { consistent_point: string; snapshot_name: string | null };
      for (let i = 0; ; i++) {
        try {
          const r = await repl.query(`CREATE_REPLICATION_SLOT ${quoteIdent(source.slot)} LOGICAL pgoutput ${wantSnapshot ? 'EXPORT_SNAPSHOT' : 'NOEXPORT_SNAPSHOT'}`);
          created = r.rows[0];
          break;
        } catch (err) {
          const code = (err as { code?: string }).code;
          if (code === '55000' && /wal_level/.test(errorMessage(err))) throw fatal('WAL_LEVEL', `PostgreSQL must run with wal_level=logical: ${errorMessage(err)}`, err);
          if (i < 20 && code === '55006') { await sleep(500); continue; }
          throw classifyPgError(err, `pipeline ${pipeline}: cannot create replication slot ${source.slot}`);
        }
      }
      const cp = lsnToBigInt(created.consistent_point);
      const tables = this.sourceTables.map((t) => formatTableName(t));
      if (!wantSnapshot) {
        await offsets.write({ slot: source.slot, snapshot: 'skipped', consistentPoint: created.consistent_point, tables, at: new Date().toISOString() });
        return cp;
      }
      await offsets.write({ slot: source.slot, snapshot: 'started', consistentPoint: created.consistent_point, tables, at: new Date().toISOString() });
      this.log.info({ slot: source.slot, consistentPoint: created.consistent_point, tables }, 'capture.snapshot.start');
      await this.snapshot(created.snapshot_name!, created.consistent_point);
      await this.flush();
      await offsets.write({ slot: source.slot, snapshot: 'done', consistentPoint: created.consistent_point, tables, at: new Date().toISOString() });
      this.log.info({ slot: source.slot, rows: this.stats.snapshotRows }, 'capture.snapshot.done');
      return cp;
    } finally {
      await repl.end().catch(() => undefined);
    }
  }

  private async snapshot(snapshotName: string, consistentPoint: string): Promise<void> {
    const { source } = this.opts;
    const client = new pg.Client({ ...pgClientConfig(source.connection), types: rawTypes });
    await client.connect();
    const startedMs = Date.now();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query(`SET TRANSACTION SNAPSHOT '${snapshotName.replace(/'/g, "''")}'`);
      for (const src of this.sourceTables) {
        const st = this.tables.get(formatTableName(src))!;
        const cols = st.columns.map((c) => quoteIdent(c.name)).join(', ');
        await client.query(`DECLARE snap NO SCROLL CURSOR FOR SELECT ${cols} FROM ${quoteTable(src.schema, src.table)}`);
        for (;;) {
          const r = await client.query({ text: 'FETCH 5000 FROM snap', rowMode: 'array' });
          if (r.rows.length === 0) break;
          for (const raw of r.rows as (string | null)[][]) {
            const after: Row = {};
            for (let i = 0; i < st.columns.length; i++) after[st.columns[i]!.name] = parsePgText(raw[i] ?? null, st.columns[i]!.type);
            const e: ChangeEvent = {
              op: 'r',
              before: null,
              after,
              source: { db: source.connection.database, schema: src.schema, table: src.table, lsn: consistentPoint, commitLsn: consistentPoint, txId: null, tsMs: startedMs, snapshot: true, idx: 0 },
              tsMs: Date.now(),
              unchangedToast: [],
            };
            await this.enqueue(st, e);
            this.stats.snapshotRows++;
          }
          if (this.stopped) throw new Error('stopped during snapshot');
        }
        await client.query('CLOSE snap');
        // End of this table's snapshot, on every partition after its rows: lets the sink delete
        // target rows the snapshot did not see (deleted at the source while a slot was gone).
        await this.enqueueMarker(st, {
          op: 'm', before: null, after: null,
          source: { db: source.connection.database, schema: src.schema, table: src.table, lsn: consistentPoint, commitLsn: consistentPoint, txId: null, tsMs: startedMs, snapshot: true, idx: 1 },
          tsMs: Date.now(), unchangedToast: [...src.key],
        });
      }
      await client.query('COMMIT');
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  // ------------------------------------------------------------------ schemas

  private async loadTableFromCatalog(src: SourceTable): Promise<void> {
    const r = await this.meta.query<{ attname: string; atttypid: string; atttypmod: number }>(
      `select a.attname, a.atttypid::int::text as atttypid, a.atttypmod from pg_attribute a
        where a.attrelid = $1::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum`,
      [quoteTable(src.schema, src.table)],
    );
    await this.setColumns(src, r.rows.map((c) => ({ name: c.attname, typeOid: Number(c.atttypid), typeMod: Number(c.atttypmod) })));
  }

  /** (Re)build and register the table's schemas when its columns change (e.g. ALTER TABLE ADD COLUMN). */
  private async setColumns(src: SourceTable, cols: { name: string; typeOid: number; typeMod: number }[]): Promise<TableState> {
    const name = formatTableName(src);
    const signature = cols.map((c) => `${c.name}:${c.typeOid}:${c.typeMod}`).join(',');
    const prev = this.tables.get(name);
    if (prev && prev.signature === signature) return prev;
    if (cols.some((c) => !this.catalog.get(c.typeOid))) await this.catalog.ensure(this.meta, cols.map((c) => c.typeOid));
    const columns = cols.map((c) => ({ name: c.name, type: columnType(c.typeOid, c.typeMod, this.catalog) }));
    for (const k of src.key) {
      if (!columns.some((c) => c.name === k)) throw fatal('SOURCE_KEY_UNKNOWN', `key column ${k} of ${name} is gone from the table`);
    }
    const topic = topics.cdc(this.opts.changePrefix, src.schema, src.table);
    let specials = prev?.specials;
    if (!specials) {
      const latest = await this.registryDeadline(this.opts.codec.latestType(`${topic}-value`), `reading the latest schema of ${topic}`);
      specials = latest ? specialDecimalColumns(latest) : new Set<string>();
    }
    const st = await this.registerSchemas(src, topic, columns, signature, specials);
    if (prev) this.log.info({ table: name, valueSchemaId: st.valueId }, 'capture.schema.changed');
    return st;
  }

  /** Register the table's key and value schemas and make them the table's current ones. */
  private async registerSchemas(src: SourceTable, topic: string, columns: TableState['columns'], signature: string, specials: ReadonlySet<string>): Promise<TableState> {
    const ns = { prefix: this.opts.changePrefix, schema: src.schema, table: src.table };
    const keyCols = src.key.map((k) => columns.find((c) => c.name === k)!);
    const [keyId, valueId] = await this.registryDeadline(Promise.all([
      this.opts.codec.register(`${topic}-key`, keySchema(ns, keyCols)),
      this.opts.codec.register(`${topic}-value`, valueSchema(ns, columns, specials)),
    ]), `registering the schemas of ${topic}`);
    const st: TableState = { src, topic, columns, signature, specials, keyId, valueId };
    this.tables.set(formatTableName(src), st);
    return st;
  }

  private registryDeadline<T>(p: Promise<T>, what: string): Promise<T> {
    return withDeadline(p, REGISTRY_DEADLINE_MS, () => retriable('REGISTRY_TIMEOUT', `schema registry at ${this.opts.codec.url} did not answer within ${REGISTRY_DEADLINE_MS / 1000}s (${what})`));
  }

  /**
   * Error path of enqueue: the change holds NaN/±Infinity in decimal value columns whose Avro type
   * cannot carry them yet. Those columns get the string branch (a BACKWARD-compatible version of the
   * value schema, registered now) and the new state is returned, to encode the change again;
   * undefined when there is no such column (the change cannot be encoded for another reason). Key
   * columns are not widened: the key schema stays as it is (a key's bytes choose its partition).
   */
  private async widenForSpecials(st: TableState, e: ChangeEvent): Promise<TableState | undefined> {
    const add: string[] = [];
    for (const c of st.columns) {
      if (st.specials.has(c.name) || !canHoldSpecials(c.type) || st.src.key.includes(c.name)) continue;
      if (holdsSpecial(e.after?.[c.name]) || holdsSpecial(e.before?.[c.name])) add.push(c.name);
    }
    if (add.length === 0) return undefined;
    const next = await this.registerSchemas(st.src, st.topic, st.columns, st.signature, new Set([...st.specials, ...add]));
    // In place as well: whoever holds the state (the snapshot's loop over a table) writes with the new schema.
    st.specials = next.specials;
    st.valueId = next.valueId;
    this.tables.set(formatTableName(st.src), st);
    this.log.info({ table: formatTableName(st.src), columns: add, valueSchemaId: next.valueId }, 'capture.schema.widened: decimal column(s) held NaN/Infinity; their Avro type is now ["null", decimal, "string"]');
    return st;
  }

  // ------------------------------------------------------------------ outbox

  private async enqueue(st: TableState, e: ChangeEvent): Promise<void> {
    const keyRow = e.op === 'd' ? (e.before ?? {}) : (e.after ?? {});
    const key: Record<string, Value> = {};
    for (const k of st.src.key) key[k] = keyRow[k] ?? null;
    let msg: OutMessage | null;
    const partitions = this.partitions.get(st.topic) ?? (await this.partitionCount(st.topic));
    try {
      msg = this.message(st, key, e, partitions);
    } catch (err) {
      // Not representable in the table's schema. NaN/±Infinity in a decimal column widens its type
      // once (then the change is encoded again); anything else is dead-lettered, never dropped.
      const wider = await this.widenForSpecials(st, e);
      try {
        if (!wider) throw err;
        msg = this.message(wider, key, e, partitions);
      } catch (again) {
        await this.deadLetterChange(wider ?? st, key, e, again);
        return;
      }
    }
    if (msg === null) return;
    this.outbox.push(msg);
    this.enqueued++;
    this.stats.changes++;
    if (this.outbox.length >= this.opts.source.batchSize) void this.kick();
    else this.armLinger();
    if (this.outbox.length >= this.maxBuffered) await this.waitDrained();
  }

  /** The change topic message of a change (null: Kafka already holds it). Throws when it cannot be encoded. */
  private message(st: TableState, key: Row, e: ChangeEvent, partitions: number): OutMessage | null {
    // Synchronous: the schemas were registered by setColumns, so no await per record.
    const keyBuf = this.opts.codec.encodeSync(st.keyId, key);
    // The partition kafkajs's default partitioner would pick, made explicit so duplicates can be recognised.
    const partition = kafkaPartition(keyBuf, partitions);
    if (this.alreadyProduced(st.topic, partition, eventPosition(e))) return null;
    const msg: OutMessage = { topic: st.topic, partition, key: keyBuf, value: this.opts.codec.encodeSync(st.valueId, envelopeToAvro(e)) };
    if (this.tx?.decided) msg.headers = { [DECIDED_HEADER]: this.tx.decided };
    return msg;
  }

  /**
   * A change no schema of its table can carry: dead-lettered as `invalid` naming the table, the key
   * and the column (and why, in the type's own words), with the key and the change as tagged JSON
   * (exact: bigints, bytes). Its id is stable and unique: the change's position and key (every row
   * of a snapshot has the snapshot's one position).
   */
  private async deadLetterChange(st: TableState, key: Row, e: ChangeEvent, err: unknown): Promise<void> {
    const source = formatTableName(st.src);
    const error = encodeRefusal({ source, key, event: e, err, keyType: this.opts.codec.knownType(st.keyId), valueType: this.opts.codec.knownType(st.valueId) });
    const target = this.opts.tables.find((t) => t.source === source)?.target ?? source;
    this.stats.deadLettered++;
    await this.dlq.send([{ kind: 'invalid', error, table: target, position: eventPosition(e), targetKey: keyStringOf(Object.values(key)), key: Buffer.from(stringifyTagged(key)), value: Buffer.from(stringifyTagged(e)), attempts: 1 }]);
  }

  /**
   * After a restart the slot streams again from its confirmed position, which may be behind what
   * Kafka already holds (acknowledged, not yet confirmed to PostgreSQL). Each partition of a change
   * topic is in commit order, so a change whose position is not above the last one its partition
   * holds was produced before: skipping it keeps the change topics free of duplicates (consumers
   * would skip them too, but not after Redis lost the version state).
   */
  private async loadProducedPositions(): Promise<void> {
    for (const st of this.sourceTables) {
      const topic = topics.cdc(this.opts.changePrefix, st.schema, st.table);
      const bounds = await topicBounds(this.opts.kafka, topic);
      const last = new Map<number, string>();
      const ranges = bounds.map((b) => ({ topic, partition: b.partition, from: b.high - 20n > b.low ? b.high - 20n : b.low, to: b.high }));
      await readRanges(this.opts.kafka, ranges, async (_t, partition, msgs) => {
        for (const m of msgs) {
          try {
            const pos = eventPosition(envelopeFromAvro(await this.opts.codec.decode<Record<string, unknown>>(m.value)));
            if (pos > (last.get(partition) ?? '')) last.set(partition, pos);
          } catch (err) {
            // Registry unreachable: fail the start (retried) rather than resume without the positions.
            if (errorKind(err) === 'retriable') throw err;
            /* not a change (poison written by someone else): ignore */
          }
        }
      }, { groupPrefix: `${this.opts.prefix}.${this.opts.pipeline}.capture-tail` });
      if (last.size > 0) this.produced.set(topic, last);
    }
    if (this.produced.size > 0) this.log.info({ topics: this.produced.size }, 'capture.resume.dedup: changes Kafka already holds will not be produced again');
  }

  private alreadyProduced(topic: string, partition: number, pos: string): boolean {
    const last = this.produced.get(topic)?.get(partition);
    if (last === undefined || pos > last) return false;
    this.stats.duplicatesSkipped++;
    return true;
  }

  private async partitionCount(topic: string): Promise<number> {
    const n = await this.opts.kafka.partitionCount(topic);
    this.partitions.set(topic, n);
    return n;
  }

  /** A control event for every partition of the table's topic (truncate, end of snapshot). */
  private async enqueueMarker(st: TableState, e: ChangeEvent): Promise<void> {
    const n = this.partitions.get(st.topic) ?? (await this.partitionCount(st.topic));
    const value = await this.opts.codec.encode(st.valueId, envelopeToAvro(e));
    for (let p = 0; p < n; p++) {
      if (this.alreadyProduced(st.topic, p, eventPosition(e))) continue;
      this.outbox.push({ topic: st.topic, key: null, value, partition: p, control: e.op === 'm' });
      this.enqueued++;
    }
    void this.kick();
  }

  private async enqueueTruncate(st: TableState, e: ChangeEvent): Promise<void> {
    // A truncate applies to every key, so it is written to every partition of the table's topic,
    // ordered after all earlier changes of each partition.
    const n = await this.opts.kafka.partitionCount(st.topic);
    const value = await this.opts.codec.encode(st.valueId, envelopeToAvro(e));
    for (let p = 0; p < n; p++) {
      if (this.alreadyProduced(st.topic, p, eventPosition(e))) continue;
      this.outbox.push({ topic: st.topic, key: null, value, partition: p });
      this.enqueued++;
    }
    this.stats.changes++;
    void this.kick();
  }

  private armLinger(): void {
    if (this.lingerTimer || this.opts.source.lingerMs === 0) {
      if (this.opts.source.lingerMs === 0) void this.kick();
      return;
    }
    this.lingerTimer = setTimeout(() => {
      this.lingerTimer = undefined;
      void this.kick();
    }, this.opts.source.lingerMs);
  }

  private waitDrained(): Promise<void> {
    return new Promise((resolve) => {
      this.drainWaiters.push(resolve);
      void this.kick();
    });
  }

  /** Start the flush loop if it is not running. */
  private kick(): Promise<void> {
    if (!this.flushing) {
      this.flushing = this.flushLoop().finally(() => {
        this.flushing = undefined;
      });
    }
    return this.flushing;
  }

  /** Produce everything buffered so far and wait for it. */
  async flush(): Promise<void> {
    while (this.outbox.length > 0 || this.flushing) await this.kick();
  }

  private async flushLoop(): Promise<void> {
    let failures = 0;
    while (this.outbox.length > 0) {
      const batch = this.outbox.slice(0, this.opts.source.batchSize);
      try {
        await this.opts.kafka.send(batch);
        failures = 0;
      } catch (err) {
        // Kafka unavailable: nothing was acknowledged to PostgreSQL, so keep the batch and retry
        // without a limit (WAL is retained meanwhile), with the one backoff curve of core/retry.
        const delay = backoffDelay(KAFKA_OUTAGE_BACKOFF, ++failures);
        this.stats.produceRetries++;
        this.log.warn({ err: errorMessage(err), attempt: failures, retryInMs: delay }, 'capture.produce.retry');
        await sleep(delay);
        if (this.stopped && this.stopHard) return;
        continue;
      }
      this.outbox.splice(0, batch.length);
      this.sent += batch.length;
      for (const m of batch) if (!m.control) this.stats.produced++;
      this.advanceWatermark();
      if (this.outbox.length < this.maxBuffered / 2) this.releaseDrainWaiters();
    }
    this.releaseDrainWaiters();
    this.resumeIfPaused();
  }

  private releaseDrainWaiters(): void {
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const f of w) f();
  }

  /** Move the confirmed LSN to the end of the last transaction fully acknowledged by Kafka. */
  private advanceWatermark(): void {
    let moved = false;
    while (this.marks.length > 0 && this.marks[0]!.upTo <= this.sent) {
      const m = this.marks.shift()!;
      if (m.endLsn > this.watermark) {
        this.watermark = m.endLsn;
        moved = true;
      }
    }
    if (moved) this.sendStatus();
  }

  private sendStatus(): void {
    this.stats.confirmedLsn = bigIntToLsn(this.watermark);
    if (!this.service || this.watermark === 0n) return;
    // The library reports lsn+1 as flushed; pass watermark-1 so PostgreSQL receives the watermark.
    void this.service.acknowledge(bigIntToLsn(this.watermark - 1n)).catch(() => undefined);
  }

  private idle(): boolean {
    return this.tx === null && this.outbox.length === 0 && !this.flushing && this.queue.length === 0 && this.sent === this.enqueued;
  }

  // ------------------------------------------------------------------ streaming

  private async stream(): Promise<void> {
    const { source } = this.opts;
    const service = new LogicalReplicationService(pgClientConfig(source.connection), {
      acknowledge: { auto: false, timeoutSeconds: 0 },
    });
    this.service = service;
    // Quoted: pgoutput reads the list as identifiers and would fold an unquoted name to lower case.
    const plugin = new TextPgoutputPlugin({ protoVersion: 1, publicationNames: [quoteIdent(source.publication)] });
    this.done = new Promise<void>((resolve, reject) => {
      this.failure = (err) => reject(err);
      this.stopResolve = resolve;
    });
    service.on('data', (lsn: string, msg: Pgoutput.Message) => {
      this.queue.push({ kind: 'data', lsn, msg });
      this.pump();
    });
    service.on('heartbeat', (lsn: string, _ts: number, reply: boolean) => {
      this.queue.push({ kind: 'keepalive', lsn, reply });
      this.pump();
    });
    service.on('error', (err: Error) => {
      if (this.stopped) return;
      void this.streamFailed(err, `pipeline ${this.opts.pipeline}: replication stream failed`);
    });
    this.heartbeatTimer = setInterval(() => this.heartbeat(), source.heartbeatMs);
    this.log.info({ slot: source.slot, from: bigIntToLsn(this.watermark) }, 'capture.stream.start');
    service.subscribe(plugin, source.slot, bigIntToLsn(this.watermark)).catch((err: unknown) => {
      if (this.stopped) return;
      const code = (err as { code?: string }).code;
      if (code === '42704') this.failure?.(fatal('SLOT_MISSING', `replication slot ${source.slot} does not exist (dropped while running); restart to re-snapshot`, err));
      else if (code === '55006') this.failure?.(classifyPgError(err, `replication slot ${source.slot} is in use by another process`));
      else void this.streamFailed(err, `pipeline ${this.opts.pipeline}: replication stream ended`);
    });
    await this.done;
  }

  /** A stream that fails because its slot was dropped (walsender terminated, slot dropped) says so. */
  private async streamFailed(err: unknown, context: string): Promise<void> {
    const slot = this.opts.source.slot;
    if (await slotDropped(this.meta, slot)) this.failure?.(fatal('SLOT_MISSING', `replication slot ${slot} does not exist (dropped while running); restart to re-snapshot`, err));
    else this.failure?.(classifyPgError(err, context));
  }

  private stopResolve?: () => void;
  private stopHard = false;

  private heartbeat(): void {
    if (this.idle() && this.lastServerLsn > this.watermark) this.watermark = this.lastServerLsn;
    this.sendStatus();
  }

  private pump(): void {
    if (this.queue.length > 2000 && !this.paused) this.pause();
    if (this.pumping) return;
    this.pumping = true;
    void (async () => {
      try {
        while (this.queue.length > 0 && !this.stopped) {
          const item = this.queue.shift()!;
          if (item.kind === 'keepalive') {
            const lsn = lsnToBigInt(item.lsn);
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
        if (this.queue.length > 0 && !this.stopped) this.pump();
      }
    })();
  }

  private pause(): void {
    const stream = (this.service as unknown as { _connection?: { stream?: { pause(): void } } })?._connection?.stream;
    stream?.pause();
    this.paused = true;
  }

  private resumeIfPaused(): void {
    if (!this.paused || this.outbox.length >= this.maxBuffered) return;
    const stream = (this.service as unknown as { _connection?: { stream?: { resume(): void } } })?._connection?.stream;
    stream?.resume();
    this.paused = false;
  }

  private async handle(lsn: string, msg: Pgoutput.Message): Promise<void> {
    switch (msg.tag) {
      case 'begin':
        this.tx = { commitLsn: msg.commitLsn ?? lsn, xid: msg.xid, tsMs: Number(BigInt(msg.commitTime as bigint) / 1000n), idx: 0 };
        return;
      case 'commit': {
        this.tx = null;
        this.stats.transactions++;
        const end = lsnToBigInt(msg.commitEndLsn ?? lsn);
        this.marks.push({ upTo: this.enqueued, endLsn: end });
        if (this.sent >= this.enqueued) this.advanceWatermark();
        else this.armLinger();
        return;
      }
      case 'origin': {
        // Sent after 'begin' for a transaction committed by a session with a replication origin.
        const name = (msg as { originName?: string }).originName ?? '';
        if (this.tx && this.opts.skipOrigins?.some((p) => name.startsWith(p))) this.tx.skip = true;
        else if (this.tx) {
          const d = this.opts.decidedOrigins?.find((o) => name.startsWith(o.prefix));
          if (d) this.tx.decided = d.over;
        }
        return;
      }
      case 'relation': {
        const st = this.tables.get(formatTableName({ schema: msg.schema, table: msg.name }));
        if (!st) return; // not one of ours (publication shared)
        await this.setColumns(st.src, msg.columns.map((c) => ({ name: c.name, typeOid: c.typeOid, typeMod: c.typeMod })));
        return;
      }
      case 'insert':
      case 'update':
      case 'delete': {
        const st = this.tables.get(formatTableName({ schema: msg.relation.schema, table: msg.relation.name }));
        if (!st || !this.tx) return;
        if (this.tx.skip) {
          this.stats.echoSkipped++;
          return;
        }
        const op: Op = msg.tag === 'insert' ? 'c' : msg.tag === 'update' ? 'u' : 'd';
        const unchangedToast: string[] = [];
        const after = msg.tag === 'delete' ? null : this.row(st, msg.new, unchangedToast);
        const oldTuple = msg.tag === 'insert' ? null : (msg.old ?? msg.key);
        const before = oldTuple ? this.row(st, oldTuple, null) : null;
        // With the default replica identity an update that does not change the key sends no old tuple.
        const e: ChangeEvent = {
          op,
          before,
          after,
          source: { db: this.opts.source.connection.database, schema: st.src.schema, table: st.src.table, lsn, commitLsn: this.tx.commitLsn, txId: this.tx.xid, tsMs: this.tx.tsMs, snapshot: false, idx: this.tx.idx++ },
          tsMs: Date.now(),
          unchangedToast,
        };
        if (op === 'u' && before) {
          // Key changed: emit a delete of the old key, then the new row (Debezium does the same).
          const keyChanged = st.src.key.some((k) => !sameValue(before[k] ?? null, after![k] ?? null));
          if (keyChanged) {
            await this.enqueue(st, { ...e, op: 'd', after: null, unchangedToast: [] });
            e.source = { ...e.source, idx: this.tx.idx++ };
            e.op = 'c';
          }
        }
        await this.enqueue(st, e);
        return;
      }
      case 'truncate':
        for (const rel of msg.relations) {
          const st = this.tables.get(formatTableName({ schema: rel.schema, table: rel.name }));
          if (!st || !this.tx || this.tx.skip) continue;
          await this.enqueueTruncate(st, {
            op: 't', before: null, after: null,
            source: { db: this.opts.source.connection.database, schema: st.src.schema, table: st.src.table, lsn, commitLsn: this.tx.commitLsn, txId: this.tx.xid, tsMs: this.tx.tsMs, snapshot: false, idx: this.tx.idx++ },
            tsMs: Date.now(), unchangedToast: [],
          });
        }
        return;
      default:
        return;
    }
  }

  private row(st: TableState, tuple: Record<string, unknown>, unchangedToast: string[] | null): Row {
    const out: Row = {};
    for (const c of st.columns) {
      if (!(c.name in tuple)) continue;
      const raw = tuple[c.name];
      if (raw === undefined) {
        // 'u' in pgoutput: an unchanged TOASTed value PostgreSQL did not send.
        if (unchangedToast) unchangedToast.push(c.name);
        out[c.name] = null;
        continue;
      }
      out[c.name] = parsePgText(raw as string | null, c.type);
    }
    return out;
  }

  /** Stop streaming, produce what is buffered, acknowledge it, and close. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.lingerTimer);
    try {
      // Let the pump finish the message it is handling, then produce the rest.
      for (let i = 0; i < 100 && this.pumping; i++) await sleep(20);
      await Promise.race([this.flush(), sleep(15000)]);
      this.advanceWatermark();
      this.sendStatus();
      await sleep(50);
    } finally {
      this.stopHard = true;
      await this.service?.stop().catch(() => undefined);
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

export function isFatal(err: unknown): boolean {
  return err instanceof SynclineError && errorKind(err) === 'fatal';
}
