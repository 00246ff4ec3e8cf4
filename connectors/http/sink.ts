/**
 * HTTP API sink: every change becomes a request (or a part of a batched JSON array) to a REST-ish API.
 *
 * Lifecycle: owned by the sink stage of one pipeline; connect() pings, writeBatch() many times
 * (concurrently for batches of different Kafka partitions, whose keys never overlap), close().
 * Nothing is buffered across calls.
 *
 * Requests: method per operation (insert: a record without the `update` flag, i.e. inserts and
 * snapshot rows; update: `update: true`; delete; truncate when configured), URL from a template
 * ({table}, {key}, {key.<column>}), body the row as JSON (bigints within ±2^53 as numbers, larger
 * ones as strings; bytes as base64), headers from config, `Idempotency-Key: <position>/<hash of
 * table and key>` and optionally `X-Syncline-Signature: sha256=<HMAC-SHA256 of the body>`.
 *
 * Order and concurrency: the records of a batch are spread over `concurrency` lanes by a hash of
 * (table, key); a lane sends its records (or its chunks of up to batch.maxRecords) one request after
 * the other, so the changes of one key reach the server in order while other keys go in parallel.
 *
 * Failures (./errors.ts): 2xx is success; 429/408/5xx/network/timeout are retriable (Retry-After is
 * carried on the error as retryAfterMs, which the applier's retry policy waits instead of its own
 * backoff); 401/403 fatal (the process stops naming the URL); any other 4xx is poison: the record is
 * returned in `failed` with the status and the first KB of the response body, and the rest goes on.
 * On a fatal error or a 429 no lane starts another request; on another retriable error its lane
 * stops (the key's later changes wait) and the other lanes go on; the ones in flight finish, and the
 * error is thrown: the applier writes the whole batch again, every change with the same idempotency key
 * (a server that honours the key applies each change once).
 *
 * Crash/replay: requests are by key (PUT/DELETE are idempotent; a POST is made idempotent by the
 * server honouring Idempotency-Key). writeBatch returns only when every request not failed got a
 * 2xx.
 *
 * Unchanged TOAST columns (`keep`): a record that lacks columns is never sent as is. With `read`
 * configured the kept columns are filled from a GET of the server's current object (a missing
 * object or column: the record is dead-lettered as HTTP_UNCHANGED_COLUMNS); without it it is
 * dead-lettered at once with that code, naming the columns.
 *
 * Reads: the target's rows cannot be read back with their types, so conflict strategies other than
 * source-wins are refused at config load (registration `conflictStrategies`). readRows, which the
 * applier still calls to settle write intents after a crash and for replay's verification, answers
 * every key as present with unknown content ({}), which makes the applier write those changes again
 * rather than take them as done.
 */
import { createHash, createHmac } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import type { Logger } from 'pino';
import { setColumn, type Row, type Value } from '../../src/core/envelope.js';
import { poison, SynclineError } from '../../src/core/errors.js';
import type { ConnectorContext } from '../../src/core/registry.js';
import { keyString, type FailedRecord, type Sink, type SinkRecord, type WriteResult } from '../../src/sink/sink.js';
import { classifyResponse, classifyTransport } from './errors.js';
import type { HttpSinkConfig } from './spec.js';
import { fillUrl } from './template.js';

/** A row's values as JSON values (see the header). */
export function jsonValue(v: Value | undefined): unknown {
  if (v === undefined) return null;
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (Array.isArray(v)) return v.map(jsonValue);
  return v;
}

export function jsonRow(row: Row): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) setColumn(out, k, jsonValue(v));
  return out;
}

/** The idempotency key of one change: its position and a hash of its table and key. */
export function idempotencyKey(r: SinkRecord): string {
  return `${r.position}/${createHash('sha256').update(r.table).update('\0').update(keyString(r.key)).digest('hex').slice(0, 16)}`;
}

/** `sha256=<hex>` of the body under the secret. */
export function sign(secret: string, body: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
}

/** How the lanes of one writeBatch stop: the error to throw, and whether every lane stops. */
interface Stop {
  err: SynclineError | null;
  all: boolean;
  superseded: (r: SinkRecord) => boolean;
}

interface Request {
  method: string;
  url: string;
  body?: string;
  idem: string;
}

export class HttpSink implements Sink {
  /** Requests sent, by outcome. */
  readonly stats = { requests: 0, ok: 0, retriable: 0, poison: 0, fatal: 0 };
  private readonly log: Logger;
  private closed = false;

  constructor(
    private readonly cfg: HttpSinkConfig,
    ctx: ConnectorContext,
  ) {
    this.log = ctx.log;
  }

  async connect(): Promise<void> {
    await this.ping();
  }

  async ping(): Promise<void> {
    if (this.cfg.health) {
      try {
        const res = await fetch(this.cfg.health.url, { signal: AbortSignal.timeout(this.cfg.timeoutMs) });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status >= 500) throw classifyResponse(res.status, `http sink health ${this.cfg.health.url}`, res.headers.get('retry-after'), '');
      } catch (err) {
        throw classifyTransport(err, `http sink health ${this.cfg.health.url}`);
      }
      return;
    }
    const u = new URL(this.cfg.url.replace(/\{[^{}]*\}/g, 'x'));
    const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
    await new Promise<void>((resolve, reject) => {
      const s = netConnect({ host: u.hostname, port, timeout: this.cfg.timeoutMs });
      s.once('connect', () => (s.destroy(), resolve()));
      s.once('timeout', () => (s.destroy(), reject(classifyTransport(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }), `http sink ${u.host}`))));
      s.once('error', (err) => reject(classifyTransport(err, `http sink ${u.host}`)));
    });
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Every key reads as present with unknown content (see the header): whatever the applier verifies is written again. */
  async readRows(table: string, keys: Row[]): Promise<Map<string, Row>> {
    void table;
    return new Map(keys.map((k) => [keyString(k), {}]));
  }

  async writeBatch(batch: SinkRecord[]): Promise<WriteResult> {
    if (this.closed) throw new SynclineError('retriable', 'HTTP_SINK_CLOSED', 'http sink is closed');
    const failed: FailedRecord[] = [];
    const n = this.cfg.concurrency;
    const lanes: SinkRecord[][] = Array.from({ length: n }, () => []);
    for (const r of batch) {
      if (r.op === 'sweep') continue; // the applier turns end-of-snapshot markers into deletes itself
      // A truncate concerns every key: it runs in lane 0 after everything before it (the applier
      // splits batches at truncates, so nothing of the same batch follows it).
      const lane = r.op === 'truncate' ? 0 : laneOf(r, n);
      lanes[lane]!.push(r);
    }
    // Records a later record of the same key in this batch supersedes (see runSingle).
    const last = new Map<string, SinkRecord>();
    for (const r of batch) if (r.op === 'upsert' || r.op === 'delete') last.set(r.table + '\0' + keyString(r.key), r);
    const superseded = (r: SinkRecord) => last.get(r.table + '\0' + keyString(r.key)) !== r;
    const stop: Stop = { err: null, all: false, superseded };
    const run = this.cfg.batch.enabled ? (l: SinkRecord[]) => this.runBatched(l, failed, stop) : (l: SinkRecord[]) => this.runSingle(l, failed, stop);
    if (batch.some((r) => r.op === 'truncate')) {
      // Truncates go after the lanes' records that precede them (the applier sends a truncate alone).
      const others = lanes.map((l) => l.filter((r) => r.op !== 'truncate'));
      await Promise.all(others.map(run));
      if (!stop.err) await run(batch.filter((r) => r.op === 'truncate'));
    } else {
      await Promise.all(lanes.filter((l) => l.length > 0).map(run));
    }
    if (stop.err) throw stop.err;
    return { failed };
  }

  private note(stop: Stop, err: SynclineError): void {
    // A fatal error outranks a retriable one: the process must stop, not retry.
    if (!stop.err || (err.kind === 'fatal' && stop.err.kind !== 'fatal')) stop.err = err;
    // The batch is retried as a whole: it waits for the longest Retry-After any request was given.
    if (err.retryAfterMs !== undefined && stop.err.kind === 'retriable' && (stop.err.retryAfterMs ?? -1) < err.retryAfterMs) stop.err.retryAfterMs = err.retryAfterMs;
    // Fatal, or the server asks to slow down (429): no lane starts another request. Any other
    // retriable error stops its own lane only (the key's later changes must wait), the other lanes
    // go on, so each retry of the batch gets further.
    if (err.kind === 'fatal' || err.code === 'HTTP_429') stop.all = true;
  }

  private async runSingle(lane: SinkRecord[], failed: FailedRecord[], stop: Stop): Promise<void> {
    for (const r of lane) {
      if (stop.all) return;
      try {
        await this.send(await this.requestOf(r));
      } catch (err) {
        const e = err instanceof SynclineError ? err : classifyTransport(err, `http sink ${r.table}`);
        // An update with unchanged columns whose object is gone, followed by a later change of the
        // key in this batch: that change decides the object (on a retried batch, typically its
        // delete was already sent), so the update is passed over rather than dead-lettered.
        if (e.code === 'HTTP_UNCHANGED_COLUMNS' && stop.superseded(r)) continue;
        if (e.kind === 'poison') failed.push({ record: r, error: e });
        else return this.note(stop, e);
      }
    }
  }

  private async runBatched(lane: SinkRecord[], failed: FailedRecord[], stop: Stop): Promise<void> {
    const size = this.cfg.batch.maxRecords;
    // The last full row of each key in this lane, to fill kept columns of a later change of the key
    // whose earlier change is not at the server yet (same chunk).
    const prior = new Map<string, Record<string, unknown> | null>();
    for (let i = 0; i < lane.length; i += size) {
      if (stop.all) return;
      const chunk: { r: SinkRecord; item: unknown }[] = [];
      for (const r of lane.slice(i, i + size)) {
        try {
          chunk.push({ r, item: await this.itemOf(r, prior) });
        } catch (err) {
          const e = err instanceof SynclineError ? err : classifyTransport(err, `http sink ${r.table}`);
          if (e.code === 'HTTP_UNCHANGED_COLUMNS' && stop.superseded(r)) continue;
          if (e.kind === 'poison') failed.push({ record: r, error: e });
          else return this.note(stop, e);
        }
      }
      if (chunk.length === 0) continue;
      try {
        await this.send(this.batchRequest(chunk));
      } catch (err) {
        const e = err instanceof SynclineError ? err : classifyTransport(err, `http sink batch`);
        if (e.kind !== 'poison') return this.note(stop, e);
        if (chunk.length === 1) {
          failed.push({ record: chunk[0]!.r, error: e });
          continue;
        }
        // Refused as a whole: each change alone, in order, so only the refused ones fail.
        for (const c of chunk) {
          if (stop.all) return;
          try {
            await this.send(this.batchRequest([c]));
          } catch (err2) {
            const e2 = err2 instanceof SynclineError ? err2 : classifyTransport(err2, `http sink batch`);
            if (e2.kind === 'poison') failed.push({ record: c.r, error: e2 });
            else return this.note(stop, e2);
          }
        }
      }
    }
  }

  private batchRequest(chunk: { r: SinkRecord; item: unknown }[]): Request {
    const idem = chunk.length === 1 ? idempotencyKey(chunk[0]!.r) : 'batch/' + createHash('sha256').update(chunk.map((c) => idempotencyKey(c.r)).join('\n')).digest('hex').slice(0, 32);
    return { method: 'POST', url: this.cfg.batch.url!, body: JSON.stringify(chunk.map((c) => c.item)), idem };
  }

  /** One change as an element of a batched array. */
  private async itemOf(r: SinkRecord, prior: Map<string, Record<string, unknown> | null>): Promise<unknown> {
    const values = r.op === 'upsert' ? await this.wholeRow(r, prior.get(r.table + '\0' + keyString(r.key))) : null;
    if (r.op === 'upsert' || r.op === 'delete') prior.set(r.table + '\0' + keyString(r.key), values);
    const op = r.op === 'upsert' ? (r.update ? 'update' : 'insert') : r.op;
    return { op, table: r.table, key: jsonRow(r.key), values, position: r.position, idempotencyKey: idempotencyKey(r) };
  }

  /** The request of one change. */
  private async requestOf(r: SinkRecord): Promise<Request> {
    const idem = idempotencyKey(r);
    const ops = this.cfg.operations;
    switch (r.op) {
      case 'upsert': {
        const o = r.update ? ops.update : ops.insert;
        return { method: o.method, url: fillUrl(o.url ?? this.cfg.url, r.table, r.key), body: JSON.stringify(await this.wholeRow(r)), idem };
      }
      case 'delete':
        return { method: ops.delete.method, url: fillUrl(ops.delete.url ?? this.cfg.url, r.table, r.key), idem };
      case 'truncate':
        if (!ops.truncate) throw poison('HTTP_TRUNCATE_UNSUPPORTED', `truncate of ${r.table}: the http target has no operations.truncate configured; the target's objects were left as they are`);
        return { method: ops.truncate.method, url: fillUrl(ops.truncate.url, r.table, {}), idem };
      default:
        throw poison('HTTP_UNSUPPORTED_OP', `http sink: no request for a ${r.op} record of ${r.table}`);
    }
  }

  /**
   * The record's full row as JSON: never with a column missing. Kept columns (unchanged TOAST) are
   * filled from the server's current object when `read` is configured, otherwise the record fails.
   */
  private async wholeRow(r: SinkRecord, prior?: Record<string, unknown> | null): Promise<Record<string, unknown>> {
    const row = jsonRow(r.values ?? {});
    if (r.keep.length === 0) return row;
    const what = `${r.table} key ${keyString(r.key)}`;
    if (prior && r.keep.every((c) => Object.hasOwn(prior, c))) {
      for (const c of r.keep) setColumn(row, c, prior[c]);
      return row;
    }
    if (!this.cfg.read) {
      throw poison('HTTP_UNCHANGED_COLUMNS', `update of ${what} left columns ${r.keep.join(', ')} unchanged (PostgreSQL TOAST) and carries no value for them; the http target has no read.url to fetch them from, so it is not sent with them missing (set REPLICA IDENTITY FULL on the source table, or configure read.url)`);
    }
    const url = fillUrl(this.cfg.read.url, r.table, r.key);
    const current = await this.getJson(url);
    const missing = r.keep.filter((c) => current === null || !Object.hasOwn(current, c));
    if (missing.length > 0) {
      throw poison('HTTP_UNCHANGED_COLUMNS', `update of ${what} left columns ${r.keep.join(', ')} unchanged (PostgreSQL TOAST); GET ${url} ${current === null ? 'found no object' : `has no ${missing.join(', ')}`} to fill them from`);
    }
    for (const c of r.keep) setColumn(row, c, current![c]);
    return row;
  }

  private async getJson(url: string): Promise<Record<string, unknown> | null> {
    let res: Response;
    try {
      res = await fetch(url, { headers: this.cfg.headers, signal: AbortSignal.timeout(this.cfg.timeoutMs) });
    } catch (err) {
      throw classifyTransport(err, `http sink GET ${url}`);
    }
    const text = await res.text().catch(() => '');
    if (res.status === 404 || res.status === 410) return null;
    if (res.status < 200 || res.status >= 300) throw classifyResponse(res.status, `http sink GET ${url}`, res.headers.get('retry-after'), text);
    try {
      const v = JSON.parse(text) as unknown;
      return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
    } catch {
      throw poison('HTTP_READ_NOT_JSON', `http sink GET ${url}: the answer is not a JSON object: ${text.slice(0, 200)}`);
    }
  }

  private async send(req: Request): Promise<void> {
    const headers: Record<string, string> = { ...this.cfg.headers, [this.cfg.idempotencyHeader]: req.idem };
    if (req.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      if (this.cfg.signature) headers[this.cfg.signature.header] = sign(this.cfg.signature.secret, req.body);
    }
    const context = `http sink ${req.method} ${req.url}`;
    this.stats.requests++;
    let res: Response;
    try {
      res = await fetch(req.url, { method: req.method, headers, body: req.body, signal: AbortSignal.timeout(this.cfg.timeoutMs) });
    } catch (err) {
      this.stats.retriable++;
      throw classifyTransport(err, context);
    }
    const text = await res.text().catch(() => '');
    if (res.status >= 200 && res.status < 300) {
      this.stats.ok++;
      return;
    }
    const e = classifyResponse(res.status, context, res.headers.get('retry-after'), text);
    this.stats[e.kind]++;
    if (e.kind !== 'poison') this.log.warn({ status: res.status, url: req.url, code: e.code, retryAfterMs: e.retryAfterMs }, 'sink.http.refused');
    throw e;
  }
}

/** Lane of a record: a hash of its table and key. */
export function laneOf(r: SinkRecord, n: number): number {
  if (n === 1) return 0;
  const s = r.table + '\0' + keyString(r.key);
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0) % n;
}
