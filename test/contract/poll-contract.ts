/**
 * The parts of the source contract (./source-contract.ts) that a polling source (src/capture/poll/)
 * promises, through the real pipeline into a sink fixture: every declared type round-trips (a
 * snapshot pass and polled inserts and updates, NULLs), and deletes (single, many in one transaction,
 * delete + re-insert, re-inserts later) converge row for row. The contract's change-history checks
 * (every change of every key on the topic, in order, none twice) do not apply: a poll sees the state
 * of a row once per pass, so several writes between two passes arrive as one change.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Row } from '../../src/core/envelope.js';
import { waitFor } from '../helpers.js';
import type { SinkFixture, SourceDb, SourceFixture } from './fixtures.js';
import { canon, contractEnv, type ContractEnv } from './env.js';
import { rowDiff, typeRows } from './sink-contract.js';

const T = { types: 'cp_types', churn: 'cp_churn' };

/** `config(db)`: the polling source's config block for the fixture's database. */
export function pollContract(source: SourceFixture, sink: SinkFixture, config: (db: SourceDb) => Record<string, unknown>): void {
  describe(`poll contract: ${source.name} polled (into ${sink.name})`, { timeout: 300_000 }, () => {
    let env: ContractEnv;
    const S = source.basicTypes;
    const types = typeRows(source.types, 1);

    before(async () => {
      env = await contractEnv({
        source: async (id) => {
          const db = await source.createSource(id);
          return { ...db, config: () => config(db) };
        },
        target: (id) => sink.createTarget(id),
      }, Object.values(T));
      await env.source.createTable({ name: T.churn, columns: [['id', S.id], ['v', S.int], ['note', S.text]], key: ['id'] });
      await env.source.createTable({ name: T.types, columns: [['id', S.id], ...source.types.map((t): [string, string] => [t.column, t.sourceType])], key: ['id'] });
      await env.source.insertLiterals(T.types, types.literals);
      await env.source.insertLiterals(T.churn, Array.from({ length: 100 }, (_, i) => ({ id: String(i + 1), v: '1', note: `'n${i + 1}'` })));
      await env.start(['capture', 'process', 'sink']);
    });

    after(async () => {
      await env?.cleanup();
    });

    it('every declared type round-trips: snapshot pass and polled insert/update, NULL', async () => {
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
      assert.deepEqual(rowDiff(expected, await env.source.readAll(T.types, ['id'])), [], 'the source reads back as declared');
      let last: string[] = [];
      await waitFor('the target reads back as declared', async () => {
        last = rowDiff(expected, await env.target.readAll(T.types, ['id']));
        return last.length === 0;
      }, 90_000, 500).catch((err: Error) => assert.fail(`${err.message}\n${last.slice(0, 20).join('\n')}`));
    });

    it('deletes: single, many in one transaction, delete + re-insert, re-inserts later', async () => {
      const s = await env.source.session();
      try {
        for (let id = 1; id <= 20; id++) await s.transaction([{ kind: 'delete', table: T.churn, key: { id } }]);
        await s.transaction(Array.from({ length: 30 }, (_, k) => ({ kind: 'delete' as const, table: T.churn, key: { id: 21 + k } })));
        await s.transaction(Array.from({ length: 10 }, (_, k) => [{ kind: 'delete' as const, table: T.churn, key: { id: 51 + k } }, { kind: 'insert' as const, table: T.churn, row: { id: 51 + k, v: 2, note: 're' } }]).flat());
        for (let id = 1; id <= 10; id++) await s.transaction([{ kind: 'insert', table: T.churn, row: { id, v: 3, note: 'back' } }]);
        await s.transaction([{ kind: 'delete', table: T.churn, key: { id: 1 } }]);
      } finally {
        await s.close();
      }
      await waitFor(`${T.churn}: source and target row for row`, async () => canon(await env.source.readAll(T.churn, ['id'])) === canon(await env.target.readAll(T.churn, ['id'])), 90_000, 300);
      const ids = (await env.target.readAll(T.churn, ['id'])).map((r) => Number(r.id));
      assert.equal(ids.length, 100 - 50 + 9);
      assert.ok(!ids.includes(1) && ids.includes(2) && ids.includes(55) && !ids.includes(30));
    });
  });
}
