/**
 * The backfill's window logic with the stream driven by hand (the real stack's runs are in
 * test/backfill.int.test.ts): a key changed between a chunk's low and high watermark leaves the
 * chunk; one changed before the low watermark does not; a truncate in the window drops the chunk;
 * progress and the durable state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { ChangeEvent, Row } from '../core/envelope.js';
import { Backfiller, backfillRecordKey, viewOf, type BackfillRecord } from './backfill.js';
import type { BackfillSupport, SourceTable } from './source.js';

const table: SourceTable = { schema: 'public', table: 't', key: ['id'], columns: [{ name: 'id', type: { kind: 'int64', pgType: 'bigint' } as never }, { name: 'v', type: { kind: 'string', pgType: 'text' } as never }] };
const at = { db: 'd', commitPos: '0/10', pos: '0/10', tsMs: 0 };
const change = (op: 'u' | 'd' | 't', id: bigint): ChangeEvent => ({
  op, before: op === 'd' ? { id } : null, after: op === 'u' ? { id, v: 'new' } : null,
  source: { db: 'd', schema: 'public', table: 't', pos: '0/1', commitPos: '0/1', txId: 1, tsMs: 0, snapshot: false, idx: 0 }, tsMs: 0, unchangedToast: [],
});

function harness(rows: Row[], log = pino({ level: 'silent' })) {
  const marks: string[] = [];
  let notify: (() => void) | undefined;
  const store = new Map<string, unknown>();
  const out: ChangeEvent[] = [];
  const support: BackfillSupport = {
    addedTables: true,
    async watermark(id) {
      marks.push(id);
      notify?.();
    },
    async signal() {},
    async chunk(_t, after, limit) {
      const from = after ? rows.findIndex((r) => (r.id as bigint) > BigInt(after[0]!)) : 0;
      const got = from < 0 ? [] : rows.slice(from, from + limit);
      return { rows: got, last: got.length > 0 ? [String(got[got.length - 1]!.id)] : null };
    },
    async count() {
      return rows.length;
    },
  };
  const bf = new Backfiller({
    pipeline: 'p', support, log,
    tables: () => new Map([['public.t', table]]),
    store: { async readRecord<T>(k: string) { return (store.get(k) as T) ?? null; }, async writeRecord(k, v) { store.set(k, structuredClone(v)); } },
    emit: async (e) => void out.push(e),
    produced: async () => undefined,
  });
  const next = async (kind: 'low' | 'high'): Promise<string> => {
    for (;;) {
      const m = marks.shift();
      if (m) {
        assert.match(m, new RegExp(`:${kind}:`));
        return m;
      }
      await new Promise<void>((r) => (notify = r));
    }
  };
  return { bf, out, store, next };
}

const rows = (n: number): Row[] => Array.from({ length: n }, (_, i) => ({ id: BigInt(i + 1), v: `v${i + 1}` }));

test('keys the stream changed inside the window leave the chunk; changes before the chunk began do not', async () => {
  const h = harness(rows(5));
  await h.bf.start();
  h.bf.observe(change('u', 1n)); // no chunk yet: nothing to drop
  const b = await h.bf.request({ table: 'public.t', chunkSize: 3 });
  assert.equal(b.total, 5);
  // chunk 1: id 2 updated inside the window, id 3 deleted inside it
  await h.bf.watermark(await h.next('low'), at);
  h.bf.observe(change('u', 2n));
  h.bf.observe(change('d', 3n));
  await h.bf.watermark('an-old-process:1:high:x', at); // another window's: ignored
  await h.bf.watermark(await h.next('high'), at);
  assert.deepEqual(h.out.map((e) => e.after!.id), [1n]);
  assert.ok(h.out.every((e) => e.op === 'r' && e.source.snapshot && e.source.commitPos === '0/10'));
  // chunk 2: id 4 changed before the low watermark reached the stream, but after the chunk began
  // (a commit not yet visible to the chunk's SELECT may be one of those): it leaves the chunk too
  const low2 = await h.next('low');
  h.bf.observe(change('u', 4n));
  await h.bf.watermark(low2, at);
  await h.bf.watermark(await h.next('high'), at);
  assert.deepEqual(h.out.map((e) => e.after!.id), [1n, 5n]);
  // chunk 2 read fewer rows than a chunk: done
  await new Promise((r) => setTimeout(r, 20));
  const v = h.bf.get(b.id);
  assert.equal(v.status, 'done');
  assert.equal(v.rows, 2);
  assert.equal(v.chunks, 2);
  assert.equal(v.percent, 100);
  assert.equal(h.bf.counters.backfillDropped, 3);
  const rec = h.store.get(backfillRecordKey('p')) as BackfillRecord;
  assert.equal(rec.backfills[0]!.status, 'done');
  assert.deepEqual(rec.backfills[0]!.last, ['5']);
  assert.deepEqual(rec.tables, ['public.t']);
  await h.bf.stop();
});

test('a truncate inside the window drops the whole chunk', async () => {
  const h = harness(rows(2));
  await h.bf.start();
  await h.bf.request({ table: 'public.t', chunkSize: 10 });
  await h.bf.watermark(await h.next('low'), at);
  h.bf.observe(change('t', 0n));
  await h.bf.watermark(await h.next('high'), at);
  assert.equal(h.out.length, 0);
  await h.bf.stop();
});

test('a table the pipeline does not capture, and a bad chunk size, are refused', async () => {
  const h = harness(rows(1));
  await h.bf.start();
  await assert.rejects(h.bf.request({ table: 'public.other' }), /does not capture table public\.other/);
  await assert.rejects(h.bf.request({ table: 'public.t', chunkSize: 0 }), /chunkSize/);
  await assert.rejects(h.bf.control('nope', 'pause'), /no backfill nope/);
  await h.bf.stop();
});

test('progress: percent and ETA from rows, total and time spent reading', () => {
  const v = viewOf({ id: 'x', table: 't', chunkSize: 10, status: 'running', last: null, chunks: 5, rows: 500, total: 2000, requestedAt: '', updatedAt: '', elapsedMs: 1000 });
  assert.equal(v.percent, 25);
  assert.equal(v.rowsPerSec, 500);
  assert.equal(v.etaSeconds, 3);
  assert.equal(viewOf({ ...v, elapsedMs: 0 }).etaSeconds, null);
});

test('a pause/cancel signal of a backfill that has ended (read again by a restarted capture) is ignored at info, not refused', async () => {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as { level: number; msg: string }) });
  const h = harness(rows(2), log);
  await h.bf.start();
  const b = await h.bf.request({ table: 'public.t', chunkSize: 10 });
  await h.bf.control(b.id, 'cancel');
  await h.bf.signal(JSON.stringify({ pipeline: 'p', op: 'cancel', id: b.id }));
  await h.bf.signal(JSON.stringify({ pipeline: 'p', op: 'pause', id: 'gone' }));
  await h.bf.signal(JSON.stringify({ pipeline: 'p', op: 'backfill', table: 'public.nope' })); // a bad request is still refused
  await h.bf.signal('{}'); // the chain ran the three above
  await new Promise((r) => setTimeout(r, 50));
  const ignored = lines.filter((l) => l.msg.startsWith('capture.backfill.signal.ignored'));
  assert.equal(ignored.length, 2);
  assert.ok(ignored.every((l) => l.level === 30));
  assert.deepEqual(lines.filter((l) => l.msg === 'capture.backfill.signal.refused').length, 1);
  await h.bf.stop();
});
