/**
 * Capture stage: one per pipeline source. Takes a source's changes (./source.ts: PostgreSQL logical
 * replication, a binlog, …) and produces them to Kafka, one topic per table
 * (`<prefix>.cdc.<schema>.<table>`, key = the table's key, so one key always lands on one partition),
 * Avro-encoded against the schema registry.
 *
 * Lifecycle and guarantees
 *  - Start: the source checks and describes the tables; topics and schemas are ensured; the source
 *    prepares, then snapshots (op 'r', recorded in `<prefix>.capture.offsets`) or resumes, and streams.
 *  - Buffers: changes wait in `outbox` until produced; at most `maxBuffered` before the source is
 *    held (handler.change() resolves only when there is room), so memory does not grow with the backlog.
 *  - Acknowledgement: the source's acknowledged position advances only to the end of the last
 *    transaction whose every change Kafka acknowledged (acks=all). A crash (kill -9) replays from
 *    that point: changes may be read twice, never lost; those Kafka already holds are not produced
 *    again (resuming()), and downstream version state makes any other repeat a no-op.
 */
import type { Logger } from 'pino';
import type { ChangeEvent, Row, Value } from '../core/envelope.js';
import { DECIDED_HEADER, PARTITIONS_HEADER, eventPosition, position, type Decided } from '../core/envelope.js';
import { envelopeFromAvro } from '../core/avro.js';
import { readRanges, topicBounds } from '../core/topic-reader.js';
import { kafkaPartition } from '../core/kafkajs-patch.js';
import { errorCode, errorMessage, fatal, SynclineError, errorKind, retriable, withDeadline } from '../core/errors.js';
import { LARGE_MESSAGE_BYTES, messageBytes, topics, type KafkaClient, type OutMessage } from '../core/kafka.js';
import type { AvroCodec } from '../core/codec.js';
import { canHoldSpecials, columnPgTypes, envelopeToAvro, hasInheritedNames, keySchema, specialDecimalColumns, valueSchema } from '../core/avro.js';
import { encodeRefusal, holdsSpecial, oversizeRefusal } from './refusal.js';
import { stringifyTagged } from '../core/tagged-json.js';
import { keyStringOf } from '../sink/sink.js';
import type { ConflictConfig, TableConfig } from '../core/config/schema.js';
import { timestampFieldProblem } from '../sink/conflicts.js';
import { CaptureOffsets } from './offsets.js';
import { ToastFill, type ToastCounters } from './toast-fill.js';
import type { CaptureHandler, RejectedRecord, SchemaChangeInfo, Source, SourceColumn, SourceTable } from './source.js';
import { DeadLetters } from '../sink/dead-letters.js';
import { backoffDelay, sleep } from '../core/retry.js';
import { formatTableName, parseTableName } from '../core/names.js';
import { Backfiller, type BackfillCounters } from './backfill.js';
import { describeChanges, diffColumns } from './schema-diff.js';
import { SchemaChangeLog, schemaChangeId, type SchemaChange } from './schema-changes.js';
import { unsealColumns, type PipelineCrypto } from '../security/crypto/pipeline.js';
import { acquireLeadership, type LeaderLock } from './leadership.js';

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
  /** The pipeline's source, made by its connector's factory (not connected yet). */
  source: Source;
  tables: TableConfig[];
  kafka: KafkaClient;
  codec: AvroCodec;
  log: Logger;
  /** Most changes held in memory before the source is held. */
  maxBuffered?: number;
  /** Two-way sync: transactions whose origin name starts with one of these are not captured (the peer's own writes). */
  skipOrigins?: string[];
  /**
   * Two-way sync: transactions whose origin name starts with one of these are rows the peer
   * re-published after its conflict resolution kept them; their changes carry the
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
  /** Called once capture is started (its topics, schemas and stored state known; snapshot or stream next). */
  onRunning?: () => void;
  /**
   * The pipeline's target needs whole rows (its registration's `wholeRows`): values a change left out
   * (unchanged TOASTed values) are filled before the change is produced (./toast-fill.ts).
   */
  wholeRows?: boolean;
  /**
   * Field encryption (tables[].encrypt): the encrypted columns' values are sealed into ciphertexts
   * before a change is encoded, and their schema type is text (src/security/crypto/pipeline.ts).
   */
  crypto?: PipelineCrypto;
  /**
   * Standby capture (./leadership.ts, ADR 0034): this capture waits for the source's capture lock,
   * held by another process (`holder` as the source says), or holds it now (leader true), or no
   * longer (false: stopped or lost). A standby counts as running for the supervisor.
   */
  onStandby?: (holder: Record<string, unknown> | undefined) => void;
  onLeader?: (leading: boolean) => void;
}

export interface CaptureStats {
  snapshotRows: number;
  changes: number;
  produced: number;
  transactions: number;
  /** The source's last acknowledged position, in its own notation ('' before any). */
  confirmed: string;
  deadLettered: number;
  /** Produce attempts retried because Kafka did not accept a batch. */
  produceRetries: number;
  /** Changes not captured because a peer pipeline wrote them (two-way sync: no echo). */
  echoSkipped: number;
  /** Backfill rows produced, chunks finished, chunk rows dropped for a newer streamed change (./backfill.ts). */
  backfill: BackfillCounters;
  /** Changes streamed again after a restart that Kafka already had (not produced twice). */
  duplicatesSkipped: number;
  /** Whole-row targets: changes whose left-out values were filled (from what capture saw, or re-read at the source) or not (./toast-fill.ts). */
  toast: ToastCounters;
}

interface TableState {
  src: SourceTable;
  topic: string;
  columns: SourceColumn[];
  signature: string;
  /**
   * Decimal columns written as ["null", decimal, "string"] because they have held NaN/±Infinity
   * (see widenForSpecials). Only grows: kept across column changes, and read back from the registry's
   * latest value schema at start, so a column never goes back to the plain decimal.
   */
  specials: ReadonlySet<string>;
  keyId: number;
  valueId: number;
  /** The table's name in the source since a rename (its changes keep its configured name and topic until the config changes). */
  renamedTo?: string;
}

interface TxMark {
  /** Number of messages enqueued when the transaction's commit was seen. */
  upTo: number;
  /** The source's end position of the transaction. */
  end: string;
}

const signatureOf = (cols: SourceColumn[]): string => cols.map((c) => `${c.name}:${c.type.kind}:${c.type.pgType}`).join(',');

export class Capture implements CaptureHandler {
  private readonly counters = { snapshotRows: 0, changes: 0, produced: 0, transactions: 0, deadLettered: 0, produceRetries: 0, echoSkipped: 0, duplicatesSkipped: 0 };
  private readonly log: Logger;
  private readonly source: Source;
  private tables = new Map<string, TableState>(); // canonical table name (core/names.ts) → state
  private sourceTables: SourceTable[] = [];
  private readonly dlq: DeadLetters;
  readonly offsets: CaptureOffsets;

  // Outbox: messages waiting to be produced, in source order.
  private outbox: OutMessage[] = [];
  private enqueued = 0;
  private sent = 0;
  private marks: TxMark[] = [];
  private flushing?: Promise<void>;
  private drainWaiters: (() => void)[] = [];
  private lingerTimer?: NodeJS.Timeout;
  private readonly maxBuffered: number;

  /** Last position each change-topic partition held at start (resume), for alreadyProduced(). */
  private readonly produced = new Map<string, Map<number, string>>();
  private readonly partitions = new Map<string, number>();
  private tx: { skip?: boolean; decided?: Decided } | null = null;
  /** Backfills of this pipeline's tables (./backfill.ts), when the source supports them. */
  backfiller?: Backfiller;
  stopped = false;
  private stopHard = false;
  private readonly toast?: ToastFill;

  constructor(private readonly opts: CaptureOptions) {
    this.log = opts.log;
    this.source = opts.source;
    // Three batches (one in flight, one filling, one more): 8 batches or 20,000 changes held 20 – 25 MB
    // more at the peak with ≈ 1 KB rows (peak RSS 213 – 220 MB against 184 – 198 with 6,000 – 8,000,
    // `npm run bench -- --only capture`), and produced no faster.
    this.maxBuffered = opts.maxBuffered ?? Math.max(this.source.batchSize * 3, 5000);
    this.dlq = new DeadLetters(opts.kafka, opts.prefix, opts.pipeline, opts.log);
    this.offsets = new CaptureOffsets(opts.kafka, opts.prefix);
    if (opts.wholeRows) this.toast = new ToastFill({ log: opts.log, reselect: this.source.reselect?.bind(this.source) });
    this.schemaLog = new SchemaChangeLog(opts.kafka, opts.changePrefix);
  }

  /** Where schema changes are recorded (./schema-changes.ts). */
  private readonly schemaLog: SchemaChangeLog;

  get stats(): CaptureStats {
    return { ...this.counters, confirmed: this.source.confirmed, toast: { ...(this.toast?.counters ?? { cache: 0, reselect: 0, miss: 0 }) }, backfill: { ...(this.backfiller?.counters ?? { backfillRows: 0, backfillChunks: 0, backfillDropped: 0 }) } };
  }

  /** The source's capture lock (./leadership.ts), when it has one; `lockLost` once its connection dropped while held. */
  private lock?: LeaderLock;
  private lockLost?: Error;

  /**
   * Run until stop() or a fatal error. Resolves when stopped cleanly. With a source that has a
   * capture lock, nothing is read or written before it is held (a standby waits for it here), and a
   * lost lock ends the run at once (retriable: the supervisor starts a new capture, which leads or
   * stands by); nothing is produced after it was lost.
   */
  async run(): Promise<void> {
    const lock = this.source.leaderLock?.();
    if (!lock) return this.lead();
    this.lock = lock;
    const lost = new Promise<never>((_, reject) => lock.onLost((err) => {
      this.lockLost = err;
      this.opts.onLeader?.(false);
      this.log.error({ lock: lock.name, err: err.message }, 'capture.leader.lost: the capture lock\'s connection dropped; producing stops now');
      reject(err);
    }));
    lost.catch(() => undefined);
    const got = await acquireLeadership(lock, {
      log: this.log,
      stopped: () => this.stopped,
      standby: (holder) => {
        this.opts.onRunning?.(); // standing by is this stage's steady state, not a start that hangs
        this.opts.onStandby?.(holder);
      },
      leader: () => this.opts.onLeader?.(true),
    });
    if (!got) return;
    await Promise.race([this.lead(), lost]);
  }

  /** The capture proper: connect, describe, prepare, snapshot or resume, stream. */
  private async lead(): Promise<void> {
    const { changePrefix, kafka } = this.opts;
    await this.source.connect();
    const described = await this.describe();
    if (described === null) return; // stopped while waiting for tables
    this.sourceTables = described;
    this.checkConflictFields();
    await this.source.prepare(this.sourceTables);
    await kafka.ensureTopics(this.sourceTables.map((t) => topics.cdc(changePrefix, t.schema, t.table)));
    await this.dlq.ensure();
    await this.schemaLog.ensure();
    for (const t of this.sourceTables) await this.setColumns(t, t.columns);
    if (this.stopped) return;
    const support = this.source.backfill;
    if (support) {
      this.backfiller = new Backfiller({
        pipeline: this.opts.pipeline, support, store: this.offsets, log: this.log,
        tables: () => new Map([...this.tables].map(([n, st]) => [n, { ...st.src, columns: unsealColumns(st.columns) }])),
        emit: (e) => this.enqueueBackfill(e),
        produced: () => this.producedAll(),
      });
      await this.backfiller.start();
    }
    this.started = true;
    await this.source.run(this);
  }

  running(): void {
    this.opts.onRunning?.();
  }

  /** Whether addTables() can take tables while this capture streams (the source says so; its start steps are done). */
  get addsTablesWhileRunning(): boolean {
    return this.source.addsTablesWhileRunning === true && this.started && !this.stopped;
  }

  /**
   * Tables added by a config reload, taken while the stream goes on (no stop, no reconnect): the
   * source describes them, their topics and schemas are made, the source starts streaming them
   * (PostgreSQL: ALTER PUBLICATION … ADD TABLE), then the backfill reads them in key order under its
   * watermarks (./backfill.ts), so a change streamed meanwhile is never overwritten by an older read.
   * Changes of a table between the publication's change and the backfill's first chunk are streamed;
   * what came before is what the backfill reads.
   */
  async addTables(added: TableConfig[]): Promise<void> {
    if (!this.addsTablesWhileRunning) throw fatal('RELOAD_NOT_LIVE', `pipeline ${this.opts.pipeline}: this capture cannot take tables while it streams`);
    const described = await this.source.describe(added);
    await this.opts.kafka.ensureTopics(described.map((t) => topics.cdc(this.opts.changePrefix, t.schema, t.table)));
    for (const t of described) await this.setColumns(t, t.columns);
    this.opts.tables = [...this.opts.tables, ...added];
    this.sourceTables = [...this.sourceTables, ...described];
    await this.source.prepare(described);
    this.log.info({ tables: described.map(formatTableName) }, 'capture.tables.added: streaming the added tables (no restart)');
    await this.backfiller?.added(described.map(formatTableName));
  }

  /** The start steps are done (describe, topics, schemas, backfills loaded): the source runs. */
  private started = false;

  /**
   * source.describe(); with awaitTablesFrom, a missing source table is waited for (the peer creates it),
   * with one warn line per start. Null when stop() came meanwhile.
   */
  private async describe(): Promise<SourceTable[] | null> {
    const { tables, awaitTablesFrom } = this.opts;
    let waiting = false;
    for (let attempt = 1; ; attempt++) {
      try {
        const found = await this.source.describe(tables);
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
      const p = timestampFieldProblem(this.opts.pipeline, t, base, this.sourceTables[i]!.columns.map((c) => c.name));
      if (p) problems.push(p);
    });
    if (problems.length > 0) throw fatal('CONFLICT_FIELD_MISSING', problems.join('\n'));
  }

  // ------------------------------------------------------------------ schemas

  /**
   * A table's columns, key or name changed mid-stream. The change is classified (./schema-diff.ts)
   * and checked against the registry's rule for the table's value subject (BACKWARD): safe (added
   * columns, widening, and the registry agrees) is applied at once; anything else is breaking. Either
   * way the new schemas are registered and the change recorded in `<changePrefix>.schema.changes`
   * (./schema-changes.ts) before any change under them is produced, and capture goes on producing:
   * nothing is lost. A breaking change is recorded `pending`: the processor holds the table's apply
   * from its position until an operator approves or rejects it (src/process/schema-guard.ts).
   * A key column gone with no new key reported stays fatal (SOURCE_KEY_UNKNOWN): no key, no Kafka key.
   */
  async columns(schema: string, table: string, columns: SourceColumn[], info: SchemaChangeInfo = {}): Promise<void> {
    const name = formatTableName({ schema, table });
    if (this.opts.crypto) columns = this.opts.crypto.sealColumns(name, columns);
    const st = this.tables.get(name);
    if (!st) return;
    const configuredKey = this.opts.tables.find((t) => t.source === name)?.key;
    const reported = info.key && info.key.length > 0 && !configuredKey ? info.key : undefined;
    // A source may report its key in column order (pgoutput's relation flags, not the primary key's
    // order): the same columns are the same key, kept in the order the stage uses. Only another set
    // of columns is a key change (a composite key (b, a) was taken for a change to (a, b)).
    const sameColumns = reported !== undefined && reported.length === st.src.key.length && reported.every((k) => st.src.key.includes(k));
    const keyAfter = reported && !sameColumns ? reported : st.src.key;
    const renamedTo = info.renamedTo ? formatTableName(info.renamedTo) : undefined;
    const diff = diffColumns(st.columns, columns, { keyBefore: st.src.key, keyAfter, renamedFrom: st.renamedTo ?? name, renamedTo: renamedTo !== (st.renamedTo ?? name) ? renamedTo : undefined });
    if (diff.changes.length === 0) return;
    for (const k of keyAfter) {
      if (!columns.some((c) => c.name === k)) throw fatal('SOURCE_KEY_UNKNOWN', `key column ${k} of ${name} is gone from the table`);
    }
    const topic = st.topic;
    const src: SourceTable = { ...st.src, key: keyAfter };
    const ns = { prefix: this.opts.changePrefix, schema: st.src.schema, table: st.src.table };
    // A renamed table's value schema is named after its new name: a new schema id tells the processor to look for the change.
    const valueNs = renamedTo !== undefined || st.renamedTo !== undefined ? { ...ns, ...parseTableName(renamedTo ?? st.renamedTo!) } : ns;
    const value = valueSchema(valueNs, columns, st.specials);
    const key = keySchema(ns, keyAfter.map((k) => columns.find((c) => c.name === k)!));
    const registry = await this.registryDeadline(this.opts.codec.compatible(`${topic}-value`, value), `checking the compatibility of ${topic}-value`);
    const keyChanged = diff.changes.some((c) => c.kind === 'key');
    const keyCheck = keyChanged ? await this.registryDeadline(this.opts.codec.compatible(`${topic}-key`, key), `checking the compatibility of ${topic}-key`) : { compatible: true };
    const breaking = diff.breaking || !registry.compatible || !keyCheck.compatible;
    const register = (subject: string, schema: object, ok: boolean) => ok ? this.opts.codec.register(subject, schema) : this.opts.codec.registerBreaking(subject, schema);
    const [keyId, valueId] = await this.registryDeadline(Promise.all([
      register(`${topic}-key`, key, keyCheck.compatible),
      register(`${topic}-value`, value, registry.compatible),
    ]), `registering the schemas of ${topic}`);
    const change: SchemaChange = {
      id: '', pipeline: this.opts.pipeline, table: name, topic, at: '',
      fromSchemaId: st.valueId, toSchemaId: valueId, ...(st.keyId >= 0 ? { fromKeySchemaId: st.keyId } : {}), toKeySchemaId: keyId,
      breaking, changes: diff.changes,
      registry: registry.compatible ? keyCheck : registry,
      status: breaking ? 'pending' : 'applied', detectedAt: new Date().toISOString(),
      ...(info.ddl ? { ddl: info.ddl } : {}),
    };
    const next: TableState = { ...st, src, columns, signature: signatureOf(columns), keyId, valueId, renamedTo: renamedTo ?? st.renamedTo };
    this.tables.set(name, next);
    if (info.at) await this.recordChange(change, position(info.at.commitPos, info.at.idx));
    else this.unplaced.set(name, change); // recorded before the table's next change is produced
    const what = describeChanges(diff.changes);
    if (breaking) {
      this.log.warn({ table: name, change: change.id || '(recorded at its next change)', valueSchemaId: valueId, changes: what, registry: change.registry }, `capture.schema.breaking: ${name}: ${what}; its changes go on to Kafka, their apply waits for an operator (syncline schema pending; syncline schema approve|reject ID)`);
    } else this.log.info({ table: name, valueSchemaId: valueId, changes: what }, 'capture.schema.changed');
  }

  /** Changes detected with no position (the source did not say where): recorded at the table's next change. */
  private readonly unplaced = new Map<string, SchemaChange>();

  private async recordChange(change: SchemaChange, at: string): Promise<void> {
    change.at = at;
    change.id = schemaChangeId(change.pipeline, change.table, at);
    await this.schemaLog.record(change);
  }

  /** (Re)build and register the table's schemas when its columns change (e.g. ALTER TABLE ADD COLUMN). */
  private async setColumns(src: SourceTable, columns: SourceColumn[]): Promise<TableState> {
    const name = formatTableName(src);
    if (this.opts.crypto) {
      this.opts.crypto.checkTable(name, columns.map((c) => c.name), src.key);
      columns = this.opts.crypto.sealColumns(name, columns);
    }
    const signature = signatureOf(columns);
    const prev = this.tables.get(name);
    if (prev && prev.signature === signature) return prev;
    for (const k of src.key) {
      if (!columns.some((c) => c.name === k)) throw fatal('SOURCE_KEY_UNKNOWN', `key column ${k} of ${name} is gone from the table`);
    }
    const topic = topics.cdc(this.opts.changePrefix, src.schema, src.table);
    let specials = prev?.specials;
    if (!specials) {
      const latest = await this.registryDeadline(this.opts.codec.latest(`${topic}-value`), `reading the latest schema of ${topic}`);
      specials = latest ? specialDecimalColumns(latest.type) : new Set<string>();
      // The table changed while capture was not running (or the change was not produced before a
      // restart): the change from the schema Kafka's consumers know goes through columns(), like one seen mid-stream.
      const known = latest ? columnPgTypes(latest.type) : new Map<string, string>();
      const changed = known.size > 0 && (known.size !== columns.length || columns.some((c) => known.get(c.name) !== c.type.pgType));
      if (latest && changed) {
        const before: SourceColumn[] = [...known].map(([name, pgType]) => ({ name, type: { kind: columns.find((c) => c.name === name)?.type.kind ?? 'text', pgType } }));
        this.tables.set(name, { src, topic, columns: before, signature: signatureOf(before), specials, keyId: -1, valueId: latest.id });
        await this.columns(src.schema, src.table, columns);
        return this.tables.get(name)!;
      }
    }
    const st = await this.registerSchemas(src, topic, columns, signature, specials);
    if (prev) this.log.info({ table: name, valueSchemaId: st.valueId }, 'capture.schema.changed');
    return st;
  }

  /** Register the table's key and value schemas and make them the table's current ones. */
  private async registerSchemas(src: SourceTable, topic: string, columns: SourceColumn[], signature: string, specials: ReadonlySet<string>): Promise<TableState> {
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

  // ------------------------------------------------------------------ what the source hands over

  begin(tx: { origin?: string }): void {
    const name = tx.origin;
    this.tx = {};
    if (name === undefined) return;
    if (this.opts.skipOrigins?.some((p) => name.startsWith(p))) this.tx.skip = true;
    else this.tx.decided = this.opts.decidedOrigins?.find((o) => name.startsWith(o.prefix))?.over;
  }

  async change(e: ChangeEvent): Promise<void> {
    const name = formatTableName(e.source);
    const st = this.tables.get(name);
    if (!st) return; // not one of ours (a publication shared with other tables)
    const unplaced = this.unplaced.get(name);
    if (unplaced && e.op !== 'r') {
      this.unplaced.delete(name);
      await this.recordChange(unplaced, eventPosition(e));
    }
    this.backfiller?.observe(e);
    if (e.op === 'r') {
      await this.enqueue(st, e);
      this.counters.snapshotRows++;
      return;
    }
    if (e.op === 'm') return this.enqueueMarker(st, e);
    if (this.tx?.skip) {
      if (e.op !== 't') this.counters.echoSkipped++;
      return;
    }
    if (e.op === 't') return this.enqueueTruncate(st, e);
    return this.enqueue(st, e);
  }

  async watermark(id: string, at: { commitPos: string; pos: string; tsMs: number; db: string }): Promise<void> {
    await this.backfiller?.watermark(id, at);
  }

  async signal(text: string): Promise<void> {
    if (this.backfiller) await this.backfiller.signal(text);
    else this.log.warn({ signal: text.slice(0, 200) }, 'capture.signal.ignored: this source cannot backfill');
  }

  /** A backfill's snapshot read (./backfill.ts), emitted at its chunk's high watermark. */
  private async enqueueBackfill(e: ChangeEvent): Promise<void> {
    const st = this.tables.get(formatTableName(e.source));
    if (st) await this.enqueue(st, e);
  }

  /** Resolves once Kafka holds every message enqueued before the call. */
  private async producedAll(): Promise<void> {
    const target = this.enqueued;
    while (this.sent < target) {
      if (this.stopped) return;
      void this.kick();
      await sleep(10);
    }
  }

  commit(end: string): void {
    this.tx = null;
    this.counters.transactions++;
    this.marks.push({ upTo: this.enqueued, end });
    if (this.sent >= this.enqueued) this.advanceWatermark();
    else this.armLinger();
  }

  /** A record the source could not make a change of (CaptureHandler.reject): dead-lettered as `invalid`, never dropped. */
  async reject(r: RejectedRecord): Promise<void> {
    const target = this.opts.tables.find((t) => t.source === r.table)?.target ?? r.table;
    const bytes = (v: Buffer | string | null) => (v === null || Buffer.isBuffer(v) ? v : Buffer.from(v));
    this.counters.deadLettered++;
    await this.dlq.send([{
      kind: 'invalid', error: r.error, table: target, key: bytes(r.key), value: bytes(r.value), attempts: 1,
      ...(r.position !== undefined ? { position: r.position } : {}),
      ...(typeof r.key === 'string' ? { targetKey: r.key } : {}),
      ...(r.origin ? { origin: r.origin } : {}),
    }]);
  }

  idle(): boolean {
    return this.tx === null && this.outbox.length === 0 && !this.flushing && this.sent === this.enqueued;
  }

  // ------------------------------------------------------------------ outbox

  private async enqueue(st: TableState, e: ChangeEvent): Promise<void> {
    const keyRow = e.op === 'd' ? (e.before ?? {}) : (e.after ?? {});
    const key: Record<string, Value> = {};
    for (const k of st.src.key) key[k] = keyRow[k] ?? null;
    if (this.toast && e.op !== 't') await this.toast.apply(st.src, `${st.topic}\0${keyStringOf(Object.values(key))}`, key, e);
    // Field encryption: from here on (Kafka, dead letters, logs) the encrypted values are ciphertexts.
    if (this.opts.crypto && e.op !== 't') e = this.opts.crypto.sealEvent(formatTableName(st.src), key, e);
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
        // No schema of its table can carry it: why, in the type's own words.
        const using = wider ?? st;
        const error = encodeRefusal({ source: formatTableName(using.src), key, event: e, err: again, keyType: this.opts.codec.knownType(using.keyId), valueType: this.opts.codec.knownType(using.valueId) });
        await this.deadLetterChange(using, key, e, error, Buffer.from(stringifyTagged(e)));
        return;
      }
    }
    if (msg === null) return;
    // Larger than its topic takes: Kafka would refuse it on every attempt and hold the pipeline there.
    if ((msg.value?.length ?? 0) >= LARGE_MESSAGE_BYTES) {
      const bytes = messageBytes(msg);
      const limit = await this.opts.kafka.maxMessageBytes(st.topic);
      if (bytes > limit) {
        const source = formatTableName(st.src);
        this.log.warn({ table: source, key: keyStringOf(Object.values(key)), bytes, limit, topic: st.topic }, 'capture.too_large: a change larger than its topic takes is dead-lettered');
        // Without its row: the dead-letter topic would not take it either.
        await this.deadLetterChange(st, key, e, oversizeRefusal({ source, topic: st.topic, key, event: e, bytes, limit }), null);
        return;
      }
    }
    this.outbox.push(msg);
    this.enqueued++;
    this.counters.changes++;
    if (this.outbox.length >= this.source.batchSize) void this.kick();
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
    const msg: OutMessage = { topic: st.topic, partition, key: keyBuf, value: this.opts.codec.encodeSync(st.valueId, envelopeToAvro(e, hasInheritedNames(st.columns))) };
    if (this.tx?.decided) msg.headers = { [DECIDED_HEADER]: this.tx.decided };
    return msg;
  }

  /**
   * A change Kafka cannot take, dead-lettered as `invalid` with `error` (naming the table, the key and
   * why) and the key as tagged JSON (exact: bigints, bytes). `value` is the change as tagged JSON, or
   * null when the dead-letter topic would not take it either (the source still holds the row). Its id
   * is stable and unique: the change's position and key (every row of a snapshot has the snapshot's
   * one position).
   */
  private async deadLetterChange(st: TableState, key: Row, e: ChangeEvent, error: SynclineError, value: Buffer | null): Promise<void> {
    const source = formatTableName(st.src);
    const target = this.opts.tables.find((t) => t.source === source)?.target ?? source;
    this.counters.deadLettered++;
    await this.dlq.send([{ kind: 'invalid', error, table: target, position: eventPosition(e), targetKey: keyStringOf(Object.values(key)), key: Buffer.from(stringifyTagged(key)), value, attempts: 1 }]);
  }

  /**
   * After a restart the source streams again from its acknowledged position, which may be behind
   * what Kafka already holds (acknowledged by Kafka, not yet to the source). Each partition of a
   * change topic is in commit order, so a change whose position is not above the last one its
   * partition holds was produced before: skipping it keeps the change topics free of duplicates
   * (consumers would skip them too, but not after Redis lost the version state).
   */
  async resuming(): Promise<void> {
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
    this.counters.duplicatesSkipped++;
    return true;
  }

  private async partitionCount(topic: string): Promise<number> {
    const n = await this.opts.kafka.partitionCount(topic);
    this.partitions.set(topic, n);
    return n;
  }

  /** A control event for every partition of the table's topic (end of snapshot). */
  private async enqueueMarker(st: TableState, e: ChangeEvent): Promise<void> {
    const n = this.partitions.get(st.topic) ?? (await this.partitionCount(st.topic));
    const value = await this.opts.codec.encode(st.valueId, envelopeToAvro(e));
    for (let p = 0; p < n; p++) {
      if (this.alreadyProduced(st.topic, p, eventPosition(e))) continue;
      this.outbox.push({ topic: st.topic, key: null, value, partition: p, control: e.op === 'm', headers: { [PARTITIONS_HEADER]: String(n) } });
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
      this.outbox.push({ topic: st.topic, key: null, value, partition: p, headers: { [PARTITIONS_HEADER]: String(n) } });
      this.enqueued++;
    }
    this.counters.changes++;
    void this.kick();
  }

  private armLinger(): void {
    const linger = this.source.lingerMs;
    if (this.lingerTimer || linger === 0) {
      if (linger === 0) void this.kick();
      return;
    }
    this.lingerTimer = setTimeout(() => {
      this.lingerTimer = undefined;
      void this.kick();
    }, linger);
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
    while ((this.outbox.length > 0 && !this.lockLost) || this.flushing) await this.kick();
  }

  private async flushLoop(): Promise<void> {
    let failures = 0;
    while (this.outbox.length > 0) {
      if (this.lockLost) return; // another capture may lead now: not one more message from this one
      const batch = this.outbox.slice(0, this.source.batchSize);
      try {
        await this.opts.kafka.send(batch);
        failures = 0;
      } catch (err) {
        // Kafka unavailable: nothing was acknowledged to the source, so keep the batch and retry
        // without a limit (the source retains its log meanwhile), with the one backoff curve of core/retry.
        const delay = backoffDelay(KAFKA_OUTAGE_BACKOFF, ++failures);
        this.counters.produceRetries++;
        this.log.warn({ err: errorMessage(err), attempt: failures, retryInMs: delay }, 'capture.produce.retry');
        await sleep(delay);
        if (this.stopped && this.stopHard) return;
        continue;
      }
      this.outbox.splice(0, batch.length);
      this.sent += batch.length;
      for (const m of batch) if (!m.control) this.counters.produced++;
      this.advanceWatermark();
      if (this.outbox.length < this.maxBuffered / 2) this.releaseDrainWaiters();
    }
    this.releaseDrainWaiters();
  }

  private releaseDrainWaiters(): void {
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const f of w) f();
  }

  /** Acknowledge to the source the end of the last transaction fully acknowledged by Kafka. */
  private advanceWatermark(): void {
    let end: string | undefined;
    while (this.marks.length > 0 && this.marks[0]!.upTo <= this.sent) end = this.marks.shift()!.end;
    if (end !== undefined) this.source.acknowledge(end);
  }

  /** Stop taking changes, produce what is buffered, acknowledge it, and close. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.lingerTimer);
    await this.backfiller?.stop();
    try {
      await this.source.quiesce();
      if (!this.lockLost) await Promise.race([this.flush(), sleep(15000)]);
      this.advanceWatermark();
    } finally {
      this.stopHard = true;
      await this.source.stop();
      if (this.lock) {
        await this.lock.release();
        this.opts.onLeader?.(false);
      }
    }
  }
}

export function isFatal(err: unknown): boolean {
  return err instanceof SynclineError && errorKind(err) === 'fatal';
}
