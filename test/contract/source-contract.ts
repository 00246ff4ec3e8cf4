/**
 * The source contract: what every source connector promises the pipeline (docs/reliability.md:
 * nothing lost, per-key order, the commit position as the total order), checked through the real
 * pipeline into a sink fixture (default: PostgreSQL, autoCreate). Capture runs as a child process
 * (`syncline capture`, killable with SIGKILL); the processor and sink run in this process.
 *
 * The writers keep a model of every key's history: each insert/update writes v = the key's previous
 * v + 1 (never reused, also across a delete and re-insert), a delete is 'D'. The change topic is
 * then read back and decoded, and each key's events are checked against its history (checkHistory):
 * a snapshot row at v=x followed by exactly the changes after x, or (no snapshot row) exactly the
 * last n changes with the row absent before them. That is "no gap, no duplicate, every key's change
 * count and last position" in one comparison, plus the final source and target states row for row.
 *
 * One pipeline, one table per check, run in order on the shared pipeline:
 *   1. snapshot + stream handoff under concurrent writes (writers running while capture starts)
 *   2. every declared type round-trips (snapshot rows and streamed insert/update)
 *   3. deletes (single, many in one transaction, delete + re-insert)
 *   4. per-key order: a burst of updates of one key
 *   5. kill -9 of capture mid-stream (three times), restarted: resumes without a gap
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import type { Row } from '../../src/core/envelope.js';
import type { Runtime } from '../../src/runtime.js';
import { sleep, soak, waitFor } from '../helpers.js';
import type { SinkFixture, SourceFixture, SourceSession, TableDef, WriteOp } from './fixtures.js';
import { canon, changeEvents, contractEnv, kill9, type ContractEnv, type TopicEvent } from './env.js';
import { postgresSink } from './postgres-fixtures.js';
import { rowDiff, typeRows } from './sink-contract.js';

const T = { handoff: 'cs_handoff', types: 'cs_types', churn: 'cs_churn', order: 'cs_order', kill: 'cs_kill' };

type Tok = number | 'D';

/**
 * Every key's history as the writers committed it. A transaction's changes are recorded only after
 * its commit returned (a writer owns its keys: no other session touches them).
 */
export class KeyModel {
  readonly hist = new Map<number, Tok[]>();
  private readonly v = new Map<number, number>();
  private readonly alive = new Set<number>();

  constructor(readonly table: string) {}

  isAlive(id: number): boolean {
    return this.alive.has(id);
  }

  /** The op that changes key `id` next (insert if absent, else update or — with `del` — delete), and its token. */
  next(id: number, del: boolean): { op: WriteOp; tok: Tok } {
    const v = (this.v.get(id) ?? 0) + 1;
    if (!this.alive.has(id)) return { op: { kind: 'insert', table: this.table, row: { id, v, note: `n${v}` } }, tok: v };
    if (del) return { op: { kind: 'delete', table: this.table, key: { id } }, tok: 'D' };
    return { op: { kind: 'update', table: this.table, key: { id }, set: { v, note: `n${v}` } }, tok: v };
  }

  /** Record a committed token. */
  commit(id: number, tok: Tok): void {
    if (tok === 'D') this.alive.delete(id);
    else {
      this.alive.add(id);
      this.v.set(id, tok);
    }
    const h = this.hist.get(id) ?? [];
    h.push(tok);
    this.hist.set(id, h);
  }

  /**
   * Plan the changes in order (a key changed twice in one transaction: the second sees the first)
   * and run them in one transaction. The model records them as it plans: a transaction that fails
   * throws and fails the test, so the model is only ever read when every transaction committed.
   */
  async run(s: SourceSession, changes: { id: number; del?: boolean }[]): Promise<void> {
    const ops = changes.map((c) => {
      const n = this.next(c.id, !!c.del);
      this.commit(c.id, n.tok);
      return n.op;
    });
    await s.transaction(ops);
  }
}

/**
 * Check one key's topic events against its committed history. Returns problems (empty: fine).
 * `redelivery`: a re-sent change (same position, same content) after a restart is allowed.
 */
export function checkHistory(id: number, expected: Tok[], events: TopicEvent[], redelivery: boolean): string[] {
  const p: string[] = [];
  const byPos = new Map<string, Tok>();
  const toks: { tok: Tok; snapshot: boolean }[] = [];
  let maxPos = '';
  const partitions = new Set(events.map((e) => e.partition));
  if (partitions.size > 1) p.push(`key ${id}: events on partitions ${[...partitions].join(',')} (per-key order needs one)`);
  for (const e of events) {
    const tok: Tok = e.op === 'd' ? 'D' : Number(e.after?.v);
    const seen = byPos.get(e.position);
    if (seen !== undefined) {
      if (seen !== tok) p.push(`key ${id}: two different changes at position ${e.position} (${seen} and ${tok})`);
      else if (!redelivery) p.push(`key ${id}: change ${tok} at ${e.position} sent twice`);
      continue;
    }
    if (e.position < maxPos) p.push(`key ${id}: change ${tok} at ${e.position} after ${maxPos} (out of order)`);
    maxPos = e.position > maxPos ? e.position : maxPos;
    byPos.set(e.position, tok);
    toks.push({ tok, snapshot: e.snapshot });
  }
  const got = toks.map((t) => t.tok);
  let want: Tok[];
  if (toks[0]?.snapshot) {
    const i = expected.indexOf(toks[0].tok);
    if (i < 0) return [...p, `key ${id}: snapshot row v=${toks[0].tok} was never written (history ${expected.join(' ')})`];
    want = [toks[0].tok, ...expected.slice(i + 1)];
  } else {
    const j = Math.max(0, expected.length - got.length);
    want = expected.slice(j);
    if (j > 0 && expected[j - 1] !== 'D') p.push(`key ${id}: row existed (v=${expected[j - 1]}) before its first streamed change but no snapshot row came (gap)`);
  }
  if (toks.slice(1).some((t) => t.snapshot)) p.push(`key ${id}: a snapshot row after the first event`);
  if (canon(got) !== canon(want)) p.push(`key ${id}: topic has ${got.join(' ')} — expected ${want.join(' ')} (history ${expected.join(' ')})`);
  return p;
}

export function sourceContract(source: SourceFixture, sink: SinkFixture = postgresSink): void {
  describe(`source contract: ${source.name} (into ${sink.name})`, { timeout: 300_000 }, () => {
    let env: ContractEnv;
    let consumer: Runtime;
    let capture: ChildProcess;
    const S = source.basicTypes;
    const workload = (name: string): TableDef => ({ name, columns: [['id', S.id], ['v', S.int], ['note', S.text]], key: ['id'] });
    const models = { handoff: new KeyModel(T.handoff), churn: new KeyModel(T.churn), order: new KeyModel(T.order), kill: new KeyModel(T.kill) };
    const types = typeRows(source.types, 1);

    const sameRows = async (table: string) => canon(await env.source.readAll(table, ['id'])) === canon(await env.target.readAll(table, ['id']));
    const converge = async (table: string, ms = 90_000) => {
      await waitFor(`${table}: source and target row for row`, () => sameRows(table), ms, 300);
    };
    /** Check the change topic of `model`'s table against the model: every key, plus no unknown key. */
    const checkTopic = async (model: KeyModel, redelivery: boolean): Promise<{ events: number }> => {
      const events = await changeEvents(env, env.source.qualified(model.table));
      const byKey = new Map<number, TopicEvent[]>();
      for (const e of events) {
        const id = Number(e.key.id);
        byKey.set(id, [...(byKey.get(id) ?? []), e]);
      }
      const problems: string[] = [];
      for (const [id, h] of model.hist) problems.push(...checkHistory(id, h, byKey.get(id) ?? [], redelivery));
      for (const id of byKey.keys()) if (!model.hist.has(id)) problems.push(`key ${id}: events for a key never written`);
      assert.deepEqual(problems.slice(0, 20), [], `${model.table}: ${problems.length} problems`);
      return { events: events.length };
    };

    before(async () => {
      env = await contractEnv({ source: (id) => source.createSource(id), target: (id) => sink.createTarget(id) }, Object.values(T));
      for (const t of [T.handoff, T.churn, T.order, T.kill]) await env.source.createTable(workload(t));
      await env.source.createTable({ name: T.types, columns: [['id', S.id], ...source.types.map((t): [string, string] => [t.column, t.sourceType])], key: ['id'] });
      // Target tables: left to the sink's autoCreate where it has it, else created with its basic types.
      if (!sink.autoCreate) {
        const B = sink.basicTypes;
        for (const t of [T.handoff, T.churn, T.order, T.kill]) await env.target.createTable({ name: t, columns: [['id', B.id], ['v', B.int], ['note', B.text]], key: ['id'] });
        await env.target.createTable({ name: T.types, columns: [['id', B.id], ...source.types.map((t): [string, string] => [t.column, t.targetType ?? t.sourceType])], key: ['id'] });
      }
      // Rows for the snapshot.
      const s = await env.source.session();
      try {
        for (let i = 0; i < 1000; i += 250) await models.handoff.run(s, Array.from({ length: 250 }, (_, k) => ({ id: i + k + 1 })));
        await models.churn.run(s, Array.from({ length: 100 }, (_, k) => ({ id: k + 1 })));
      } finally {
        await s.close();
      }
      await env.source.insertLiterals(T.types, types.literals);
      consumer = await env.start(['process', 'sink']);
    });

    after(async () => {
      await env?.cleanup();
    });

    // Catches: changes committed between the snapshot's read and the start of streaming lost (gap) or
    // delivered twice (in the snapshot and again streamed), a snapshot not taken at the slot's
    // consistent point, rows of the snapshot missing, and per-key position order broken at the seam.
    it('snapshot + stream handoff under concurrent writes: no gap, no duplicate', async () => {
      let writing = true;
      let txs = 0;
      const writers = Array.from({ length: 4 }, async (_, w) => {
        const s = await env.source.session();
        try {
          for (let i = 0; writing; i++) {
            // 5 distinct keys of this writer (key % 4 === w) among 1..1500: updates, deletes, inserts, re-inserts.
            const ids = new Set<number>();
            while (ids.size < 5) ids.add(4 * Math.floor(Math.random() * 375) + w + 1);
            await models.handoff.run(s, [...ids].map((id) => ({ id, del: Math.random() < 0.25 })));
            txs++;
          }
        } finally {
          await s.close();
        }
      });
      // Writers running before capture starts (until some transactions committed: a fixed 300 ms saw none on a loaded machine).
      await waitFor('the writers to commit before the start', async () => txs >= 10, 60_000, 20);
      const before = txs;
      capture = env.spawnCapture();
      await waitFor('the snapshot to arrive', async () => (await env.target.readAll(T.handoff, ['id'])).length > 500, 60_000, 200);
      await sleep(1500); // and keep writing while streaming
      writing = false;
      await Promise.all(writers);
      assert.ok(before > 0 && txs > before + 20, `writers ran before (${before}) and during (${txs - before}) the start`);
      await converge(T.handoff);
      const { events } = await checkTopic(models.handoff, false);
      console.log(`handoff: ${txs} transactions (${before} before capture started), ${events} change events`);
    });

    // Catches: a source type read lossily or into the wrong canonical form (numeric rounded, float
    // printed short, timestamps losing microseconds or shifted by a zone, bytes as text, array
    // elements or NULLs lost, emoji mangled), in the snapshot path or the streaming path.
    it('every declared type round-trips: snapshot and streamed insert/update, NULL', async () => {
      const streamed = typeRows(source.types, 101);
      await env.source.insertLiterals(T.types, streamed.literals);
      const cols = source.types.map((t) => t.column);
      const pick = <V>(r: Record<string, V>) => Object.fromEntries(cols.map((c) => [c, r[c]!]));
      const [l0, l1] = streamed.literals as [Record<string, string>, Record<string, string>];
      const lastL = streamed.literals[streamed.literals.length - 1]!;
      await env.source.updateLiterals(T.types, { id: l0.id! }, pick(l1));
      await env.source.updateLiterals(T.types, { id: lastL.id! }, pick(l0));
      const [e0, e1] = streamed.expected as [Row, Row];
      const expected = [...types.expected, ...streamed.expected.map((r, i, all) => (i === 0 ? { ...r, ...pick(e1) } : i === all.length - 1 ? { ...r, ...pick(e0) } : r))];
      // The fixture reads its own source as declared (else the comparison below proves nothing) …
      assert.deepEqual(rowDiff(expected, await env.source.readAll(T.types, ['id'])), [], 'the source reads back as declared');
      // … and the target receives exactly that.
      let last: string[] = [];
      await waitFor('the target reads back as declared', async () => {
        last = rowDiff(expected, await env.target.readAll(T.types, ['id']));
        return last.length === 0;
      }, 60_000, 500).catch((err: Error) => assert.fail(`${err.message}\n${last.slice(0, 20).join('\n')}`));
    });

    // Catches: deletes not captured, captured without their key, captured as something else, a
    // delete and re-insert in one transaction in the wrong order, deletes of snapshot rows lost.
    it('deletes: single, many in one transaction, delete + re-insert', async () => {
      const s = await env.source.session();
      try {
        for (let id = 1; id <= 20; id++) await models.churn.run(s, [{ id, del: true }]);
        await models.churn.run(s, Array.from({ length: 30 }, (_, k) => ({ id: 21 + k, del: true })));
        // Delete and re-insert in one transaction, and re-inserts of deleted keys later.
        await models.churn.run(s, Array.from({ length: 10 }, (_, k) => [{ id: 51 + k, del: true }, { id: 51 + k }]).flat());
        for (let id = 1; id <= 10; id++) await models.churn.run(s, [{ id }]);
        await models.churn.run(s, [{ id: 1, del: true }]);
      } finally {
        await s.close();
      }
      await converge(T.churn);
      const ids = (await env.target.readAll(T.churn, ['id'])).map((r) => Number(r.id));
      assert.deepEqual(ids, [...models.churn.hist.keys()].filter((id) => models.churn.isAlive(id)).sort((a, b) => a - b));
      assert.equal(ids.length, 100 - 50 + 9);
      await checkTopic(models.churn, false);
    });

    // Catches: changes of one key emitted out of commit order, or spread over partitions; changes
    // within one transaction reordered or collapsed (each must keep its own position).
    it('per-key order: a burst of updates of one key', async () => {
      const s = await env.source.session();
      try {
        await models.order.run(s, [{ id: 1 }]);
        for (let i = 0; i < 300; i++) await models.order.run(s, [{ id: 1 }]);
        const t = Array.from({ length: 100 }, () => ({ id: 1 }));
        await models.order.run(s, t); // 100 updates of one key in one transaction
      } finally {
        await s.close();
      }
      await converge(T.order);
      const row = (await env.target.readAll(T.order, ['id']))[0]!;
      assert.equal(Number(row.v), 401, 'the last value wins');
      await checkTopic(models.order, false);
      assert.equal(models.order.hist.get(1)!.length, 401);
    });

    // Catches: a source that, killed without warning, acknowledged positions it had not handed on
    // (a gap after the restart), or resumes from the wrong place (changes emitted in another order
    // or with other positions than before the kill).
    const kills = soak(1, 3);
    it(`kill -9 of capture mid-stream, restarted ${kills === 1 ? 'once' : `${kills} times`}: resumes without a gap`, async () => {
      let writing = true;
      const writers = Array.from({ length: 2 }, async (_, w) => {
        const s = await env.source.session();
        try {
          for (let i = 0; writing; i++) {
            const ids = new Set<number>();
            while (ids.size < 8) ids.add(2 * Math.floor(Math.random() * 300) + w + 1);
            await models.kill.run(s, [...ids].map((id) => ({ id, del: Math.random() < 0.2 })));
            if (i % 20 === 0) await sleep(5);
          }
        } finally {
          await s.close();
        }
      });
      for (let round = 1; round <= kills; round++) {
        // Progress: the sum of v over the target's rows grows with every change applied (the row count does not).
        const progress = async () => (await env.target.readAll(T.kill, ['id'])).reduce((n, r) => n + Number(r.v), 0);
        const n = await progress();
        await waitFor(`capture to stream some changes (round ${round})`, async () => (await progress()) > n + 200, 60_000, 100);
        await kill9(capture);
        await sleep(200);
        capture = env.spawnCapture();
      }
      await sleep(1000);
      writing = false;
      await Promise.all(writers);
      await converge(T.kill);
      const { events } = await checkTopic(models.kill, true);
      const changes = [...models.kill.hist.values()].reduce((n, h) => n + h.length, 0);
      assert.ok(changes > 300, `${changes} changes written`);
      console.log(`kill -9: ${changes} changes, ${events} events on the topic (${events - changes} re-sent after the kills)`);
    });
  });
}
