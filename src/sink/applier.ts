/**
 * The apply path for one pipeline: version state → parking → conflict detection and resolution →
 * sink write (with retry) → dead letters for what failed or waits for an operator → version state
 * commit. Called with one batch at a time per Kafka partition; the caller commits the partition's
 * offsets only after apply() returned.
 *
 * Guarantees kept here
 *  - Effectively once: a record whose position is not newer than the key's stored position is a
 *    no-op (redelivery, replay); the Redis compare-and-set never moves a position backwards.
 *  - Deltas are real: an upsert whose content hash equals what the target is known (or, where it is
 *    read, seen) to hold is skipped (and counted) but still advances the position.
 *  - Synced means applied: state is committed only for records the target committed; a record that
 *    failed and was dead-lettered leaves the state as it was, so a later identical change is written.
 *  - Conflicts are explicit: for tables whose strategy is not source-wins the affected target rows
 *    are read once per batch (locked until the write commits, where the sink can: writeGuarded). A
 *    conflict is a change whose target row differs from what syncline last wrote (its stored hash),
 *    or, with latest-timestamp, whose row is older than the target's. The strategy (./conflicts.ts)
 *    says source, target, merged or manual.
 *  - Per-key order with parking: a manual conflict is dead-lettered as `conflict` and its key parked
 *    (Redis p: entry); later changes of that key are dead-lettered behind it (reason `parked`) until
 *    an operator settles it (src/dlq/service.ts releases them in order); other keys flow on.
 *  - Nothing lost: failures end in `<prefix>.dlq.<pipeline>` with the reason; fatal errors throw.
 *
 * State hashes are '<sig>:<sha1>' where sig names the column set the hash covers (registered in
 * Redis, see VersionState.registerColumns), so the target row can be hashed over the same columns
 * even after the table gained a column; 'D' is a deleted row; '' is unknown (TOASTed values kept).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ConflictConfig, RetryConfig } from '../core/config/schema.js';
import { keptOver, type Decided, type Row } from '../core/envelope.js';
import { errorCode, errorKind, errorMessage, poison, SynclineError } from '../core/errors.js';
import { rowHash } from '../core/hash.js';
import { redact, redacting } from '../core/redact.js';
import { RecentLists } from '../core/recent-lists.js';
import { RetryExhausted, withRetry } from '../core/retry.js';
import { stringifyTagged } from '../core/tagged-json.js';
import type { VersionCommit, VersionEntry, VersionState } from './version-state.js';
import { conflictDiff, olderThanTarget, type Choice, type Conflict, type Resolver } from './conflicts.js';
import { deadLetterId, type DeadLetter, type DeadLetters } from './dead-letters.js';
import { keyString, type Sink, type SinkRecord, type TargetRows, type WriteResult } from './sink.js';
import { TableGates } from './table-gates.js';
import { entriesOf, unchangedEntry, type HistoryEntry, type HistoryNote } from '../history/history.js';
import type { PipelineHistory } from '../history/recorder.js';

export interface Pending {
  record: SinkRecord;
  raw: { key: Buffer | null; value: Buffer | null };
  /** recordKey(): 'table\0keyString', once computed. */
  ck?: string;
  /** Offset of the consumed message, set by the consumer stage on truncates (a truncate may hold its partition there: ApplyResult.held). */
  offset?: string;
}

/** The key of a pending record across tables ('table\0keyString'), computed once per Pending (asked for several times per record). */
export function recordKey(p: Pending): string {
  return (p.ck ??= p.record.table + '\u0000' + keyString(p.record.key));
}

export interface ApplyStats {
  received: number;
  applied: number;
  skippedStale: number;
  skippedUnchanged: number;
  conflicts: number;
  /** Conflicts parked for an operator (manual, custom → manual or failing). */
  parked: number;
  /** Later changes parked behind a conflict of their key. */
  parkedBehind: number;
  deadLettered: number;
  retries: number;
  /** Replay (verifyTarget): records whose effect the target had lost, written again. */
  repaired: number;
  /** Target rows deleted after a re-snapshot did not find them at the source. */
  swept: number;
  /** Two-way: rows re-published for the peer (kept by a conflict) and deletes made as decisions the peer carries back. */
  republished: number;
  /** Control records handled (end-of-snapshot markers); not counted in `received`. */
  control: number;
  /** Rows written back by a rollback (src/history/rollback.ts); also counted in `applied`. */
  rolledBack: number;
  /** Version-state entries recorded from write intents a failed or killed apply left (sink.intents.settled). */
  intentsSettled: number;
}

/**
 * deferred_to_peer (two-way, latest-timestamp): an update of a row the target lacks, deleted there;
 * the target is left without it and the peer pipeline, which carries that delete, decides (it
 * re-publishes the row if the row wins). Logged with its key (`conflict.deferred_to_peer`): a key
 * that stays different between the two sides can be traced to this decision.
 */
export type ConflictOutcome = 'source_won' | 'target_won' | 'merged' | 'parked' | 'deferred_to_peer';

/** Hooks for metrics (src/observe/instrument.ts); called synchronously, must not throw. */
export interface ApplyObserver {
  /** The target committed this record (after the write returned). */
  applied(record: SinkRecord): void;
  /** A conflict was settled (or parked). */
  conflict(table: string, strategy: string, outcome: ConflictOutcome): void;
  /** A retriable or unknown error is about to be retried. */
  retry(err: unknown): void;
}

export const newApplyStats = (): ApplyStats => ({ received: 0, applied: 0, skippedStale: 0, skippedUnchanged: 0, conflicts: 0, parked: 0, parkedBehind: 0, deadLettered: 0, retries: 0, repaired: 0, swept: 0, republished: 0, control: 0, rolledBack: 0, intentsSettled: 0 });

export interface ApplyOptions {
  /** Replay: a record at exactly the key's stored position is checked against the target and written again if the target lost it. */
  verifyTarget?: boolean;
  /** Keys ('table\0keyString') whose parked changes are being released: not parked again for their parking entry. */
  release?: Set<string>;
  /** Mixed into the ids of dead letters this call writes (a change parked again after a release or requeue is a new dead letter). */
  idSalt?: string;
  /**
   * The consumer topic and partition the batch came from ('<topic>:<partition>'). Each target
   * write then leaves a write intent under it until its state is committed, and the first batch of
   * it in this process (or after an apply of it failed) first settles what a killed predecessor
   * left (see settleIntents).
   */
  consumer?: string;
  /**
   * The caller can hold the batch's partition at a record (the consumer stage: ApplyResult.held). A
   * truncate then waits until every partition of its topic reached it (see truncate()); without
   * it (replay, a rollback) a truncate runs at its first copy, coordinated within this process only.
   */
  hold?: boolean;
}

export interface ApplierOptions {
  pipeline: string;
  /** Conflict settings and resolver of a target table. */
  conflictFor: (table: string) => ConflictConfig;
  resolverFor: (table: string) => Resolver;
  retry: RetryConfig;
  log: Logger;
  /** Two-way sync: re-publish target rows kept by a conflict so the peer carries them back. */
  republish?: boolean;
  /**
   * Multi-way sync (ADR 0040): other pipelines than this one's peer write into this target too. A
   * delete another node decided (`decided: 'delete'`) that removes a row here is then itself made as
   * a decision the other nodes carry (a plain write would be left out by every capture, and a later
   * change deferred here to the peer would wait for a delete nobody carries); and such a delete is
   * weighed against the row by the strategy, not kept as this side's own delete coming home. And an
   * update that finds its row missing here is written, not deferred to the peer: the row may be a
   * third node's insert still on its way here, which no delete of this side explains.
   */
  relayDecided?: boolean;
  /** Partitions of a change topic (for the end-of-snapshot sweep: it runs once every partition delivered its marker). */
  partitionsOf?: (topic: string) => Promise<number>;
  /**
   * Most records written to the target in one transaction (`batch.size`): a longer batch is
   * applied in consecutive parts of at most this many records, each its own read, write and state
   * commit. Unbounded when absent.
   */
  batchSize?: number;
  /** Rebuild the parking index after a Redis flush (open conflicts from the dead-letter topic). */
  parkedKeys?: () => Promise<{ table: string; key: string; id: string }[]>;
  /**
   * Field encryption (src/security/crypto/pipeline.ts): the row hash of a target table's row, `key`
   * its key row, with encrypted values hashed as keyed HMACs of their plaintext. Absent: rowHash.
   */
  rowHash?: (table: string, row: Row, key: Row) => string;
  /** Change history (src/history/): which tables keep it, and where entries go when the target does not write them in its transaction. */
  history?: PipelineHistory;
  /**
   * Field encryption: a copy of a row of a target table with `field` decrypted (`key` its key row),
   * in memory only, for the latest-timestamp comparison of an encrypted timestamp column; the copy
   * goes to the comparison and nowhere else (conflict dead letters keep the ciphertexts). Absent:
   * rows are compared as they are.
   */
  openField?: (table: string, row: Row, key: Row, field: string) => Row;
  /**
   * Field encryption: a copy of a row of a target table with every encrypted value decrypted, in
   * memory only, for the manual-conflict field diff (compared by plaintext; the dead letter keeps the
   * ciphertexts). Lenient: a value that does not decrypt stays as it is (it then differs); a missing
   * or wrong key throws (fatal). Absent: rows are compared as they are.
   */
  openRow?: (table: string, row: Row, key: Row) => Row;
  /**
   * Field encryption with a `decrypt: true` target: a copy of a row read from the target with the
   * plaintext of its encrypted columns sealed again, before it goes into a conflict dead letter or the
   * last-synced row in Redis (which hold only ciphertexts). Absent: rows are kept as read.
   */
  sealRow?: (table: string, row: Row, key: Row) => Row;
  /** Field encryption: the target is `decrypt: true` (it stores the plaintext of what it is given). */
  decrypts?: boolean;
}

const DELETED = 'D';
/** Lease of a truncate's claim (renewed every quarter while it runs): how long waiters wait for a claimer that died. */
const TRUNCATE_LEASE_MS = 20_000;

/**
 * Whether a retriable write failure may be a matter of some keys (a row lock held elsewhere, a
 * deadlock, a serialization failure; or an error nobody classified), so that the keys are retried
 * one by one and the others go on. A target or network that is down fails every key alike: the
 * batch is retried whole (a 20,000-row batch split into 20,000 single-key writes would queue for
 * the connection pool long after the target is back).
 */
function failsByKey(err: unknown): boolean {
  return errorKind(err) === 'unknown' || (err instanceof SynclineError && err.contended === true);
}

/**
 * Redis failed while a write was being prepared (its intent): nothing of the batch is written, and
 * the batch as a whole comes again, as when reading the state fails; not a failure of its keys to
 * retry one by one. Fatal only so that the retry loops let it through; apply() throws the cause.
 */
class StateUnavailable extends SynclineError {
  constructor(cause: unknown) {
    super('fatal', 'STATE_UNAVAILABLE', errorMessage(cause), cause);
  }
}

/** Signature of a column set (8 hex digits of sha1 of the sorted names). */
export function columnSig(cols: string[]): string {
  // Asked for several times per record, almost always for a table's one or two column sets: the
  // last few are matched element by element (no string built), the others by their joined names.
  const recent = recentSigs.get(cols);
  if (recent !== undefined) return recent;
  const asGiven = cols.join(',');
  let sig = columnSigs.get(asGiven);
  if (sig === undefined) {
    sig = createHash('sha1').update([...cols].sort().join(',')).digest('hex').slice(0, 8);
    if (columnSigs.size >= 10_000) columnSigs.clear();
    columnSigs.set(asGiven, sig);
  }
  recentSigs.set(cols, sig);
  return sig;
}
const columnSigs = new Map<string, string>();
const recentSigs = new RecentLists<string>(8);

/** State hash of an upsert's values ('' when unknown: TOASTed values kept). */
export function stateHash(r: SinkRecord): string {
  if (r.op === 'delete') return DELETED;
  if (r.op !== 'upsert' || r.hash === null || r.values === null) return '';
  return columnSig(Object.keys(r.values)) + ':' + r.hash;
}

const pick = (row: Row, cols: string[]): Row => Object.fromEntries(cols.map((c) => [c, row[c] ?? null])) as Row;

/** A key while plan() goes through a batch. */
interface PlanKey {
  st: KeyState;
  /** The target row as the batch's earlier records of the key leave it (as read, at first). */
  target: Row | null;
  /** Whether the target row was read (strategies other than source-wins, replay verification). */
  read: boolean;
  /** `target` is what an earlier record of the batch leaves, not the row as read. */
  planned: boolean;
  /** The target was read and had no row at the key (upserts of it must not meet one: SinkRecord.absent). */
  absent: boolean;
  parkedBy: string | null;
  /** Records of the key not yet planned. */
  left: number;
  /** targetHashOver's last answer and the column set it was for. */
  hashSig: string | null;
  /** Mesh: the latest time of the key's deletes in the batch so far (an upsert meeting the missing row they leave weighs against it). */
  deletedAt?: number;
  hash: string;
}

/** Per-key state while a batch is planned. */
interface KeyState {
  /** Stored position (from Redis). */
  pos: string | null;
  /** What the target is known to hold ('' or null: unknown). */
  known: string | null;
  /** Parked behind this dead-letter id. */
  parked: string | null;
  /** Last-synced row (manual/custom tables). */
  last: Row | null;
}

interface Plan {
  write: Pending[];
  commits: Map<string, VersionCommit>;
  letters: DeadLetter[];
  /** Keys to park: ck → head conflict id. */
  park: Map<string, { table: string; key: string; id: string }>;
  /** Rows kept by a conflict, to re-publish: by table and what they were kept over. */
  republish: Map<string, { table: string; over: Decided; keys: Row[] }>;
  /** Two-way: deletes written after the commit as decisions the peer carries (see Sink.republishDelete), by table and commit time. */
  decidedDeletes: Map<string, { table: string; tsMs: number; rows: { key: Row; guard: Row }[]; records: SinkRecord[]; /** The rows as the batch left them before each delete (history's before images). */ before: Map<string, Row> }>;
  conflicts: { table: string; strategy: string; outcome: ConflictOutcome }[];
  unchanged: number;
  repaired: Set<Pending>;
  /** Column sets of the hashes committed (signature → names), registered before the commit. */
  sigs: Map<string, string[]>;
  /** Change history: decisions that wrote nothing (target won, parked). */
  history: HistoryEntry[];
  /** The target rows the plan was decided on (tables read), for the before images of history written after the commit. */
  rows?: TargetRows;
}

const emptyPlan = (): Plan => ({ write: [], commits: new Map(), letters: [], park: new Map(), republish: new Map(), decidedDeletes: new Map(), conflicts: [], unchanged: 0, repaired: new Set(), sigs: new Map(), history: [] });

/** What one apply() call did (the same counters as ApplyStats, for this call only). */
export type ApplyResult = Pick<ApplyStats, 'applied' | 'skippedStale' | 'skippedUnchanged' | 'conflicts' | 'parked' | 'parkedBehind' | 'deadLettered'> & {
  /**
   * The batch was applied only up to a truncate that waits for the other partitions of its topic
   * (ApplyOptions.hold, see truncate()): the consumer stage commits up to the message at `offset`,
   * pauses the partition and fetches from that message again once `until` resolves.
   */
  held?: { offset: string; until: () => Promise<void> };
};

export class Applier {
  readonly stats: ApplyStats = newApplyStats();
  observer?: ApplyObserver;
  private readonly log: Logger;
  private rebuilding?: Promise<void>;
  /** Last truncate position applied here per table (see truncate()). */
  private readonly truncatedHere = new Map<string, string>();
  /** Consumer partitions whose left-over write intents were settled by this process. */
  private readonly settled = new Set<string>();
  /**
   * Version state read by stale() for the changes it let through, taken by the next readState() of
   * those keys (one MGET per batch instead of two). Cleared when the state changes otherwise
   * (intents settled, a truncate or sweep applied).
   */
  private readonly prefetched = new Map<string, VersionEntry | null>();

  constructor(
    private readonly sink: Sink,
    private readonly state: VersionState,
    private readonly dlq: DeadLetters,
    private readonly o: ApplierOptions,
  ) {
    this.log = o.log;
  }

  /**
   * The change's row and the target row as latest-timestamp compares them: with an encrypted `field`
   * decrypted (ApplierOptions.openField), else as they are. A poison decrypt error is returned (the
   * change is parked with it); a missing or wrong key (fatal) is thrown and stops the stage.
   */
  private openTimes(r: SinkRecord, target: Row | null, field: string): { source: Row | null; target: Row | null } | SynclineError {
    const open = this.o.openField;
    if (!open) return { source: r.values, target };
    try {
      return { source: r.values && open(r.table, r.values, r.key, field), target: target && open(r.table, target, r.key, field) };
    } catch (err) {
      if (err instanceof SynclineError && err.kind === 'poison') return err;
      throw err;
    }
  }

  /** A row as it may be kept outside the target (ApplierOptions.sealRow): encrypted columns as ciphertexts. */
  private sealed<R extends Row | null | undefined>(table: string, row: R, key: Row): R {
    return row && this.o.sealRow ? (this.o.sealRow(table, row, key) as R) : row;
  }

  /** The row hash of a target table's row (see ApplierOptions.rowHash). */
  private hashOf(table: string, row: Row, key: Row): string {
    return this.o.rowHash ? this.o.rowHash(table, row, key) : rowHash(row);
  }

  private readsTarget(table: string): boolean {
    return this.o.conflictFor(table).strategy !== 'source-wins';
  }

  /** Strategies that park (manual, custom) keep the last-synced row and read the parking entries. */
  private parks(table: string): boolean {
    const s = this.o.conflictFor(table).strategy;
    return s === 'manual' || s === 'custom';
  }

  async apply(batch: Pending[], opts: ApplyOptions = {}): Promise<ApplyResult> {
    // A rollback (exclusively()) runs alone: batches wait for it to end.
    while (this.exclusive) await this.exclusive;
    this.active++;
    try {
      return await this.applyShared(batch, opts);
    } finally {
      if (--this.active === 0) this.idle?.();
    }
  }

  /** apply() calls in progress, and what a rollback waiting for them to end is woken by. */
  private active = 0;
  private idle?: () => void;
  /** A rollback in progress (see exclusively()). */
  private exclusive?: Promise<void>;
  /** Moves on with every rollback: stale() keeps what it read only if no rollback changed the state meanwhile. */
  private generation = 0;

  /**
   * Run `fn` with no batch being applied (a rollback, src/history/rollback.ts): waits for the
   * apply() calls in progress to end and holds new ones back until `fn` is done. One at a time.
   * A batch waiting here keeps its consumer's partition in flight (its offsets uncommitted); the
   * consumer stage heartbeats meanwhile.
   */
  async exclusively<T>(fn: () => Promise<T>): Promise<T> {
    while (this.exclusive) await this.exclusive;
    let done!: () => void;
    this.exclusive = new Promise<void>((r) => (done = r));
    this.generation++;
    try {
      while (this.active > 0) await new Promise<void>((r) => (this.idle = r));
      this.idle = undefined;
      this.prefetched.clear();
      return await fn();
    } finally {
      this.prefetched.clear();
      this.generation++;
      this.exclusive = undefined;
      done();
    }
  }

  private async applyShared(batch: Pending[], opts: ApplyOptions): Promise<ApplyResult> {
    const c = opts.consumer;
    if (c === undefined) return this.applyBatch(batch, opts);
    // One apply per consumer partition at a time: a consumer restarted while a batch of the
    // partition is still applying (its state commit waiting for Redis, say) fetches it again from
    // the committed offset; applied concurrently, cut differently and without the first one's state,
    // the second wrote a change the first had moved past (found by the short chaos run: a row back
    // after its delete). It waits, and then finds the first one's state: its changes are stale.
    const before = this.busy.get(c);
    let done!: () => void;
    const mine = new Promise<void>((r) => (done = r));
    this.busy.set(c, mine);
    try {
      if (before) await before;
      if (!this.settled.has(c)) {
        await this.settleIntents(c);
        this.settled.add(c);
      }
      return await this.applyBatch(batch, opts);
    } catch (err) {
      this.settled.delete(c); // the batch comes again: its intents may be left
      throw err instanceof StateUnavailable ? err.cause : err;
    } finally {
      done();
      if (this.busy.get(c) === mine) this.busy.delete(c);
    }
  }

  /** The apply in progress (or last queued) per consumer partition ('<topic>:<partition>'). */
  private readonly busy = new Map<string, Promise<void>>();

  /**
   * A process killed between a target commit and the version-state commit after it leaves write
   * intents (VersionState.intend): the state the target now holds, not yet recorded. Redelivered
   * without it, a change the target has moved past could be written again (an upsert of a row a
   * later change of the same batch deleted). Each entry is checked against the target: the same
   * content over the same columns, or no row for a delete, is committed as state at its position;
   * anything else (the write rolled back, the row changed since) is dropped and the redelivered
   * changes are decided as usual.
   */
  private async settleIntents(consumer: string): Promise<void> {
    const intents = await this.state.intents(consumer);
    if (intents.length === 0) return;
    const sigs = new Map<string, string[]>();
    const byTable = new Map<string, VersionCommit[]>();
    for (const i of intents) {
      for (const [sig, names] of Object.entries(i.sigs)) sigs.set(sig, names);
      for (const c of i.commits) {
        if (!c.keyRow) continue;
        let l = byTable.get(c.table);
        if (!l) byTable.set(c.table, (l = []));
        l.push(c);
      }
    }
    const commits: VersionCommit[] = [];
    const republish = new Map<string, { table: string; over: Decided; keys: Row[] }>();
    let dropped = 0;
    for (const [table, list] of byTable) {
      const rows = await this.sink.readRows(table, list.map((c) => c.keyRow!));
      for (const c of list) {
        const target = rows.get(c.key) ?? null;
        let holds = false;
        if (c.hash === DELETED) holds = target === null;
        else if (target !== null && c.hash.includes(':')) {
          const sig = c.hash.slice(0, c.hash.indexOf(':'));
          const names = sigs.get(sig) ?? (await this.state.columnsOf(sig));
          holds = names !== null && c.hash === columnSig(names) + ':' + this.hashOf(table, pick(target, names), c.keyRow!);
        }
        if (!holds) {
          dropped++;
          continue;
        }
        commits.push({ table, key: c.key, pos: c.pos, hash: c.hash, ...(c.row !== undefined ? { row: this.sealed(table, target, c.keyRow!) } : {}) });
        if (c.republish && target !== null) {
          const rk = c.republish + '\u0000' + table;
          let l = republish.get(rk);
          if (!l) republish.set(rk, (l = { table, over: c.republish, keys: [] }));
          l.keys.push(c.keyRow!);
        }
      }
    }
    for (const [sig, names] of sigs) await this.state.registerColumns(sig, names);
    this.prefetched.clear();
    // Rows a conflict kept, which the killed process may not have re-published yet (again is harmless: the peer holds them, unchanged).
    if (this.o.republish && this.sink.republish) for (const { table, keys, over } of republish.values()) await this.sink.republish(table, keys, over);
    await this.state.commitMany(commits);
    await this.state.clearIntents(consumer);
    this.stats.intentsSettled += commits.length;
    this.log.warn({ consumer, settled: commits.length, dropped }, 'sink.intents.settled: state of a write the previous process committed but did not record');
  }

  private async applyBatch(batch: Pending[], opts: ApplyOptions): Promise<ApplyResult> {
    const before = { ...this.stats };
    const fields = ['applied', 'skippedStale', 'skippedUnchanged', 'conflicts', 'parked', 'parkedBehind', 'deadLettered'] as const;
    const result = (): ApplyResult => Object.fromEntries(fields.map((f) => [f, this.stats[f] - before[f]])) as unknown as ApplyResult;
    for (const p of batch) if (p.record.op !== 'sweep') this.stats.received++;
    // Truncates split the batch: what comes before applies first, then the truncate, then the rest.
    let start = 0;
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i]!.record.op;
      if (op !== 'truncate' && op !== 'sweep') continue;
      await this.applyRecords(batch.slice(start, i), opts);
      this.prefetched.clear();
      if (op === 'truncate') {
        const until = await this.truncate(batch[i]!, opts);
        if (until) {
          // Held at the truncate: it and what follows come again (received then).
          for (const p of batch.slice(i)) if (p.record.op !== 'sweep') this.stats.received--;
          return { ...result(), held: { offset: batch[i]!.offset!, until } };
        }
      } else await this.sweep(batch[i]!, opts);
      start = i + 1;
    }
    await this.applyRecords(batch.slice(start), opts);
    return result();
  }

  /**
   * Which of these changes apply() (without verifyTarget) would skip as stale: a position not newer
   * than the key's stored one (truncate watermark included). The processor asks before it maps,
   * validates and hashes a batch and drops them; they are counted here as received and skipped.
   * Dropping them early changes nothing: positions only move forward, so a change stale now is
   * stale when the rest of its batch is applied, and apply() skips stale changes before parking,
   * conflict checks or writes. Replay (verifyTarget) does not use this.
   */
  async stale(probes: { table: string; key: string; position: string }[]): Promise<boolean[]> {
    if (probes.length === 0) return [];
    const generation = this.generation;
    const stored = await this.state.getMany(probes);
    // A rollback began or ended meanwhile: what was read may be older than the state it leaves.
    const keep = generation === this.generation && !this.exclusive;
    let n = 0;
    if (this.prefetched.size > 100_000) this.prefetched.clear(); // left by batches that never came to apply()
    const out = probes.map((p, i) => {
      const s = stored[i];
      const isStale = s !== null && s !== undefined && p.position <= s.pos;
      if (isStale) n++;
      else if (keep) this.prefetched.set(p.table + '\u0000' + p.key, s ?? null);
      return isStale;
    });
    this.stats.received += n;
    this.stats.skippedStale += n;
    return out;
  }

  /**
   * A truncate reaches every partition of the table's topic (split: every partition of the apply
   * topic), whose consumers may be in several processes, each also writing rows of the table.
   *
   * Across processes (ApplyOptions.hold: a consumer stage), the copies meet at a barrier in Redis
   * (VersionState.truncateBarrier): a partition that reaches its copy has applied every change
   * before it there, records that, and waits — its partition paused at the copy (ApplyResult.held),
   * so it applies nothing newer — until the truncate ran. The partition that arrives last claims it
   * (a lease, renewed while it runs) and runs it: no change older than the truncate is being written
   * anywhere (each partition applied its own, later ones find the watermark and are stale), none
   * newer is written yet. The waiters then find it done and skip their copies. A claimer that dies
   * lets its lease lapse; a waiter then fetches its copy again and claims it. A truncate that could
   * not be written (dead-lettered) is settled 'done' too, so the pipeline goes on.
   * Returns what the caller waits for when the truncate holds the partition.
   *
   * Within one process, and without hold (replay), a truncate also runs alone on its table
   * (TableGates): the next copy sees the watermark the first set, and a write of a change older than
   * the truncate that read its state before the truncate ran is dropped rather than written after
   * it (applyFresh).
   */
  private async truncate(p: Pending, opts: ApplyOptions): Promise<(() => Promise<void>) | undefined> {
    const r = p.record;
    if (!opts.hold || p.offset === undefined || !this.o.partitionsOf) {
      await this.truncateAlone(p);
      return undefined;
    }
    // Arriving takes no table gate: a write of this table in flight in another partition of this
    // process (one waiting for a row lock, say) must not keep this partition from arriving and
    // pausing; the partition that runs the truncate takes it (truncateAlone).
    const n = r.copy ? r.copy.of : (r.partitions ?? (await this.o.partitionsOf(r.origin.topic)));
    const from = String(r.copy ? r.copy.partition : r.origin.partition);
    const { verdict, arrived } = await this.state.truncateBarrier(r.table, r.position, from, n, this.token, TRUNCATE_LEASE_MS);
    if (verdict === 'done') {
      this.stats.skippedStale++;
      return undefined;
    }
    if (verdict === 'wait') {
      this.log.info({ table: r.table, position: r.position, partition: from, arrived, of: n }, 'truncate.wait: this partition reached the truncate; it waits until every partition did and the truncate ran');
      return () => this.truncateWait(r.table, r.position, n);
    }
    this.log.info({ table: r.table, position: r.position, partitions: n }, 'truncate.run: every partition reached the truncate; running it');
    const renew = setInterval(() => void this.state.truncateClaim(r.table, r.position, this.token, 'renew', TRUNCATE_LEASE_MS).catch(() => undefined), TRUNCATE_LEASE_MS / 4);
    try {
      await this.truncateAlone(p);
    } catch (err) {
      await this.state.truncateClaim(r.table, r.position, this.token, 'release').catch(() => undefined);
      throw err;
    } finally {
      clearInterval(renew);
    }
    await this.state.truncateClaim(r.table, r.position, this.token, 'done');
    return undefined;
  }

  /** Run a truncate alone on its table in this process (TableGates: writes in flight finish first, new ones wait). */
  private async truncateAlone(p: Pending): Promise<void> {
    const release = await this.gates.truncate(p.record.table);
    try {
      await this.truncateOnce(p);
    } finally {
      release();
    }
  }

  /**
   * Resolves once the truncate at `pos` ran (or can be claimed: its claimer died), or after 30 s at
   * most (the copy is fetched and counted again). The partitions of this process waiting for the
   * same truncate share one poll of Redis.
   */
  private truncateWait(table: string, pos: string, n: number): Promise<void> {
    const k = `${table}\u0000${pos}`;
    let w = this.truncateWaits.get(k);
    if (!w) {
      w = this.pollTruncate(table, pos, n).finally(() => this.truncateWaits.delete(k));
      this.truncateWaits.set(k, w);
    }
    return w;
  }

  private readonly truncateWaits = new Map<string, Promise<void>>();

  private async pollTruncate(table: string, pos: string, n: number): Promise<void> {
    const end = Date.now() + 30_000;
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      const { verdict } = await this.state.truncateBarrier(table, pos, '', n, this.token, TRUNCATE_LEASE_MS, false).catch(() => ({ verdict: 'claimable' as const }));
      if (verdict !== 'wait') return;
    }
  }

  /** This applier's claims of truncates (VersionState.truncateBarrier). */
  private readonly token = randomUUID();

  private readonly gates = new TableGates();

  private async truncateOnce(p: Pending): Promise<void> {
    const r = p.record;
    // A truncate reaches every partition of the table's topic (split: of the apply topic too; and
    // may be redelivered or replayed): only the first copy runs; a later one would remove rows
    // applied after it from other partitions.
    // The watermark in Redis, or the one this applier set (a dry run writes none to Redis).
    const stored = await this.state.truncatedAt(r.table);
    const here = this.truncatedHere.get(r.table);
    const at = stored !== null && (here === undefined || stored > here) ? stored : here;
    if (at !== undefined && r.position <= at) {
      this.stats.skippedStale++;
      return;
    }
    if (this.o.history?.keeps(r.table)) r.history = { decision: 'applied' };
    const failed = await this.write([p], new Map(), async (recs) => ({ ...emptyPlan(), write: recs }), () => undefined);
    if (failed.length > 0) return;
    await this.historyOf([r]);
    await this.state.truncateTable(r.table, r.position);
    this.truncatedHere.set(r.table, r.position);
    this.stats.applied++;
    this.observer?.applied(r);
  }

  /**
   * End of a table's snapshot. Once every partition of the table's topic delivered it (split: by
   * way of every partition of the apply topic), every snapshot row is applied, and keys whose stored
   * position is older than the snapshot were not in it: their source rows were deleted while no
   * slot recorded it (a dropped slot, an interrupted snapshot done again). They are deleted on the
   * target through the normal path. Keys syncline has no state for are left alone.
   */
  private async sweep(p: Pending, opts: ApplyOptions): Promise<void> {
    const r = p.record;
    // A control record, not a change: counted apart (the deletes it leads to count as applied).
    this.stats.control++;
    // autoCreate: an empty source table has no row to create its target table from; the marker does.
    await this.sink.ensureTable?.(r);
    if (!this.o.partitionsOf || !r.keyColumns || r.keyColumns.length === 0) return;
    // Every partition of the change topic delivers the marker (as many as capture wrote it to); in a
    // split deployment the processor passes each on to every partition of the apply topic (r.copy),
    // and all of those copies count.
    const n = (r.partitions ?? (await this.o.partitionsOf(r.origin.topic))) * (r.copy?.of ?? 1);
    const from = r.copy ? `${r.origin.partition}/${r.copy.partition}` : String(r.origin.partition);
    if ((await this.state.markSnapshotEnd(r.table, r.position, from)) < n) return;
    const cutoff = r.position.slice(0, r.position.indexOf(':') + 1) + '00000000'; // the snapshot rows' own position
    const keys = await this.state.keysBefore(r.table, cutoff);
    if (keys.length === 0) {
      this.log.info({ table: r.table, rows: 0 }, 'snapshot.sweep: every partition delivered the end of the snapshot; no target row to delete');
      return;
    }
    this.log.warn({ table: r.table, rows: keys.length }, 'snapshot.sweep: deleting target rows the re-snapshot did not find at the source');
    const cols = r.keyColumns;
    for (let i = 0; i < keys.length; i += 1000) {
      const deletes: Pending[] = keys.slice(i, i + 1000).map((ks) => {
        const values = JSON.parse(ks) as (string | number | boolean | null)[];
        const key = Object.fromEntries(cols.map((c, j) => [c, values[j] ?? null]));
        return { record: { table: r.table, op: 'delete', key, values: null, keep: [], position: r.position, hash: null, sourceTsMs: r.sourceTsMs, origin: r.origin }, raw: { key: null, value: p.raw.value } };
      });
      this.stats.swept += deletes.length;
      await this.applyRecords(deletes, opts);
    }
  }

  /** Read version state (and parking entries, last-synced rows), rebuilding the parking index after a Redis flush. */
  /** `cks[i]`: the 'table\0keyString' of `list[i]` (the key of `prefetched`). */
  private async readState(list: { table: string; key: string }[], cks: string[]): Promise<KeyState[]> {
    // The processor's staleness check read these keys a moment ago (stale()): use that read.
    const pre = this.prefetched;
    if (pre.size > 0) {
      let all = true;
      const got = list.map((it, i) => {
        const ck = cks[i]!;
        const s = pre.get(ck);
        if (s === undefined || this.parks(it.table)) all = false;
        pre.delete(ck);
        return s;
      });
      if (all) return got.map((s) => ({ pos: s?.pos ?? null, known: s ? s.hash : null, parked: null, last: null }));
    }
    let built = true;
    const out = { parked: [] as (string | null)[], rows: [] as (Row | null)[] };
    const stored = await this.state.getMany(list, { parked: (t) => this.parks(t), rows: (t) => this.parks(t), onIndex: (b) => (built = b), out });
    if (!built && this.o.parkedKeys) {
      await (this.rebuilding ??= this.rebuildParking().finally(() => (this.rebuilding = undefined)));
      return this.readState(list, cks);
    }
    return list.map((_, i) => {
      const s = stored[i];
      return { pos: s?.pos ?? null, known: s ? s.hash : null, parked: out.parked[i] ?? null, last: out.rows[i] ?? null };
    });
  }

  private async rebuildParking(): Promise<void> {
    const keys = await this.o.parkedKeys!();
    await this.state.rebuildParking(keys);
    this.log.warn({ parkedKeys: keys.length }, 'parking.rebuilt: parking index rebuilt from the dead-letter topic (Redis had lost it)');
  }

  private async applyRecords(batch: Pending[], opts: ApplyOptions): Promise<void> {
    const size = this.o.batchSize;
    if (size === undefined || batch.length <= size) return this.applyPart(batch, opts);
    // In order: a key in two parts reads the state the first part committed (readState finds no
    // prefetched entry for it the second time and reads Redis).
    for (let i = 0; i < batch.length; i += size) await this.applyPart(batch.slice(i, i + size), opts);
  }

  private async applyPart(batch: Pending[], opts: ApplyOptions): Promise<void> {
    if (batch.length === 0) return;
    const cks = batch.map(recordKey);
    const uniq = new Map<string, { table: string; key: string }>();
    batch.forEach((p, i) => uniq.set(cks[i]!, { table: p.record.table, key: keyString(p.record.key) }));
    const list = [...uniq.entries()];
    const states = await this.readState(list.map(([, id]) => id), list.map(([ck]) => ck));
    const initial = new Map<string, KeyState>();
    list.forEach(([ck], i) => initial.set(ck, states[i]!));

    // 1. Stale records (not newer than the stored position) are no-ops, except in replay, where the
    //    record at exactly the stored position is checked against the target (verify).
    //    A truncate this process ran since the state was read counts too (see truncate()).
    const release = await this.gates.write(new Set(batch.map((p) => p.record.table)));
    try {
      await this.applyFresh(batch, cks, initial, opts);
    } finally {
      release();
    }
  }

  private async applyFresh(batch: Pending[], cks: string[], initial: Map<string, KeyState>, opts: ApplyOptions): Promise<void> {
    const candidates: Pending[] = [];
    const verify = new Set<Pending>();
    batch.forEach((p, i) => {
      const st = initial.get(cks[i]!)!;
      const truncated = this.truncatedHere.get(p.record.table);
      if (truncated !== undefined && p.record.position <= truncated) {
        this.stats.skippedStale++;
        return;
      }
      if (st.pos !== null && p.record.position <= st.pos) {
        if (opts.verifyTarget && p.record.position === st.pos && st.parked === null) {
          verify.add(p);
          candidates.push(p);
          return;
        }
        this.stats.skippedStale++;
        return;
      }
      candidates.push(p);
    });
    if (candidates.length === 0) return;

    // Column sets of the stored hashes, to hash target rows over the same columns.
    const cols = new Map<string, string[] | null>();
    for (const st of initial.values()) {
      const sig = st.known?.includes(':') ? st.known.slice(0, st.known.indexOf(':')) : null;
      if (sig && !cols.has(sig)) cols.set(sig, await this.state.columnsOf(sig));
    }

    // 2. Plan (per key, in order) and write; conflicts read the target rows in the write's transaction.
    const plans: Plan[] = [];
    const planner = async (records: Pending[], rows: TargetRows) => {
      const pl = await this.plan(records, rows, initial, cols, verify, opts);
      // Write-ahead of the state this write will commit (see settleIntents); a write retried key by key has one per key.
      if (opts.consumer && pl.commits.size > 0) {
        await this.state.intend(opts.consumer, records[0]!.record.position, { commits: [...pl.commits.values()], sigs: Object.fromEntries(pl.sigs) }).catch((err: unknown) => {
          throw new StateUnavailable(err);
        });
      }
      return pl;
    };
    const failed = await this.write(candidates, this.readsOf(candidates, verify), planner, (pl) => plans.push(pl));
    const failedKeys = new Set(failed.map(recordKey));

    // 3. Outcomes of the plans that were written.
    const letters: DeadLetter[] = [];
    const commits: VersionCommit[] = [];
    for (const pl of plans) {
      this.stats.skippedUnchanged += pl.unchanged;
      for (const c of pl.conflicts) {
        this.stats.conflicts++;
        this.observer?.conflict(c.table, c.strategy, c.outcome);
      }
      for (const p of pl.write) {
        if (failedKeys.size > 0 && failedKeys.has(recordKey(p))) continue;
        if (pl.repaired.has(p)) this.stats.repaired++;
        this.stats.applied++;
        this.observer?.applied(p.record);
      }
      for (const d of pl.decidedDeletes.values()) {
        this.stats.republished += d.rows.length;
        this.stats.applied += d.records.length;
        for (const r of d.records) this.observer?.applied(r);
      }
      for (const r of pl.republish.values()) this.stats.republished += r.keys.length;
      for (const [ck, c] of pl.commits) if (!failedKeys.has(ck)) commits.push(c);
      letters.push(...pl.letters);
    }
    for (const l of letters) {
      if (l.reason === 'parked') this.stats.parkedBehind++;
      else this.stats.parked++;
    }
    this.stats.deadLettered += letters.length;
    // The target committed. What remains is retried here, in place, rather than by a redelivery of
    // the batch: what makes it fail is mostly Redis restarting, and Redis may come back without its
    // state; a redelivered batch would then find no state for its keys and could write changes the
    // target has already moved past (a row back after its delete). Dead letters first, then the
    // parking entries: a crash in between re-parks on redelivery with the same ids.
    const history = this.historyAfter(plans, failedKeys);
    await this.afterCommit(async () => {
      // Change history not written in the target's transaction: before the state says the batch is done.
      if (history.length > 0) await this.o.history!.record(history);
      if (letters.length > 0) await this.dlq.send(letters);
      for (const pl of plans) for (const k of pl.park.values()) await this.state.park(k.table, k.key, k.id);
      for (const pl of plans) for (const [sig, names] of pl.sigs) await this.state.registerColumns(sig, names);
      // Two-way: what the peer must carry to the other side, before the state says it is done (a
      // crash in between decides the batch again on redelivery: a decided delete not yet made
      // finds the row still there; one made finds it gone, unchanged).
      if (this.o.republish && this.sink.republish) {
        for (const pl of plans) for (const { table, keys, over } of pl.republish.values()) await this.sink.republish(table, keys, over);
      }
      if (this.sink.republishDelete) {
        // The change history gets the deletes made (a row changed after the decision stayed and was
        // re-published), in one write for the batch.
        const made: HistoryEntry[] = [];
        for (const pl of plans) {
          for (const d of pl.decidedDeletes.values()) {
            const kept = new Set((await this.sink.republishDelete(d.table, d.rows, d.tsMs)).map(keyString));
            const deleted = d.records.filter((r) => r.history !== undefined && !kept.has(keyString(r.key)));
            if (deleted.length > 0) made.push(...entriesOf(this.o.pipeline, deleted, new Map([[d.table, d.before]])));
          }
        }
        if (made.length > 0 && this.o.history) await this.o.history.record(made);
      }
      await this.state.commitMany(commits);
      if (opts.consumer) await this.state.clearIntents(opts.consumer);
    });
  }

  /**
   * History entries to store after the commit: the decisions that wrote nothing, and, when the
   * target does not write history in its own transaction, the changes written (before images from
   * the rows read, where they were). Counts those the target wrote itself.
   */
  private historyAfter(plans: Plan[], failedKeys: Set<string>): HistoryEntry[] {
    const h = this.o.history;
    if (!h) return [];
    const out: HistoryEntry[] = [];
    for (const pl of plans) {
      out.push(...pl.history);
      const written = pl.write.filter((p) => p.record.history !== undefined && !(failedKeys.size > 0 && failedKeys.has(recordKey(p)))).map((p) => p.record);
      if (h.inTx) h.counted(written.length);
      else out.push(...entriesOf(this.o.pipeline, written, pl.rows));
    }
    return out;
  }

  /** Idempotent steps after a target commit, retried (retriable errors) with the pipeline's retry settings. */
  private async afterCommit(steps: () => Promise<void>): Promise<void> {
    try {
      await withRetry(this.retry, steps, {
        onRetry: (err, attempt, delayMs) => {
          this.stats.retries++;
          this.observer?.retry(err);
          this.log.warn({ err: errorMessage(err), code: errorCode(err), attempt, delayMs }, 'sink.after_commit.retry');
        },
      });
    } catch (err) {
      throw err instanceof RetryExhausted ? err.last : err;
    }
  }

  /** Target rows to read: keys of tables whose strategy reads the target, and records to verify. */
  private readsOf(records: Pending[], verify: Set<Pending>): Map<string, Row[]> {
    const reads = new Map<string, Map<string, Row>>();
    for (const p of records) {
      const r = p.record;
      if (!verify.has(p) && !this.readsTarget(r.table)) continue;
      let m = reads.get(r.table);
      if (!m) reads.set(r.table, (m = new Map()));
      m.set(keyString(r.key), r.key);
    }
    return new Map([...reads].map(([t, m]) => [t, [...m.values()]]));
  }

  /**
   * Decide, key by key in batch order, what each record does given the target rows read (none for
   * source-wins tables). Pure apart from custom resolvers: it may run again when the write is retried.
   */
  private async plan(records: Pending[], rows: TargetRows, initial: Map<string, KeyState>, cols: Map<string, string[] | null>, verify: Set<Pending>, opts: ApplyOptions): Promise<Plan> {
    const plan = emptyPlan();
    plan.rows = rows;
    // Per key: its state as the batch goes, the target row as it will be, and how many of the
    // batch's records are still to come (the last one need not carry its effect forward).
    const keys = new Map<string, PlanKey>();
    const cks: string[] = [];
    for (const p of records) {
      const r = p.record;
      const ks = keyString(r.key);
      const ck = recordKey(p);
      cks.push(ck);
      const k = keys.get(ck);
      if (k) {
        k.left++;
        continue;
      }
      const st = { ...initial.get(ck)! };
      const tableRows = rows.get(r.table);
      const released = opts.release?.has(ck) ?? false;
      keys.set(ck, { st, target: tableRows?.get(ks) ?? null, read: tableRows !== undefined, planned: false, absent: tableRows !== undefined && !tableRows.has(ks), parkedBy: released ? null : st.parked, left: 1, hashSig: null, hash: '' });
    }
    for (let i = 0; i < records.length; i++) {
      const p = records[i]!;
      const r = p.record;
      const ck = cks[i]!;
      const ks = keyString(r.key);
      const k = keys.get(ck)!;
      const last = --k.left === 0;
      const deleted = k.deletedAt;
      if (r.op === 'delete' && this.o.relayDecided) k.deletedAt = Math.max(deleted ?? r.sourceTsMs, r.sourceTsMs);
      const cfg = this.o.conflictFor(r.table);
      const recHash = stateHash(r);
      const commit = (hash: string, plainRow: Row | null | undefined, columns?: string[] | null, republish?: Decided) => {
        const row = this.parks(r.table) ? this.sealed(r.table, plainRow, r.key) : plainRow;
        const sig = hash.includes(':') ? hash.slice(0, hash.indexOf(':')) : null;
        const names = columns ?? (row ? Object.keys(row) : null);
        if (sig && names && !cols.has(sig)) plan.sigs.set(sig, names);
        // A row re-published by an earlier record of the key in this batch is re-published as it ends.
        const rp = republish ?? plan.commits.get(ck)?.republish;
        plan.commits.set(ck, { table: r.table, key: ks, pos: r.position, hash, row: this.parks(r.table) ? row : undefined, keyRow: r.key, ...(rp ? { republish: rp } : {}) });
        if (!last) k.st = { ...k.st, pos: r.position, known: hash, last: row ?? null };
      };
      /** Into the batch's write; an upsert at a key the read found without a row must not meet one (SinkRecord.absent). */
      const toWrite = (q: Pending, note: HistoryNote = { decision: 'applied' }) => {
        if (this.o.history?.keeps(r.table)) q.record.history = note;
        if (q.record.op === 'upsert') {
          if (k.absent) q.record.absent = true;
          else if (q.record.absent) q.record.absent = undefined; // not `delete`: on a transformed record (a spread copy) it costs ~1 µs a change
        }
        plan.write.push(q);
      };
      /** The target row after this record, for the key's next records in the batch. */
      const setTarget = (row: Row | null) => {
        if (last) return;
        k.target = row;
        k.planned = true;
        k.hashSig = null;
      };
      // The target row's hash over some columns (several checks ask for the same one).
      const targetHashOver = (columns: string[] | null | undefined): string | null => {
        if (!k.read) return null;
        if (k.target === null) return DELETED;
        if (!columns) return null;
        const sig = columnSig(columns);
        if (k.hashSig !== sig) {
          k.hash = sig + ':' + this.hashOf(r.table, pick(k.target, columns), r.key);
          k.hashSig = sig;
        }
        return k.hash;
      };
      const recCols = r.values ? (r.keep.length === 0 ? Object.keys(r.values) : [...Object.keys(r.values), ...r.keep]) : null;

      // Parked key: this change waits behind the conflict.
      if (k.parkedBy !== null) {
        plan.letters.push(this.letter(p, 'parked', poison('CONFLICT_PARKED', `parked behind conflict ${k.parkedBy} of the same key (changes of a key are applied in order)`), { parkedBehind: k.parkedBy }, opts.idSalt));
        continue;
      }

      // Replay verification: the record the state says the target holds; write it again if it does not.
      if (verify.has(p)) {
        // Compare what the record carries (TOASTed values it does not carry are the target's own).
        const carried = r.values ? Object.keys(r.values) : null;
        const want = r.op === 'delete' ? DELETED : columnSig(carried!) + ':' + (r.keep.length === 0 && r.hash ? r.hash : this.hashOf(r.table, r.values!, r.key));
        const seen = r.op === 'delete' ? (k.target === null ? DELETED : 'present') : targetHashOver(carried);
        if (seen === want) {
          plan.unchanged++;
          continue;
        }
        toWrite(p);
        plan.repaired.add(p);
        setTarget(r.op === 'delete' ? null : { ...(k.target ?? {}), ...r.values });
        continue;
      }

      // Unchanged: the target holds exactly this content. Where the target row was read, what it
      // holds decides, not what syncline last wrote into it: the row may have been changed or
      // re-created there since (a local edit, the two-way peer). Where it was not read (source-wins),
      // the state says what the target is known to hold, except for a delete: a row re-created on the
      // target since syncline deleted it is not known, so a delete is always written (it costs a
      // statement that finds nothing; skipping it left re-created rows on one side only).
      // '' (TOASTed values kept) and hashes without a column-set signature say nothing usable.
      const known = k.st.known && (k.st.known === DELETED || k.st.known.includes(':')) ? k.st.known : null;
      const seenRec = r.op === 'upsert' ? targetHashOver(recCols) : k.read ? (k.target === null ? DELETED : null) : null;
      if (recHash !== '' && (k.read ? seenRec === recHash : r.op === 'upsert' && known === recHash)) {
        plan.unchanged++;
        commit(recHash, r.op === 'delete' ? null : r.values);
        continue;
      }

      // Conflict: the target row differs from what we last wrote (or, latest-timestamp, may be newer).
      let conflict = false;
      if (k.read && known !== null) {
        const sig = known === DELETED ? null : known.slice(0, known.indexOf(':'));
        const seen = known === DELETED ? (k.target === null ? DELETED : 'present') : targetHashOver(sig ? (cols.get(sig) ?? recCols) : recCols);
        conflict = seen !== null && seen !== known;
      }
      // Two-way: an update of a row the target lacks means the row was deleted there on its own,
      // whatever the state says (it may be lost, or the key may never have synced this way). Only the
      // peer pipeline sees that delete and its time, so latest-timestamp leaves the target as it is
      // and lets the peer decide: if the row wins over that delete there, the peer re-publishes it
      // as decided over a delete, and such a row is written here even over the missing one. A row
      // the peer kept over an update from here is not: missing now, it was deleted here after that
      // decision, and the peer decides that delete when it reaches it (written back, the row would
      // outlive a later delete on this side only).
      // (A row this batch deleted itself, earlier, is not one: the update, later at the source, is written.)
      // In a mesh (relayDecided) a missing row may also be one a third node inserted that has not
      // reached this target yet: the update is written like any change, and a delete made here is
      // weighed where it arrives, its decision relayed back to here.
      const deletedThere = this.o.republish === true && !this.o.relayDecided && k.read && !k.planned && k.target === null && r.op === 'upsert' && r.update === true;
      if (deletedThere) conflict = r.decided !== 'delete';
      const deferred = conflict && deletedThere && cfg.strategy === 'latest-timestamp';
      // latest-timestamp compares every change with the target row, conflict or not: a change older
      // than the target's row never takes it back (a redelivery after Redis lost the state, say).
      // An encrypted timestamp is compared as its plaintext (a transient copy); a target value that
      // does not decrypt (a ciphertext of another row) cannot be compared: the change is parked.
      const times = cfg.strategy === 'latest-timestamp' && k.read ? this.openTimes(r, k.target, cfg.field) : undefined;
      if (times instanceof SynclineError) conflict = true;
      // Mesh: a row meeting the missing row that a delete earlier in this batch left is weighed
      // against that delete like against a row: not later than it, it loses (it was resurrecting a
      // key the delete had removed; the storm ended with two nodes holding an older row written in
      // the batch right after a later delete, the third the newest one).
      const opened = times instanceof SynclineError ? undefined : times;
      const lostToDelete = deleted !== undefined && r.op === 'upsert' && k.target === null && opened?.source != null && !olderThanTarget({ op: 'delete', source: null, target: opened.source, sourceTsMs: deleted }, cfg.field, true);
      const older = lostToDelete || (!conflict && opened !== undefined && olderThanTarget({ op: r.op as 'upsert', source: opened.source, target: opened.target, sourceTsMs: r.sourceTsMs }, cfg.field, this.o.relayDecided === true));
      // Two-way: a delete that removes a row the target holds is made after the commit as a decision
      // the peer carries back with the delete's own commit time (Sink.republishDelete): the row may
      // be this side's own (an insert the other side has not applied yet, or has applied after its
      // delete, which no one else can tell). The last change of the key in the batch only (a later
      // one writes over the row anyway), never one that is itself a peer's decision (no ping-pong).
      // In a mesh every delete that removes a row is relayed, the key's later records in the batch
      // notwithstanding: another node may write an older row here, or carry one here, after the delete
      // removed it everywhere else, and only this delete, made again as a decision and carried after
      // that row, removes it there (a plain delete followed in the batch by a second delete of the
      // key, which found no row, relayed nothing: the three-database storm ended with two nodes
      // holding a row the third had deleted). A later upsert of the key in the batch is written
      // before the decided delete is made (after the commit): if later than the delete it stays (the
      // guard) and is re-published over it; if not, it lost to the delete already (deletedAt).
      const decideDelete = (note: HistoryNote = { decision: 'applied' }) => {
        if (r.op !== 'delete' || (!last && !this.o.relayDecided) || !k.read || k.target === null || (r.decided !== undefined && !this.o.relayDecided) || !this.o.republish || !this.sink.republishDelete) return false;
        // In the change history once made (after the commit: Applier.apply).
        if (this.o.history?.keeps(r.table)) r.history = note;
        const field = cfg.strategy === 'latest-timestamp' ? cfg.field : null;
        // The guard holds the field as the target stores it: a row planned in this batch carries the
        // change's ciphertext, which a decrypting target stores as its plaintext (a row read is as stored).
        const stored = field !== null && k.planned && this.o.decrypts && this.o.openField ? this.o.openField(r.table, k.target, r.key, field) : k.target;
        const guard: Row = field !== null && field in stored ? { [field]: stored[field] ?? null } : {};
        const dk = r.table + '\u0000' + r.sourceTsMs;
        let d = plan.decidedDeletes.get(dk);
        if (!d) plan.decidedDeletes.set(dk, (d = { table: r.table, tsMs: r.sourceTsMs, rows: [], records: [], before: new Map() }));
        d.rows.push({ key: r.key, guard });
        d.records.push(r);
        d.before.set(keyString(r.key), k.target); // an earlier change of the batch may have written it
        commit(DELETED, null);
        setTarget(null); // the key's later records (deletes) find no row: unchanged, nothing written before the decided delete
        return true;
      };
      if (!conflict && !older) {
        if (decideDelete()) continue;
        toWrite(p);
        commit(recHash, r.op === 'delete' ? null : r.values);
        if (!last) setTarget(r.op === 'delete' ? null : { ...(k.target ?? {}), ...r.values });
        continue;
      }

      // Two-way: a delete the peer decided (r.decided 'delete') is this side's own delete coming home
      // (the peer removed its row with it). A row here that differs from what this pipeline last wrote
      // was written on this side after that delete (the delete had removed the row): it is later and
      // stays, re-published over the delete so the peer has it too. Its time cannot say so: a MariaDB
      // delete is timed at the end of its second, later than a row re-inserted in the same second.
      const homecoming = conflict && this.o.republish === true && !this.o.relayDecided && r.op === 'delete' && r.decided === 'delete' && k.target !== null && cfg.strategy === 'latest-timestamp';
      const c: Conflict = {
        pipeline: this.o.pipeline, table: r.table, op: r.op as 'upsert' | 'delete', key: r.key, source: r.values, target: k.target,
        lastSynced: k.st.last, position: r.position, sourceTsMs: r.sourceTsMs,
      };
      const choice: Choice = older || deferred || homecoming ? { kind: 'target' } : times instanceof SynclineError ? { kind: 'manual', error: times } : await this.o.resolverFor(r.table).resolve(times && this.o.openField ? { ...c, source: times.source, target: times.target } : c);
      switch (choice.kind) {
        case 'source':
          plan.conflicts.push({ table: r.table, strategy: cfg.strategy, outcome: 'source_won' });
          if (decideDelete({ decision: 'conflict_source_won', strategy: cfg.strategy })) break;
          toWrite(p, { decision: 'conflict_source_won', strategy: cfg.strategy });
          commit(recHash, r.op === 'delete' ? null : r.values);
          setTarget(r.op === 'delete' ? null : { ...(k.target ?? {}), ...r.values });
          break;
        case 'target': {
          plan.conflicts.push({ table: r.table, strategy: cfg.strategy, outcome: deferred ? 'deferred_to_peer' : 'target_won' });
          if (this.o.history?.keeps(r.table)) plan.history.push(unchangedEntry(this.o.pipeline, r, k.target, k.read, { decision: 'conflict_target_won', strategy: cfg.strategy }));
          // The target keeps its row, which becomes the baseline for the next change of the key.
          const baseCols = recCols ?? (known && known !== DELETED ? (cols.get(known.slice(0, known.indexOf(':'))) ?? null) : null);
          const baseline = k.target === null ? DELETED : (targetHashOver(baseCols) ?? '');
          const over = keptOver(r.op);
          commit(baseline, k.target, baseCols, this.o.republish && k.target !== null ? over : undefined);
          if (k.target !== null) {
            const rk = over + '\u0000' + r.table;
            let l = plan.republish.get(rk);
            if (!l) plan.republish.set(rk, (l = { table: r.table, over, keys: [] }));
            l.keys.push(r.key);
          }
          if (deferred) this.log.info({ table: r.table, key: ks, position: r.position, strategy: cfg.strategy }, 'conflict.deferred_to_peer: the row was deleted on the target; the peer pipeline, which carries that delete, decides');
          else this.log.info({ table: r.table, key: ks, position: r.position, strategy: cfg.strategy, op: r.op }, 'conflict.resolved.target');
          break;
        }
        case 'merged': {
          plan.conflicts.push({ table: r.table, strategy: cfg.strategy, outcome: 'merged' });
          const merged: SinkRecord = { ...r, op: 'upsert', values: choice.row, keep: [], hash: this.hashOf(r.table, choice.row, r.key) };
          const mp: Pending = { record: merged, raw: p.raw };
          toWrite(mp, { decision: 'conflict_merged', strategy: cfg.strategy });
          commit(stateHash(merged), choice.row);
          setTarget({ ...(k.target ?? {}), ...choice.row });
          break;
        }
        case 'manual': {
          plan.conflicts.push({ table: r.table, strategy: cfg.strategy, outcome: 'parked' });
          if (this.o.history?.keeps(r.table)) plan.history.push(unchangedEntry(this.o.pipeline, r, k.target, k.read, { decision: 'conflict_parked', strategy: cfg.strategy }));
          const err = choice.error ?? poison('CONFLICT_MANUAL', `conflict on ${r.table} key ${ks}: the target row was modified since syncline last wrote it (strategy ${cfg.strategy}); settle it with syncline dlq resolve`);
          // Only ciphertexts of encrypted columns in the dead letter: a decrypting target's row is sealed; the diff compares plaintexts.
          const shown = { source: c.source, target: this.sealed(r.table, c.target, r.key), lastSynced: c.lastSynced };
          const details = stringifyTagged({ strategy: cfg.strategy, op: r.op, key: r.key, ...shown, diff: conflictDiff(shown, this.o.openRow && ((row: Row) => this.o.openRow!(r.table, row, r.key))) });
          const letter = this.letter(p, 'conflict', err, { conflict: details }, opts.idSalt);
          plan.letters.push(letter);
          plan.park.set(ck, { table: r.table, key: ks, id: letter.id! });
          k.parkedBy = letter.id!;
          break;
        }
      }
    }
    return plan;
  }

  /** History of records written outside a plan (truncate, an operator's settlement): stored here unless the target wrote it. */
  private async historyOf(records: SinkRecord[]): Promise<void> {
    const h = this.o.history;
    const noted = records.filter((r) => r.history !== undefined);
    if (!h || noted.length === 0) return;
    if (h.inTx) h.counted(noted.length);
    else await this.afterCommit(() => h.record(entriesOf(this.o.pipeline, noted, undefined)));
  }

  private letter(p: Pending, reason: 'conflict' | 'parked', error: SynclineError, extra: Partial<DeadLetter>, salt?: string): DeadLetter {
    const r = p.record;
    const l: DeadLetter = { kind: 'conflict', reason, error, key: p.raw.key, value: p.raw.value, attempts: 1, table: r.table, position: r.position, origin: r.origin, targetKey: keyString(r.key), row: r.values, ...extra };
    l.id = deadLetterId(this.o.pipeline, salt ? { ...l, position: `${r.position}|${salt}` } : l);
    return l;
  }

  /**
   * Settle one change as an operator chose (src/dlq/service.ts): 'source' writes it as it is,
   * 'merged' writes `merged` instead, 'target' keeps the target row; no conflict check (the
   * operator decided). The key's state moves to the change's position. Returns false when the write
   * failed and was dead-lettered.
   */
  async settle(p: Pending, choice: 'source' | 'target' | 'merged', merged?: Row, by?: string): Promise<boolean> {
    const r = p.record;
    const ks = keyString(r.key);
    const keeps = this.parks(r.table);
    if (choice === 'target') {
      const target = (await this.sink.readRows(r.table, [r.key])).get(ks) ?? null;
      if (this.o.history?.keeps(r.table)) await this.o.history.record([unchangedEntry(this.o.pipeline, r, target, true, { decision: 'resolved_target', ...(by ? { by } : {}) })]);
      const cols = r.values ? Object.keys(r.values) : target ? Object.keys(target) : [];
      const hash = target === null ? DELETED : columnSig(cols) + ':' + this.hashOf(r.table, pick(target, cols), r.key);
      if (target !== null && cols.length > 0) await this.state.registerColumns(columnSig(cols), cols);
      await this.state.commitMany([{ table: r.table, key: ks, pos: r.position, hash, row: keeps ? this.sealed(r.table, target, r.key) : undefined }]);
      if (this.o.republish && this.sink.republish && target !== null) await this.sink.republish(r.table, [r.key], keptOver(r.op));
      return true;
    }
    // A merged row's values of encrypted columns (an operator's plaintext) are sealed like captured ones.
    const rec: SinkRecord = choice === 'merged' ? { ...r, op: 'upsert', values: this.sealed(r.table, { ...merged!, ...r.key }, r.key), keep: [], hash: null } : r;
    if (choice === 'merged') rec.hash = this.hashOf(r.table, rec.values!, r.key);
    if (this.o.history?.keeps(r.table)) rec.history = { decision: choice === 'merged' ? 'resolved_merged' : 'resolved_source', ...(by ? { by } : {}) };
    const mp: Pending = { record: rec, raw: p.raw };
    const failed = await this.write([mp], new Map(), async (recs) => ({ ...emptyPlan(), write: recs }), () => undefined);
    if (failed.length > 0) return false;
    await this.historyOf([rec]);
    this.stats.applied++;
    this.observer?.applied(rec);
    const hash = stateHash(rec);
    if (hash.includes(':')) await this.state.registerColumns(hash.slice(0, hash.indexOf(':')), Object.keys(rec.values!));
    await this.state.commitMany([{ table: r.table, key: ks, pos: r.position, hash, row: keeps ? (rec.op === 'delete' ? null : rec.values) : undefined }]);
    return true;
  }

  /**
   * A rollback's writes (src/history/rollback.ts), inside exclusively(): each row of `table` is
   * written back as given (values: the whole row to upsert; null: delete the key), without a
   * conflict check (an admin decided), through the sink like any change: history entries with
   * decision `rolled_back` (by `by`), counted in stats.applied and stats.rolledBack. Each key's
   * version state moves to rollbackPosition(its stored position), just after it, with the hash of
   * what was written: the key's next source change is newer and applies as usual. Keys parked
   * behind an open conflict are left alone (`parked`); a key whose write failed is dead-lettered
   * like any write (`failed`) and keeps its state; one whose position cannot move on is `failed` too.
   */
  async rollbackWrite(table: string, rows: { key: Row; values: Row | null }[], by?: string): Promise<{ written: number; parked: string[]; failed: string[] }> {
    const res = { written: 0, parked: [] as string[], failed: [] as string[] };
    if (rows.length === 0) return res;
    const list = rows.map((r) => ({ table, key: keyString(r.key) }));
    const states = await this.readState(list, list.map((l) => table + '\u0000' + l.key));
    const pending: Pending[] = [];
    const now = Date.now();
    rows.forEach((r, i) => {
      const st = states[i]!;
      const ks = list[i]!.key;
      if (st.parked !== null) return void res.parked.push(ks);
      const position = rollbackPosition(st.pos);
      if (position === null) return void res.failed.push(ks);
      const values = r.values === null ? null : { ...r.values, ...r.key };
      const record: SinkRecord = {
        table, op: values === null ? 'delete' : 'upsert', key: r.key, values, keep: [], position,
        hash: values === null ? null : this.hashOf(table, values, r.key), sourceTsMs: now,
        origin: { topic: 'rollback', partition: -1, offset: '-1' },
      };
      if (this.o.history?.keeps(table)) record.history = { decision: 'rolled_back', ...(by ? { by } : {}) };
      pending.push({ record, raw: { key: null, value: null } });
    });
    const release = await this.gates.write(new Set([table]));
    try {
      const failed = new Set((await this.write(pending, new Map(), async (recs) => ({ ...emptyPlan(), write: recs }), () => undefined)).map(recordKey));
      const done = pending.filter((p) => !failed.has(recordKey(p)));
      for (const p of pending) if (failed.has(recordKey(p))) res.failed.push(keyString(p.record.key));
      await this.historyOf(done.map((p) => p.record));
      const keeps = this.parks(table);
      const commits: VersionCommit[] = [];
      for (const { record: r } of done) {
        const hash = stateHash(r);
        if (hash.includes(':')) await this.state.registerColumns(hash.slice(0, hash.indexOf(':')), Object.keys(r.values!));
        commits.push({ table, key: keyString(r.key), pos: r.position, hash, row: keeps ? r.values : undefined });
        this.stats.applied++;
        this.stats.rolledBack++;
        this.observer?.applied(r);
      }
      await this.afterCommit(() => this.state.commitMany(commits));
      res.written = done.length;
    } finally {
      release();
    }
    return res;
  }

  /**
   * Write with retries; returns the records that ended in the dead-letter topic. `planner` decides
   * what to write given the target rows read (`reads`; none: nothing read) and may run again on a
   * retry; `onWritten` gets the plan of each group the target committed.
   * When a batch of several keys fails with a retriable error, the retry writes each key's records
   * as a group of its own (in order), so keys the target accepts are not held back by one that it
   * does not (a locked row, say); a key's records never overtake each other. Every record is tried
   * at most `retries + 1` times, counted across the split.
   */
  private async write(
    records: Pending[],
    reads: Map<string, Row[]>,
    planner: (records: Pending[], rows: TargetRows) => Promise<Plan>,
    onWritten: (plan: Plan) => void,
    firstAttempt = 1,
  ): Promise<Pending[]> {
    if (records.length === 0) return [];
    const once = async (): Promise<{ result: WriteResult; plan: Plan }> => {
      let plan: Plan | undefined;
      const decide = async (rows: TargetRows) => {
        plan = await planner(records, rows);
        return plan.write.map((p) => p.record);
      };
      let result: WriteResult;
      if (reads.size > 0 && this.sink.writeGuarded) result = await this.sink.writeGuarded({ reads, decide });
      else {
        const rows: TargetRows = new Map();
        for (const [table, keys] of reads) rows.set(table, await this.sink.readRows(table, keys));
        const out = await decide(rows);
        result = out.length === 0 ? { failed: [] } : await this.sink.writeBatch(out);
      }
      return { result, plan: plan! };
    };
    let last: unknown;
    try {
      const { value, attempts } = await withRetry(
        this.retry,
        async (attempt): Promise<{ split: Pending[] } | { result: WriteResult; plan: Plan }> => {
          if (attempt > firstAttempt && failsByKey(last)) {
            const groups = groupByKey(records);
            if (groups.length > 1) {
              const sub = await Promise.all(groups.map((g) => this.write(g, readsFor(reads, g), planner, onWritten, attempt)));
              return { split: sub.flat() };
            }
          }
          return once();
        },
        {
          onRetry: (err, attempt, delayMs) => {
            last = err;
            this.onRetry(records)(err, attempt, delayMs);
          },
          firstAttempt,
        },
      );
      if ('split' in value) return value.split;
      onWritten(value.plan);
      if (value.result.failed.length === 0) return [];
      // Merged records are new objects: the plan maps them back to their pending entry.
      const byRecord = new Map<SinkRecord, Pending>(value.plan.write.map((p) => [p.record, p]));
      const failed = value.result.failed.map((f) => ({ p: byRecord.get(f.record) ?? { record: f.record, raw: { key: null, value: null } }, error: f.error }));
      await this.deadLetter(failed.map((f) => ({ ...f, attempts })));
      return failed.map((f) => f.p);
    } catch (err) {
      if (err instanceof RetryExhausted) {
        await this.deadLetter(records.map((p) => ({ p, error: err.last, attempts: err.attempts })));
        return records;
      }
      if ((err as { kind?: string }).kind === 'poison') {
        await this.deadLetter(records.map((p) => ({ p, error: err, attempts: firstAttempt })));
        return records;
      }
      // A fatal error stops the stage: its text reaches the log, /health and reports; mask what it quotes of these records.
      if (err instanceof SynclineError && redacting()) {
        const masked = retryText(err, records);
        if (masked !== err.message) {
          if (err.stack) err.stack = err.stack.split(err.message).join(masked);
          err.message = masked;
        }
      }
      throw err;
    }
  }

  private get retry(): RetryConfig {
    return this.o.retry;
  }

  private onRetry(records: Pending[]) {
    return (err: unknown, attempt: number, delayMs: number) => {
      this.stats.retries++;
      this.observer?.retry(err);
      const tables = new Set(records.map((p) => p.record.table));
      this.log.warn({ err: retryText(err, records), code: errorCode(err), attempt, delayMs, records: records.length, ...(tables.size === 1 ? { table: [...tables][0] } : {}) }, 'sink.retry');
    };
  }

  private async deadLetter(items: { p: Pending; error: unknown; attempts: number }[]): Promise<void> {
    this.stats.deadLettered += items.length;
    await this.dlq.send(
      items.map(({ p, error, attempts }) => ({
        kind: 'failed' as const,
        error: error ?? poison('UNKNOWN', 'unknown failure'),
        key: p.raw.key,
        value: p.raw.value,
        attempts,
        table: p.record.table,
        position: p.record.position,
        origin: p.record.origin,
        targetKey: p.record.op === 'truncate' ? undefined : keyString(p.record.key),
        row: p.record.values,
      })),
    );
  }
}

/**
 * The position a rollback writes a key at: just after its stored one `S` = '<commit>:<index>', in
 * the same commit, past every index a real transaction reaches: '<commit>:ffff0000' (then
 * ffff0001, … for later rollbacks at the same stored commit). The key's next source change is of a
 * later commit, so newer; a change of the same source transaction not yet applied is older (and
 * skipped as stale). No stored position: '0000000000000000:ffff0000'. Null when the indexes are
 * used up (65,536 rollbacks of a key without a source change in between).
 */
export function rollbackPosition(stored: string | null): string | null {
  const FLOOR = 0xffff0000;
  if (stored === null) return '0000000000000000:ffff0000';
  const colon = stored.indexOf(':');
  const idx = parseInt(stored.slice(colon + 1), 16);
  const next = idx >= FLOOR ? idx + 1 : FLOOR;
  if (next > 0xffffffff) return null;
  return stored.slice(0, colon + 1) + next.toString(16).padStart(8, '0');
}

/**
 * The error text of a failed write attempt as a log line may show it: masked (src/core/redact.ts)
 * with the values of every record of the attempt, so a value the target quotes in free text (an HTTP
 * target's plain-text body echoing the record) is masked like in the dead letter the record may end
 * in, not only the shapes the masking policy recognises without the record.
 */
export function retryText(err: unknown, records: Pending[]): string {
  let text = errorMessage(err);
  if (!redacting()) return text;
  for (const p of records) if (p.record.values) text = redact(text, p.record.table, p.record.values);
  return text;
}

/** The subset of `reads` that concerns these records' keys. */
function readsFor(reads: Map<string, Row[]>, records: Pending[]): Map<string, Row[]> {
  const out = new Map<string, Row[]>();
  for (const p of records) {
    const keys = reads.get(p.record.table);
    if (!keys) continue;
    const ks = keyString(p.record.key);
    if (!keys.some((k) => keyString(k) === ks)) continue;
    const l = out.get(p.record.table) ?? [];
    if (!l.some((k) => keyString(k) === ks)) l.push(p.record.key);
    out.set(p.record.table, l);
  }
  return out;
}

/** Records grouped by target key, groups in order of first appearance, records in batch order. */
function groupByKey(records: Pending[]): Pending[][] {
  const groups = new Map<string, Pending[]>();
  for (const p of records) {
    const k = recordKey(p);
    let g = groups.get(k);
    if (!g) groups.set(k, (g = []));
    g.push(p);
  }
  return [...groups.values()];
}
