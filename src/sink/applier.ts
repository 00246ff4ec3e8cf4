/**
 * The apply path for one pipeline: version state → conflict resolution → sink write (with retry)
 * → dead letters for what failed → version state commit. Called with one batch at a time per
 * Kafka partition; the caller commits the partition's offsets only after apply() returned.
 *
 * Guarantees kept here
 *  - Effectively once: a record whose position is not newer than the key's stored position is a
 *    no-op (redelivery, replay); the Redis compare-and-set never moves a position backwards.
 *  - Deltas are real: an upsert whose content hash equals what the target is known to hold is
 *    skipped (and counted) but still advances the position.
 *  - Synced means applied: state is committed only for records the target committed; a record that
 *    failed and was dead-lettered leaves the state as it was, so a later identical change is written.
 *  - Nothing lost: failures end in `<prefix>.dlq.<pipeline>` with the reason; fatal errors throw.
 */
import type { Logger } from 'pino';
import type { ConflictConfig, RetryConfig } from '../core/config/schema.js';
import { errorCode, errorMessage, fatal, poison } from '../core/errors.js';
import { rowHash } from '../core/hash.js';
import { RetryExhausted, withRetry } from '../core/retry.js';
import type { VersionState } from '../process/version-state.js';
import type { DeadLetters } from './dead-letters.js';
import { keyString, type Sink, type SinkRecord, type WriteResult } from './sink.js';

export interface Pending {
  record: SinkRecord;
  raw: { key: Buffer | null; value: Buffer | null };
}

export interface ApplyStats {
  received: number;
  applied: number;
  skippedStale: number;
  skippedUnchanged: number;
  conflicts: number;
  deadLettered: number;
  retries: number;
}

/** Hooks for metrics (src/observe/instrument.ts); called synchronously, must not throw. */
export interface ApplyObserver {
  /** The target committed this record (after the write returned). */
  applied(record: SinkRecord): void;
  /** A conflict was settled; target_won: the target row was kept, the change settled without a write. */
  conflict(table: string, strategy: string, outcome: 'target_won'): void;
  /** A retriable or unknown error is about to be retried. */
  retry(err: unknown): void;
}

export const newApplyStats = (): ApplyStats => ({ received: 0, applied: 0, skippedStale: 0, skippedUnchanged: 0, conflicts: 0, deadLettered: 0, retries: 0 });

const DELETED = 'D';

export class Applier {
  readonly stats: ApplyStats = newApplyStats();
  observer?: ApplyObserver;

  constructor(
    private readonly sink: Sink,
    private readonly state: VersionState,
    private readonly dlq: DeadLetters,
    private readonly conflictFor: (table: string) => ConflictConfig,
    private readonly retry: RetryConfig,
    private readonly log: Logger,
  ) {}

  async apply(batch: Pending[]): Promise<void> {
    this.stats.received += batch.length;
    // Truncates split the batch: what comes before applies first, then the truncate, then the rest.
    let start = 0;
    for (let i = 0; i < batch.length; i++) {
      if (batch[i]!.record.op !== 'truncate') continue;
      await this.applyRecords(batch.slice(start, i));
      await this.truncate(batch[i]!);
      start = i + 1;
    }
    await this.applyRecords(batch.slice(start));
  }

  private async truncate(p: Pending): Promise<void> {
    const r = p.record;
    await this.write([p]);
    await this.state.truncateTable(r.table, r.position);
    this.stats.applied++;
    this.observer?.applied(r);
  }

  private async applyRecords(batch: Pending[]): Promise<void> {
    if (batch.length === 0) return;
    const ids = batch.map((p) => ({ table: p.record.table, key: keyString(p.record.key) }));
    const uniq = new Map<string, { table: string; key: string }>();
    for (const id of ids) uniq.set(id.table + '\u0000' + id.key, id);
    const list = [...uniq.values()];
    const stored = await this.state.getMany(list);
    const current = new Map<string, { pos: string; hash: string }>();
    list.forEach((id, i) => {
      const s = stored[i];
      if (s) current.set(id.table + '\u0000' + id.key, { pos: s.pos, hash: s.hash });
    });

    // 1. Version and delta filter, in per-key order.
    const accepted: Pending[] = [];
    const commits = new Map<string, { table: string; key: string; pos: string; hash: string }>();
    batch.forEach((p, i) => {
      const r = p.record;
      const id = ids[i]!;
      const ck = id.table + '\u0000' + id.key;
      const cur = current.get(ck);
      if (cur && r.position <= cur.pos) {
        this.stats.skippedStale++;
        return;
      }
      const newHash = r.op === 'delete' ? DELETED : (r.hash ?? '');
      if (cur && newHash !== '' && cur.hash === newHash) {
        this.stats.skippedUnchanged++;
        current.set(ck, { pos: r.position, hash: cur.hash });
        commits.set(ck, { ...id, pos: r.position, hash: cur.hash });
        return;
      }
      accepted.push(p);
      current.set(ck, { pos: r.position, hash: newHash });
    });

    // 2. Conflicts: one read of the affected target rows per table (retried like a write; if the
    //    target stays unreachable the records are dead-lettered, as a failed write would be).
    let toWrite: Pending[];
    try {
      toWrite = (await withRetry(this.retry, () => this.resolveConflicts(accepted, commits, current), { onRetry: this.onRetry(accepted.length) })).value;
    } catch (err) {
      if (!(err instanceof RetryExhausted)) throw err;
      await this.deadLetter(accepted.map((p) => ({ p, error: err.last, attempts: err.attempts })));
      await this.state.commitMany(committedOnly(commits, accepted));
      return;
    }

    // 3. Write, retrying retriable failures; dead-letter what still fails.
    const failed = await this.write(toWrite);
    const failedKeys = new Set(failed.map((p) => p.record.table + '\u0000' + keyString(p.record.key)));
    for (const p of toWrite) {
      const ck = p.record.table + '\u0000' + keyString(p.record.key);
      if (failedKeys.has(ck)) {
        commits.delete(ck);
        continue;
      }
      this.stats.applied++;
      this.observer?.applied(p.record);
      const c = current.get(ck)!;
      commits.set(ck, { table: p.record.table, key: keyString(p.record.key), pos: p.record.position, hash: c.hash });
    }

    // 4. Remember what the target now holds (only for what it committed).
    await this.state.commitMany([...commits.values()]);
  }

  private async resolveConflicts(
    accepted: Pending[],
    commits: Map<string, { table: string; key: string; pos: string; hash: string }>,
    current: Map<string, { pos: string; hash: string }>,
  ): Promise<Pending[]> {
    const byTable = new Map<string, Pending[]>();
    for (const p of accepted) {
      if (p.record.op !== 'upsert') continue;
      const strategy = this.conflictFor(p.record.table).strategy;
      if (strategy === 'source-wins') continue;
      let l = byTable.get(p.record.table);
      if (!l) byTable.set(p.record.table, (l = []));
      l.push(p);
    }
    if (byTable.size === 0) return accepted;
    const losers = new Set<Pending>();
    for (const [table, list] of byTable) {
      const cfg = this.conflictFor(table);
      const rows = await this.sink.readRows(table, dedupeKeys(list.map((p) => p.record.key)));
      for (const p of list) {
        const target = rows.get(keyString(p.record.key));
        if (!target) continue;
        const r = p.record;
        if (cfg.strategy === 'latest-timestamp') {
          const theirs = target[cfg.field];
          const ours = r.values?.[cfg.field];
          if (theirs == null || ours == null) continue;
          if (compareValues(theirs, ours) > 0) losers.add(p);
        } else if (cfg.strategy === 'target-wins') {
          const ck = table + '\u0000' + keyString(r.key);
          const known = commits.get(ck)?.hash;
          const subset: Record<string, (typeof target)[string]> = {};
          for (const c of Object.keys(r.values ?? {})) subset[c] = target[c] ?? null;
          if (known !== undefined && rowHash(subset) !== known) losers.add(p);
        } else {
          throw fatal('CONFLICT_STRATEGY_UNSUPPORTED', `conflict strategy '${cfg.strategy}' for ${table} is not implemented yet`);
        }
      }
    }
    if (losers.size === 0) return accepted;
    for (const p of losers) {
      const r = p.record;
      const ck = r.table + '\u0000' + keyString(r.key);
      this.stats.conflicts++;
      this.observer?.conflict(r.table, this.conflictFor(r.table).strategy, 'target_won');
      this.log.info({ table: r.table, position: r.position, strategy: this.conflictFor(r.table).strategy }, 'conflict.resolved.target');
      // The target keeps its row; the change is settled at this position.
      const prev = commits.get(ck)?.hash ?? '';
      commits.set(ck, { table: r.table, key: keyString(r.key), pos: r.position, hash: prev });
      current.set(ck, { pos: r.position, hash: prev });
    }
    // A later record of the same key in this batch still applies (it is newer than the loser).
    return accepted.filter((p) => !losers.has(p));
  }

  /**
   * Write with retries; returns the records that ended in the dead-letter topic.
   * When a batch of several keys fails with a retriable error, the retry writes each key's records
   * as a group of its own (in order), so keys the target accepts are not held back by one that it
   * does not (a locked row, say); a key's records never overtake each other. Every record is tried
   * at most `retries + 1` times, counted across the split.
   */
  private async write(records: Pending[], firstAttempt = 1): Promise<Pending[]> {
    if (records.length === 0) return [];
    try {
      const { value, attempts } = await withRetry(
        this.retry,
        async (attempt): Promise<{ split: Pending[] } | { result: WriteResult }> => {
          if (attempt > firstAttempt) {
            const groups = groupByKey(records);
            if (groups.length > 1) return { split: (await Promise.all(groups.map((g) => this.write(g, attempt)))).flat() };
          }
          return { result: await this.sink.writeBatch(records.map((p) => p.record)) };
        },
        { onRetry: this.onRetry(records.length), firstAttempt },
      );
      if ('split' in value) return value.split;
      if (value.result.failed.length === 0) return [];
      const byRecord = new Map(records.map((p) => [p.record, p]));
      const failed = value.result.failed.map((f) => ({ p: byRecord.get(f.record)!, error: f.error }));
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
      throw err;
    }
  }

  private onRetry(records: number) {
    return (err: unknown, attempt: number, delayMs: number) => {
      this.stats.retries++;
      this.observer?.retry(err);
      this.log.warn({ err: errorMessage(err), code: errorCode(err), attempt, delayMs, records }, 'sink.retry');
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
      })),
    );
  }
}

/** Commits of keys that have no record among `excluded` (those did not reach the target). */
function committedOnly(commits: Map<string, { table: string; key: string; pos: string; hash: string }>, excluded: Pending[]) {
  const skip = new Set(excluded.map((p) => p.record.table + '\u0000' + keyString(p.record.key)));
  return [...commits].filter(([ck]) => !skip.has(ck)).map(([, c]) => c);
}

/** Records grouped by target key, groups in order of first appearance, records in batch order. */
function groupByKey(records: Pending[]): Pending[][] {
  const groups = new Map<string, Pending[]>();
  for (const p of records) {
    const k = p.record.table + '\u0000' + keyString(p.record.key);
    let g = groups.get(k);
    if (!g) groups.set(k, (g = []));
    g.push(p);
  }
  return [...groups.values()];
}

function dedupeKeys(keys: SinkRecord['key'][]): SinkRecord['key'][] {
  const seen = new Map<string, SinkRecord['key']>();
  for (const k of keys) seen.set(keyString(k), k);
  return [...seen.values()];
}

/** Order of two canonical values of one column (timestamps are fixed-width ISO strings). */
function compareValues(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
