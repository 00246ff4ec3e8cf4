/**
 * Decorators that feed Metrics from the data path without changing it. The Runtime wraps what it
 * builds for a pipeline:
 *  - TimedSink around the target Sink (write and conflict-read round trips);
 *  - TimedVersionState instead of VersionState (Redis round trips);
 *  - ObservedDeadLetters instead of DeadLetters (dead letters by kind, errors by class);
 *  - observeDecoder around the processor's decoder (messages read, decode failures by table);
 *  - observeOutput around a consumer stage's output (batch sizes, records in flight);
 *  - applyObserver for the Applier's hook (commit-to-apply latency, conflicts, retries).
 * Each one only measures and passes everything (results, errors) through unchanged.
 */
import { errorCode, errorKind } from '../core/errors.js';
import type { Decided, Row } from '../core/envelope.js';
import type { BatchOrigin, Decoder, Output, OutputOutcome, StaleProbe } from '../process/processor.js';
import { VersionState, type VersionCommit, type VersionEntry, type ReadOptions, type VersionKey } from '../sink/version-state.js';
import type { ApplyObserver, Pending } from '../sink/applier.js';
import { DeadLetters, type DeadLetter } from '../sink/dead-letters.js';
import type { GuardedWrite, Sink, SinkRecord, TargetRows, WriteResult } from '../sink/sink.js';
import type { Metrics } from './metrics.js';

const seconds = (startNs: bigint) => Number(process.hrtime.bigint() - startNs) / 1e9;

/** Time `fn` into `observe(seconds, outcome)`; the result or error passes through. */
async function timed<T>(fn: () => Promise<T>, observe: (s: number, outcome: 'ok' | 'error') => void): Promise<T> {
  const t0 = process.hrtime.bigint();
  try {
    const v = await fn();
    observe(seconds(t0), 'ok');
    return v;
  } catch (err) {
    observe(seconds(t0), 'error');
    throw err;
  }
}

/**
 * A Sink that times writeBatch and readRows. Calls go to `inner`'s methods at call time, so
 * whatever replaces them on the instance later (tests count writes that way) is still called.
 */
export class TimedSink implements Sink {
  /** Present exactly when the inner sink has them: the applier and two-way sync test for them. */
  writeGuarded?: (g: GuardedWrite) => Promise<WriteResult>;
  republish?: (table: string, keys: Row[], over: Decided) => Promise<void>;
  republishDelete?: (table: string, rows: { key: Row; guard: Row }[], tsMs: number) => Promise<Row[]>;
  ensureTable?: (record: SinkRecord) => Promise<void>;
  historyInTx?: Sink['historyInTx'];
  historyBaseline?: Sink['historyBaseline'];

  constructor(readonly inner: Sink, private readonly metrics: Metrics, private readonly pipeline: string) {
    if (inner.writeGuarded) {
      this.writeGuarded = (g) => {
        // The locked read comes first in the write's transaction: it is timed until decide() is called.
        const t0 = process.hrtime.bigint();
        let readDone = false;
        const decide = (rows: TargetRows) => {
          if (!readDone) {
            readDone = true;
            this.observe('read', seconds(t0), 'ok');
          }
          return g.decide(rows);
        };
        return timed(() => this.inner.writeGuarded!({ ...g, decide }), (s, outcome) => {
          if (!readDone) this.observe('read', s, outcome);
          this.observe('write', s, outcome);
        });
      };
    }
    if (inner.republish) this.republish = (table, keys, over) => this.inner.republish!(table, keys, over);
    if (inner.republishDelete) this.republishDelete = (table, rows, tsMs) => this.inner.republishDelete!(table, rows, tsMs);
    if (inner.ensureTable) this.ensureTable = (record) => this.inner.ensureTable!(record);
    if (inner.historyInTx) this.historyInTx = (h) => this.inner.historyInTx!(h);
    if (inner.historyBaseline) this.historyBaseline = (table, keyColumns, statements) => this.inner.historyBaseline!(table, keyColumns, statements);
  }

  connect(): Promise<void> {
    return this.inner.connect();
  }

  writeBatch(batch: SinkRecord[]): Promise<WriteResult> {
    return timed(() => this.inner.writeBatch(batch), (s, outcome) => this.observe('write', s, outcome));
  }

  private observe(kind: 'read' | 'write', s: number, outcome: 'ok' | 'error'): void {
    this.metrics.sinkRoundTrip.observe({ pipeline: this.pipeline, kind, outcome }, s);
  }

  readRows(table: string, keys: Row[]): Promise<Map<string, Row>> {
    return timed(() => this.inner.readRows(table, keys), (s, outcome) => this.observe('read', s, outcome));
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** VersionState whose Redis round trips are timed (calls with nothing to do make no round trip and are not timed). */
export class TimedVersionState extends VersionState {
  constructor(private readonly metrics: Metrics, ...args: ConstructorParameters<typeof VersionState>) {
    super(...args);
  }

  private time<T>(kind: string, fn: () => Promise<T>): Promise<T> {
    return timed(fn, (s, outcome) => this.metrics.redisRoundTrip.observe({ pipeline: this.pipeline, kind, outcome }, s));
  }

  override getMany(items: VersionKey[], opts?: ReadOptions): Promise<(VersionEntry | null)[]> {
    if (items.length === 0) return super.getMany(items, opts);
    return this.time('read', () => super.getMany(items, opts));
  }

  override commitMany(items: VersionCommit[]): Promise<void> {
    if (items.length === 0) return super.commitMany(items);
    return this.time('commit', () => super.commitMany(items));
  }

  override truncateTable(table: string, pos: string): Promise<void> {
    return this.time('truncate', () => super.truncateTable(table, pos));
  }
}

/** DeadLetters that counts what it parked (after Kafka acknowledged it), by kind and by error class. */
export class ObservedDeadLetters extends DeadLetters {
  private metrics?: Metrics;
  private stage = '';

  /** Count this writer's letters as `stage`'s. */
  observe(metrics: Metrics, stage: string): this {
    this.metrics = metrics;
    this.stage = stage;
    return this;
  }

  override async send(letters: DeadLetter[]): Promise<void> {
    await super.send(letters);
    const m = this.metrics;
    if (!m) return;
    for (const l of letters) {
      m.deadLetters.inc({ pipeline: this.pipeline, stage: this.stage, kind: l.kind });
      m.error(this.pipeline, this.stage, l.error);
      m.deadLettered?.(this.pipeline, this.stage, l.error, this.messageOf(l));
    }
  }
}

/**
 * Counts every message the processor reads, and every one it cannot decode (a poison error other
 * than a validation failure, which the validator counts per rule: the consumer stage dead-letters it)
 * as a validation failure of rule "decode" on the topic's target table. A retriable error (registry
 * down) is not a failure: the batch is read again.
 */
export function observeDecoder(decode: Decoder, metrics: Metrics, pipeline: string, stage: string, tableOf: (topic: string) => string | undefined): Decoder {
  const labels = { pipeline, stage };
  const failed = (err: unknown, topic: string) => {
    if (errorKind(err) !== 'retriable' && errorCode(err) !== 'VALIDATION_FAILED') {
      metrics.validationFailures.inc({ pipeline, table: tableOf(topic) ?? '', field: '', rule: 'decode' });
    }
  };
  const observed: Decoder = async (m, topic, partition) => {
    try {
      const p = await decode(m, topic, partition);
      if (Array.isArray(p) || p.record.op !== 'sweep') metrics.changesRead.inc(labels); // a control record is not a change
      return p;
    } catch (err) {
      metrics.changesRead.inc(labels);
      failed(err, topic);
      throw err;
    }
  };
  const { peekBatch } = decode;
  if (peekBatch) {
    // Read counted once per batch.
    observed.peekBatch = async (messages, topic, partition) => {
      const out = await peekBatch(messages, topic, partition);
      let changes = 0;
      for (const p of out) {
        if ('error' in p) failed(p.error, topic);
        if ('error' in p || !p.control) changes++; // a control record is not a change
      }
      metrics.changesRead.inc(labels, changes);
      return out;
    };
    // finish() failures (the consumer stage reports them): no wrapper per record.
    observed.finishFailed = (err, topic) => {
      decode.finishFailed?.(err, topic);
      failed(err, topic);
    };
  }
  return observed;
}

/** An Output that reports batch sizes and what is in flight. */
export function observeOutput(output: Output, metrics: Metrics, pipeline: string, stage: string): Output {
  const labels = { pipeline, stage };
  return {
    ...(output.stale ? { stale: (probes: StaleProbe[]) => output.stale!(probes) } : {}),
    async apply(batch: Pending[], origin?: BatchOrigin): Promise<OutputOutcome> {
      metrics.batchRecords.observe(labels, batch.length);
      metrics.inflightRecords.inc(labels, batch.length);
      metrics.inflightBatches.inc(labels);
      try {
        return await output.apply(batch, origin);
      } finally {
        metrics.inflightRecords.dec(labels, batch.length);
        metrics.inflightBatches.dec(labels);
      }
    },
  };
}

/** The Applier's hook: latency per applied change, conflicts, retries. */
export function applyObserver(metrics: Metrics, pipeline: string, stage = 'sink'): ApplyObserver {
  return {
    applied(record) {
      const s = (Date.now() - record.sourceTsMs) / 1000;
      metrics.commitToApply.observe({ pipeline, table: record.table }, Math.max(0, s));
    },
    conflict(table, strategy, outcome) {
      metrics.conflicts.inc({ pipeline, table, strategy, outcome });
    },
    retry(err) {
      metrics.retries.inc({ pipeline, stage });
      metrics.error(pipeline, stage, err);
    },
  };
}
