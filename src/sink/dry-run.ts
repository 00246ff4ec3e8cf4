/**
 * Dry-run stand-ins (`syncline replay --dry-run`): the target and version state are read as usual,
 * nothing is written anywhere — no target write, no Redis write, no dead letter — and what would
 * have happened is counted by the Applier as usual.
 */
import type { Decided, Row } from '../core/envelope.js';
import { VersionState, type VersionCommit } from './version-state.js';
import { DeadLetters, type DeadLetter } from './dead-letters.js';
import type { GuardedWrite, Sink, SinkRecord, TargetRows, WriteResult } from './sink.js';

export class DryRunSink implements Sink {
  constructor(private readonly inner: Sink) {}
  connect(): Promise<void> {
    return this.inner.connect();
  }
  async writeBatch(_batch: SinkRecord[]): Promise<WriteResult> {
    return { failed: [] };
  }
  async writeGuarded(g: GuardedWrite): Promise<WriteResult> {
    const rows: TargetRows = new Map();
    for (const [table, keys] of g.reads) rows.set(table, await this.inner.readRows(table, keys));
    await g.decide(rows);
    return { failed: [] };
  }
  async republish(_table: string, _keys: Row[], _over: Decided): Promise<void> {}
  readRows(table: string, keys: Row[]): Promise<Map<string, Row>> {
    return this.inner.readRows(table, keys);
  }
  ping(): Promise<void> {
    return this.inner.ping();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export class DryRunVersionState extends VersionState {
  override async commitMany(_items: VersionCommit[]): Promise<void> {}
  override async truncateTable(_table: string, _pos: string): Promise<void> {}
  override async park(_table: string, _key: string, id: string): Promise<string> {
    return id;
  }
  override async setParked(): Promise<void> {}
  override async unpark(): Promise<void> {}
  override async rebuildParking(): Promise<void> {}
  override async registerColumns(): Promise<void> {}
  override async intend(): Promise<void> {}
  override async clearIntents(): Promise<void> {}
  /** A dry run writes nothing: its truncate (counted, not run) waits for no other partition. */
  override async truncateBarrier(): Promise<{ verdict: 'run'; arrived: number }> {
    return { verdict: 'run', arrived: 0 };
  }
  override async truncateClaim(): Promise<boolean> {
    return true;
  }
  /** Never completes: a dry run does not sweep. */
  override async markSnapshotEnd(): Promise<number> {
    return 0;
  }
}

export class DryRunDeadLetters extends DeadLetters {
  readonly wouldSend: DeadLetter[] = [];
  override async ensure(): Promise<void> {}
  override async send(letters: DeadLetter[]): Promise<void> {
    this.wouldSend.push(...letters);
  }
}
