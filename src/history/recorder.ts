/**
 * The change history of one process's pipelines (ADR 0031). Owner: the sink parts of each pipeline
 * (src/sink/build.ts) share one HistoryStore per store URL through `historyFor`; the Runtime prunes.
 *
 * Per pipeline a PipelineHistory says which target tables keep history, whether the target writes
 * it in its own transaction (inTx: a PostgreSQL target in the store's database), and otherwise
 * stores entries after the target committed (record(): at-least-once, a retry stores each once).
 * Baselines: when a table's history starts (no coverage row yet) and the target can copy its rows
 * in a transaction that holds off writers (Sink.historyBaseline), its current rows become
 * `baseline` entries and the coverage starts at that instant; without that, coverage starts with
 * an empty target only (a table the sink creates) and `asof` refuses the table otherwise.
 * Counters (prom-client, attachMetrics): entries recorded, prune results by kind, errors.
 */
import { Counter, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { SynclineConfig } from '../core/config/schema.js';
import type { Row } from '../core/envelope.js';
import { fatal } from '../core/errors.js';
import type { Sink } from '../sink/sink.js';
import { historyKey, jsonRow, pipelineRetention, type HistoryEntry } from './history.js';
import { HistoryStore, type PruneResult, type Retention } from './store.js';

export const historyCounts = { recorded: new Map<string, number>(), pruned: { partitions: 0, rows: 0, carried: 0, trimmed: 0 }, errors: 0 };

/** The store URL and schema of a config, or undefined when it has none. */
export function historyStoreOf(config: Pick<SynclineConfig, 'history' | 'audit'>): { url: string; schema: string; pruneEveryMs: number } | undefined {
  const url = config.history?.url ?? config.audit?.url;
  if (!url) return undefined;
  return { url, schema: config.history?.schema ?? 'syncline_history', pruneEveryMs: config.history?.pruneEveryMs ?? 3_600_000 };
}

const stores = new Map<string, { store: HistoryStore; users: number }>();

/** One store per URL and schema in a process (ref-counted; release() closes the last one). */
export function openStore(url: string, schema: string): { store: HistoryStore; release: () => Promise<void> } {
  const k = `${schema}\u0000${url}`;
  let e = stores.get(k);
  if (!e) stores.set(k, (e = { store: new HistoryStore(url, schema), users: 0 }));
  e.users++;
  let released = false;
  return {
    store: e.store,
    release: async () => {
      if (released) return;
      released = true;
      if (--e.users === 0) {
        stores.delete(k);
        await e.store.close();
      }
    },
  };
}

export class PipelineHistory {
  /** The target writes history rows in its own transaction. */
  inTx = false;

  constructor(
    readonly pipeline: string,
    readonly store: HistoryStore,
    private readonly tables: Map<string, Retention>,
    private readonly log: Logger,
  ) {}

  keeps(table: string): boolean {
    return this.tables.has(table);
  }

  get retention(): ReadonlyMap<string, Retention> {
    return this.tables;
  }

  /**
   * Attach to the pipeline's sink: take the store into its transactions where it can, and take the
   * baseline of every table whose history has not started yet.
   */
  async attach(sink: Sink, keyColumns: (table: string) => string[] | undefined): Promise<void> {
    await this.store.ready();
    this.inTx = sink.historyInTx?.({ url: this.store.url, insertSql: (e) => this.store.insertSql(e as HistoryEntry[]), ready: () => this.store.ready() }) ?? false;
    await this.baselines([...this.tables.keys()], sink, keyColumns);
  }

  /**
   * Tables added to the running pipeline (a config reload, Runtime.addTablesLive): kept from now on,
   * each with its baseline (taken before the first change of the table reaches the sink: the
   * capture backfills an added table after the sink took it).
   */
  async addTables(more: ReadonlyMap<string, Retention>, sink: Sink, keyColumns: (table: string) => string[] | undefined): Promise<void> {
    const added = [...more].filter(([t]) => !this.tables.has(t));
    for (const [t, r] of added) this.tables.set(t, r);
    await this.baselines(added.map(([t]) => t), sink, keyColumns);
  }

  private async baselines(tables: string[], sink: Sink, keyColumns: (table: string) => string[] | undefined): Promise<void> {
    for (const table of tables) {
      if (await this.store.coverage(this.pipeline, table)) continue;
      if (this.inTx && sink.historyBaseline) {
        let n = 0;
        await sink.historyBaseline(table, keyColumns(table), (rows, since) => {
          n = rows.length;
          const entries: HistoryEntry[] = rows.map(({ key, row }) => baselineEntry(this.pipeline, table, key, row, since));
          const out = [this.store.coverageSql(this.pipeline, table, since)];
          for (let i = 0; i < entries.length; i += 5000) out.push(this.store.insertSql(entries.slice(i, i + 5000)));
          return out;
        });
        this.log.info({ table, rows: n }, 'history.baseline: the history of this table starts with a copy of its target rows');
      } else {
        this.log.warn({ table }, 'history.no_baseline: the target cannot copy its rows into the history in one transaction (or the store is not in its database); `history asof` cannot rebuild this table (history show works)');
      }
    }
  }

  /** Store entries after the target committed (at-least-once; dedup by pipeline, table, key, position, decision). */
  async record(entries: HistoryEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.store.insert(entries);
    this.counted(entries.length);
  }

  /** Entries the target stored in its own transaction. */
  counted(n: number): void {
    historyCounts.recorded.set(this.pipeline, (historyCounts.recorded.get(this.pipeline) ?? 0) + n);
  }
}

export function baselineEntry(pipeline: string, table: string, key: Row, row: Row, since: Date): HistoryEntry {
  return { pipeline, table, key: historyKey(key), keyRow: jsonRow(key), op: 'baseline', position: 'baseline', commitTsMs: null, decision: 'baseline', strategy: null, by: null, before: null, beforeKnown: false, after: jsonRow(row), changed: true, appliedAt: since };
}

/** Every table of the config that keeps history: pipeline → table → retention. */
export function retentionOf(config: SynclineConfig): Map<string, Map<string, Retention>> {
  const out = new Map<string, Map<string, Retention>>();
  for (const [name, p] of Object.entries(config.pipelines)) {
    const m = pipelineRetention(p);
    if (m.size > 0) out.set(name, m);
  }
  return out;
}

/** The history of a pipeline, or a fatal error naming why there is none. */
export function requireHistory(config: SynclineConfig, pipeline: string, table?: string): { url: string; schema: string } {
  const p = config.pipelines[pipeline];
  if (!p) throw fatal('PIPELINE_UNKNOWN', `no pipeline '${pipeline}' (have: ${Object.keys(config.pipelines).join(', ')})`);
  const m = pipelineRetention(p);
  if (m.size === 0) throw fatal('HISTORY_DISABLED', `pipeline ${pipeline} keeps no change history (set history: {} on the pipeline or a table)`);
  if (table !== undefined && !m.has(table)) throw fatal('HISTORY_DISABLED', `pipeline ${pipeline} keeps no change history of table ${table} (tables with history: ${[...m.keys()].join(', ')})`);
  const s = historyStoreOf(config);
  if (!s) throw fatal('HISTORY_DISABLED', 'no history store: set history.url (or audit.url)');
  return s;
}

/** Scheduled pruning of a config's history (one per Runtime that runs sinks). */
export class HistoryPruner {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    private readonly store: HistoryStore,
    private readonly tables: () => Map<string, Map<string, Retention>>,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  start(everyMs: number): void {
    this.timer = setInterval(() => void this.pruneOnce(), everyMs);
    this.timer.unref();
    setTimeout(() => void this.pruneOnce(), Math.min(everyMs, 60_000)).unref();
  }

  /** One pruning run (never two at once); errors are logged and counted, not thrown. */
  pruneOnce(): Promise<void> {
    this.running ??= (async () => {
      try {
        const r: PruneResult = await this.store.prune(this.tables(), this.clock());
        historyCounts.pruned.partitions += r.partitionsDropped;
        historyCounts.pruned.rows += r.rowsDeleted;
        historyCounts.pruned.carried += r.carried;
        historyCounts.pruned.trimmed += r.trimmed;
        if (r.partitionsDropped + r.rowsDeleted + r.trimmed > 0) this.log.info(r, 'history.pruned');
      } catch (err) {
        historyCounts.errors++;
        this.log.warn({ err: (err as Error).message }, 'history.prune_failed');
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** syncline_history_* counters on a Runtime's registry. */
export function attachHistoryMetrics(registry: Registry): void {
  if (registry.getSingleMetric('syncline_history_entries_total')) return;
  new Counter({
    name: 'syncline_history_entries_total', help: 'Change history entries recorded (applied changes and decisions), by pipeline.', labelNames: ['pipeline'], registers: [registry],
    collect() {
      this.reset();
      for (const [pipeline, n] of historyCounts.recorded) this.inc({ pipeline }, n);
    },
  });
  new Counter({
    name: 'syncline_history_pruned_total', help: 'Change history pruning: day partitions dropped (partitions), entries deleted past retention (rows), entries carried forward as baseline (carried), entries trimmed beyond maxPerKey (trimmed).', labelNames: ['kind'], registers: [registry],
    collect() {
      this.reset();
      for (const [kind, n] of Object.entries(historyCounts.pruned)) this.inc({ kind }, n);
    },
  });
  new Counter({ name: 'syncline_history_errors_total', help: 'Change history pruning runs that failed.', registers: [registry], collect() { this.reset(); this.inc(historyCounts.errors); } });
}
