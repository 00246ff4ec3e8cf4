/**
 * Test support for the polling source's mode tests: a capture handler that keeps changes and the
 * offsets record in memory and acknowledges each pass at once (the stage's part, without Kafka), and
 * a model that applies the changes as a sink would (position order, deletes, end-of-snapshot sweep),
 * so a test compares what the source emitted with what the database holds. The end-to-end tests
 * (connectors/<system>/poll/pipeline.int.test.ts) run the real stage, Kafka and sink.
 */
import type { CaptureHandler, CaptureOffset, OffsetStore, Source, SourceColumn } from '../source.js';
import type { ChangeEvent, Row } from '../../core/envelope.js';
import { eventPosition } from '../../core/envelope.js';
import { keyString } from '../../sink/sink.js';

export class MemoryOffsets implements OffsetStore {
  readonly records = new Map<string, CaptureOffset>();
  writes = 0;
  async read(id: string): Promise<CaptureOffset | null> {
    const r = this.records.get(id);
    return r ? (JSON.parse(JSON.stringify(r)) as CaptureOffset) : null;
  }
  async write(o: CaptureOffset): Promise<void> {
    this.writes++;
    this.records.set(o.slot, JSON.parse(JSON.stringify(o)) as CaptureOffset);
  }
}

export class MemoryHandler implements CaptureHandler {
  readonly changes: ChangeEvent[] = [];
  /** Changes by op (kept or not). */
  readonly counts: Record<string, number> = {};
  commits: string[] = [];
  stopped = false;
  resumed = false;
  /** `keep: false`: count the changes only (a large scan's memory is the source's, not this list's). */
  constructor(readonly offsets: MemoryOffsets, private readonly source: Source, private readonly keep = true, private readonly onChange?: (e: ChangeEvent) => void) {}
  running(): void {}
  async resuming(): Promise<void> {
    this.resumed = true;
  }
  /** columns() calls: 'schema.table: a, b, c'. */
  readonly columnChanges: string[] = [];
  async columns(s: string, t: string, c: SourceColumn[]): Promise<void> {
    this.columnChanges.push(`${s}.${t}: ${c.map((x) => x.name).join(', ')}`);
  }
  begin(): void {}
  async change(e: ChangeEvent): Promise<void> {
    this.counts[e.op] = (this.counts[e.op] ?? 0) + 1;
    if (this.keep) this.changes.push(e);
    this.onChange?.(e);
  }
  commit(end: string): void {
    this.commits.push(end);
    this.source.acknowledge(end);
  }
  async flush(): Promise<void> {}
  idle(): boolean {
    return true;
  }
}

/** What a target holds after these changes: per key the newest row by position; deletes; the snapshot sweep. */
export function applyChanges(changes: ChangeEvent[], key: string[], model = new Map<string, { pos: string; row: Row }>()): Map<string, { pos: string; row: Row }> {
  for (const e of changes) {
    const pos = eventPosition(e);
    if (e.op === 'm') {
      const cutoff = pos.slice(0, pos.indexOf(':') + 1) + '00000000';
      for (const [k, v] of model) if (v.pos < cutoff) model.delete(k);
      continue;
    }
    const row = (e.after ?? e.before)!;
    const k = keyString(Object.fromEntries(key.map((c) => [c, row[c] ?? null])));
    const prev = model.get(k);
    if (prev && prev.pos > pos) continue;
    if (e.op === 'd') model.set(k, { pos, row: null as unknown as Row });
    else model.set(k, { pos, row: e.after! });
  }
  return model;
}

/** The model's live rows (deleted keys dropped) by key string. */
export function liveRows(model: Map<string, { pos: string; row: Row }>): Map<string, Row> {
  const out = new Map<string, Row>();
  for (const [k, v] of model) if (v.row) out.set(k, v.row);
  return out;
}
