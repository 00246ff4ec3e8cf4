/**
 * The Acme sink (src/sink/sink.ts). Every batch is one server transaction of upserts and deletes by
 * key, in the batch's order, so writing a batch again (after a crash, or a retriable error) leaves
 * the target as it was: idempotent.
 *
 *  - Concurrency: writeBatch runs concurrently for batches of different Kafka partitions (their keys
 *    never overlap, their tables may): nothing of one call is kept on `this`; the table cache is a
 *    map of promises, safe to share.
 *  - Failures: a write the server refuses (bad value, constraint) is poison and listed in `failed`
 *    (dead-lettered); the server applied nothing of that transaction, so the rest is written again
 *    without it. Anything else is thrown, classified: retriable (the applier retries the batch),
 *    fatal (the pipeline stops).
 *  - Not implemented, so left out (all optional): writeGuarded (conflict checks then read with
 *    readRows and write with writeBatch), ensureTable (no autoCreate), republish/republishDelete (an
 *    Acme target is refused as a two-way peer at start, src/sink/build.ts).
 *  - create() does not connect, and `syncline status` / `doctor` call ping() and close() without
 *    connect(): the client is opened on first use.
 */
import type { Logger } from 'pino';
import type { Row, Value } from '../../../src/core/envelope.js';
import { poison, retriable, withDeadline, type SynclineError } from '../../../src/core/errors.js';
import { parseTableName } from '../../../src/core/names.js';
import type { ConnectorContext } from '../../../src/core/registry.js';
import type { ColumnType } from '../../../src/core/types.js';
import { keyString, type FailedRecord, type Sink, type SinkRecord, type WriteResult } from '../../../src/sink/sink.js';
import { acmeWhere, connectAcme } from './connection.js';
import { AcmeWriteError, type AcmeClient, type AcmeWrite } from './driver.js';
import { classifyAcmeError } from './errors.js';
import type { AcmeSinkConfig } from './spec.js';
import { canonical, columnType } from './types.js';

export class AcmeSink implements Sink {
  private client?: Promise<AcmeClient>;
  /** Column types of each target table (canonical name → column → type), loaded once per table. */
  private readonly columns = new Map<string, Promise<Map<string, ColumnType>>>();
  private readonly log: Logger;

  constructor(private readonly config: AcmeSinkConfig, private readonly ctx: ConnectorContext) {
    this.log = ctx.log.child({ sink: 'acme' });
  }

  /** The shared client, opened on first use; one that failed to open is tried again next time. */
  private conn(): Promise<AcmeClient> {
    if (!this.client) {
      const opening = connectAcme(this.config.connection, `pipeline ${this.ctx.pipeline} target`);
      this.client = opening;
      opening.catch(() => {
        if (this.client === opening) this.client = undefined;
      });
    }
    return this.client;
  }

  async connect(): Promise<void> {
    await this.ping(); // retriable while the server is unreachable (the runtime waits), fatal on credentials
  }

  async writeBatch(batch: SinkRecord[]): Promise<WriteResult> {
    const client = await this.conn();
    const failed: FailedRecord[] = [];
    // Sweeps never reach writeBatch (the applier turns them into deletes); a truncate has an empty key.
    let pending = batch.filter((r) => r.op !== 'sweep');
    // Each round is one transaction; a round the server refuses applied nothing.
    for (let round = 0; pending.length > 0; round++) {
      try {
        await withDeadline(client.write(pending.map(toWrite)), this.config.timeoutMs, () => retriable('ACME_TIMEOUT', `${acmeWhere(this.config.connection)}: write of ${pending.length} records timed out`));
        return { failed };
      } catch (err) {
        if (!(err instanceof AcmeWriteError) || err.rejected.length === 0 || round > batch.length) throw classifyAcmeError(err, `pipeline ${this.ctx.pipeline}: write to ${acmeWhere(this.config.connection)}`);
        const refused = new Set(err.rejected.map((r) => r.index));
        for (const r of err.rejected) {
          const record = pending[r.index]!;
          failed.push({ record, error: refusal(record, r) });
          this.log.warn({ table: record.table, code: r.code, position: record.position }, 'sink.record.failed');
        }
        pending = pending.filter((_, i) => !refused.has(i));
      }
    }
    return { failed };
  }

  async readRows(table: string, keys: Row[]): Promise<Map<string, Row>> {
    const out = new Map<string, Row>();
    if (keys.length === 0) return out;
    const keyColumns = Object.keys(keys[0]!);
    // Matched by the key's text, answered under keyString of the key as given (its values may be typed
    // differently from the target's column: a bigint id read back from an int32 column).
    const asked = new Map(keys.map((k) => [keyText(keyColumns.map((c) => k[c] ?? null)), keyString(k)]));
    const client = await this.conn();
    const types = await this.types(client, table);
    let rows: Record<string, unknown>[];
    try {
      rows = await client.select(table, keyColumns, keys.map((k) => keyColumns.map((c) => k[c] ?? null))); // one round trip
    } catch (err) {
      throw classifyAcmeError(err, `pipeline ${this.ctx.pipeline}: read of ${table}`);
    }
    for (const raw of rows) {
      const row: Row = {};
      for (const [name, v] of Object.entries(raw)) row[name] = canonical(v, types.get(name) ?? { kind: 'text', pgType: 'text' });
      const ks = asked.get(keyText(keyColumns.map((c) => row[c] ?? null)));
      if (ks !== undefined) out.set(ks, row);
    }
    return out;
  }

  private types(client: AcmeClient, table: string): Promise<Map<string, ColumnType>> {
    let p = this.columns.get(table);
    if (!p) {
      const { schema, table: name } = parseTableName(table); // canonical names: never split at a dot
      p = client.tableInfo(schema, name).then((info) => new Map((info?.columns ?? []).map((c) => [c.name, columnType(c.type)])));
      this.columns.set(table, p);
      p.catch(() => this.columns.delete(table));
    }
    return p;
  }

  async ping(): Promise<void> {
    const client = await this.conn();
    await withDeadline(client.ping(), this.config.timeoutMs, () => retriable('ACME_TIMEOUT', `${acmeWhere(this.config.connection)}: no answer to ping`)).catch((err: unknown) => {
      throw classifyAcmeError(err, `pipeline ${this.ctx.pipeline} target`);
    });
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    await c?.then((x) => x.close()).catch(() => undefined);
  }
}

function toWrite(r: SinkRecord): AcmeWrite {
  if (r.op === 'upsert') return { table: r.table, op: 'upsert', key: r.key, values: r.values ?? {}, keep: r.keep };
  return { table: r.table, op: r.op === 'truncate' ? 'truncate' : 'delete', key: r.key };
}

function refusal(record: SinkRecord, r: { code: string; message: string; column?: string }): SynclineError {
  const e = poison(`ACME_${r.code}`, `${record.table} key ${keyString(record.key)}: ${r.message}`);
  if (r.column !== undefined) e.column = r.column; // dead letters carry it (header syncline.column)
  return e;
}

const keyText = (values: Value[]): string => values.map((v) => (v === null ? '\u0000' : Buffer.isBuffer(v) ? v.toString('hex') : String(v))).join('\u0001');
