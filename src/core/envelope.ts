/**
 * The one versioned change envelope that flows from capture to the sinks.
 *
 * Example (an update of public.users id=7, the 3rd change of the transaction that committed at 0/1A2B3C8):
 *   { op: 'u', before: null, after: { id: 7, email: 'a@b.c', updated_at: '2026-11-25T10:00:00.123456Z' },
 *     source: { db: 'shop', schema: 'public', table: 'users', pos: '0/1A2B2F0', commitPos: '0/1A2B3C8',
 *               txId: 5012, tsMs: 1795608000123, snapshot: false, idx: 2 },
 *     tsMs: 1795608000200, unchangedToast: [] }
 *
 * The commit position (commitPos, idx) is the total order of changes of one source database and the
 * idempotency key everywhere downstream (version state, dead letters, replay).
 */

/** A column value in canonical form (see src/core/types.ts; connectors map their types to it). */
export type Value = null | boolean | number | bigint | string | Buffer | Value[];
export type Row = Record<string, Value>;

/**
 * `row[name] = value`, also for a column named `__proto__`: an assignment would set the row's
 * prototype instead (and the value be lost); that one is defined as an own property.
 */
export function setColumn<T = Value>(row: Record<string, T>, name: string, value: NoInfer<T>): void {
  if (name === '__proto__') Object.defineProperty(row, name, { value, writable: true, enumerable: true, configurable: true });
  else row[name] = value;
}

/** `rec[name]` when `rec` has it as its own (a config map by column name: `toString` is not Object.prototype's). */
export function own<T>(rec: Readonly<Record<string, T>> | undefined, name: string): T | undefined {
  return rec !== undefined && Object.hasOwn(rec, name) ? rec[name] : undefined;
}

/** c = insert, u = update, d = delete, r = snapshot read, t = truncate. */
/** c insert, u update, d delete, r snapshot read, t truncate, m end of a table's snapshot (unchanged_toast lists its key columns). */
export type Op = 'c' | 'u' | 'd' | 'r' | 't' | 'm';

export interface SourceInfo {
  /** Source database name. */
  db: string;
  schema: string;
  table: string;
  /**
   * The source's position of this change ('X/Y': two hexadecimal numbers, e.g. a PostgreSQL WAL
   * position, a binlog file number / offset); for snapshot rows, the snapshot's consistent point.
   * In Avro: `source.lsn` (the field keeps its first name: a rename would be an incompatible schema).
   */
  pos: string;
  /** The source's position of the commit of this change's transaction ('X/Y'; Avro `source.commit_lsn`); for snapshot rows, the consistent point. */
  commitPos: string;
  txId: number | null;
  /** Commit time of the transaction in ms since the epoch (snapshot: time the snapshot started). */
  tsMs: number;
  snapshot: boolean;
  /** Index of the change within its transaction (snapshot: 0). */
  idx: number;
}

export interface ChangeEvent {
  op: Op;
  /** Old row: key columns only unless REPLICA IDENTITY FULL; null for inserts and snapshot reads. */
  before: Row | null;
  /** New row; null for deletes and truncates. */
  after: Row | null;
  source: SourceInfo;
  /** When capture produced the event (ms since the epoch). */
  tsMs: number;
  /** Columns of `after` that PostgreSQL did not send because they are unchanged TOASTed values. */
  unchangedToast: string[];
}

/** Parse a source position 'X/Y' into a 64-bit number (X the high 32 bits, Y the low). */
export function positionToBigInt(p: string): bigint {
  const slash = p.indexOf('/');
  if (slash < 0) throw new Error(`invalid position '${p}' (expected X/Y, two hexadecimal numbers)`);
  return (BigInt('0x' + p.slice(0, slash)) << 32n) | BigInt('0x' + p.slice(slash + 1));
}

export function bigIntToPosition(v: bigint): string {
  return `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`;
}

/**
 * A commit position as a fixed-width string that sorts lexicographically in commit order:
 * 16 hex digits of the commit's source position, ':', 8 hex digits of the index within the transaction.
 * Lua scripts in Redis compare these with plain string comparison.
 */
export function position(commitPos: string, idx: number): string {
  // Every change of a transaction has the same commit position: its 16 hex digits are computed once.
  if (commitPos !== lastCommit) {
    lastHex = positionToBigInt(commitPos).toString(16).padStart(16, '0') + ':';
    lastCommit = commitPos;
  }
  return lastHex + idx.toString(16).padStart(8, '0');
}
let lastCommit = '';
let lastHex = '';

export function eventPosition(e: ChangeEvent): string {
  return position(e.source.commitPos, e.source.idx);
}

/**
 * Kafka header of a change that the two-way peer re-published because its conflict resolution
 * kept that row. Its value says what the row was kept over (Decided); the Applier's two-way rules
 * read it where the target lacks the row.
 */
export const DECIDED_HEADER = 'syncline.peer-decided';

/**
 * Kafka header of a control message (truncate, end of snapshot): how many partitions of the change
 * topic capture wrote it to, one copy each. A sink counts that many copies before it acts on it; the
 * topic's partition count at the time it reads the copy may be higher (partitions added since), and
 * a count of those would never be reached. Absent (written by an earlier version): the count now.
 */
export const PARTITIONS_HEADER = 'syncline.partitions';

/**
 * What a re-published row was kept over, on the side it is carried to:
 * - 'delete': that side's delete of the row. The decision saw the delete's time, so the row is
 *   written there even though the row is missing.
 * - 'update': an update from that side. If the row is missing there when it arrives, that side
 *   deleted it after the decision; the peer decides that delete when it reaches it, so the row is
 *   not written back over it.
 * Headers of earlier versions ('1') meant 'delete'.
 */
export type Decided = 'delete' | 'update';

export const DECIDED_KINDS: readonly Decided[] = ['delete', 'update'];

/** What a row the target kept in a conflict with a change of this op was kept over. */
export const keptOver = (op: string): Decided => (op === 'delete' ? 'delete' : 'update');

export const decidedOf = (header: string): Decided => (header === 'update' ? 'update' : 'delete');

/** Replication origin (prefix, before `:<n>`) of a pipeline's re-published rows, by what they were kept over. */
export const republishOrigin = (origin: string, over: Decided): string => `${origin}/${over === 'update' ? 'republish-update' : 'republish'}`;
