/**
 * The sink contract: what every sink connector promises the pipeline (docs/adding-a-connector.md,
 * docs/reliability.md), checked through the real pipeline — the PostgreSQL source fixture feeds it
 * (logical replication → Avro/registry → Kafka → processor → the sink under test), with Redis
 * version state, all in-process (capture runtime + process/sink runtime, so the sink side can be
 * stopped alone).
 *
 * One pipeline, one table per check, the checks run in order and share the running pipeline (a
 * pipeline start costs seconds; the last check replays everything the earlier ones wrote):
 *   1. every declared type round-trips (snapshot, streamed insert, update; NULLs; autoCreate'd table)
 *   2. deletes and re-inserts of the same key
 *   3. per-key order: a burst of updates of one key, the final value wins
 *   4. a rejected record is dead-lettered with its code while the other records flow
 *   5. redelivery is a no-op: the sink side stopped mid-stream and restarted, then the processor
 *      group reset to the earliest offset: nothing applied, no row rewritten, the target unchanged
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Row, Value } from '../../src/core/envelope.js';
import type { Runtime } from '../../src/runtime.js';
import { sleep, waitFor } from '../helpers.js';
import type { SinkFixture, SourceFixture, TableDef, TypeCase } from './fixtures.js';
import { canon, changeMessages, contractEnv, deadLetters, resetProcessorGroup, stat, type ContractEnv } from './env.js';
import { postgresSource } from './postgres-fixtures.js';

const T = { types: 'ct_types', typesAuto: 'ct_types_auto', churn: 'ct_churn', order: 'ct_order', reject: 'ct_reject', redeliver: 'ct_redeliver' };

/** Rows of the types table: row i holds sample i of every type (NULL where a type has fewer), then one all-NULL row. */
export function typeRows(types: TypeCase[], firstId: number): { literals: Record<string, string>[]; expected: Row[] } {
  const n = Math.max(...types.map((t) => t.samples.length));
  const literals: Record<string, string>[] = [];
  const expected: Row[] = [];
  for (let i = 0; i <= n; i++) {
    const lit: Record<string, string> = { id: String(firstId + i) };
    const exp: Row = { id: firstId + i };
    for (const t of types) {
      const s = i < n ? t.samples[i] : undefined;
      lit[t.column] = s ? s.literal : 'NULL';
      exp[t.column] = s ? s.expect : null;
    }
    literals.push(lit);
    expected.push(exp);
  }
  return { literals, expected };
}

/** Column-by-column differences between expected and actual rows (keyed by id), for messages. */
export function rowDiff(expected: Row[], actual: Row[], idCol = 'id'): string[] {
  const key = (r: Row) => canon(r[idCol]).replace(/\{"\$n":"(-?\d+)"\}/, '$1');
  const got = new Map(actual.map((r) => [key(r), r]));
  const out: string[] = [];
  for (const e of expected) {
    const a = got.get(key(e));
    got.delete(key(e));
    if (!a) {
      out.push(`${idCol}=${key(e)} missing`);
      continue;
    }
    for (const [c, v] of Object.entries(e)) {
      if (c === idCol) continue;
      if (canon(a[c] ?? null) !== canon(v)) out.push(`${idCol}=${key(e)} ${c}: expected ${canon(v)}, got ${canon(a[c] ?? null)}`);
    }
  }
  for (const k of got.keys()) out.push(`${idCol}=${k} unexpected`);
  return out;
}

/** Key values as the fixtures read them (bigint ids) compared to the numbers the workload wrote. */
const idsOf = (rows: Row[]) => rows.map((r) => Number(r.id as Value as bigint));

export function sinkContract(sink: SinkFixture, feed: SourceFixture = postgresSource): void {
  describe(`sink contract: ${sink.name} (fed by ${feed.name})`, { timeout: 300_000 }, () => {
    let env: ContractEnv;
    let capture: Runtime;
    let consumer: Runtime;
    const B = sink.basicTypes;
    const S = feed.basicTypes;
    const workload = (name: string, src: boolean): TableDef => {
      const b = src ? S : B;
      return { name, columns: [['id', b.id], ['v', b.int], ['note', b.text]], key: ['id'] };
    };
    const sameRows = async (table: string) => canon(await env.source.readAll(table, ['id'])) === canon(await env.target.readAll(table, ['id']));
    const types = typeRows(sink.types, 1);

    before(async () => {
      const tables = [T.types, T.churn, T.order, T.reject, T.redeliver, ...(sink.autoCreate ? [T.typesAuto] : [])];
      env = await contractEnv({ source: (id) => feed.createSource(id), target: (id) => sink.createTarget(id) }, tables);
      // The types table: the source with the declared source types, the target with the sink's own.
      const typesDef = (target: boolean, name: string): TableDef => ({
        name,
        columns: [['id', target ? B.id : S.id], ...sink.types.map((t): [string, string] => [t.column, target ? (t.targetType ?? t.sourceType) : t.sourceType])],
        key: ['id'],
      });
      await env.source.createTable(typesDef(false, T.types));
      await env.target.createTable(typesDef(true, T.types));
      if (sink.autoCreate) await env.source.createTable(typesDef(false, T.typesAuto)); // target: created by the sink
      for (const t of [T.churn, T.order, T.redeliver]) {
        await env.source.createTable(workload(t, true));
        await env.target.createTable(workload(t, false));
      }
      const r = sink.rejected;
      await env.source.createTable({ name: T.reject, columns: [['id', S.id], ['val', r.sourceType]], key: ['id'] });
      await env.target.createTable({ name: T.reject, columns: [['id', B.id], ['val', r.targetType]], key: ['id'], constraints: r.constraints?.('val') });

      // Snapshot rows: the types rows go through the initial snapshot.
      await env.source.insertLiterals(T.types, types.literals);
      if (sink.autoCreate) await env.source.insertLiterals(T.typesAuto, types.literals);
      capture = await env.start(['capture']);
      consumer = await env.start(['process', 'sink']);
    });

    after(async () => {
      await env?.cleanup();
    });

    // Catches: a type the sink writes lossily (rounded numeric, truncated microseconds, time zone
    // shift, emoji mangled, bytes as text, NULL as '' or 0, array elements reordered or NULLs lost),
    // in the snapshot path, the streamed insert path or the update path; and for autoCreate, a
    // column created with a type that cannot hold the value.
    it('every declared type round-trips: snapshot, streamed insert, update, NULL', async () => {
      const streamed = typeRows(sink.types, 101);
      await env.source.insertLiterals(T.types, streamed.literals);
      if (sink.autoCreate) await env.source.insertLiterals(T.typesAuto, streamed.literals);
      // Updates of every column: row 101 takes sample 1, row 102 the NULLs, the all-NULL row sample 0.
      const [l0, l1] = streamed.literals as [Record<string, string>, Record<string, string>, ...Record<string, string>[]];
      const [e0, e1] = streamed.expected as [Row, Row, ...Row[]];
      const lastL = streamed.literals[streamed.literals.length - 1]!;
      const lastE = streamed.expected[streamed.expected.length - 1]!;
      const cols = sink.types.map((t) => t.column);
      const pick = <V>(r: Record<string, V>) => Object.fromEntries(cols.map((c) => [c, r[c]!]));
      for (const table of sink.autoCreate ? [T.types, T.typesAuto] : [T.types]) {
        await env.source.updateLiterals(table, { id: l0.id! }, pick(l1));
        await env.source.updateLiterals(table, { id: l1.id! }, pick(lastL));
        await env.source.updateLiterals(table, { id: lastL.id! }, pick(l0));
      }
      const updated = streamed.expected.map((r, i, all) => {
        if (i === 0) return { ...r, ...pick(e1) };
        if (i === 1) return { ...r, ...pick(lastE) };
        if (i === all.length - 1) return { ...r, ...pick(e0) };
        return r;
      });
      const expected = [...types.expected, ...updated];
      for (const table of sink.autoCreate ? [T.types, T.typesAuto] : [T.types]) {
        let last: string[] = [];
        await waitFor(`${table}: every type read back as declared`, async () => {
          last = rowDiff(expected, await env.target.readAll(table, ['id']));
          return last.length === 0;
        }, 60_000, 500).catch((err: Error) => assert.fail(`${err.message}\n${last.slice(0, 20).join('\n')}`));
      }
    });

    // Catches: deletes not applied, a re-insert after a delete skipped as stale or as "unchanged"
    // (the state still remembering the old row), a delete and re-insert within one transaction
    // collapsed the wrong way, a delete applied after the later insert.
    it('deletes and re-inserts of the same key', async () => {
      const s = await env.source.session();
      try {
        const keys = Array.from({ length: 60 }, (_, i) => i + 1);
        await s.transaction(keys.map((id) => ({ kind: 'insert', table: T.churn, row: { id, v: 1, note: 'first' } })));
        await waitFor('first inserts', async () => (await env.target.readAll(T.churn, ['id'])).length === 60, 60_000);
        // Separate transactions: delete, re-insert with the same values (an "unchanged" re-insert), delete again, re-insert changed.
        for (const id of keys) await s.transaction([{ kind: 'delete', table: T.churn, key: { id } }]);
        for (const id of keys) await s.transaction([{ kind: 'insert', table: T.churn, row: { id, v: 1, note: 'first' } }]);
        for (const id of keys.filter((k) => k % 2 === 0)) await s.transaction([{ kind: 'delete', table: T.churn, key: { id } }]);
        for (const id of keys.filter((k) => k % 4 === 0)) await s.transaction([{ kind: 'insert', table: T.churn, row: { id, v: 2, note: 'again' } }]);
        // One transaction: delete, insert, delete, insert of the same keys (the last insert wins) …
        await s.transaction(keys.filter((k) => k % 3 === 0).flatMap((id) => [
          { kind: 'delete' as const, table: T.churn, key: { id } },
          { kind: 'insert' as const, table: T.churn, row: { id, v: 3, note: 'tx' } },
          { kind: 'delete' as const, table: T.churn, key: { id } },
          { kind: 'insert' as const, table: T.churn, row: { id, v: 4, note: 'tx last' } },
        ]));
        // … and keys that end deleted within one transaction.
        await s.transaction(keys.filter((k) => k % 5 === 0).flatMap((id) => [
          { kind: 'update' as const, table: T.churn, key: { id }, set: { v: 5 } },
          { kind: 'delete' as const, table: T.churn, key: { id } },
        ]));
      } finally {
        await s.close();
      }
      await waitFor('churn converged', () => sameRows(T.churn), 60_000, 300);
      const ids = idsOf(await env.target.readAll(T.churn, ['id']));
      const want = Array.from({ length: 60 }, (_, i) => i + 1).filter((k) => k % 5 !== 0 && (k % 2 === 1 || k % 4 === 0 || k % 3 === 0));
      assert.deepEqual(ids, want, 'the keys alive on the target are exactly the ones alive on the source');
      const rows = await env.target.readAll(T.churn, ['id']);
      assert.ok(rows.filter((r) => Number(r.id) % 3 === 0).every((r) => r.note === 'tx last'), 'the last insert of one transaction wins');
    });

    // Catches: records of one key applied out of order (parallel writes per key, a batch collapsing
    // to the wrong record, a partitioner not keyed by the row key, a stale check that lets an older
    // record overwrite a newer one).
    it('per-key order: a burst of updates of one key, the final value wins', async () => {
      await env.source.session().then(async (s) => {
        await s.transaction([{ kind: 'insert', table: T.order, row: { id: 1, v: 0, note: 'hot' } }, ...Array.from({ length: 20 }, (_, i) => ({ kind: 'insert' as const, table: T.order, row: { id: i + 2, v: 0, note: 'warm' } }))]);
        await s.close();
      });
      // One hot key: 400 single-update transactions back to back, then 100 updates in one transaction;
      // meanwhile 4 sessions update 5 keys each, 60 times, interleaved.
      const hot = (async () => {
        const s = await env.source.session();
        try {
          for (let v = 1; v <= 400; v++) await s.transaction([{ kind: 'update', table: T.order, key: { id: 1 }, set: { v, note: `hot ${v}` } }]);
          await s.transaction(Array.from({ length: 100 }, (_, i) => ({ kind: 'update' as const, table: T.order, key: { id: 1 }, set: { v: 401 + i, note: `hot ${401 + i}` } })));
        } finally {
          await s.close();
        }
      })();
      const warm = Array.from({ length: 4 }, async (_, w) => {
        const s = await env.source.session();
        try {
          for (let v = 1; v <= 60; v++) await s.transaction(Array.from({ length: 5 }, (_, k) => ({ kind: 'update' as const, table: T.order, key: { id: 2 + w * 5 + k }, set: { v, note: `warm ${v}` } })));
        } finally {
          await s.close();
        }
      });
      await Promise.all([hot, ...warm]);
      await waitFor('order converged', () => sameRows(T.order), 60_000, 300);
      const rows = await env.target.readAll(T.order, ['id']);
      assert.equal(Number(rows[0]!.v), 500, 'the hot key holds its last value');
      assert.equal(rows[0]!.note, 'hot 500');
      assert.ok(rows.slice(1).every((r) => Number(r.v) === 60), 'every warm key holds its last value');
    });

    // Catches: a rejected record that stops the pipeline or its partition (the poison-message loop),
    // that is dropped silently (no dead letter), dead-lettered without its error code, or that takes
    // good records of the same batch down with it.
    it('a rejected record is dead-lettered with its code; the other records flow', async () => {
      const r = sink.rejected;
      const rows = Array.from({ length: 40 }, (_, i) => ({ id: String(i + 1), val: i + 1 === 21 ? r.bad : r.good }));
      // All in one statement per row, back to back: the bad record is in the middle of a batch.
      await env.source.insertLiterals(T.reject, rows);
      await waitFor('the 39 good rows', async () => (await env.target.readAll(T.reject, ['id'])).length === 39, 60_000, 300);
      const letters = await waitFor('the dead letter', async () => {
        const l = (await deadLetters(env)).filter((e) => e.table?.endsWith(T.reject));
        return l.length > 0 ? l : undefined;
      }, 30_000, 500);
      assert.equal(letters.length, 1, `one dead letter: ${JSON.stringify(letters.map((l) => [l.key, l.errorCode, l.errorMessage]))}`);
      const l = letters[0]!;
      assert.equal(l.errorCode, r.code, `error code (${r.why}): ${l.errorMessage}`);
      assert.equal(l.kind, 'failed');
      assert.deepEqual((JSON.parse(l.key ?? '[]') as unknown[]).map(String), ['21'], 'the dead letter names its key');
      assert.ok(l.errorMessage.length > 0, 'the reason is given');
      assert.ok(l.origin?.topic, 'the original topic is named');
      assert.deepEqual(idsOf(await env.target.readAll(T.reject, ['id'])), rows.map((x) => Number(x.id)).filter((id) => id !== 21));
      assert.equal(stat(consumer, 'deadLettered'), 1);
      // The pipeline still flows after it.
      await env.source.insertLiterals(T.reject, [{ id: '41', val: r.good }]);
      await waitFor('a row after the dead letter', async () => (await env.target.readAll(T.reject, ['id'])).length === 40, 30_000, 300);
    });

    // Catches: a sink side that, stopped mid-stream and restarted, loses what was in flight or
    // writes it twice with a visible effect; and a redelivery (consumer group reset: every change
    // delivered again) that applies anything, rewrites a row (write marks, where the target has
    // them) or changes the target's content.
    it('redelivery is a no-op: stopped mid-stream and restarted, then every change delivered again', async () => {
      const s = await env.source.session();
      let writing = true;
      const writer = (async () => {
        try {
          for (let i = 0; writing || i < 60; i++) {
            await s.transaction([
              ...Array.from({ length: 10 }, (_, k) => ({ kind: 'insert' as const, table: T.redeliver, row: { id: i * 10 + k + 1, v: 1, note: 'r' } })),
              { kind: 'update', table: T.redeliver, key: { id: i * 10 + 1 }, set: { v: 2 } },
              ...(i > 0 ? [{ kind: 'delete' as const, table: T.redeliver, key: { id: i * 10 - 1 } }] : []),
            ]);
            if (i % 5 === 0) await sleep(10);
          }
        } finally {
          await s.close();
        }
      })();
      await waitFor('some rows to arrive', async () => (await env.target.readAll(T.redeliver, ['id'])).length > 100, 60_000, 100);
      const tStop = Date.now();
      await consumer.stop(); // mid-stream: the writer is still writing
      const tStopped = Date.now();
      const appliedBeforeStop = stat(consumer, 'applied');
      await sleep(500);
      consumer = await env.start(['process', 'sink']);
      writing = false;
      await writer;
      await waitFor('redeliver converged after the restart', () => sameRows(T.redeliver), 60_000, 300);
      console.log(`mid-stream stop: ${tStopped - tStop} ms, restart and converge ${Date.now() - tStopped} ms`);
      assert.ok(appliedBeforeStop > 0);

      // Everything delivered again: the whole pipeline, every table of the earlier checks too.
      const all = [T.types, T.churn, T.order, T.reject, T.redeliver, ...(sink.autoCreate ? [T.typesAuto] : [])];
      const snapshot = async () => {
        const out: Record<string, string> = {};
        for (const t of all) out[t] = canon(await env.target.readAll(t, ['id']));
        return out;
      };
      const marks = async () => {
        const out: Record<string, string> = {};
        if (env.target.writeMarks) for (const t of all) out[t] = canon([...(await env.target.writeMarks(t, ['id']))].sort());
        return out;
      };
      await sleep(1000); // let the last batches commit their offsets
      const [before, marksBefore] = [await snapshot(), await marks()];
      await consumer.stop();
      const qualified = all.map((t) => env.source.qualified(t));
      const total = await changeMessages(env, qualified);
      await resetProcessorGroup(env);
      const t0 = Date.now();
      const replay = await env.start(['process', 'sink']);
      const t1 = Date.now();
      consumer = replay;
      const settled = () => stat(replay, 'applied') + stat(replay, 'skippedStale') + stat(replay, 'skippedUnchanged') + stat(replay, 'deadLettered') + stat(replay, 'conflicts');
      await waitFor(`the replay of ${total} changes to be consumed`, async () => settled() >= total, 120_000, 300);
      console.log(`replay: start ${t1 - t0} ms, consumed ${Date.now() - t1} ms, ${total} changes`);
      await sleep(500);
      const stats = JSON.stringify(replay.pipelines[0]?.applier?.stats);
      assert.equal(stat(replay, 'received'), total, `every change was delivered again: ${stats}`);
      assert.equal(stat(replay, 'applied'), 0, `a redelivery applies nothing: ${stats}`);
      // The rejected record is refused again (no state was ever committed for it), nothing else.
      assert.ok(stat(replay, 'deadLettered') <= 1, `only the rejected record can be dead-lettered again: ${stats}`);
      assert.deepEqual(await snapshot(), before, 'the target content is unchanged');
      if (env.target.writeMarks) assert.deepEqual(await marks(), marksBefore, 'no row was rewritten');
      const letters = (await deadLetters(env)).filter((e) => e.table?.endsWith(T.reject));
      assert.equal(letters.length, 1, 'the dead letter is listed once');
      assert.ok(capture.pipelines.length > 0);
    });
  });
}
