/**
 * Operations on dead letters, shared by `syncline dlq …` and the HTTP API (/api/dlq):
 *   list / show          from the durable store (./store.ts)
 *   resolve source|target|merged   a conflict (the first open one of its key): the choice goes
 *                        through the normal sink path (Applier.settle: write, version state), then
 *                        the changes parked behind it are released in order (Applier.apply), and
 *                        the key is unparked when none is left
 *   requeue              invalid/failed: the original message goes back to its original topic and
 *                        partition (header syncline.requeued.from) and is processed again (a change
 *                        capture refused has none: refused with what to do instead);
 *                        conflict: its change is run through conflict resolution again (then the
 *                        release as above)
 *   discard              the change is dropped; for a conflict the target keeps its row, then the
 *                        release as above
 * Every action is appended to `<prefix>.dlq-actions.<pipeline>` with who and when before the call
 * returns, so the state survives restarts. Errors are DlqError with an HTTP status.
 */
import { pipelineCrypto } from '../security/crypto/pipeline.js';
import { maskPolicy, type MaskPolicy } from '../security/masking/policy.js';
import type { RedisClient } from '../core/redis.js';
import type { Logger } from 'pino';
import type { Row } from '../core/envelope.js';
import { changeTopicPrefix, type SynclineConfig } from '../core/config/schema.js';
import type { AvroCodec } from '../core/codec.js';
import type { KafkaClient } from '../core/kafka.js';
import { errorMessage } from '../core/errors.js';
import { parseTagged } from '../core/tagged-json.js';
import { cdcDecoder, topicMappings, type Decoder } from '../process/processor.js';
import type { TableMapping } from '../process/mapper.js';
import { applyTopicDecoder } from '../sink/apply-topic.js';
import type { Pending } from '../sink/applier.js';
import { interpretChoice } from '../sink/conflicts.js';
import { buildSinkParts, type SinkParts } from '../sink/build.js';
import { DlqStore, type DlqEntry, type DlqFilter } from './store.js';
import { HttpError } from '../core/errors.js';
import { audit } from '../security/audit/recorder.js';
import { readRanges, topicBounds } from '../core/topic-reader.js';

export class DlqError extends HttpError {}

export interface DlqDeps {
  config: SynclineConfig;
  kafka: KafkaClient;
  codec: AvroCodec;
  redis: RedisClient;
  log: Logger;
}

interface PipelineOps {
  store: DlqStore;
  parts?: SinkParts;
  decode?: Decoder;
  /** The tables' mappings the decoder runs (their custom transform workers are closed with the service). */
  mappings?: Map<string, TableMapping>;
}

export interface ActionResult {
  entry: DlqEntry;
  /** Later changes of the key released (applied or settled) after this action. */
  released: number;
  /** A released change met a new conflict: the key is parked behind it. */
  parkedBehind?: string;
}

export class DlqService {
  private readonly ops = new Map<string, PipelineOps>();
  /** What people may see of a dead letter's values (src/security/masking/policy.ts): the CLI and the API show entries through it. */
  readonly masking: MaskPolicy;

  constructor(private readonly d: DlqDeps) {
    this.masking = maskPolicy(d.config);
  }

  private pipelineNames(only?: string): string[] {
    const all = Object.keys(this.d.config.pipelines);
    if (only === undefined) return all;
    if (!all.includes(only)) throw new DlqError(404, `no pipeline '${only}' (have: ${all.join(', ')})`);
    return [only];
  }

  private opsOf(pipeline: string): PipelineOps {
    let o = this.ops.get(pipeline);
    if (!o) this.ops.set(pipeline, (o = { store: new DlqStore(this.d.kafka, this.d.config.topicPrefix, pipeline) }));
    return o;
  }

  /**
   * Start reading every pipeline's dead letters in the background (the runtime calls it at start
   * where the console is served, ADR 0037), so the first page does not wait for the whole topic.
   * A failure is logged; the next request reads again.
   */
  warm(only?: string): Promise<void> {
    return Promise.all(this.pipelineNames(only).map((name) => this.opsOf(name).store.load().then(
      () => undefined,
      (err: unknown) => this.d.log.warn({ pipeline: name, err: errorMessage(err) }, 'dlq.index.load_failed'),
    ))).then(() => undefined);
  }

  /** Read what was added to these pipelines' dead-letter topics (as list() does first); rejects with the first failure. */
  refresh(only?: string): Promise<void> {
    return Promise.all(this.pipelineNames(only).map((name) => this.opsOf(name).store.load())).then(() => undefined);
  }

  /**
   * How far the reading of these pipelines' dead letters is: `ready` once every first load finished;
   * `reading` while a load runs; read/total: dead letters read of those to read by the loads running.
   */
  loading(only?: string): { ready: boolean; reading: boolean; read: number; total: number } {
    let ready = true;
    let reading = false;
    let read = 0;
    let total = 0;
    for (const name of this.pipelineNames(only)) {
      const st = this.opsOf(name).store;
      ready &&= st.ready;
      if (st.reading || !st.ready) {
        reading ||= st.reading;
        read += st.progress.read;
        total += st.progress.total;
      }
    }
    return { ready, reading, read, total };
  }

  /** list() from what is read already (no read of the topics first): the console, which says when a read runs. */
  indexed(f: DlqFilter & { pipeline?: string }): DlqEntry[] {
    const out: DlqEntry[] = [];
    for (const name of this.pipelineNames(f.pipeline)) out.push(...this.opsOf(name).store.list({ ...f, limit: undefined }));
    out.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
    return f.limit !== undefined ? out.slice(0, f.limit) : out;
  }

  async list(f: DlqFilter & { pipeline?: string }): Promise<DlqEntry[]> {
    await this.refresh(f.pipeline);
    return this.indexed(f);
  }

  async show(id: string, pipeline?: string): Promise<DlqEntry> {
    for (const name of this.pipelineNames(pipeline)) {
      const e = (await this.opsOf(name).store.load()).get(id);
      if (e) return e;
    }
    throw new DlqError(404, `no dead letter '${id}'${pipeline ? ` in pipeline ${pipeline}` : ''}`);
  }

  private async open(id: string, pipeline?: string): Promise<{ e: DlqEntry; o: PipelineOps }> {
    const e = await this.show(id, pipeline);
    if (e.state !== 'open') {
      const last = e.history[e.history.length - 1];
      throw new DlqError(409, `dead letter ${id} is already ${e.state}${last ? ` (by ${last.by} at ${last.at})` : ''}`);
    }
    return { e, o: this.opsOf(e.pipeline) };
  }

  /** The conflict must be the first open one of its key (changes of a key are settled in order). */
  private firstOfKey(e: DlqEntry, o: PipelineOps): void {
    if (e.kind !== 'conflict' || !e.table || e.key === undefined) return;
    const first = o.store.openOfKey(e.table, e.key)[0];
    if (first && first.id !== e.id) throw new DlqError(409, `dead letter ${e.id} waits behind ${first.id} (same key ${e.table} ${e.key}); settle ${first.id} first`);
  }

  private async parts(pipeline: string): Promise<Required<PipelineOps>> {
    const o = this.opsOf(pipeline);
    if (!o.parts) {
      const p = this.d.config.pipelines[pipeline]!;
      o.parts = await buildSinkParts({ config: this.d.config, kafka: this.d.kafka, redis: this.d.redis }, pipeline, p, this.d.log.child({ pipeline, stage: 'dlq' }));
      o.mappings = topicMappings(changeTopicPrefix(this.d.config, p), p.tables, pipelineCrypto(this.d.config, pipeline));
      const cdc = cdcDecoder(this.d.codec, o.mappings);
      o.decode = (m, topic, partition) => (topic.includes('.apply.') ? applyTopicDecoder(m, topic, partition) : cdc(m, topic, partition));
    }
    return o as Required<PipelineOps>;
  }

  private async pendingOf(e: DlqEntry, o: Required<PipelineOps>): Promise<Pending> {
    if (!e.origin) throw new DlqError(422, `dead letter ${e.id} does not say where it came from (no syncline.original.topic header)`);
    const raw = await this.original(e);
    const msg = { key: raw.key, value: raw.value, offset: e.origin.offset, timestamp: '0', attributes: 0, headers: {} } as never;
    try {
      const d = await o.decode(msg, e.origin.topic, e.origin.partition);
      if (!Array.isArray(d)) return d;
      if (d.length === 1) return d[0]!;
      throw new Error(d.length === 0 ? "the table's transforms drop this change now" : `the table's transforms make ${d.length} changes of it`);
    } catch (err) {
      throw new DlqError(422, `dead letter ${e.id} cannot be decoded: ${errorMessage(err)}`);
    }
  }

  /**
   * The change of a letter: its own bytes, or, when the letter was too large for its topic and left the
   * change out (syncline.omitted), the message at its origin offset (while the topic retains it).
   */
  private async original(e: DlqEntry): Promise<{ key: Buffer | null; value: Buffer | null }> {
    if (!e.omitted?.includes('value') || !e.origin) return e.raw;
    const o = e.origin;
    const at = BigInt(o.offset);
    const gone = () => new DlqError(410, `dead letter ${e.id} left its change out (too large for the dead-letter topic), and ${o.topic}/${o.partition} no longer holds it at offset ${o.offset} (retention): re-emit the row from the source, then discard this letter`);
    const b = (await topicBounds(this.d.kafka, o.topic)).find((x) => x.partition === o.partition);
    if (!b || at < b.low || at >= b.high) throw gone();
    let found: { key: Buffer | null; value: Buffer | null } | undefined;
    await readRanges(this.d.kafka, [{ topic: o.topic, partition: o.partition, from: at, to: at + 1n }], async (_t, _p, msgs) => {
      const m = msgs.find((x) => x.offset === o.offset);
      if (m) found ??= { key: m.key, value: m.value };
    }, { groupPrefix: `${this.d.config.topicPrefix}.${e.pipeline}.dlq-origin` });
    if (!found) throw gone();
    return found;
  }

  async resolve(id: string, a: { choice: 'source' | 'target' | 'merged'; merged?: unknown; by: string; note?: string; pipeline?: string }): Promise<ActionResult> {
    return this.audited('dlq.resolve', id, a, { choice: a.choice, note: a.note }, () => this.doResolve(id, a));
  }

  async requeue(id: string, a: { by: string; pipeline?: string }): Promise<ActionResult> {
    return this.audited('dlq.requeue', id, a, {}, () => this.doRequeue(id, a));
  }

  async discard(id: string, a: { by: string; note?: string; pipeline?: string }): Promise<ActionResult> {
    return this.audited('dlq.discard', id, a, { note: a.note }, () => this.doDiscard(id, a));
  }

  /** An action in the audit trail (src/security/audit): ids, kind, table and counts; the note as a hash; a refusal with its status. */
  private async audited(action: string, id: string, a: { by: string; pipeline?: string }, details: Record<string, unknown>, fn: () => Promise<ActionResult>): Promise<ActionResult> {
    try {
      const r = await fn();
      const e = r.entry;
      audit.record({ actor: a.by, action, object: `dlq:${e.pipeline}/${id}`, details: { ...details, outcome: 'ok', pipeline: e.pipeline, kind: e.kind, table: e.table ?? null, state: e.state, released: r.released, parkedBehind: r.parkedBehind ?? null } });
      return r;
    } catch (err) {
      audit.record({ actor: a.by, action, object: `dlq:${a.pipeline ?? '?'}/${id}`, details: { ...details, outcome: 'failed', status: err instanceof HttpError ? err.status : null, code: (err as { code?: string }).code ?? null } });
      throw err;
    }
  }

  private async doResolve(id: string, a: { choice: 'source' | 'target' | 'merged'; merged?: unknown; by: string; note?: string; pipeline?: string }): Promise<ActionResult> {
    if (!['source', 'target', 'merged'].includes(a.choice)) throw new DlqError(400, `choice must be source, target or merged (got '${String(a.choice)}')`);
    const { e, o } = await this.open(id, a.pipeline);
    if (e.kind !== 'conflict') throw new DlqError(409, `dead letter ${id} is ${e.kind}, not a conflict: requeue or discard it`);
    this.firstOfKey(e, o);
    const ops = await this.parts(e.pipeline);
    const pending = await this.pendingOf(e, ops);
    let merged: Row | undefined;
    if (a.choice === 'merged') {
      if (a.merged === undefined) throw new DlqError(400, 'choice merged needs the merged record');
      let m: unknown = a.merged;
      if (typeof m === 'string') {
        try {
          m = parseTagged(m);
        } catch (err) {
          throw new DlqError(400, `merged record is not JSON: ${(err as Error).message}`);
        }
      }
      try {
        const c = interpretChoice({ merged: m }, { pipeline: e.pipeline, table: e.table!, op: 'upsert', key: pending.record.key, source: pending.record.values, target: null, lastSynced: null, position: e.position ?? '', sourceTsMs: 0 });
        if (c.kind !== 'merged') throw new Error('not a row');
        merged = { ...(pending.record.values ?? e.conflict?.target ?? {}), ...c.row };
        // Encrypted columns the operator gave in plaintext are sealed before the row is written or kept in the actions topic.
        merged = pipelineCrypto(this.d.config, e.pipeline)?.sealRow(e.table!, merged, pending.record.key) ?? merged;
      } catch (err) {
        throw new DlqError(400, `merged record: ${errorMessage(err)}`);
      }
    }
    const ok = await ops.parts.applier.settle(pending, a.choice, merged, a.by);
    if (!ok) throw new DlqError(502, `writing the ${a.choice} version of ${e.table} ${e.key} failed; it is dead-lettered as failed (see syncline dlq list --kind failed)`);
    await o.store.record({ id, action: 'resolved', by: a.by, choice: a.choice, merged: a.choice === 'merged' ? JSON.parse(JSON.stringify(merged, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))) : undefined, note: a.note });
    return this.release(e, ops, a.by);
  }

  private async doRequeue(id: string, a: { by: string; pipeline?: string }): Promise<ActionResult> {
    const { e, o } = await this.open(id, a.pipeline);
    if (e.kind !== 'conflict') {
      if (!e.origin) {
        // Capture's own letters: the change never reached a change topic, so there is nothing to send back.
        throw new DlqError(422, `dead letter ${id} has no original message to requeue (no syncline.original.topic header: capture refused the change before it reached a change topic). ` +
          `Fix the cause, re-emit the row from the source (e.g. UPDATE ${e.table ?? 'the table'} SET <column> = <column> WHERE <key> = ${e.key ?? '…'}), then discard this letter`);
      }
      const raw = await this.original(e);
      await this.d.kafka.send([{ topic: e.origin.topic, partition: e.origin.partition, key: raw.key, value: raw.value, headers: { 'syncline.requeued.from': id } }]);
      return { entry: (await o.store.record({ id, action: 'requeued', by: a.by, note: `sent back to ${e.origin.topic}/${e.origin.partition}` }), o.store.get(id)!), released: 0 };
    }
    this.firstOfKey(e, o);
    const ops = await this.parts(e.pipeline);
    await o.store.record({ id, action: 'requeued', by: a.by, note: 'conflict resolution run again' });
    // The change itself is the first to release: it goes through conflict resolution again.
    return this.release(e, ops, a.by, true);
  }

  private async doDiscard(id: string, a: { by: string; note?: string; pipeline?: string }): Promise<ActionResult> {
    const { e, o } = await this.open(id, a.pipeline);
    if (e.kind === 'conflict' && e.reason === 'conflict') {
      this.firstOfKey(e, o);
      const ops = await this.parts(e.pipeline);
      // The change is dropped: the target keeps its row, which becomes the key's synced state.
      await ops.parts.applier.settle(await this.pendingOf(e, ops), 'target', undefined, a.by);
      await o.store.record({ id, action: 'discarded', by: a.by, note: a.note });
      return this.release(e, ops, a.by);
    }
    await o.store.record({ id, action: 'discarded', by: a.by, note: a.note });
    if (e.kind === 'conflict' && e.table && e.key !== undefined) return this.release(e, await this.parts(e.pipeline), a.by);
    return { entry: o.store.get(id)!, released: 0 };
  }

  /**
   * Apply the open parked changes of the key of `e` in position order (through conflict resolution),
   * stop at the first that parks again (the key stays parked behind it), unpark when none is left.
   * `self`: `e` itself is run again first (requeue of a conflict).
   */
  private async release(e: DlqEntry, ops: Required<PipelineOps>, by: string, self = false): Promise<ActionResult> {
    const table = e.table!;
    const key = e.key!;
    const ck = table + '\u0000' + key;
    const { applier, state } = ops.parts;
    let released = 0;
    let parkedBehind: string | undefined;
    const queue: DlqEntry[] = self ? [e] : [];
    for (let round = 0; round < 1000; round++) {
      await ops.store.load();
      const open = ops.store.openOfKey(table, key);
      const next = queue.shift() ?? open[0];
      if (!next) {
        await state.unpark(table, key);
        // A change parked by a running sink while we released: take it too (it is newer).
        await new Promise((r) => setTimeout(r, 300));
        await ops.store.load();
        if (ops.store.openOfKey(table, key).length === 0) break;
        continue;
      }
      if (next !== e && next.reason === 'conflict') {
        parkedBehind = next.id;
        await state.setParked(table, key, next.id);
        break;
      }
      const pending = await this.pendingOf(next, ops);
      const r = await applier.apply([pending], { release: new Set([ck]), idSalt: `release:${next.id}:${Date.now()}` });
      if (next !== e) await ops.store.record({ id: next.id, action: 'requeued', by, note: `released after ${e.id} was settled` });
      released++;
      if (r.parked > 0) {
        await ops.store.load();
        const head = ops.store.openOfKey(table, key)[0];
        parkedBehind = head?.id;
        if (head) await state.setParked(table, key, head.id);
        break;
      }
    }
    return { entry: ops.store.get(e.id)!, released: self ? released - 1 : released, parkedBehind };
  }

  async close(): Promise<void> {
    for (const o of this.ops.values()) {
      await o.parts?.sink.close().catch(() => undefined);
      await Promise.allSettled([...(o.mappings?.values() ?? [])].map((m) => m.transform?.close()));
    }
  }
}
