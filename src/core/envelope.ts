/**
 * The one versioned change envelope that flows from capture to the sinks.
 *
 * Example (an update of public.users id=7, the 3rd change of the transaction that committed at 0/1A2B3C8):
 *   { op: 'u', before: null, after: { id: 7, email: 'a@b.c', updated_at: '2026-11-25T10:00:00.123456Z' },
 *     source: { db: 'shop', schema: 'public', table: 'users', lsn: '0/1A2B2F0', commitLsn: '0/1A2B3C8',
 *               txId: 5012, tsMs: 1795608000123, snapshot: false, idx: 2 },
 *     tsMs: 1795608000200, unchangedToast: [] }
 *
 * The commit position (commitLsn, idx) is the total order of changes of one source database and the
 * idempotency key everywhere downstream (version state, dead letters, replay).
 */

/** A column value in canonical form (see src/core/types.ts; connectors map their types to it). */
export type Value = null | boolean | number | bigint | string | Buffer | Value[];
export type Row = Record<string, Value>;

/** c = insert, u = update, d = delete, r = snapshot read, t = truncate. */
/** c insert, u update, d delete, r snapshot read, t truncate, m end of a table's snapshot (unchanged_toast lists its key columns). */
export type Op = 'c' | 'u' | 'd' | 'r' | 't' | 'm';

export interface SourceInfo {
  /** Source database name. */
  db: string;
  schema: string;
  table: string;
  /** LSN of this change's WAL record ('X/Y'); for snapshot rows, the slot's consistent point. */
  lsn: string;
  /** LSN of the commit of the transaction holding this change; for snapshot rows, the consistent point. */
  commitLsn: string;
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

/** Parse 'X/Y' into a bigint (64-bit WAL position). */
export function lsnToBigInt(lsn: string): bigint {
  const slash = lsn.indexOf('/');
  if (slash < 0) throw new Error(`invalid LSN '${lsn}'`);
  return (BigInt('0x' + lsn.slice(0, slash)) << 32n) | BigInt('0x' + lsn.slice(slash + 1));
}

export function bigIntToLsn(v: bigint): string {
  return `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`;
}

/**
 * A commit position as a fixed-width string that sorts lexicographically in commit order:
 * 16 hex digits of the commit LSN, ':', 8 hex digits of the index within the transaction.
 * Lua scripts in Redis compare these with plain string comparison.
 */
export function position(commitLsn: string, idx: number): string {
  // Every change of a transaction has the same commit LSN: its 16 hex digits are computed once.
  if (commitLsn !== lastLsn) {
    lastLsnHex = lsnToBigInt(commitLsn).toString(16).padStart(16, '0') + ':';
    lastLsn = commitLsn;
  }
  return lastLsnHex + idx.toString(16).padStart(8, '0');
}
let lastLsn = '';
let lastLsnHex = '';

export function eventPosition(e: ChangeEvent): string {
  return position(e.source.commitLsn, e.source.idx);
}

/**
 * Kafka header of a change that the two-way peer re-published because its conflict resolution
 * kept that row. Its value says what the row was kept over (Decided); the Applier's two-way rules
 * read it where the target lacks the row.
 */
export const DECIDED_HEADER = 'syncline.peer-decided';

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
